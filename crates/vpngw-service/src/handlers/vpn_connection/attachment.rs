//! VPN attachments (CreateVpnAttachment, ModifyVpnAttachmentAttribute, DeleteVpnAttachment,
//! DescribeVpnAttachments) and their connection-level routes (CreateVcoRouteEntry,
//! DeleteVcoRouteEntry, ModifyVcoRouteEntryWeight, DescribeVcoRouteEntries).
//!
//! An attachment is an IPsec-VPN connection of no VPN gateway. On Alibaba Cloud it is bound to
//! a transit router; no transit router exists here, so it reports AttachType `NO_ASSOCIATED`,
//! no AttachInstanceId, and State `init` at rest. It is otherwise a whole connection: it takes
//! its own public address (one per tunnel) from the pool, its tunnels negotiate in the data
//! plane like a gateway's (which runs it as a gateway of its own, `att-<id>`), and
//! DescribeVpnConnection(s), DownloadVpnConnectionConfig, tags, logs and diagnoses serve it.
//! Its private side, where the traffic of its tunnels ends, is its LocalSubnet: in the lab, an
//! address of each LocalSubnet block inside its namespace stands for the transit router's side
//! (in destination-routing mode, 0.0.0.0/0, whatever addresses are put on its loopback).
//!
//! VCO routes are destination routes of an attachment (NextHop: the attachment itself), stored
//! as routes of its data-plane gateway and applied like a gateway's routes; the ones its BGP
//! sessions learn are listed beside them. Every change puts the attachment through `updating`
//! until the data plane has applied it.

#[allow(unused_imports)]
use super::*;
use crate::handlers::vpn_gateway::allocate_public_ips;
use crate::handlers::vpn_route::{check_against, net, overlay, weight, VpnRoute, BGP, CUSTOM, DBR, SYSTEM};
use vpngw_model::connection::attachment_gateway_id;

/// The attachment's own parameters that the connection's differ from: `RemoteCaCert` is
/// `RemoteCaCertificate` there, and a tunnel is named by `TunnelIndex` (1: master, 2: slave)
/// where a gateway's connection names its `Role` (the Terraform provider sends both).
fn rename_params(req: &mut Req<'_>) -> Result<(), ApiError> {
    if let Some(v) = req.params.get("RemoteCaCert").map(str::to_string) {
        req.params.remove("RemoteCaCert");
        req.params.insert("RemoteCaCertificate", v);
    }
    let indexed: Vec<(String, String)> =
        req.params.iter().filter_map(|(k, v)| k.strip_prefix("TunnelOptionsSpecification.").and_then(|rest| rest.strip_suffix(".TunnelIndex")).map(|n| (n.to_string(), v.to_string()))).collect();
    for (n, index) in indexed {
        let role = match index.trim() {
            "1" => "master",
            "2" => "slave",
            _ => return Err(ApiError::invalid(&format!("TunnelOptionsSpecification.{n}.TunnelIndex"))),
        };
        let key = format!("TunnelOptionsSpecification.{n}.Role");
        match req.params.get(&key) {
            Some(given) if given != role => return Err(ApiError::new(Code::IllegalRole)),
            _ => req.params.insert(key, role),
        }
    }
    Ok(())
}

fn network_type(p: &Params) -> Result<Option<String>, ApiError> {
    match p.opt("NetworkType") {
        None => Ok(None),
        Some(v @ ("public" | "private")) => Ok(Some(v.to_string())),
        Some(_) => Err(ApiError::invalid("NetworkType")),
    }
}

fn tunnel_bandwidth(p: &Params) -> Result<String, ApiError> {
    match p.opt("TunnelBandwidth") {
        None => Ok(String::new()),
        Some(v @ ("Standard" | "Large")) => Ok(v.to_string()),
        Some(_) => Err(ApiError::invalid("TunnelBandwidth")),
    }
}

