//! What the service needs to know from the operator's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub id: String,
    pub local_name: String,
    pub zones: Vec<Zone>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub id: String,
    pub local_name: String,
}

/// Per-account, per-region limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    pub vpcs: u64,
    pub vswitches_per_vpc: u64,
    pub vpn_gateways: u64,
    pub customer_gateways: u64,
    pub vpn_connections_per_gateway: u64,
    /// Destination routes per gateway (CreateDbrRoutesQuotaFull).
    pub dbr_routes_per_gateway: u64,
    /// Policy routes per gateway (CreatePbrRoutesQuotaFull; QuotaExceeded.PolicyBasedRoute
    /// when AutoConfigRoute would pass it).
    pub pbr_routes_per_gateway: u64,
    /// Published VPN routes in one VPC's route table (QuotaExceeded.VpnRouteEntry).
    pub vpc_vpn_route_entries: u64,
    /// Client certificates per SSL-VPN server (Resource.QuotaFull).
    pub ssl_client_certs_per_server: u64,
    /// VPN attachments (connections of no gateway, each with its own public addresses).
    pub vpn_attachments: u64,
    /// Custom routes (VCO routes) per VPN attachment.
    pub vco_routes_per_attachment: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            vpcs: 10,
            vswitches_per_vpc: 150,
            vpn_gateways: 50,
            customer_gateways: 100,
            vpn_connections_per_gateway: 10,
            dbr_routes_per_gateway: 100,
            pbr_routes_per_gateway: 100,
            vpc_vpn_route_entries: 200,
            ssl_client_certs_per_server: 1000,
            vpn_attachments: 50,
            vco_routes_per_attachment: 100,
        }
    }
}

/// How long an SSL-VPN client certificate is valid unless the operator says otherwise (three
/// years).
pub const DEFAULT_SSL_CLIENT_CERT_DAYS: u64 = 3 * 365;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub regions: Vec<Region>,
    /// How long a lifecycle step (creating, updating, deleting) takes.
    pub transition: Duration,
    /// Where gateways' public addresses come from.
    pub public_ip_pool: ipnet::Ipv4Net,
    pub quotas: Quotas,
    /// The endpoint reported by DescribeRegions (this server's address).
    pub endpoint: String,
    /// How long an `updating` step waits for the data plane to apply a change.
    pub apply_timeout: Duration,
    /// How long an SSL-VPN client certificate is valid.
    pub ssl_client_cert_validity: Duration,
    /// Seals private keys at rest (see [`crate::secrets`]).
    pub sealer: std::sync::Arc<crate::secrets::Sealer>,
    /// Whether this process's own data plane can run BGP sessions (it runs tunnels and its
    /// BIRD binary is there). In a fleet the agents run them; see CheckVpnBgpEnabled.
    pub bgp_speaker: bool,
}

impl ServiceConfig {
    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Four regions with their zones, as the issue asks by default.
    pub fn default_regions() -> Vec<Region> {
        let r = |id: &str, name: &str, zones: &[(&str, &str)]| Region {
            id: id.into(),
            local_name: name.into(),
            zones: zones.iter().map(|(z, n)| Zone { id: (*z).into(), local_name: (*n).into() }).collect(),
        };
        vec![
            r("cn-hangzhou", "华东1（杭州）", &[("cn-hangzhou-h", "杭州 可用区H"), ("cn-hangzhou-i", "杭州 可用区I"), ("cn-hangzhou-j", "杭州 可用区J"), ("cn-hangzhou-k", "杭州 可用区K")]),
            r("cn-shanghai", "华东2（上海）", &[("cn-shanghai-e", "上海 可用区E"), ("cn-shanghai-f", "上海 可用区F"), ("cn-shanghai-g", "上海 可用区G")]),
            r("cn-beijing", "华北2（北京）", &[("cn-beijing-h", "北京 可用区H"), ("cn-beijing-i", "北京 可用区I"), ("cn-beijing-j", "北京 可用区J")]),
            r("ap-southeast-1", "新加坡", &[("ap-southeast-1a", "新加坡 可用区A"), ("ap-southeast-1b", "新加坡 可用区B"), ("ap-southeast-1c", "新加坡 可用区C")]),
        ]
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            regions: Self::default_regions(),
            transition: Duration::from_millis(300),
            public_ip_pool: "198.51.100.0/24".parse().expect("valid literal"),
            quotas: Quotas::default(),
            endpoint: "127.0.0.1:8080".into(),
            apply_timeout: Duration::from_secs(60),
            ssl_client_cert_validity: Duration::from_secs(DEFAULT_SSL_CLIENT_CERT_DAYS * 86400),
            sealer: std::sync::Arc::new(crate::secrets::Sealer::ephemeral()),
            bgp_speaker: false,
        }
    }
}
