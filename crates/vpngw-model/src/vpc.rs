//! VPCs and VSwitches: the minimum a VPN gateway needs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vpc {
    pub name: String,
    pub description: String,
    pub cidr_block: String,
    pub vrouter_id: String,
    pub route_table_id: String,
    pub resource_group_id: String,
    /// User CIDR blocks (`UserCidr` at creation): up to three, kept and reported.
    #[serde(default)]
    pub user_cidrs: Vec<String>,
    /// `DnsHostnameStatus` is `ENABLED` when true.
    #[serde(default)]
    pub dns_hostname: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VSwitch {
    pub name: String,
    pub description: String,
    pub cidr_block: String,
    pub zone_id: String,
}