pub async fn create_vpn_attachment(req: &mut Req<'_>) -> HandlerResult {
    rename_params(req)?;
    let p = req.params.clone();
    let attachment = Attachment { network_type: network_type(&p)?.unwrap_or_else(|| "public".into()), tunnel_bandwidth: tunnel_bandwidth(&p)?, description: String::new() };
    let group = p.opt("ResourceGroupId").map(str::to_string).unwrap_or_else(|| super::super::default_resource_group(req.scope.account));
    let dual = p.has("TunnelOptionsSpecification");
    let q = ListQuery { fields: vec![("attach_type".into(), ATTACH_NONE.into())], limit: 0, ..Default::default() };
    if req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error)?.total >= req.svc.config.quotas.vpn_attachments {
        return Err(ApiError::new(Code::ResourceQuotaFull));
    }
    let ips = allocate_public_ips(req, if dual { 2 } else { 1 }).await?;
    let gw = vpngw_model::connection::attachment_gateway(&ips[0].to_string(), ips.get(1).map(|ip| ip.to_string()), &attachment, &group);
    let id = ids::new_id("vco");
    let g = attachment_view(req, &id, gw, dual, &named_cgws(&p)).await?;
    create_connection(req, g, id, Some(attachment), ips.iter().map(|ip| ip.to_string()).collect()).await
}

/// A connection of the caller's that is an attachment, or the code that says it is not one.
async fn load_attachment(req: &Req<'_>, id: &str) -> Result<(Record, VpnConnection), ApiError> {
    let rec = load(req, Kind::VpnConnection, id, Code::InvalidVpnConnectionId).await?;
    let c: VpnConnection = doc(&rec)?;
    if !c.is_attachment() {
        return Err(ApiError::new(Code::NotAnAttachment));
    }
    Ok((rec, c))
}

pub async fn modify_vpn_attachment_attribute(req: &mut Req<'_>) -> HandlerResult {
    rename_params(req)?;
    let p = req.params.clone();
    let id = p.req("VpnConnectionId")?.to_string();
    load_attachment(req, &id).await?;
    let network = network_type(&p)?;
    let (rec, before, g) = modifiable(req, &id).await?;
    let mut c = before.clone();
    if let (Some(n), Some(a)) = (network, c.attachment.as_mut()) {
        a.network_type = n;
    }
    apply_common(&mut c, &p)?;
    if c.dual() {
        apply_single(&mut c, &p, true, false)?;
        if let Some(b) = p.opt_bool("EnableTunnelsBgp")? {
            c.enable_tunnels_bgp = b;
        }
        for (i, spec) in p.objects("TunnelOptionsSpecification")?.iter().enumerate() {
            let tid = spec.opt("TunnelId").ok_or_else(|| ApiError::new(Code::IllegalTunnelId))?;
            apply_tunnel_spec(&mut c, tid, spec, &format!("TunnelOptionsSpecification.{}", i + 1), false)?;
        }
        g.check_tunnels(&mut c)?;
    } else {
        apply_single(&mut c, &p, false, false)?;
        check_bgp(&mut c.bgp, g.customer_gateway(&c.customer_gateway_id)?)?;
    }
    let touches_selectors = p.opt("LocalSubnet").is_some() || p.opt("RemoteSubnet").is_some() || p.opt("IkeConfig").is_some() || p.has("TunnelOptionsSpecification");
    commit_modify(req, rec, before, c, g, touches_selectors, |rec, c, cgws| {
        let mut v = connection_json(rec, c, cgws, Shape::Modify, None);
        // This action's model lists the tunnels bare, and says where the attachment is bound.
        v["TunnelOptionsSpecification"] = v["TunnelOptionsSpecification"]["TunnelOptions"].take();
        for (k, val) in [("AttachType", json!(c.attach_type)), ("AttachInstanceId", json!("")), ("Spec", json!("")), ("Status", json!(state(rec, c)))] {
            v[k] = val;
        }
        v["NetworkType"] = json!(c.attachment.as_ref().map(|a| a.network_type.clone()).unwrap_or_default());
        v
    })
    .await
}

pub async fn delete_vpn_attachment(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpnConnectionId")?.to_string();
    load_attachment(req, &id).await?;
    let muts = delete_mutations(req, id).await?;
    req.commit(muts, obj(json!({"Success": true, "Code": "200", "Message": "successful"}))).await
}

