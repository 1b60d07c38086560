//! What a write's rules compare it with: a VPC's gateways, each with its routes and its servers'
//! client pools, and the zones of the VPC's vSwitches. The service reads it once, before any
//! rule runs; the rules here are functions of it alone.

use std::collections::HashMap;

use crate::connection::VpnConnection;
use crate::gateway::VpnGateway;
use crate::id::{VSwitchId, VpnGatewayId};
use crate::route::{VpnRoute, DBR, PBR, SYSTEM};
use crate::rules::{overlaps, route_pair, ModelError, Pool};

/// A VPC as the rules of a write on one of its gateways see it.
#[derive(Debug, Clone, Default)]
pub struct Neighbourhood {
    /// The VPC's CIDR block ("" if unknown).
    pub vpc_cidr: String,
    /// Every gateway of the VPC.
    pub gateways: Vec<Side>,
    /// The zone of each vSwitch of the VPC.
    pub zones: HashMap<VSwitchId, String>,
}

/// One gateway of the VPC, with what the rules compare with.
#[derive(Debug, Clone)]
pub struct Side {
    pub id: VpnGatewayId,
    pub gateway: VpnGateway,
    /// Its routes, each with its record's id.
    pub routes: Vec<(String, VpnRoute)>,
    /// The client pool of its IPsec server, if it has one.
    pub ipsec_pool: Option<String>,
    /// The client pool of its SSL-VPN server, if it has one.
    pub ssl_pool: Option<String>,
}

impl Side {
    pub fn pool(&self, kind: Pool) -> Option<&str> {
        match kind {
            Pool::Ipsec => self.ipsec_pool.as_deref(),
            Pool::Ssl => self.ssl_pool.as_deref(),
        }
    }
}

/// Limits on a gateway's routes and on the VPC's route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteQuotas {
    pub dbr_per_gateway: u64,
    pub pbr_per_gateway: u64,
    /// Published routes in the VPC's route table.
    pub vpc_table: u64,
}

/// What a connection's system routes need: the records to delete and the routes to add.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteChanges {
    pub delete: Vec<String>,
    pub add: Vec<VpnRoute>,
}

impl Neighbourhood {
    pub fn side(&self, gw: &VpnGatewayId) -> Option<&Side> {
        self.gateways.iter().find(|s| &s.id == gw)
    }

    /// The zone of a vSwitch of the VPC ("" if it is not one).
    pub fn zone(&self, vsw: &VSwitchId) -> &str {
        self.zones.get(vsw).map(String::as_str).unwrap_or("")
    }

    /// A route must not lead into a client pool of the VPC's gateways (their routes share the
    /// VPC's table).
    pub fn route_clear_of_pools(&self, route: &VpnRoute) -> Result<(), ModelError> {
        for s in &self.gateways {
            for kind in [Pool::Ipsec, Pool::Ssl] {
                if s.pool(kind).is_some_and(|p| overlaps(p, &route.route_dest)) {
                    return Err(ModelError::RouteIntoPool(kind));
                }
            }
        }
        Ok(())
    }

    /// The client pool of a server of kind `own` on gateway `gw` overlaps neither the VPC, nor
    /// the gateway's other kind of pool, nor a route of the VPC's gateways.
    pub fn client_pool_ok(&self, gw: &VpnGatewayId, pool: &str, own: Pool) -> Result<(), ModelError> {
        let clash = || ModelError::ClientPoolOverlap(pool.to_string());
        if overlaps(&self.vpc_cidr, pool) {
            return Err(clash());
        }
        let other = if own == Pool::Ssl { Pool::Ipsec } else { Pool::Ssl };
        if self.side(gw).and_then(|s| s.pool(other)).is_some_and(|p| overlaps(p, pool)) {
            return Err(clash());
        }
        if self.gateways.iter().flat_map(|s| &s.routes).any(|(_, r)| overlaps(&r.route_dest, pool)) {
            return Err(ModelError::PoolIntoRoute(own));
        }
        Ok(())
    }

