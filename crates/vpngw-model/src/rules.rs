//! Rules that are functions of the model alone. They answer with a [`ModelError`]; the service
//! maps each to its code of the one error table.

use crate::connection::{IkeCfg, VpnConnection};
use crate::route::VpnRoute;

/// Whose client pool: an IPsec server's or an SSL-VPN server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Ipsec,
    Ssl,
}

/// Why a rule refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// Two connections of one gateway to one customer gateway with other IKE settings.
    SameCustomerGatewayOtherIke,
    /// Two connections of one gateway to one customer gateway whose selectors overlap.
    SameCustomerGatewaySelectorsOverlap,
    /// A TunnelCidr that another connection of the gateway uses.
    TunnelCidrInUse,
    /// The two tunnels of a dual-tunnel connection with overlapping TunnelCidrs.
    TunnelCidrsOverlap,
    /// BGP is off while another connection of the gateway has it on.
    BgpOffBesideBgp,
    /// A route with the same target and next hop exists.
    RouteExists,
    /// A route to the same target with the same weight exists (one active, one standby).
    RouteSameWeight,
    /// A route that leads into a client pool of the VPC's gateways.
    RouteIntoPool(Pool),
    /// A client pool (this one) that overlaps the VPC or the gateway's other client pool.
    ClientPoolOverlap(String),
    /// A client pool of this kind of server that a route of the VPC's gateways leads into.
    PoolIntoRoute(Pool),
    /// Another VPN gateway's route to the same CIDR is in the VPC's route table.
    VpcRouteConflict,
    /// The VPC's route table holds as many VPN routes as it may.
    VpcRouteQuota,
    /// Too many policy routes on the gateway.
    PolicyRouteQuota { existing: u64, new: u64, max: u64 },
    /// Too many destination routes on the gateway.
    DbrRouteQuota,
    /// A setting outside its allowed set or limits (the API's name of the field).
    InvalidSetting(&'static str),
    /// An IPsec integrity algorithm the gateway type does not have.
    IpsecAuthAlg,
    /// An IPsec PFS group that is neither a DH group nor `disabled`.
    IpsecPfs,
    /// BGP on without a TunnelCidr.
    MissingTunnelCidr,
    /// BGP on with a customer gateway that has no ASN.
    MissingPeerAsn,
    /// A TunnelCidr that is not a block with two usable addresses.
    BadTunnelCidr,
    /// A LocalBgpIp outside the TunnelCidr's usable addresses.
    LocalBgpIpOutside,
}

/// Whether two CIDR blocks overlap (false when either is not one).
pub fn overlaps(a: &str, b: &str) -> bool {
    match (a.parse::<ipnet::Ipv4Net>(), b.parse::<ipnet::Ipv4Net>()) {
        (Ok(a), Ok(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

/// Whether two connections' traffic selectors overlap on both sides.
pub fn selectors_overlap(a: &VpnConnection, b: &VpnConnection) -> bool {
    a.local_subnet.iter().any(|al| b.local_subnet.iter().any(|bl| overlaps(al, bl))) && a.remote_subnet.iter().any(|ar| b.remote_subnet.iter().any(|br| overlaps(ar, br)))
}

/// IKE settings that must agree between connections of one gateway and customer gateway.
pub fn same_ike(a: &IkeCfg, b: &IkeCfg) -> bool {
    (&a.psk, &a.ike_version, &a.ike_mode, &a.ike_enc_alg, &a.ike_auth_alg, &a.ike_pfs, a.ike_lifetime)
        == (&b.psk, &b.ike_version, &b.ike_mode, &b.ike_enc_alg, &b.ike_auth_alg, &b.ike_pfs, b.ike_lifetime)
}

/// The rules that compare a connection with the gateway's other connections (`others` holds at
/// least those sharing a customer gateway and those with BGP).
pub fn siblings(c: &VpnConnection, others: &[VpnConnection]) -> Result<(), ModelError> {
    for o in others {
        for (cgw, ike) in c.endpoints() {
            for (ocgw, oike) in o.endpoints() {
                if cgw == ocgw {
                    if !same_ike(ike, oike) {
                        return Err(ModelError::SameCustomerGatewayOtherIke);
                    }
                    if selectors_overlap(c, o) {
                        return Err(ModelError::SameCustomerGatewaySelectorsOverlap);
                    }
                }
            }
        }
        for tc in c.tunnel_cidrs() {
            if o.tunnel_cidrs().iter().any(|x| overlaps(x, tc)) {
                return Err(ModelError::TunnelCidrInUse);
            }
        }
        if o.bgp_enabled() && !c.bgp_enabled() {
            return Err(ModelError::BgpOffBesideBgp);
        }
    }
    let cidrs = c.tunnel_cidrs();
    if cidrs.len() == 2 && overlaps(cidrs[0], cidrs[1]) {
        return Err(ModelError::TunnelCidrsOverlap);
    }
    Ok(())
}

/// One active (weight 100) and one standby (weight 0) per target, on different connections:
/// `route` against the gateway's other routes.
pub fn route_pair(route: &VpnRoute, others: &[&VpnRoute]) -> Result<(), ModelError> {
    for o in others.iter().filter(|o| route.same_target(o)) {
        if o.next_hop == route.next_hop {
            return Err(ModelError::RouteExists);
        }
        if o.weight == route.weight {
            return Err(ModelError::RouteSameWeight);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_has_one_active_and_one_standby_on_different_connections() {
        let r = |hop: &str, weight: u32| VpnRoute::system("dbr", "10.50.0.0/24", "", hop).with_weight(weight);
        let active = r("vco-a", 100);
        assert_eq!(route_pair(&r("vco-b", 0), &[&active]), Ok(()));
        assert_eq!(route_pair(&r("vco-b", 100), &[&active]), Err(ModelError::RouteSameWeight));
        assert_eq!(route_pair(&r("vco-a", 0), &[&active]), Err(ModelError::RouteExists));
        let elsewhere = VpnRoute::system("dbr", "10.60.0.0/24", "", "vco-a");
        assert_eq!(route_pair(&elsewhere, &[&active]), Ok(()), "another target");
    }

    #[test]
    fn cidrs_overlap_when_one_holds_the_other() {
        assert!(overlaps("10.0.0.0/8", "10.1.0.0/16") && overlaps("10.1.0.0/16", "10.0.0.0/8"));
        assert!(!overlaps("10.1.0.0/16", "10.2.0.0/16"));
        assert!(!overlaps("10.1.0.0/16", "not a cidr"));
    }
}