pub async fn describe_vpn_attachments(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    let mut q = ListQuery { offset, limit, fields: vec![("attach_type".into(), ATTACH_NONE.into())], ..Default::default() };
    if let Some(id) = p.opt("VpnConnectionId") {
        q.ids = vec![id.to_string()];
    }
    match p.opt("AttachType") {
        None => {}
        Some(t) if t == ATTACH_NONE => {}
        // Bound to a transit router (CEN) or anything else: none is, here.
        Some(_) => q.ids = vec![String::new()],
    }
    let (page, tags) = list_with_tags(req, Kind::VpnConnection, &q).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        let c: VpnConnection = doc(r)?;
        let a = c.attachment.clone().unwrap_or(Attachment { network_type: "public".into(), tunnel_bandwidth: String::new(), description: String::new() });
        let t = tags.get(&r.id).cloned().unwrap_or_default();
        items.push(json!({
            "InstanceId": r.id, "Name": c.name, "Description": a.description, "AttachType": c.attach_type,
            "CrossAccountAuthorized": false, "TransitRouterId": "", "TransitRouterName": "", "TunnelBandwidth": a.tunnel_bandwidth,
            "Tags": t.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
            "Tag": serde_json::to_string(&t.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>()).unwrap_or_default(),
        }));
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "VpnAttachments": items})))
}

// ---- VCO routes ----

/// The attachment of a VCO route action, ready for a change: its record and view.
async fn route_target(req: &Req<'_>) -> Result<(Record, VpnConnection, GatewayView), ApiError> {
    let id = req.params.req("VpnConnectionId")?.to_string();
    load_attachment(req, &id).await?;
    modifiable(req, &id).await
}

/// A VCO route's RouteDest, as a gateway route's is read.
fn route_dest(p: &Params) -> Result<String, ApiError> {
    net(p, "RouteDest")
}

/// The attachment's routes with their record ids.
fn own_routes(g: &GatewayView) -> Vec<(String, VpnRoute)> {
    g.vpc.n.side(&g.id).map(|s| s.routes.clone()).unwrap_or_default()
}

/// The custom route a Delete or Modify names: by RouteDest, NextHop and its current Weight.
fn find_route(g: &GatewayView, p: &Params, weight: u32) -> Result<(String, VpnRoute), ApiError> {
    let dest = route_dest(p)?;
    let next_hop = p.req("NextHop")?;
    own_routes(g).into_iter().find(|(_, r)| r.entry_type == CUSTOM && r.route_dest == dest && r.next_hop == next_hop && r.weight == weight).ok_or_else(|| ApiError::new(Code::RouteNotFound))
}

/// What every route change ends with: the route mutations, then the attachment in `updating`
/// until the data plane has applied them.
async fn commit_route_change(req: &mut Req<'_>, mut rec: Record, mut muts: Vec<Mutation>, body: crate::Body) -> HandlerResult {
    rec.status = Lifecycle::Updating.as_str().into();
    let id = rec.id.clone();
    muts.push(Mutation::Put(rec));
    muts.extend(schedule(Kind::VpnConnection, &id, &[(TaskOp::Become(Lifecycle::Active), req.svc.config.transition)]));
    req.commit(muts, body).await
}

pub async fn create_vco_route_entry(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (rec, c, g) = route_target(req).await?;
    let route = VpnRoute {
        route_kind: DBR.into(),
        route_dest: route_dest(&p)?,
        route_source: String::new(),
        next_hop: p.req("NextHop")?.into(),
        weight: weight(&p, "Weight")?,
        priority: 0,
        publish_vpc: false,
        description: validate::opt_text(&p, "Description", |d| validate::vpc_text(d, 256), Code::InvalidDescription)?.unwrap_or_default().to_string(),
        overlay_mode: overlay(&p)?,
        entry_type: CUSTOM.into(),
        origin: String::new(),
    };
    // The next hop of a connection's route is the connection.
    if route.next_hop != rec.id {
        return Err(ApiError::new(Code::InvalidVpnConnectionId));
    }
    // Routes, not selectors, say what a tunnel carries only in destination-routing mode
    // (0.0.0.0/0 on both sides), as for a gateway's connections.
    if !(c.local_subnet == ["0.0.0.0/0"] && c.remote_subnet == ["0.0.0.0/0"]) {
        return Err(ApiError::new(Code::VcoRouteNeedsDestinationRouting));
    }
    let routes = own_routes(&g);
    let all: Vec<&VpnRoute> = routes.iter().map(|(_, r)| r).collect();
    check_against(&route, &all, false)?;
    if routes.iter().filter(|(_, r)| r.entry_type == CUSTOM).count() as u64 >= req.svc.config.quotas.vco_routes_per_attachment {
        return Err(ApiError::new(Code::DbrRoutesQuotaFull));
    }
    req.dry_run()?;
    let route_rec = new_record(req, Kind::VpnRoute, &ids::new_id("vrt"), Some(g.rec.id.clone()), route.state(), to_doc(&route));
    let body = obj(json!({
        "VpnConnectionId": rec.id, "RouteDest": route.route_dest, "NextHop": route.next_hop, "Weight": route.weight,
        "OverlayMode": route.overlay_mode, "Description": route.description, "State": route.state(), "CreateTime": route_rec.created_ms,
    }));
    commit_route_change(req, rec, vec![Mutation::Put(route_rec)], body).await
}

