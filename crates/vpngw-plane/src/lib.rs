//! `vpngw-plane`: the boundary between the control plane and a data plane.
//!
//! ```text
//!   control plane (vpngw-service)                      data plane (vpngw-dataplane)
//!   ─────────────────────────────                      ────────────────────────────
//!   impl IntentSource ───── intent(), changed() ─────▶ reconciler: plan ▶ apply ▶ observe
//!   impl ObservationSink ◀── statuses, clients, ───── │
//!                             probe results, digests   │
//!   handlers ──────────────── LivePlane (async) ─────▶ logs, diagnoses, SSL clients
//! ```
//!
//! A data plane reads desired state only through [`IntentSource`] and reports only through
//! [`ObservationSink`]; handlers reach a running plane only through [`LivePlane`], keyed by
//! gateway, so that a plane can run in another process on another host. The types that cross
//! are the domain model's (`vpngw-model`): no store records, no wire format.

pub mod remote;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use vpngw_model::connection::VpnConnection;
use vpngw_model::diagnosis::{DiagnoseItem, GatewayDiagnosis};
use vpngw_model::gateway::VpnGateway;
use vpngw_model::ipsec_server::IpsecServer;
use vpngw_model::route::VpnRoute;
use vpngw_model::ssl_vpn::{SslClient, SslVpnServer};

pub use vpngw_model::placement::{converged_key, Role, Sides};
pub use vpngw_model::plane::{gateway_digest, status, Diagnosis, Observation};

/// Something between the planes failed (the store, or a plane that cannot be reached).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PlaneError(pub String);

pub type Result<T> = std::result::Result<T, PlaneError>;

/// One consistent reading of everything the data plane must hold.
#[derive(Debug, Clone, Default)]
pub struct Intent {
    /// The gateways whose documents can be read, with everything under them.
    pub gateways: Vec<GatewayIntent>,
    /// Every gateway that exists, readable or not: a gateway missing here is gone.
    pub gateway_ids: Vec<String>,
    /// Every SSL-VPN server that exists, readable or not.
    pub ssl_ids: HashSet<String>,
    /// Customer gateways' public addresses, by id.
    pub customer_gateways: HashMap<String, String>,
    /// Customer gateways' BGP settings (Asn, AuthKey in the clear), by id.
    pub bgp_peers: HashMap<String, vpngw_model::bgp::Peer>,
    /// Documents that exist but cannot be read: unknown, never to be taken for absent.
    pub unreadable: Vec<Unreadable>,
}

/// One gateway's intent.
#[derive(Debug, Clone)]
pub struct GatewayIntent {
    pub id: String,
    pub gw: VpnGateway,
    /// The CIDR blocks of its VPC's VSwitches.
    pub vpc_cidrs: Vec<ipnet::Ipv4Net>,
    pub conns: Vec<(String, VpnConnection)>,
    pub routes: Vec<VpnRoute>,
    /// Its IPsec server (at most one), by id.
    pub servers: Vec<(String, IpsecServer)>,
    /// Its SSL-VPN server (at most one), by id, with the ids of the client certificates that
    /// may connect (unexpired).
    pub ssl: Vec<(String, SslVpnServer, HashSet<String>)>,
    /// Why the data plane must leave this gateway exactly as it is: a document it depends on
    /// cannot be read.
    pub frozen: Option<String>,
    /// Which of the gateway's sides this data plane runs (both, unless the gateway is split
    /// over a fleet's agents: see `vpngw_model::placement`).
    pub sides: Sides,
}

/// A stored document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its kind, as the store names it (`vpn_connection`).
    pub kind: String,
    pub id: String,
    pub parent: Option<String>,
    pub why: String,
}

/// A DiagnoseVpnGateway diagnosis whose probes the data plane has yet to run.
#[derive(Debug, Clone)]
pub struct PendingDiagnosis {
    pub id: String,
    pub gateway_id: String,
    pub diagnosis: GatewayDiagnosis,
}

/// Where a data plane reads desired state.
#[async_trait]
pub trait IntentSource: Send + Sync + 'static {
    /// Everything the data plane must hold, read at once.
    async fn intent(&self) -> Result<Intent>;
    /// Returns when intent may have changed since the last return (a commit, an applied
    /// lifecycle step); callers also poll on a timer.
    async fn changed(&self);
    /// The diagnoses with probes to run; empty (and cheap) unless one was made since the last
    /// call or [`IntentSource::diagnoses_waiting`] was said.
    async fn pending_diagnoses(&self) -> Result<Vec<PendingDiagnosis>>;
    /// Asks for pending diagnoses to be handed out again (one could not be started).
    fn diagnoses_waiting(&self);
    /// Opens a secret that the control plane sealed (a private key of `record`'s `field`).
    fn open_secret(&self, record: &str, field: &str, sealed: &str) -> Result<String>;
}

/// Where a data plane reports what it observes and what it has applied.
#[async_trait]
pub trait ObservationSink: Send + Sync + 'static {
    /// A connection's negotiation statuses, health verdict and plane state; returns whether
    /// anything changed.
    async fn connection(&self, id: &str, o: &Observation) -> Result<bool>;
    /// How many clients an IPsec server has online.
    async fn ipsec_server(&self, id: &str, online: u32) -> Result<bool>;
    /// The result of one probe of a pending diagnosis.
    async fn diagnosis(&self, id: &str, item: DiagnoseItem) -> Result<bool>;
    /// The data plane now runs this intent digest of a gateway or connection (reported when it
    /// changes).
    async fn converged(&self, id: &str, digest: &str) -> Result<()>;
}

/// What handlers ask of the plane that runs a gateway, live.
#[async_trait]
pub trait LivePlane: Send + Sync + 'static {
    /// The clients connected to an SSL-VPN server of the gateway now.
    async fn ssl_clients(&self, gateway_id: &str, server_id: &str) -> Result<Vec<SslClient>>;
    /// An SSL-VPN server's log lines, oldest first.
    async fn ssl_log(&self, gateway_id: &str, server_id: &str) -> Result<Vec<String>>;
    /// The lines of the charon serving a gateway that name one of `keys` (the connection,
    /// tunnel or IPsec server ids its definitions are named after), oldest first.
    async fn ipsec_log(&self, gateway_id: &str, keys: &[String]) -> Result<Vec<String>>;
    /// For each tunnel of a gateway, given as (`key`, `peer_ip`): the newest negotiation
    /// failure its charon logged in the last `window_s` seconds.
    async fn ipsec_diagnoses(&self, gateway_id: &str, tunnels: &[(String, String)], window_s: i64) -> Result<Vec<Option<Diagnosis>>>;
}

/// The daemons' log lines, which both planes read, carry their time in one form.
pub use vpngw_model::plane::log_line_time;
