//! VPN routes (2022 reference 6.1-6.9; the current SDK's ModifyVpnPbrRouteEntryPriority and
//! ModifyVpnPbrRouteEntryAttribute).
//!
//! A route has no API id: it is found by its tuple (RouteDest, NextHop, and for policy routes
//! RouteSource and Priority) and its current Weight. Destination (`dbr`) and policy (`pbr`)
//! routes are stored as [`Kind::VpnRoute`] records under their gateway. For one destination
//! (and source) there is at most one active route (weight 100) and one standby (weight 0), on
//! different connections: the standby carries the traffic only while the active one's
//! connection is down. Every change puts the gateway through `updating`, which ends when the
//! data plane has applied it.
//!
//! Routes made by a connection's AutoConfigRoute are `System` entries: they change only with
//! their connection. Publishing records the route in the VPC's route table, where one CIDR can
//! point to one VPN gateway only.

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code, Params};
pub use vpngw_model::route::{VpnRoute, BGP, CUSTOM, DBR, DEFAULT_PRIORITY, PBR, SYSTEM};
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::neighbourhood::{model_error, neighbourhood, Read};
use super::vpn_gateway::{ensure_writable, gateway_busy, VpnGateway};
use super::{doc, load, new_record, obj, to_doc};
use crate::validate::{self, cidr};
use crate::{ids, store_error, HandlerResult, Req};
use vpngw_model::id::VpnGatewayId;
use vpngw_model::neighbourhood::Neighbourhood;
use vpngw_model::rules::ModelError;

/// Every route of a gateway.
pub(crate) async fn gateway_routes(req: &Req<'_>, gw: &str) -> Result<Vec<(Record, VpnRoute)>, ApiError> {
    let q = ListQuery { parent: Some(gw.to_string()), limit: u32::MAX as u64, ..Default::default() };
    let page = req.store().list(Kind::VpnRoute, &req.scope, &q).await.map_err(store_error)?;
    page.items
        .into_iter()
        .map(|r| {
            let route: VpnRoute = doc(&r)?;
            Ok((r, route))
        })
        .collect()
}

pub(crate) fn weight(p: &Params, name: &str) -> Result<u32, ApiError> {
    match p.req(name)?.trim() {
        "0" => Ok(0),
        "100" => Ok(100),
        _ => Err(ApiError::new(Code::RouteInvalidWeight)),
    }
}

fn priority(p: &Params, name: &str) -> Result<Option<u32>, ApiError> {
    match p.opt_num::<u32>(name)? {
        Some(n) if !(1..=100).contains(&n) => Err(ApiError::invalid(name)),
        other => Ok(other),
    }
}

pub(crate) fn net(p: &Params, name: &str) -> Result<String, ApiError> {
    cidr(p.req(name)?).map(|n| n.to_string()).ok_or_else(|| ApiError::invalid(name))
}

pub(crate) fn overlay(p: &Params) -> Result<String, ApiError> {
    match p.opt("OverlayMode") {
        None => Ok("Ipsec".into()),
        Some(v) if v.eq_ignore_ascii_case("ipsec") => Ok("Ipsec".into()),
        Some(_) => Err(ApiError::invalid("OverlayMode")),
    }
}

/// The gateway of a route action, writable, and its VPC as the route rules see it.
async fn writable_gateway(req: &Req<'_>) -> Result<(Record, VpnGatewayId, Read), ApiError> {
    let rec = load(req, Kind::VpnGateway, req.params.req("VpnGatewayId")?, Code::InvalidVpnGatewayId).await?;
    let gw: VpnGateway = doc(&rec)?;
    ensure_writable(&rec, &gw)?;
    let read = neighbourhood(req, &rec).await?;
    Ok((rec.clone(), VpnGatewayId::new(rec.id), read))
}

