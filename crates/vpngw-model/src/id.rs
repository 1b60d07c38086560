//! Resource ids, one type per kind, so that a customer gateway's id cannot be passed where a
//! connection's is meant. Each is its string on the wire and in a stored document
//! (`serde(transparent)`), in Alibaba's shape: a prefix, a dash, then letters and digits.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident = $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of this kind's ids.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the prefix and 21 random lower-case letters and digits.
            pub fn generate() -> $name {
                $name(generate(Self::PREFIX))
            }
            /// Wraps an id as given (a client's, or a stored one); the store says whether it
            /// exists.
            pub fn new(s: impl Into<String>) -> $name {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }
        impl PartialEq<String> for $name {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }
    )*};
}

ids! {
    VpcId = "vpc";
    VSwitchId = "vsw";
    VpnGatewayId = "vpn";
    CustomerGatewayId = "cgw";
    VpnConnectionId = "vco";
    /// A tunnel of a dual-tunnel connection.
    TunnelId = "tun";
    IpsecServerId = "iss";
    SslVpnServerId = "vss";
    SslVpnClientCertId = "vsc";
}

/// A fresh id of any prefix (for ids that have no type of their own: tasks, route tables).
pub fn generate(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..21).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_string_in_a_document() {
        let id = CustomerGatewayId::generate();
        assert!(id.starts_with("cgw-") && id.len() == 25, "{id}");
        let v = serde_json::to_value(&id).unwrap();
        assert_eq!(v, serde_json::Value::String(id.to_string()));
        assert_eq!(serde_json::from_value::<CustomerGatewayId>(v).unwrap(), id);
    }
}
