//! VPN gateways and their certificate associations.

use serde::{Deserialize, Serialize};

pub use crate::id::VSwitchId;
pub use crate::state::BusinessStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VpnGateway {
    pub name: String,
    pub description: String,
    pub vswitch_id: VSwitchId,
    pub dr_vswitch_id: Option<VSwitchId>,
    pub bandwidth: u32,
    pub enable_ipsec: bool,
    pub enable_ssl: bool,
    pub ssl_connections: u32,
    pub vpn_type: String,
    pub charge_type: String,
    pub period: Option<u32>,
    pub auto_pay: bool,
    pub internet_ip: String,
    pub dr_internet_ip: Option<String>,
    pub intranet_ip: String,
    pub business_status: BusinessStatus,
    pub auto_propagate: bool,
    pub enable_bgp: bool,
    pub end_ms: i64,
    pub resource_group_id: String,
    pub order_id: i64,
    /// Certificates associated with the gateway (NationalStandard gateways only).
    #[serde(default)]
    pub certificates: Vec<CertAssociation>,
    /// NetworkType as created: `public` or `private` (a label here: both kinds take their
    /// address from the public pool).
    #[serde(default = "public_network")]
    pub network_type: String,
    /// `Normal` (CreateVpnGateway) or `Enhanced.SiteToSite` (CreateEnhancedVpnGateway: no
    /// bandwidth, charge or SSL-VPN settings; `bandwidth` is 0).
    #[serde(default = "normal_gateway")]
    pub gateway_type: String,
}

pub fn normal_gateway() -> String {
    NORMAL.into()
}

/// The GatewayType of CreateVpnGateway's gateways.
pub const NORMAL: &str = "Normal";
/// The GatewayType of CreateEnhancedVpnGateway's gateways.
pub const ENHANCED_SITE_TO_SITE: &str = "Enhanced.SiteToSite";

pub fn public_network() -> String {
    "public".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertAssociation {
    pub certificate_id: String,
    /// `Signature` or `Encryption`.
    pub certificate_type: String,
    pub associated_ms: i64,
}
