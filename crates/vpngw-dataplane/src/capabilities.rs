//! What a charon can negotiate: the algorithms its loaded plugins provide, asked over VICI
//! (`get-algorithms`, and `stats` for the plugin list) when vpngw connects to it.
//!
//! strongSwan parses a proposal such as `des-md5-modp1024` whether or not a plugin implements
//! DES: a definition that names a missing algorithm loads, and then every negotiation fails
//! with "unsupported encryption algorithm". The reconciler therefore checks each definition's
//! proposals against the charon's algorithms before loading it, and reports what is missing
//! (and which package brings it) instead of a tunnel that never comes up.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::vici::{Client, Message, Result};

/// The algorithms a charon has, by kind, and the plugins it loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Kind (`encryption`, `integrity`, `prf`, `ke`) → algorithm names as charon spells them
    /// (`AES_CBC`, `HMAC_MD5_96`, `PRF_HMAC_SHA1`, `MODP_1024`).
    algorithms: HashMap<String, HashSet<String>>,
    /// The plugins charon loaded, in its order.
    pub plugins: Vec<String>,
}

/// An algorithm a proposal needs that the charon lacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lack {
    /// The proposal keyword (`des`, `md5`, `modp768`).
    pub keyword: String,
    /// What kind of algorithm it is, in words.
    pub kind: &'static str,
    /// charon's name for it (`DES_CBC`).
    pub name: &'static str,
    /// Which plugin (and Debian package) would bring it.
    pub hint: &'static str,
}

impl std::fmt::Display for Lack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} algorithm {} ({})", self.kind, self.name, self.keyword)
    }
}

const CIPHER_HINT: &str = "the openssl plugin (Debian: libstrongswan-standard-plugins) or the gcrypt plugin (libstrongswan-extra-plugins) brings it";
const AES_HINT: &str = "the aes plugin (Debian: libstrongswan) or the openssl plugin (libstrongswan-standard-plugins) brings it";
const HMAC_HINT: &str = "the hmac plugin with md5, sha1 and sha2 (Debian: libstrongswan) or the openssl plugin (libstrongswan-standard-plugins) brings it";
const MODP_HINT: &str = "the gmp plugin (Debian: libstrongswan) or the openssl plugin (libstrongswan-standard-plugins) brings it";

/// What a proposal keyword needs of charon: (kind as charon's get-algorithms names it, the
/// algorithm, the kind in words, the hint). IKE needs the PRF of an integrity keyword as well;
/// ESP only its integrity algorithm.
fn needs(keyword: &str, ike: bool) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let enc = |name| vec![("encryption", name, "encryption", if name == "AES_CBC" { AES_HINT } else { CIPHER_HINT })];
    let integ = |i, p| {
        let mut v = vec![("integrity", i, "integrity", HMAC_HINT)];
        if ike {
            v.push(("prf", p, "pseudo-random function", HMAC_HINT));
        }
        v
    };
    let ke = |name| vec![("ke", name, "Diffie-Hellman group", MODP_HINT)];
    match keyword {
        "aes128" | "aes192" | "aes256" => enc("AES_CBC"),
        "des" => enc("DES_CBC"),
        "3des" => enc("3DES_CBC"),
        "md5" => integ("HMAC_MD5_96", "PRF_HMAC_MD5"),
        "sha1" => integ("HMAC_SHA1_96", "PRF_HMAC_SHA1"),
        "sha256" => integ("HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256"),
        "sha384" => integ("HMAC_SHA2_384_192", "PRF_HMAC_SHA2_384"),
        "sha512" => integ("HMAC_SHA2_512_256", "PRF_HMAC_SHA2_512"),
        "modp768" => ke("MODP_768"),
        "modp1024" => ke("MODP_1024"),
        "modp1536" => ke("MODP_1536"),
        "modp2048" => ke("MODP_2048"),
        _ => Vec::new(),
    }
}

/// Every proposal keyword the API's settings map to (device.rs's mapping of IkeEncAlg,
/// IkeAuthAlg, IkePfs and their IPsec counterparts).
pub const API_KEYWORDS: &[&str] = &["aes128", "aes192", "aes256", "des", "3des", "md5", "sha1", "sha256", "sha384", "sha512", "modp768", "modp1024", "modp1536", "modp2048"];

impl Capabilities {
    /// Asks a charon what it has: `get-algorithms` and `stats` (whose `plugins` list names the
    /// loaded plugins).
    pub async fn query(client: &mut Client) -> Result<Capabilities> {
        let algs = client.call("get-algorithms", Message::new()).await?;
        let stats = client.call("stats", Message::new()).await?;
        Ok(Capabilities::from_messages(&algs, &stats))
    }

    pub fn from_messages(algs: &Message, stats: &Message) -> Capabilities {
        let mut algorithms: HashMap<String, HashSet<String>> = HashMap::new();
        for (kind, sec) in algs.sections() {
            // strongSwan 5 calls the key exchanges `dh`, strongSwan 6 `ke`.
            let kind = if kind == "dh" { "ke" } else { kind };
            algorithms.entry(kind.to_string()).or_default().extend(sec.0.iter().map(|(name, _)| name.clone()));
        }
        Capabilities { algorithms, plugins: stats.strs("plugins") }
    }

    /// Whether ESP runs in charon's userspace (kernel-libipsec), with the same algorithms as
    /// IKE; with the kernel's IPsec, ESP's algorithms are the kernel's and are not checked here.
    pub fn userspace_esp(&self) -> bool {
        self.plugins.iter().any(|p| p == "kernel-libipsec")
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        self.algorithms.get(kind).is_some_and(|s| s.contains(name))
    }