/// The routes of gateway `gw` in a neighbourhood.
fn routes_of<'a>(n: &'a Neighbourhood, gw: &VpnGatewayId) -> &'a [(String, VpnRoute)] {
    n.side(gw).map(|s| s.routes.as_slice()).unwrap_or(&[])
}

/// The routes of gateway `gw` with their records.
fn route_records(read: &Read, gw: &VpnGatewayId) -> Result<Vec<(Record, VpnRoute)>, ApiError> {
    routes_of(&read.n, gw).iter().map(|(id, r)| Ok((read.record(id)?, r.clone()))).collect()
}

/// The next hop must be a connection of this gateway.
async fn check_next_hop(req: &Req<'_>, gw: &str, next_hop: &str) -> Result<(), ApiError> {
    let c = load(req, Kind::VpnConnection, next_hop, Code::InvalidVpnConnectionId).await?;
    if c.parent.as_deref() != Some(gw) {
        return Err(ApiError::new(Code::InvalidVpnConnectionId));
    }
    Ok(())
}

/// One active and one standby per destination, on different connections.
pub(crate) fn check_against(route: &VpnRoute, others: &[&VpnRoute], on_modify: bool) -> Result<(), ApiError> {
    vpngw_model::rules::route_pair(route, others).map_err(|e| match e {
        ModelError::RouteSameWeight if on_modify => ApiError::new(Code::RouteBackup),
        other => model_error(other),
    })
}

async fn create(req: &mut Req<'_>, kind: &str) -> HandlerResult {
    let p = req.params.clone();
    let (gw_rec, gw_id, read) = writable_gateway(req).await?;
    let policy = kind == PBR;
    let route = VpnRoute {
        route_kind: kind.into(),
        route_dest: net(&p, "RouteDest")?,
        route_source: if policy { net(&p, "RouteSource")? } else { String::new() },
        next_hop: p.req("NextHop")?.into(),
        weight: weight(&p, "Weight")?,
        priority: if policy { priority(&p, "Priority")?.unwrap_or(DEFAULT_PRIORITY) } else { 0 },
        publish_vpc: p.opt_bool("PublishVpc")?.ok_or_else(|| ApiError::missing("PublishVpc"))?,
        description: validate::opt_text(&p, "Description", |d| validate::vpc_text(d, 256), Code::InvalidDescription)?.unwrap_or_default().to_string(),
        overlay_mode: overlay(&p)?,
        entry_type: CUSTOM.into(),
        origin: String::new(),
    };
    check_next_hop(req, &gw_rec.id, &route.next_hop).await?;
    let all: Vec<&VpnRoute> = routes_of(&read.n, &gw_id).iter().map(|(_, r)| r).collect();
    check_against(&route, &all, false)?;
    read.n.route_clear_of_pools(&route).map_err(model_error)?;
    let same_kind = all.iter().filter(|r| r.route_kind == kind).count() as u64;
    let (quota, code) = if policy { (req.svc.config.quotas.pbr_routes_per_gateway, Code::PbrRoutesQuotaFull) } else { (req.svc.config.quotas.dbr_routes_per_gateway, Code::DbrRoutesQuotaFull) };
    if same_kind >= quota {
        return Err(ApiError::new(code));
    }
    read.n.publish_ok(&gw_id, &route, &all, req.svc.config.quotas.vpc_vpn_route_entries).map_err(model_error)?;
    req.dry_run()?;
    let rec = new_record(req, Kind::VpnRoute, &ids::new_id("vrt"), Some(gw_rec.id.clone()), route.state(), to_doc(&route));
    let mut body = route_json(&rec, &route, true);
    if let Value::Object(m) = &mut body {
        m.remove("RouteEntryType");
        m.remove("NextHopTunnelId");
    }
    let mut muts = vec![Mutation::Put(rec)];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, obj(body)).await
}

pub async fn create_vpn_route_entry(req: &mut Req<'_>) -> HandlerResult {
    create(req, DBR).await
}

