//! What passes between the control plane and the data plane: the negotiation statuses, the
//! digest a data plane reports once it has applied a gateway's intent, and its observations.

use std::collections::HashMap;

use crate::gateway::VpnGateway;
use crate::ipsec_server::IpsecServer;
use crate::route::VpnRoute;
use crate::ssl_vpn::SslVpnServer;

/// Statuses of the API's negotiation field (`Status` of a connection and of each tunnel).
pub mod status {
    pub use crate::state::NegotiationStatus;
    pub const IKE_DOWN: NegotiationStatus = NegotiationStatus::IkeDown;
    pub const IKE_UP: NegotiationStatus = NegotiationStatus::IkeUp;
    pub const IPSEC_DOWN: NegotiationStatus = NegotiationStatus::IpsecDown;
    pub const IPSEC_UP: NegotiationStatus = NegotiationStatus::IpsecUp;
}

/// What the data plane found wrong with a tunnel's negotiation (DiagnoseVpnConnections).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnosis {
    /// FailedReasonCode (vpngw's own codes: the documents list none).
    pub code: &'static str,
    pub reason: String,
    /// When it happened, in Unix milliseconds.
    pub time_ms: i64,
    /// The mismatched parameter as this side has it, and as the peer does, where the log tells.
    pub local: String,
    pub remote: String,
    /// Critical (phase 1 fails) or Warn (phase 1 up, phase 2 fails).
    pub severity: &'static str,
    /// The log line of the failure.
    pub log: String,
}

/// The digest of a gateway's whole intent: its addresses, every connection's digest, every
/// route, its IPsec server and its SSL-VPN server. A reconciler that converged on a gateway reports this; the engine compares it with
/// the store.
pub fn gateway_digest(gw: &VpnGateway, conns: &[(String, String)], routes: &[VpnRoute], servers: &[IpsecServer], ssl: &[SslVpnServer]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted = conns.to_vec();
    sorted.sort();
    let mut routes: Vec<String> = routes.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
    routes.sort();
    let mut servers: Vec<String> = servers.iter().map(IpsecServer::intent_digest).collect();
    servers.sort();
    let mut ssl: Vec<String> = ssl.iter().map(SslVpnServer::intent_digest).collect();
    ssl.sort();
    let v = serde_json::json!([gw.internet_ip, gw.dr_internet_ip, gw.ssl_connections, sorted, routes, servers, ssl]);
    hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8])
}

/// What a reconciler saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// The single-tunnel status (none for dual-tunnel connections).
    pub status: Option<status::NegotiationStatus>,
    /// Status by tunnel id (dual-tunnel connections).
    pub tunnels: HashMap<crate::id::TunnelId, status::NegotiationStatus>,
    /// `success`/`failed`, or `None` to leave the health verdict as it is.
    pub health: Option<String>,
    /// The data plane's own state (`converged`, `unsupported: why`, or `unknown: why` after a
    /// failure), or `None`.
    pub plane: Option<String>,
    /// With `plane`: why each tunnel (by connection or tunnel id) that this data plane cannot
    /// negotiate is not loaded; empty when every tunnel is.
    pub unsupported: std::collections::BTreeMap<String, String>,
    /// Each BGP session this plane runs, by tunnel key (the connection's id for a single
    /// tunnel, else the tunnel's id): whether its BGP daemon says it is Established.
    pub bgp: std::collections::BTreeMap<String, bool>,
    /// The routes each of those sessions learned (by tunnel key; a session that is not
    /// Established learned none).
    pub learned: std::collections::BTreeMap<String, Vec<crate::bgp::Learned>>,
    /// What the BGP daemon says of each session that is not Established (its state and last
    /// error, as it words them), by tunnel key.
    pub bgp_info: std::collections::BTreeMap<String, String>,
}

/// The Unix time of a log line that starts `YYYY-MM-DD HH:MM:SS` (OpenVPN's and vpngw's
/// charons; `T` between date and time is accepted too), in UTC.
pub fn log_line_time(line: &str) -> Option<i64> {
    let stamp = line.get(..19)?.replacen('T', " ", 1);
    chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc().timestamp())
}