    /// What this charon lacks of one proposal (`aes128-sha1-modp1024`), IKE or ESP.
    pub fn lacks(&self, proposal: &str, ike: bool) -> Vec<Lack> {
        let mut out = BTreeSet::new();
        for keyword in proposal.split('-') {
            for (kind, name, words, hint) in needs(keyword, ike) {
                if !self.has(kind, name) {
                    out.insert(Lack { keyword: keyword.to_string(), kind: words, name, hint });
                }
            }
        }
        out.into_iter().collect()
    }

    /// What this charon lacks of everything the API accepts (as an IKE proposal would need it).
    pub fn missing_api(&self) -> Vec<Lack> {
        let mut out: Vec<Lack> = API_KEYWORDS.iter().flat_map(|k| self.lacks(k, true)).collect();
        out.dedup();
        out
    }
}

/// Why a definition with these proposals cannot be negotiated by a charon with `caps`, if it
/// cannot: names each missing algorithm, where it is used and what would bring it.
pub fn why_not(caps: &Capabilities, ike_proposal: &str, esp_proposals: &[&str]) -> Option<String> {
    // Each missing algorithm is named once, where it is first needed.
    let mut named = HashSet::new();
    let mut parts = Vec::new();
    let esp: &[&str] = if caps.userspace_esp() { esp_proposals } else { &[] };
    let proposals = std::iter::once((ike_proposal, true, "IKE")).chain(esp.iter().map(|p| (*p, false, "ESP")));
    for (proposal, ike, what) in proposals {
        for l in caps.lacks(proposal, ike) {
            if named.insert(l.name) {
                parts.push(format!("{l} of the {what} proposal {proposal}: {}", l.hint));
            }
        }
    }
    (!parts.is_empty()).then(|| format!("this charon lacks {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vici::Element;

    /// What charon 5.9.8 answers with the aes, sha1, sha2, md5, hmac, gmp and kernel-libipsec
    /// plugins and no openssl or gcrypt (a Debian machine without
    /// libstrongswan-standard-plugins), abridged.
    fn without_openssl() -> Capabilities {
        let sec = |names: &[&str], plugin: &str| Message(names.iter().map(|n| (n.to_string(), Element::Value(plugin.as_bytes().to_vec()))).collect());
        let algs = Message::new()
            .section("encryption", sec(&["AES_CBC", "AES_ECB"], "aes"))
            .section("integrity", sec(&["HMAC_SHA1_96", "HMAC_MD5_96", "HMAC_SHA2_256_128", "HMAC_SHA2_384_192", "HMAC_SHA2_512_256"], "hmac"))
            .section("prf", sec(&["PRF_HMAC_SHA1", "PRF_HMAC_MD5", "PRF_HMAC_SHA2_256", "PRF_HMAC_SHA2_384", "PRF_HMAC_SHA2_512"], "hmac"))
            .section("dh", sec(&["MODP_2048", "MODP_1536", "MODP_1024", "MODP_768"], "gmp"));
        let stats = Message::new().list("plugins", ["charon-systemd", "random", "aes", "hmac", "gmp", "kernel-libipsec", "vici"]);
        Capabilities::from_messages(&algs, &stats)
    }

    #[test]
    fn reads_algorithms_and_plugins() {
        let c = without_openssl();
        assert!(c.has("encryption", "AES_CBC") && c.has("ke", "MODP_1024"), "`dh` is read as `ke`");
        assert!(!c.has("encryption", "DES_CBC"));
        assert!(c.userspace_esp());
    }

    #[test]
    fn names_what_a_proposal_lacks() {
        let c = without_openssl();
        assert!(c.lacks("aes128-sha1-modp1024", true).is_empty());
        let l = c.lacks("3des-md5-modp1024", true);
        assert_eq!(l.iter().map(|l| l.name).collect::<Vec<_>>(), ["3DES_CBC"]);
        assert!(l[0].hint.contains("libstrongswan-standard-plugins") && l[0].hint.contains("gcrypt"));
        let missing: Vec<String> = c.missing_api().into_iter().map(|l| l.keyword).collect();
        assert_eq!(missing, ["des", "3des"]);
    }

    #[test]
    fn why_not_covers_esp_only_in_userspace() {
        let c = without_openssl();
        assert_eq!(why_not(&c, "aes128-sha1-modp1024", &["aes128-sha1"]), None);
        let why = why_not(&c, "aes128-sha1-modp1024", &["des-md5"]).expect("ESP in libipsec needs DES");
        assert!(why.contains("DES_CBC") && why.contains("ESP proposal des-md5"), "{why}");
        let why = why_not(&c, "des-sha1-modp1024", &["des-sha1"]).unwrap();
        assert_eq!(why.matches("DES_CBC").count(), 1, "named once: {why}");
        let why = why_not(&c, "3des-sha1-modp1024", &["des-sha1"]).unwrap();
        assert!(why.contains("3DES_CBC (3des) of the IKE") && why.contains("DES_CBC (des) of the ESP"), "both named: {why}");
        let kernel = Capabilities { plugins: vec!["kernel-netlink".into()], ..c };
        assert_eq!(why_not(&kernel, "aes128-sha1-modp1024", &["des-md5"]), None, "the kernel's ESP is not charon's to judge");
        let empty = Capabilities::default();
        assert!(why_not(&empty, "aes256-sha512-modp2048", &[]).unwrap().contains("MODP_2048"));
    }
}