pub async fn create_vpn_pbr_route_entry(req: &mut Req<'_>) -> HandlerResult {
    create(req, PBR).await
}

/// The route a Modify/Delete names by its tuple and current Weight.
fn find<'a>(routes: &'a [(Record, VpnRoute)], p: &Params, kind: &str) -> Result<&'a (Record, VpnRoute), ApiError> {
    let dest = net(p, "RouteDest")?;
    let source = if kind == PBR { net(p, "RouteSource")? } else { String::new() };
    let next_hop = p.req("NextHop")?;
    let weight = weight(p, "Weight")?;
    let prio = if kind == PBR { priority(p, "Priority")? } else { None };
    routes
        .iter()
        .find(|(_, r)| r.route_kind == kind && r.route_dest == dest && r.route_source == source && r.next_hop == next_hop && r.weight == weight && prio.is_none_or(|n| n == r.priority))
        .ok_or_else(|| ApiError::new(Code::RouteNotFound))
}

/// Applies a change to one route (weight and/or priority), checking the pair rules again.
async fn modify(req: &mut Req<'_>, kind: &str, new_weight: Option<u32>, new_priority: Option<u32>) -> HandlerResult {
    let p = req.params.clone();
    let (gw_rec, gw_id, read) = writable_gateway(req).await?;
    let routes = route_records(&read, &gw_id)?;
    let (rec, route) = find(&routes, &p, kind)?.clone();
    if route.entry_type == SYSTEM {
        return Err(ApiError::new(Code::RouteSystemEntry));
    }
    let mut changed = route.clone();
    if let Some(w) = new_weight {
        changed.weight = w;
    }
    if let Some(n) = new_priority {
        changed.priority = n;
    }
    if changed == route {
        return Ok(Default::default());
    }
    let others: Vec<&VpnRoute> = routes.iter().filter(|(r, _)| r.id != rec.id).map(|(_, r)| r).collect();
    check_against(&changed, &others, true)?;
    let mut rec = rec;
    rec.doc = to_doc(&changed);
    let mut muts = vec![Mutation::Put(rec)];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, Default::default()).await
}

fn new_weight(p: &Params) -> Result<Option<u32>, ApiError> {
    if p.opt("NewWeight").is_none() {
        return Ok(None);
    }
    weight(p, "NewWeight").map(Some)
}

pub async fn modify_vpn_route_entry_weight(req: &mut Req<'_>) -> HandlerResult {
    let w = new_weight(&req.params)?;
    modify(req, DBR, w, None).await
}

pub async fn modify_vpn_pbr_route_entry_weight(req: &mut Req<'_>) -> HandlerResult {
    let w = new_weight(&req.params)?;
    modify(req, PBR, w, None).await
}

pub async fn modify_vpn_pbr_route_entry_priority(req: &mut Req<'_>) -> HandlerResult {
    let n = priority(&req.params, "NewPriority")?;
    modify(req, PBR, None, n).await
}

pub async fn modify_vpn_pbr_route_entry_attribute(req: &mut Req<'_>) -> HandlerResult {
    let (w, n) = (new_weight(&req.params)?, priority(&req.params, "NewPriority")?);
    if w.is_none() && n.is_none() {
        return Err(ApiError::missing("NewWeight"));
    }
    modify(req, PBR, w, n).await
}

async fn delete(req: &mut Req<'_>, kind: &str) -> HandlerResult {
    let p = req.params.clone();
    overlay(&p)?;
    let (gw_rec, gw_id, read) = writable_gateway(req).await?;
    let routes = route_records(&read, &gw_id)?;
    let (rec, route) = find(&routes, &p, kind)?;
    if route.entry_type == SYSTEM {
        return Err(ApiError::new(Code::RouteSystemEntry));
    }
    let mut muts = vec![Mutation::Delete { kind: Kind::VpnRoute, id: rec.id.clone() }];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, Default::default()).await
}

