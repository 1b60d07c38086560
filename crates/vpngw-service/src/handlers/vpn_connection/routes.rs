//! The system routes AutoConfigRoute keeps in step with a connection.

#[allow(unused_imports)]
use super::*;

/// AutoConfigRoute: a connection that routes by destination (LocalSubnet 0.0.0.0/0) gets a
/// destination route per RemoteSubnet; one with traffic selectors on both sides gets a policy
/// route per (LocalSubnet, RemoteSubnet) pair; one with 0.0.0.0/0 on both sides gets none (its
/// routes are the user's).
pub(super) fn system_routes(conn_id: &str, c: &VpnConnection) -> Vec<VpnRoute> {
    let any = |v: &[String]| v.len() == 1 && v[0] == "0.0.0.0/0";
    match (c.auto_config_route, any(&c.local_subnet), any(&c.remote_subnet)) {
        (false, _, _) | (true, true, true) => Vec::new(),
        (true, true, false) => c.remote_subnet.iter().map(|r| VpnRoute::system(DBR, r, "", conn_id)).collect(),
        (true, false, _) => c.local_subnet.iter().flat_map(|l| c.remote_subnet.iter().map(move |r| VpnRoute::system(PBR, r, l, conn_id))).collect(),
    }
}

/// The mutations that make a connection's system routes match `c` (`None`: the connection
/// goes, and every route to it with it), with the route rules checked against the gateway's
/// other routes.
pub(super) async fn sync_routes(req: &Req<'_>, gw_rec: &Record, conn_id: &str, c: Option<&VpnConnection>) -> Result<Vec<Mutation>, ApiError> {
    let routes = gateway_routes(req, &gw_rec.id).await?;
    let Some(c) = c else {
        return Ok(routes.into_iter().filter(|(_, r)| r.next_hop == conn_id).map(|(rec, _)| Mutation::Delete { kind: Kind::VpnRoute, id: rec.id }).collect());
    };
    let (own, others): (Vec<_>, Vec<_>) = routes.iter().partition(|(_, r)| r.entry_type == SYSTEM && r.origin == conn_id);
    let want = system_routes(conn_id, c);
    let mut seen: Vec<&VpnRoute> = others.iter().map(|(_, r)| r).collect();
    for w in &want {
        check_against(w, &seen, false)?;
        check_client_pools(req, gw_rec, w).await?;
        seen.push(w);
    }
    let count = |kind: &str| others.iter().filter(|(_, r)| r.route_kind == kind).count();
    let (pbr_new, dbr_new) = (want.iter().filter(|r| r.route_kind == PBR).count(), want.iter().filter(|r| r.route_kind == DBR).count());
    let quota = req.svc.config.quotas.pbr_routes_per_gateway as usize;
    if pbr_new > 0 && count(PBR) + pbr_new > quota {
        return Err(ApiError::msg(
            Code::PolicyRouteQuota,
            format!("The maximum number of policy-based routes is exceeded. Existing routes: {}. Routes to be created: {pbr_new}. Maximum routes: {quota}.", count(PBR)),
        ));
    }
    if dbr_new > 0 && count(DBR) + dbr_new > req.svc.config.quotas.dbr_routes_per_gateway as usize {
        return Err(ApiError::new(Code::DbrRoutesQuotaFull));
    }
    let mut muts = Vec::new();
    for (rec, r) in &own {
        if !want.contains(r) {
            muts.push(Mutation::Delete { kind: Kind::VpnRoute, id: rec.id.clone() });
        }
    }
    let others_only: Vec<&VpnRoute> = others.iter().map(|(_, r)| r).collect();
    for w in want.iter().filter(|w| !own.iter().any(|(_, r)| r == *w)) {
        check_publish(req, gw_rec, w, &others_only).await?;
        muts.push(Mutation::Put(new_record(req, Kind::VpnRoute, &ids::new_id("vrt"), Some(gw_rec.id.clone()), w.state(), to_doc(w))));
    }
    Ok(muts)
}
