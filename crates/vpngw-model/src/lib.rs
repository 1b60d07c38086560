//! `vpngw-model`: the domain, pure. Every resource's type as the store keeps it, the rules that
//! are functions of those types alone, and the mapping of settings to strongSwan's terms. No
//! async runtime, no store, no wire format, no HTTP: the service converts between these types
//! and the API's parameters and responses, and the data plane reads them as intent.

pub mod bgp;
pub mod certificate;
pub mod connection;
pub mod customer_gateway;
pub mod diagnosis;
pub mod gateway;
pub mod id;
pub mod ipsec_server;
pub mod neighbourhood;
pub mod openvpn;
pub mod pki;
pub mod placement;
pub mod plane;
pub mod proposal;
pub mod route;
pub mod rules;
pub mod secret;
pub mod ssl_vpn;
pub mod state;
pub mod vpc;

/// The time now, in Unix milliseconds (the unit of every stored time).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