pub async fn delete_vpn_route_entry(req: &mut Req<'_>) -> HandlerResult {
    delete(req, DBR).await
}

pub async fn delete_vpn_pbr_route_entry(req: &mut Req<'_>) -> HandlerResult {
    delete(req, PBR).await
}

pub async fn publish_vpn_route_entry(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let kind = match p.req("RouteType")?.to_ascii_lowercase().as_str() {
        DBR => DBR,
        PBR => PBR,
        _ => return Err(ApiError::invalid("RouteType")),
    };
    let publish = p.opt_bool("PublishVpc")?.ok_or_else(|| ApiError::missing("PublishVpc"))?;
    let dest = net(&p, "RouteDest")?;
    let next_hop = p.req("NextHop")?.to_string();
    let (gw_rec, gw_id, read) = writable_gateway(req).await?;
    let routes = routes_of(&read.n, &gw_id);
    let matching: Vec<&(String, VpnRoute)> = routes.iter().filter(|(_, r)| r.route_kind == kind && r.route_dest == dest && r.next_hop == next_hop).collect();
    if matching.is_empty() {
        return Err(ApiError::new(Code::RouteNotFound));
    }
    let mut muts = Vec::new();
    for (id, route) in matching.into_iter().filter(|(_, r)| r.publish_vpc != publish) {
        let changed = route.clone().with_publish(publish);
        let others: Vec<&VpnRoute> = routes.iter().filter(|(r, _)| r != id).map(|(_, r)| r).collect();
        read.n.publish_ok(&gw_id, &changed, &others, req.svc.config.quotas.vpc_vpn_route_entries).map_err(model_error)?;
        let mut rec = read.record(id)?;
        rec.status = changed.state().into();
        rec.doc = to_doc(&changed);
        muts.push(Mutation::Put(rec));
    }
    if !muts.is_empty() {
        muts.extend(gateway_busy(req, gw_rec));
    }
    req.commit(muts, Default::default()).await
}

fn route_json(rec: &Record, r: &VpnRoute, create: bool) -> Value {
    let mut v = json!({
        "RouteDest": r.route_dest, "NextHop": r.next_hop, "Weight": r.weight, "State": r.state(),
        "CreateTime": rec.created_ms, "VpnInstanceId": rec.parent, "NextHopTunnelId": "",
        "RouteEntryType": if r.entry_type == SYSTEM { "System" } else { "Custom" },
    });
    if r.policy() {
        v["RouteSource"] = json!(r.route_source);
        v["Priority"] = json!(r.priority);
    }
    if create {
        v["Description"] = json!(r.description);
        v["OverlayMode"] = json!(r.overlay_mode);
    }
    v
}

async fn listed(req: &Req<'_>, kind: &str) -> Result<(Vec<(Record, VpnRoute)>, u64, u64, u64, u64), ApiError> {
    let gw = load(req, Kind::VpnGateway, req.params.req("VpnGatewayId")?, Code::InvalidVpnGatewayId).await?;
    let (offset, limit, number, size) = validate::paging(&req.params)?;
    let mut routes: Vec<(Record, VpnRoute)> = gateway_routes(req, &gw.id).await?.into_iter().filter(|(_, r)| r.route_kind == kind).collect();
    routes.sort_by(|a, b| b.0.created_ms.cmp(&a.0.created_ms).then(b.0.id.cmp(&a.0.id)));
    Ok((routes, offset, limit, number, size))
}

