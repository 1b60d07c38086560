//! IPsec-VPN connections: single-tunnel, or dual-tunnel with one master and one slave tunnel.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::id::{CustomerGatewayId, TunnelId, VpnConnectionId};
pub use crate::state::{NegotiationStatus, RoutingMode, TunnelRole};

/// A new connection's status, and every tunnel's.
pub const NOT_ESTABLISHED: NegotiationStatus = NegotiationStatus::IkeDown;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IkeCfg {
    pub psk: crate::secret::Secret,
    pub ike_version: String,
    pub ike_mode: String,
    pub ike_enc_alg: String,
    pub ike_auth_alg: String,
    pub ike_pfs: String,
    pub ike_lifetime: u32,
    pub local_id: String,
    pub remote_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpsecCfg {
    pub ipsec_enc_alg: String,
    pub ipsec_auth_alg: String,
    pub ipsec_pfs: String,
    pub ipsec_lifetime: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpCfg {
    pub enable: bool,
    pub local_asn: u32,
    pub tunnel_cidr: String,
    pub local_bgp_ip: String,
}

/// The gateway side's AS number when none is given.
pub const DEFAULT_LOCAL_ASN: u32 = 45104;

impl Default for BgpCfg {
    fn default() -> BgpCfg {
        BgpCfg { enable: false, local_asn: DEFAULT_LOCAL_ASN, tunnel_cidr: String::new(), local_bgp_ip: String::new() }
    }
}

impl BgpCfg {
    /// With BGP on: a tunnel CIDR, a customer-gateway ASN (`peer_asn`), and the local BGP
    /// address inside the /30 (the first usable address when not given, which this sets).
    pub fn settle(&mut self, peer_asn: Option<u32>) -> Result<(), crate::rules::ModelError> {
        use crate::rules::ModelError;
        if !self.enable {
            return Ok(());
        }
        if self.tunnel_cidr.is_empty() {
            return Err(ModelError::MissingTunnelCidr);
        }
        if peer_asn.is_none() {
            return Err(ModelError::MissingPeerAsn);
        }
        let net: ipnet::Ipv4Net = self.tunnel_cidr.parse().map_err(|_| ModelError::BadTunnelCidr)?;
        let hosts: Vec<String> = net.hosts().map(|h| h.to_string()).collect();
        if self.local_bgp_ip.is_empty() {
            self.local_bgp_ip = hosts.first().cloned().ok_or(ModelError::BadTunnelCidr)?;
        } else if !hosts.contains(&self.local_bgp_ip) {
            return Err(ModelError::LocalBgpIpOutside);
        }
        Ok(())
    }

    /// The peer's BGP address: the other usable address of the /30.
    pub fn peer_ip(&self) -> String {
        self.tunnel_cidr.parse::<ipnet::Ipv4Net>().ok().and_then(|n| n.hosts().find(|h| h.to_string() != self.local_bgp_ip)).map(|h| h.to_string()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub enable: bool,
    pub sip: String,
    pub dip: String,
    pub interval: u32,
    pub retry: u32,
    pub policy: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tunnel {
    pub tunnel_id: TunnelId,
    pub role: TunnelRole,
    pub customer_gateway_id: CustomerGatewayId,
    pub internet_ip: String,
    pub zone_no: String,
    pub enable_dpd: bool,
    pub enable_nat_traversal: bool,
    pub remote_ca_certificate: String,
    pub ike: IkeCfg,
    pub ipsec: IpsecCfg,
    pub bgp: BgpCfg,
    /// Negotiation status, owned by the data plane.
    pub status: NegotiationStatus,
    /// Whether the tunnel's BGP session is Established, as its BGP daemon said last; owned by
    /// the data plane.
    #[serde(default)]
    pub bgp_up: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpnConnection {
    pub name: String,
    /// The customer gateway of a single-tunnel connection ("" for dual-tunnel ones).
    pub customer_gateway_id: CustomerGatewayId,
    /// Every customer gateway the connection uses (for filters and dependency checks).
    pub cgw_ids: Vec<CustomerGatewayId>,
    pub local_subnet: Vec<String>,
    pub remote_subnet: Vec<String>,
    pub effect_immediately: bool,
    pub auto_config_route: bool,
    pub enable_dpd: bool,
    pub enable_nat_traversal: bool,
    pub remote_ca_certificate: String,
    pub ike: IkeCfg,
    pub ipsec: IpsecCfg,
    pub bgp: BgpCfg,
    pub health: HealthCheck,
    pub enable_tunnels_bgp: bool,
    pub tunnels: Vec<Tunnel>,
    /// Negotiation status of a single-tunnel connection, owned by the data plane.
    pub status: NegotiationStatus,
    pub internet_ip: String,
    pub zone_no: String,
    pub resource_group_id: String,
    /// Moves when a negotiable setting changes: the data plane re-negotiates then, not otherwise.
    pub negotiation_generation: u64,
    /// `bgp` or `static`: kept beside the settings so that the gateway's BGP rules can find the
    /// BGP connections without reading every connection.
    #[serde(default)]
    pub routing: RoutingMode,
    /// The health check's last verdict (`success`/`failed`), owned by the data plane; empty
    /// until a probe has run.
    #[serde(default)]
    pub health_status: String,
    /// What the data plane last knew of this connection: `converged`, `unsupported: why`, or
    /// `unknown: why`.
    #[serde(default)]
    pub plane_state: String,
    /// Why the data plane cannot negotiate a tunnel (by connection id, or tunnel id of a
    /// dual-tunnel connection): an algorithm its strongSwan lacks. Observed, like `status`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub plane_unsupported: std::collections::BTreeMap<String, String>,
    /// Whether a single-tunnel connection's BGP session is Established, as its BGP daemon said
    /// last; owned by the data plane.
    #[serde(default)]
    pub bgp_up: bool,
    /// The routes its BGP sessions learned from their peers, as their BGP daemon said last;
    /// owned by the data plane.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_routes: Vec<BgpRoute>,
    /// What the BGP daemon last said of each session that is not Established (by tunnel key);
    /// DiagnoseVpnConnections reads it. Owned by the data plane.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub bgp_info: std::collections::BTreeMap<String, String>,
    /// What the connection is bound to (DescribeVpnConnection's AttachType): `VPNGW` (a VPN
    /// gateway's; the record's parent) or `NO_ASSOCIATED` (a VPN attachment, bound to nothing).
    #[serde(default = "attach_vpngw")]
    pub attach_type: String,
    /// A VPN attachment's own settings (CreateVpnAttachment); `None` for a gateway's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// AttachType of a VPN gateway's connection.
pub const ATTACH_VPNGW: &str = "VPNGW";
/// AttachType of a VPN attachment: no transit router exists here to bind it to.
pub const ATTACH_NONE: &str = "NO_ASSOCIATED";

pub fn attach_vpngw() -> String {
    ATTACH_VPNGW.into()
}

/// A VPN attachment: an IPsec connection of no VPN gateway, with a public address of its own
/// (one per tunnel), whose private side is its LocalSubnet (on Alibaba Cloud, a transit
/// router's; here, the data plane's stand-in network). Its routes are VCO routes, stored as
/// routes of its own [`attachment_gateway_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `public` or `private`.
    pub network_type: String,
    /// `Standard` or `Large` ("" when not given).
    pub tunnel_bandwidth: String,
    pub description: String,
}

/// The data plane's gateway of attachment `conn_id`: the unit (namespace, charon, routes) that
/// runs it, as a VPN gateway's runs that gateway's connections. Never an API resource.
pub fn attachment_gateway_id(conn_id: &str) -> String {
    format!("att-{conn_id}")
}

/// The gateway an attachment's data plane runs as: its public addresses (the master tunnel's
/// and the slave's), IPsec only, no VPC to propagate routes to.
pub fn attachment_gateway(internet_ip: &str, dr_internet_ip: Option<String>, a: &Attachment, resource_group_id: &str) -> crate::gateway::VpnGateway {
    crate::gateway::VpnGateway {
        name: String::new(),
        description: a.description.clone(),
        vswitch_id: Default::default(),
        dr_vswitch_id: None,
        bandwidth: 0,
        enable_ipsec: true,
        enable_ssl: false,
        ssl_connections: 0,
        vpn_type: "Normal".into(),
        charge_type: "POSTPAY".into(),
        period: None,
        auto_pay: false,
        internet_ip: internet_ip.to_string(),
        dr_internet_ip,
        intranet_ip: String::new(),
        business_status: crate::state::BusinessStatus::Normal,
        auto_propagate: false,
        enable_bgp: false,
        end_ms: 0,
        resource_group_id: resource_group_id.to_string(),
        order_id: 0,
        certificates: Vec::new(),
        network_type: a.network_type.clone(),
        gateway_type: "Attachment".into(),
    }
}

/// A route a tunnel's BGP session learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpRoute {
    /// The tunnel whose session learned it: the connection's id (single tunnel) or the tunnel's.
    pub tunnel: String,
    #[serde(flatten)]
    pub route: crate::bgp::Learned,
    /// When it was first learned (ms since the epoch).
    pub created_ms: i64,
}

impl VpnConnection {
    pub fn is_attachment(&self) -> bool {
        self.attachment.is_some()
    }

    /// The gateway an attachment's data plane runs as (see [`attachment_gateway`]).
    pub fn attachment_gateway(&self) -> crate::gateway::VpnGateway {
        let (ip, dr_ip) = match self.tunnels.as_slice() {
            [] => (self.internet_ip.clone(), None),
            [m, rest @ ..] => (m.internet_ip.clone(), rest.first().map(|s| s.internet_ip.clone())),
        };
        let a = self.attachment.clone().unwrap_or(Attachment { network_type: "public".into(), tunnel_bandwidth: String::new(), description: String::new() });
        attachment_gateway(&ip, dr_ip, &a, &self.resource_group_id)
    }

    /// What the data plane must apply: a digest of the negotiable settings, the start policy,
    /// the health check and the BGP settings. Observed state (statuses) is not part of it.
    pub fn intent_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let bgp = json!([self.bgp, self.enable_tunnels_bgp, self.tunnels.iter().map(|t| &t.bgp).collect::<Vec<_>>()]);
        let v = json!([self.negotiable(), self.effect_immediately, self.health, self.customer_gateway_id, self.cgw_ids, bgp]);
        hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8])
    }
    pub fn dual(&self) -> bool {
        !self.tunnels.is_empty()
    }
    pub fn bgp_enabled(&self) -> bool {
        if self.dual() {
            self.enable_tunnels_bgp
        } else {
            self.bgp.enable
        }
    }
    /// (customer gateway, IKE settings) of each endpoint: one, or one per tunnel.
    pub fn endpoints(&self) -> Vec<(&CustomerGatewayId, &IkeCfg)> {
        if self.dual() {
            self.tunnels.iter().map(|t| (&t.customer_gateway_id, &t.ike)).collect()
        } else {
            vec![(&self.customer_gateway_id, &self.ike)]
        }
    }
    pub fn tunnel_cidrs(&self) -> Vec<&str> {
        let mut v: Vec<&str> = if self.dual() { self.tunnels.iter().map(|t| t.bgp.tunnel_cidr.as_str()).collect() } else { vec![self.bgp.tunnel_cidr.as_str()] };
        v.retain(|c| !c.is_empty());
        v
    }
    /// The negotiable part: what the data plane must re-negotiate when it changes.
    pub fn negotiable(&self) -> Value {
        json!([
            self.local_subnet,
            self.remote_subnet,
            self.enable_dpd,
            self.enable_nat_traversal,
            self.ike,
            self.ipsec,
            self.tunnels.iter().map(|t| json!([t.enable_dpd, t.enable_nat_traversal, t.ike, t.ipsec])).collect::<Vec<_>>()
        ])
    }
}