pub async fn delete_vco_route_entry(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let weight = weight(&p, "Weight")?;
    let (rec, _, g) = route_target(req).await?;
    overlay(&p)?;
    let (route_id, _) = find_route(&g, &p, weight)?;
    req.dry_run()?;
    commit_route_change(req, rec, vec![Mutation::Delete { kind: Kind::VpnRoute, id: route_id }], Default::default()).await
}

pub async fn modify_vco_route_entry_weight(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (weight, new_weight) = (weight(&p, "Weight")?, weight(&p, "NewWeight")?);
    let (rec, _, g) = route_target(req).await?;
    overlay(&p)?;
    let (route_id, mut route) = find_route(&g, &p, weight)?;
    route.weight = new_weight;
    let routes = own_routes(&g);
    let others: Vec<&VpnRoute> = routes.iter().filter(|(id, _)| *id != route_id).map(|(_, r)| r).collect();
    check_against(&route, &others, true)?;
    let mut route_rec = g.vpc.record(&route_id)?;
    route_rec.doc = to_doc(&route);
    commit_route_change(req, rec, vec![Mutation::Put(route_rec)], Default::default()).await
}

pub async fn describe_vco_route_entries(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (offset, limit, number, size) = validate::paging(&p)?;
    let id = p.req("VpnConnectionId")?.to_string();
    let (rec, c) = load_attachment(req, &id).await?;
    let kind = match p.opt("RouteEntryType") {
        None => None,
        Some(t @ (CUSTOM | BGP | SYSTEM)) => Some(t.to_string()),
        Some(_) => return Err(ApiError::invalid("RouteEntryType")),
    };
    let q = ListQuery { parent: Some(attachment_gateway_id(&id)), limit: u32::MAX as u64, ..Default::default() };
    let mut rows: Vec<(String, Value)> = Vec::new();
    for r in req.store().list(Kind::VpnRoute, &req.scope, &q).await.map_err(store_error)?.items {
        let route: VpnRoute = doc(&r)?;
        rows.push((
            route.entry_type.clone(),
            json!({
                "VpnConnectionId": id, "RouteDest": route.route_dest, "NextHop": route.next_hop, "Weight": route.weight,
                "State": route.state(), "CreateTime": r.created_ms, "RouteEntryType": route.entry_type, "Source": "",
                "AsPath": "", "Community": "", "NextHopTunnelIdList": c.tunnels.iter().map(|t| t.tunnel_id.to_string()).collect::<Vec<_>>(),
            }),
        ));
    }
    // What its BGP sessions learned, as their daemon said last.
    for b in &c.bgp_routes {
        let tunnel = if b.tunnel == rec.id { Vec::new() } else { vec![b.tunnel.clone()] };
        rows.push((
            BGP.to_string(),
            json!({
                "VpnConnectionId": id, "RouteDest": b.route.prefix, "NextHop": id, "Weight": 100, "State": "normal",
                "CreateTime": b.created_ms, "RouteEntryType": BGP, "Source": b.route.next_hop, "AsPath": b.route.as_path,
                "Community": b.route.community, "NextHopTunnelIdList": tunnel,
            }),
        ));
    }
    let counts: Vec<Value> = [CUSTOM, SYSTEM, BGP].iter().map(|k| json!({"RouteEntryType": k, "Source": "", "RouteCount": rows.iter().filter(|(t, _)| t == k).count()})).collect();
    let wanted: Vec<Value> = rows.into_iter().filter(|(t, _)| kind.as_deref().is_none_or(|k| k == t)).map(|(_, v)| v).collect();
    let total = wanted.len();
    let page: Vec<Value> = wanted.into_iter().skip(offset as usize).take(limit as usize).collect();
    Ok(obj(json!({"TotalCount": total, "PageNumber": number, "PageSize": size, "VcoRouteEntries": page, "VpnRouteCounts": counts})))
}