/// The routes the gateway's BGP sessions learned (as its data plane last saw them), newest
/// first: (connection id, tunnel id or "" for a single tunnel, route).
async fn learned_routes(req: &Req<'_>, gw: &str) -> Result<Vec<(String, String, vpngw_model::connection::BgpRoute)>, ApiError> {
    let q = ListQuery { parent: Some(gw.to_string()), limit: u32::MAX as u64, ..Default::default() };
    let page = req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error)?;
    let mut out = Vec::new();
    for rec in &page.items {
        let c: vpngw_model::connection::VpnConnection = doc(rec)?;
        let dual = c.dual();
        for r in c.bgp_routes {
            let tunnel = if dual { r.tunnel.clone() } else { String::new() };
            out.push((rec.id.clone(), tunnel, r));
        }
    }
    out.sort_by(|a, b| b.2.created_ms.cmp(&a.2.created_ms).then_with(|| a.2.route.prefix.cmp(&b.2.route.prefix)).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

pub async fn describe_vpn_route_entries(req: &mut Req<'_>) -> HandlerResult {
    let filter = match req.params.opt("RouteEntryType").map(str::to_ascii_lowercase) {
        None => None,
        Some(t) if t == CUSTOM || t == SYSTEM || t == BGP => Some(t),
        Some(_) => return Err(ApiError::invalid("RouteEntryType")),
    };
    let (routes, offset, limit, number, size) = listed(req, DBR).await?;
    let gw_id = req.params.req("VpnGatewayId")?.to_string();
    let gw: VpnGateway = doc(&load(req, Kind::VpnGateway, &gw_id, Code::InvalidVpnGatewayId).await?)?;
    let learned = learned_routes(req, &gw_id).await?;
    let mut counts: Vec<Value> = [CUSTOM, SYSTEM]
        .iter()
        .map(|t| {
            let n = routes.iter().filter(|(_, r)| r.entry_type == *t).count();
            json!({"RouteEntryType": if *t == SYSTEM { "System" } else { "Custom" }, "Source": if *t == SYSTEM { "AUTO_CONFIG" } else { "CUSTOM" }, "RouteCount": n})
        })
        .collect();
    counts.push(json!({"RouteEntryType": BGP, "Source": "BGP", "RouteCount": learned.len()}));
    if filter.as_deref() == Some(BGP) {
        // Learned routes: with AutoPropagate they are published to the VPC's route table.
        let items: Vec<Value> = learned
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|(conn, tunnel, r)| {
                json!({
                    "RouteDest": r.route.prefix, "NextHop": conn, "NextHopTunnelId": tunnel, "Weight": 100,
                    "State": if gw.auto_propagate { "published" } else { "normal" }, "CreateTime": r.created_ms, "VpnInstanceId": gw_id,
                    "RouteEntryType": BGP, "Source": "", "AsPath": r.route.as_path, "Community": r.route.community,
                })
            })
            .collect();
        return Ok(obj(json!({
            "TotalCount": learned.len(), "PageNumber": number, "PageSize": size,
            "VpnRouteCounts": {"VpnRouteCount": counts}, "VpnRouteEntries": {"VpnRouteEntry": items},
        })));
    }
    let selected: Vec<&(Record, VpnRoute)> = routes.iter().filter(|(_, r)| filter.as_deref().is_none_or(|f| r.entry_type == f)).collect();
    let items: Vec<Value> = selected
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|(rec, r)| {
            let mut v = route_json(rec, r, false);
            v["Source"] = json!("");
            v["AsPath"] = json!("");
            v["Community"] = json!("");
            v
        })
        .collect();
    Ok(obj(json!({
        "TotalCount": selected.len(), "PageNumber": number, "PageSize": size,
        "VpnRouteCounts": {"VpnRouteCount": counts}, "VpnRouteEntries": {"VpnRouteEntry": items},
    })))
}

pub async fn describe_vpn_pbr_route_entries(req: &mut Req<'_>) -> HandlerResult {
    let (routes, offset, limit, number, size) = listed(req, PBR).await?;
    let items: Vec<Value> = routes.iter().skip(offset as usize).take(limit as usize).map(|(rec, r)| route_json(rec, r, false)).collect();
    Ok(obj(json!({"TotalCount": routes.len(), "PageNumber": number, "PageSize": size, "VpnPbrRouteEntries": {"VpnPbrRouteEntry": items}})))
}