    /// Publishing `route` of gateway `gw` (whose routes are `own`, the route itself aside) into
    /// the VPC's route table: one VPN gateway per CIDR there, and a quota.
    pub fn publish_ok(&self, gw: &VpnGatewayId, route: &VpnRoute, own: &[&VpnRoute], quota: u64) -> Result<(), ModelError> {
        if !route.publish_vpc {
            return Ok(());
        }
        let mut table: std::collections::HashSet<&str> = own.iter().filter(|r| r.publish_vpc).map(|r| r.route_dest.as_str()).collect();
        for (_, r) in self.gateways.iter().filter(|s| &s.id != gw).flat_map(|s| &s.routes) {
            if r.publish_vpc {
                if r.route_dest == route.route_dest {
                    return Err(ModelError::VpcRouteConflict);
                }
                table.insert(&r.route_dest);
            }
        }
        if !table.contains(route.route_dest.as_str()) && table.len() as u64 >= quota {
            return Err(ModelError::VpcRouteQuota);
        }
        Ok(())
    }

    /// The changes that make the system routes of connection `conn_id` of gateway `gw` match
    /// `c` (`None`: the connection goes, and every route to it), with the route rules checked
    /// against the gateway's other routes and the VPC.
    pub fn connection_routes(&self, gw: &VpnGatewayId, conn_id: &str, c: Option<&VpnConnection>, quotas: RouteQuotas) -> Result<RouteChanges, ModelError> {
        let routes: &[(String, VpnRoute)] = self.side(gw).map(|s| s.routes.as_slice()).unwrap_or(&[]);
        let Some(c) = c else {
            return Ok(RouteChanges { delete: routes.iter().filter(|(_, r)| r.next_hop == conn_id).map(|(id, _)| id.clone()).collect(), add: Vec::new() });
        };
        let (own, others): (Vec<_>, Vec<_>) = routes.iter().partition(|(_, r)| r.entry_type == SYSTEM && r.origin == conn_id);
        let want = system_routes(conn_id, c);
        let mut seen: Vec<&VpnRoute> = others.iter().map(|(_, r)| r).collect();
        for w in &want {
            route_pair(w, &seen)?;
            self.route_clear_of_pools(w)?;
            seen.push(w);
        }
        let count = |kind: &str| others.iter().filter(|(_, r)| r.route_kind == kind).count() as u64;
        let new = |kind: &str| want.iter().filter(|r| r.route_kind == kind).count() as u64;
        if new(PBR) > 0 && count(PBR) + new(PBR) > quotas.pbr_per_gateway {
            return Err(ModelError::PolicyRouteQuota { existing: count(PBR), new: new(PBR), max: quotas.pbr_per_gateway });
        }
        if new(DBR) > 0 && count(DBR) + new(DBR) > quotas.dbr_per_gateway {
            return Err(ModelError::DbrRouteQuota);
        }
        let delete = own.iter().filter(|(_, r)| !want.contains(r)).map(|(id, _)| id.clone()).collect();
        let others_only: Vec<&VpnRoute> = others.iter().map(|(_, r)| r).collect();
        let mut add = Vec::new();
        for w in want.into_iter().filter(|w| !own.iter().any(|(_, r)| r == w)) {
            self.publish_ok(gw, &w, &others_only, quotas.vpc_table)?;
            add.push(w);
        }
        Ok(RouteChanges { delete, add })
    }
}

