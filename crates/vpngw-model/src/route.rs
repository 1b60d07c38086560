//! VPN routes: destination (`dbr`) and policy (`pbr`) routes of a gateway.

use serde::{Deserialize, Serialize};

pub const DBR: &str = "dbr";
pub const PBR: &str = "pbr";
pub const CUSTOM: &str = "custom";
pub const SYSTEM: &str = "system";
/// Routes a gateway's BGP sessions learned (DescribeVpnRouteEntries' RouteEntryType `bgp`).
pub const BGP: &str = "bgp";
pub const DEFAULT_PRIORITY: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnRoute {
    /// `dbr` (destination) or `pbr` (policy).
    pub route_kind: String,
    pub route_dest: String,
    /// Policy routes only.
    pub route_source: String,
    /// The connection the route points to.
    pub next_hop: crate::id::VpnConnectionId,
    pub weight: u32,
    /// Policy routes only: 1..=100, smaller first.
    pub priority: u32,
    pub publish_vpc: bool,
    pub description: String,
    pub overlay_mode: String,
    /// `custom` or `system`.
    pub entry_type: String,
    /// The connection whose AutoConfigRoute made this route ("" for custom routes).
    pub origin: String,
}

impl VpnRoute {
    pub fn policy(&self) -> bool {
        self.route_kind == PBR
    }
    pub fn state(&self) -> &'static str {
        if self.publish_vpc {
            "published"
        } else {
            "normal"
        }
    }
    /// The same destination (and, for policy routes, source and priority): the routes that
    /// compete for the same traffic.
    pub fn same_target(&self, o: &VpnRoute) -> bool {
        self.route_kind == o.route_kind && self.route_dest == o.route_dest && (!self.policy() || (self.route_source == o.route_source && self.priority == o.priority))
    }
    /// The same route, published to the VPC's route table or not.
    pub fn with_publish(mut self, publish_vpc: bool) -> VpnRoute {
        self.publish_vpc = publish_vpc;
        self
    }
    /// The same route with another weight.
    pub fn with_weight(mut self, weight: u32) -> VpnRoute {
        self.weight = weight;
        self
    }
    /// A system route made by a connection's AutoConfigRoute.
    pub fn system(kind: &str, dest: &str, source: &str, next_hop: &str) -> VpnRoute {
        VpnRoute {
            route_kind: kind.into(),
            route_dest: dest.into(),
            route_source: source.into(),
            next_hop: next_hop.into(),
            weight: 100,
            priority: DEFAULT_PRIORITY,
            publish_vpc: true,
            description: String::new(),
            overlay_mode: "Ipsec".into(),
            entry_type: SYSTEM.into(),
            origin: next_hop.into(),
        }
    }
}