/// AutoConfigRoute: a connection that routes by destination (LocalSubnet 0.0.0.0/0) gets a
/// destination route per RemoteSubnet; one with traffic selectors on both sides gets a policy
/// route per (LocalSubnet, RemoteSubnet) pair; one with 0.0.0.0/0 on both sides gets none (its
/// routes are the user's).
pub fn system_routes(conn_id: &str, c: &VpnConnection) -> Vec<VpnRoute> {
    let any = |v: &[String]| v.len() == 1 && v[0] == "0.0.0.0/0";
    match (c.auto_config_route, any(&c.local_subnet), any(&c.remote_subnet)) {
        (false, _, _) | (true, true, true) => Vec::new(),
        (true, true, false) => c.remote_subnet.iter().map(|r| VpnRoute::system(DBR, r, "", conn_id)).collect(),
        (true, false, _) => c.local_subnet.iter().flat_map(|l| c.remote_subnet.iter().map(move |r| VpnRoute::system(PBR, r, l, conn_id))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::VpnConnection;

    fn gateway() -> VpnGateway {
        serde_json::from_value(serde_json::json!({
            "name": "g", "description": "", "vswitch_id": "vsw-1", "dr_vswitch_id": null, "bandwidth": 10, "enable_ipsec": true, "enable_ssl": true,
            "ssl_connections": 5, "vpn_type": "Normal", "charge_type": "POSTPAY", "period": null, "auto_pay": false, "internet_ip": "1.1.1.1",
            "dr_internet_ip": null, "intranet_ip": "", "business_status": "Normal", "auto_propagate": true, "enable_bgp": false, "end_ms": 0,
            "resource_group_id": "", "order_id": 0
        }))
        .unwrap()
    }

    fn side(id: &str, routes: Vec<VpnRoute>, ipsec_pool: Option<&str>, ssl_pool: Option<&str>) -> Side {
        Side {
            id: id.into(),
            gateway: gateway(),
            routes: routes.into_iter().enumerate().map(|(i, r)| (format!("vrt-{id}-{i}"), r)).collect(),
            ipsec_pool: ipsec_pool.map(Into::into),
            ssl_pool: ssl_pool.map(Into::into),
        }
    }

    fn vpc(gateways: Vec<Side>) -> Neighbourhood {
        Neighbourhood { vpc_cidr: "10.0.0.0/8".into(), gateways, zones: HashMap::new() }
    }

    const QUOTAS: RouteQuotas = RouteQuotas { dbr_per_gateway: 2, pbr_per_gateway: 2, vpc_table: 3 };

    fn connection(local: &[&str], remote: &[&str]) -> VpnConnection {
        let mut c: VpnConnection = serde_json::from_value(serde_json::json!({
            "name": "c", "customer_gateway_id": "cgw-1", "cgw_ids": ["cgw-1"], "local_subnet": [], "remote_subnet": [],
            "effect_immediately": false, "auto_config_route": true, "enable_dpd": true, "enable_nat_traversal": true, "remote_ca_certificate": "",
            "ike": {"psk": "k", "ike_version": "ikev2", "ike_mode": "main", "ike_enc_alg": "aes", "ike_auth_alg": "sha1", "ike_pfs": "group2", "ike_lifetime": 86400, "local_id": "", "remote_id": ""},
            "ipsec": {"ipsec_enc_alg": "aes", "ipsec_auth_alg": "sha1", "ipsec_pfs": "group2", "ipsec_lifetime": 86400},
            "bgp": {"enable": false, "local_asn": 45104, "tunnel_cidr": "", "local_bgp_ip": ""},
            "health": {"enable": false, "sip": "", "dip": "", "interval": 3, "retry": 3, "policy": "revoke_route"},
            "enable_tunnels_bgp": false, "tunnels": [], "status": "ike_sa_not_established", "internet_ip": "1.1.1.1", "zone_no": "", "resource_group_id": "",
            "negotiation_generation": 1
        }))
        .unwrap();
        c.local_subnet = local.iter().map(|s| s.to_string()).collect();
        c.remote_subnet = remote.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn a_route_never_leads_into_a_client_pool_of_the_vpc() {
        let n = vpc(vec![side("vpn-a", vec![], None, None), side("vpn-b", vec![], Some("192.168.0.0/24"), Some("192.168.8.0/24"))]);
        let r = |dest: &str| VpnRoute::system(DBR, dest, "", "vco-1");
        assert_eq!(n.route_clear_of_pools(&r("192.168.0.0/16")), Err(ModelError::RouteIntoPool(Pool::Ipsec)));
        assert_eq!(n.route_clear_of_pools(&r("192.168.8.128/25")), Err(ModelError::RouteIntoPool(Pool::Ssl)));
        assert_eq!(n.route_clear_of_pools(&r("192.168.9.0/24")), Ok(()));
    }

    #[test]
    fn a_client_pool_clears_the_vpc_the_other_pool_and_every_route() {
        let routed = VpnRoute::system(DBR, "172.16.0.0/16", "", "vco-1");
        let n = vpc(vec![side("vpn-a", vec![], Some("192.168.0.0/24"), None), side("vpn-b", vec![routed], None, None)]);
        let a = VpnGatewayId::from("vpn-a");
        assert_eq!(n.client_pool_ok(&a, "10.9.0.0/16", Pool::Ssl), Err(ModelError::ClientPoolOverlap("10.9.0.0/16".into())));
        assert_eq!(n.client_pool_ok(&a, "192.168.0.0/16", Pool::Ssl), Err(ModelError::ClientPoolOverlap("192.168.0.0/16".into())));
        assert_eq!(n.client_pool_ok(&a, "192.168.0.0/16", Pool::Ipsec), Ok(()), "its own kind's pool is the one it replaces");
        assert_eq!(n.client_pool_ok(&a, "172.16.4.0/24", Pool::Ssl), Err(ModelError::PoolIntoRoute(Pool::Ssl)), "another gateway's route");
        assert_eq!(n.client_pool_ok(&a, "172.17.0.0/24", Pool::Ssl), Ok(()));
    }

    #[test]
    fn the_vpc_table_holds_one_gateway_per_cidr_up_to_its_quota() {
        let published = |dest: &str| VpnRoute::system(DBR, dest, "", "vco-9");
        let n = vpc(vec![side("vpn-a", vec![], None, None), side("vpn-b", vec![published("172.16.0.0/24"), published("172.16.1.0/24")], None, None)]);
        let a = VpnGatewayId::from("vpn-a");
        let mine = published("172.16.2.0/24");
        assert_eq!(n.publish_ok(&a, &published("172.16.0.0/24"), &[], 3), Err(ModelError::VpcRouteConflict));
        assert_eq!(n.publish_ok(&a, &published("172.16.3.0/24"), &[], 3), Ok(()));
        assert_eq!(n.publish_ok(&a, &published("172.16.3.0/24"), &[&mine], 3), Err(ModelError::VpcRouteQuota));
        assert_eq!(n.publish_ok(&a, &published("172.16.2.0/24"), &[&mine], 3), Ok(()), "a CIDR already in the table takes no more room");
        assert_eq!(n.publish_ok(&a, &published("172.16.0.0/24").with_publish(false), &[], 3), Ok(()), "unpublished");
    }

    #[test]
    fn a_connections_system_routes_follow_its_subnets_within_the_quotas() {
        let a = VpnGatewayId::from("vpn-a");
        let c = connection(&["0.0.0.0/0"], &["172.16.0.0/24", "172.16.1.0/24"]);
        let n = vpc(vec![side("vpn-a", vec![], None, None)]);
        let ch = n.connection_routes(&a, "vco-1", Some(&c), QUOTAS).unwrap();
        assert_eq!((ch.delete.len(), ch.add.iter().map(|r| r.route_dest.as_str()).collect::<Vec<_>>()), (0, vec!["172.16.0.0/24", "172.16.1.0/24"]));

        // Applied, then one subnet changes: one route goes, one comes.
        let n = vpc(vec![side("vpn-a", ch.add.clone(), None, None)]);
        let moved = connection(&["0.0.0.0/0"], &["172.16.0.0/24", "172.16.2.0/24"]);
        let ch = n.connection_routes(&a, "vco-1", Some(&moved), QUOTAS).unwrap();
        assert_eq!((ch.delete, ch.add.iter().map(|r| r.route_dest.as_str()).collect::<Vec<_>>()), (vec!["vrt-vpn-a-1".to_string()], vec!["172.16.2.0/24"]));
        assert_eq!(n.connection_routes(&a, "vco-1", None, QUOTAS).unwrap().delete.len(), 2, "a connection that goes takes its routes");

        // A second connection: over the quota, and its policy routes counted.
        let three = connection(&["0.0.0.0/0"], &["172.20.0.0/24"]);
        assert_eq!(n.connection_routes(&a, "vco-2", Some(&three), QUOTAS), Err(ModelError::DbrRouteQuota));
        let pbr = connection(&["10.0.0.0/24"], &["172.30.0.0/24", "172.31.0.0/24", "172.32.0.0/24"]);
        assert_eq!(n.connection_routes(&a, "vco-2", Some(&pbr), QUOTAS), Err(ModelError::PolicyRouteQuota { existing: 0, new: 3, max: 2 }));
        let same_target = connection(&["0.0.0.0/0"], &["172.16.0.0/24"]);
        assert_eq!(n.connection_routes(&a, "vco-2", Some(&same_target), QUOTAS), Err(ModelError::RouteSameWeight), "a second active route to one target");
    }
}
