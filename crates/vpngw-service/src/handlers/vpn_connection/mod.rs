//! IPsec-VPN connections (2022 reference 7.1-7.6; the current CreateVpnConnection,
//! ModifyVpnConnectionAttribute, DescribeVpnConnection and DownloadVpnConnectionConfig pages).
//!
//! A gateway with a DisasterRecoveryVSwitchId takes dual-tunnel connections
//! (TunnelOptionsSpecification, one master and one slave tunnel); any other takes single-tunnel
//! ones (CustomerGatewayId, IkeConfig, ...). Create, Modify and Delete put the connection's
//! State and its gateway's Status through `updating`. The negotiation `Status` of a connection
//! and of each tunnel starts at `ike_sa_not_established` and belongs to the data plane: this
//! module stores and shows it and never sets it otherwise.
//!
//! Modify is a partial update: only the parameters given change, keys of a JSON config merge
//! into the stored config, the PSK is generated only at creation. `negotiation_generation` moves
//! only when something negotiable changed, so a rename does not re-key.

use std::collections::HashMap;
use vpngw_model::connection::{Attachment, ATTACH_NONE, ATTACH_VPNGW};
pub use vpngw_model::connection::{BgpCfg, CustomerGatewayId, HealthCheck, IkeCfg, IpsecCfg, RoutingMode, Tunnel, TunnelId, TunnelRole, VpnConnection, NOT_ESTABLISHED};

use ipnet::Ipv4Net;
use serde_json::{json, Map, Value};
use vpngw_api::{ApiError, Code, Params};
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::customer_gateway::CustomerGateway;
use super::vpn_gateway::{ensure_writable, VpnGateway};
use super::{doc, list_with_tags, load, load_tagged, new_record, obj, put_tagged, schedule, tags_json, to_doc, Lifecycle, TaskOp};
use crate::validate::{self, cidr};
use crate::{ids, store_error, HandlerResult, Req};

mod attachment;
mod context;
mod download;
mod params;
mod render;
#[cfg(test)]
mod tests;

pub use attachment::{
    create_vco_route_entry, create_vpn_attachment, delete_vco_route_entry, delete_vpn_attachment, describe_vco_route_entries, describe_vpn_attachments, modify_vco_route_entry_weight,
    modify_vpn_attachment_attribute,
};
pub(crate) use context::load_cgws;
use context::*;
pub use download::download_vpn_connection_config;
pub(crate) use download::PeerTunnel;
use params::*;
pub(crate) use params::{apply_ike, apply_ipsec, check_ike, check_ipsec, overlaps, psk_ok, subnets};
use render::*;

/// The gateway goes to `updating` with the connection, and shows whether any connection has BGP.
fn gateway_updating(req: &Req<'_>, g: &GatewayView, bgp: bool) -> Vec<Mutation> {
    let (mut rec, mut gw) = (g.rec.clone(), g.gw.clone());
    rec.status = Lifecycle::Updating.as_str().into();
    gw.enable_bgp = bgp;
    rec.doc = to_doc(&gw);
    let mut muts = schedule(Kind::VpnGateway, &rec.id, &[(TaskOp::Become(Lifecycle::Active), req.svc.config.transition)]);
    muts.insert(0, Mutation::Put(rec));
    muts
}

pub async fn create_vpn_connection(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let g = gateway_view(req, p.req("VpnGatewayId")?, &named_cgws(&p)).await?;
    let id = ids::new_id("vco");
    create_connection(req, g, id, None, Vec::new()).await
}

/// Creates connection `id` as `g` allows: a gateway's, or (with `attachment`) a VPN attachment
/// whose public addresses `claims` are taken in the same commit.
async fn create_connection(req: &mut Req<'_>, g: GatewayView, id: String, attachment: Option<Attachment>, claims: Vec<String>) -> HandlerResult {
    let p = req.params.clone();
    // Everything below decides from what was read, and ends in one commit.
    ensure_writable(&g.rec, &g.gw)?;
    if !g.gw.enable_ipsec {
        return Err(ApiError::new(Code::IpsecVpnDisabled));
    }
    if g.vpc.n.side(&g.id).is_some_and(|s| s.ipsec_pool.is_some()) {
        return Err(ApiError::new(Code::IpsecServerAndVpnConnectionConflict));
    }
    let dual = g.dual;
    let mut c = VpnConnection {
        name: id.clone(),
        customer_gateway_id: CustomerGatewayId::default(),
        cgw_ids: Vec::new(),
        local_subnet: Vec::new(),
        remote_subnet: Vec::new(),
        effect_immediately: false,
        auto_config_route: true,
        enable_dpd: true,
        enable_nat_traversal: true,
        remote_ca_certificate: String::new(),
        ike: default_ike(g.national, &g.gw.internet_ip, ""),
        ipsec: default_ipsec(g.national),
        bgp: BgpCfg::default(),
        health: HealthCheck { enable: false, sip: String::new(), dip: String::new(), interval: 3, retry: 3, policy: "revoke_route".into() },
        enable_tunnels_bgp: false,
        tunnels: Vec::new(),
        status: NOT_ESTABLISHED,
        internet_ip: g.gw.internet_ip.clone(),
        zone_no: g.zones.0.clone(),
        resource_group_id: g.gw.resource_group_id.clone(),
        negotiation_generation: 1,
        routing: RoutingMode::Static,
        health_status: String::new(),
        plane_state: String::new(),
        plane_unsupported: Default::default(),
        bgp_up: false,
        bgp_routes: Vec::new(),
        bgp_info: Default::default(),
        attach_type: if attachment.is_some() { ATTACH_NONE } else { ATTACH_VPNGW }.into(),
        attachment: attachment.clone(),
    };
    apply_common(&mut c, &p)?;
    let tags = validate::tags(&p, "Tags")?;
    let mut cgws: HashMap<CustomerGatewayId, CustomerGateway> = HashMap::new();

    if dual {
        apply_single(&mut c, &p, true, g.national)?;
        c.enable_tunnels_bgp = p.opt_bool("EnableTunnelsBgp")?.unwrap_or(false);
        let specs = p.objects("TunnelOptionsSpecification")?;
        if specs.len() != 2 || specs.iter().any(|s| s.opt("CustomerGatewayId").is_none() || s.opt("Role").is_none()) {
            return Err(ApiError::new(Code::MissingTunnelOptions));
        }
        let mut roles: Vec<&str> = specs.iter().filter_map(|s| s.opt("Role")).collect();
        roles.sort_unstable();
        if roles != ["master", "slave"] {
            return Err(ApiError::new(Code::IllegalRole));
        }
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("TunnelOptionsSpecification.{}", i + 1);
            let cgw_id = spec.req("CustomerGatewayId")?.to_string();
            let cgw = g.customer_gateway(&cgw_id)?.clone();
            let master = spec.opt("Role") == Some("master");
            let (ip, zone) = if master { (g.gw.internet_ip.clone(), g.zones.0.clone()) } else { (g.gw.dr_internet_ip.clone().unwrap_or_default(), g.zones.1.clone()) };
            let explicit_remote_id = sub_object(spec, "TunnelIkeConfig").is_some_and(|o| o.contains_key("RemoteId"));
            let mut t = Tunnel {
                tunnel_id: TunnelId::generate(),
                role: if master { TunnelRole::Master } else { TunnelRole::Slave },
                customer_gateway_id: cgw_id.as_str().into(),
                internet_ip: ip.clone(),
                zone_no: zone,
                enable_dpd: true,
                enable_nat_traversal: true,
                remote_ca_certificate: String::new(),
                ike: default_ike(g.national, &ip, &cgw.ip_address),
                ipsec: default_ipsec(g.national),
                bgp: BgpCfg::default(),
                status: NOT_ESTABLISHED,
                bgp_up: false,
            };
            apply_tunnel(&mut t, spec, &at, g.national, c.enable_tunnels_bgp)?;
            if g.national && !explicit_remote_id {
                return Err(ApiError::new(Code::MissingRemoteId));
            }
            check_bgp(&mut t.bgp, &cgw)?;
            cgws.insert(cgw_id.into(), cgw);
            c.tunnels.push(t);
        }
        // Master first, as Describe lists them.
        c.tunnels.sort_by_key(|t| t.role);
        c.cgw_ids = c.tunnels.iter().map(|t| t.customer_gateway_id.clone()).collect();
    } else {
        let cgw_id = p.req("CustomerGatewayId")?.to_string();
        let cgw = g.customer_gateway(&cgw_id)?.clone();
        c.ike.remote_id = cgw.ip_address.clone();
        apply_single(&mut c, &p, false, g.national)?;
        if g.national && !p.json_object("IkeConfig")?.is_some_and(|o| o.contains_key("RemoteId")) {
            return Err(ApiError::new(Code::MissingRemoteId));
        }
        check_bgp(&mut c.bgp, &cgw)?;
        c.customer_gateway_id = cgw_id.as_str().into();
        c.cgw_ids = vec![c.customer_gateway_id.clone()];
        cgws.insert(cgw_id.into(), cgw);
    }
    for cgw in cgws.values() {
        if cgw.ip_address == g.gw.internet_ip || g.gw.dr_internet_ip.as_deref() == Some(cgw.ip_address.as_str()) {
            return Err(ApiError::new(Code::CustomerGatewayConflictVpnIp));
        }
    }
    if g.connections >= req.svc.config.quotas.vpn_connections_per_gateway {
        return Err(ApiError::new(Code::VpnConnectionsQuotaFull));
    }
    let others_bgp = g.check_siblings(&id, &c)?;

    let bgp = c.bgp_enabled() || others_bgp;
    c.routing = if c.bgp_enabled() { RoutingMode::Bgp } else { RoutingMode::Static };
    let parent = if g.attachment { None } else { Some(g.rec.id.clone()) };
    let rec = new_record(req, Kind::VpnConnection, &id, parent, Lifecycle::Updating.as_str(), to_doc(&c));
    let mut body = obj(json!({"VpnConnectionId": id, "Name": c.name, "CreateTime": rec.created_ms}));
    if g.attachment {
        body.extend(obj(json!({"Success": true, "Code": "200", "Message": "successful"})));
    }
    let routes = g.route_mutations(req, &id, Some(&c))?;
    // DryRun: every check above passed; nothing is created.
    req.dry_run()?;
    let mut muts = put_tagged(req, rec, tags);
    muts.extend(routes);
    muts.extend(claims.into_iter().map(|ip| Mutation::ClaimAddress { ip, owner: id.clone() }));
    muts.extend(schedule(Kind::VpnConnection, &id, &[(TaskOp::Become(Lifecycle::Active), req.svc.config.transition)]));
    if !g.attachment {
        muts.extend(gateway_updating(req, &g, bgp));
    }
    req.commit(muts, body).await
}

pub async fn modify_vpn_connection_attribute(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let id = p.req("VpnConnectionId")?.to_string();
    let (rec, before, g) = modifiable(req, &id).await?;
    let mut c = before.clone();
    apply_common(&mut c, &p)?;
    if c.dual() {
        apply_single(&mut c, &p, true, g.national)?;
        if let Some(b) = p.opt_bool("EnableTunnelsBgp")? {
            c.enable_tunnels_bgp = b;
        }
        for (i, spec) in p.objects("TunnelOptionsSpecification")?.iter().enumerate() {
            let tid = spec.opt("TunnelId").ok_or_else(|| ApiError::new(Code::IllegalTunnelId))?;
            apply_tunnel_spec(&mut c, tid, spec, &format!("TunnelOptionsSpecification.{}", i + 1), g.national)?;
        }
        g.check_tunnels(&mut c)?;
    } else {
        apply_single(&mut c, &p, false, g.national)?;
        check_bgp(&mut c.bgp, g.customer_gateway(&c.customer_gateway_id)?)?;
    }
    let touches_selectors = p.opt("LocalSubnet").is_some() || p.opt("RemoteSubnet").is_some() || p.opt("IkeConfig").is_some() || p.has("TunnelOptionsSpecification");
    commit_modify(req, rec, before, c, g, touches_selectors, |rec, c, cgws| connection_json(rec, c, cgws, Shape::Modify, None)).await
}

/// ModifyTunnelAttribute (current SDK): one tunnel of a dual-tunnel connection, by TunnelId,
/// with the settings ModifyVpnConnectionAttribute's TunnelOptionsSpecification takes (the
/// object flattened without an index); answers with that tunnel as it now is.
pub async fn modify_tunnel_attribute(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let id = p.req("VpnConnectionId")?.to_string();
    let tid = p.req("TunnelId")?.to_string();
    let spec = p.object("TunnelOptionsSpecification")?.unwrap_or_default();
    let (rec, before, g) = modifiable(req, &id).await?;
    let mut c = before.clone();
    apply_tunnel_spec(&mut c, &tid, &spec, "TunnelOptionsSpecification", g.national)?;
    g.check_tunnels(&mut c)?;
    let touches_selectors = !spec.is_empty();
    commit_modify(req, rec, before, c, g, touches_selectors, move |rec, c, cgws| {
        let all = connection_json(rec, c, cgws, Shape::Modify, None);
        let mut t = all["TunnelOptionsSpecification"]["TunnelOptions"].as_array().and_then(|ts| ts.iter().find(|t| t["TunnelId"] == tid.as_str())).cloned().unwrap_or_default();
        let enabled = c.tunnels.iter().any(|x| x.tunnel_id == tid && x.bgp.enable);
        t["TunnelBgpConfig"]["EnableBgp"] = json!(enabled);
        t
    })
    .await
}

/// A connection and its gateway, once both may change: the gateway is writable and the
/// connection is not in the middle of another change.
async fn modifiable(req: &Req<'_>, id: &str) -> Result<(Record, VpnConnection, GatewayView), ApiError> {
    let rec = load(req, Kind::VpnConnection, id, Code::InvalidVpnConnectionId).await?;
    let before: VpnConnection = doc(&rec)?;
    let g = view_of(req, &rec, &before, &[before.cgw_ids.iter().map(|x| x.to_string()).collect(), named_cgws(&req.params)].concat()).await?;
    ensure_writable(&g.rec, &g.gw)?;
    if rec.status != Lifecycle::Active.as_str() {
        return Err(ApiError::new(Code::VpnTaskConflict));
    }
    Ok((rec, before, g))
}

/// What every change of a connection ends with: the rules that span the connection and its
/// siblings, then one commit of the connection, its system routes and, when the data plane
/// must apply it, the `updating` steps of the connection and its gateway.
async fn commit_modify(
    req: &mut Req<'_>,
    mut rec: Record,
    before: VpnConnection,
    mut c: VpnConnection,
    g: GatewayView,
    touches_selectors: bool,
    body: impl FnOnce(&Record, &VpnConnection, &HashMap<CustomerGatewayId, CustomerGateway>) -> Value,
) -> HandlerResult {
    let id = rec.id.clone();
    let ikev1 = if c.dual() { c.tunnels.iter().any(|t| t.ike.ike_version == "ikev1") } else { c.ike.ike_version == "ikev1" };
    if touches_selectors && ikev1 && (c.local_subnet.len() > 1 || c.remote_subnet.len() > 1) {
        return Err(ApiError::new(Code::ModifyIkeV1WithMultiRoutes));
    }
    let others_bgp = g.check_siblings(&id, &c)?;
    c.routing = if c.bgp_enabled() { RoutingMode::Bgp } else { RoutingMode::Static };

    let mut muts = Vec::new();
    let applied = c.negotiable() != before.negotiable() || c.bgp_enabled() != before.bgp_enabled() || c.health != before.health || c.bgp != before.bgp;
    if c.negotiable() != before.negotiable() {
        c.negotiation_generation += 1;
    }
    let routes = g.route_mutations(req, &id, Some(&c))?;
    let applied = applied || !routes.is_empty();
    muts.extend(routes);
    if applied {
        rec.status = Lifecycle::Updating.as_str().into();
        muts.extend(schedule(Kind::VpnConnection, &id, &[(TaskOp::Become(Lifecycle::Active), req.svc.config.transition)]));
        if !g.attachment {
            muts.extend(gateway_updating(req, &g, c.bgp_enabled() || others_bgp));
        }
    }
    rec.doc = to_doc(&c);
    let body = obj(body(&rec, &c, &g.cgws_of(&c)));
    muts.insert(0, Mutation::Put(rec));
    req.commit(muts, body).await
}

pub async fn delete_vpn_connection(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpnConnectionId")?.to_string();
    let muts = delete_mutations(req, id).await?;
    req.commit(muts, Default::default()).await
}

/// What deleting connection `id` commits (a gateway's or an attachment).
async fn delete_mutations(req: &Req<'_>, id: String) -> Result<Vec<Mutation>, ApiError> {
    let rec = load(req, Kind::VpnConnection, &id, Code::InvalidVpnConnectionId).await?;
    let c: VpnConnection = doc(&rec)?;
    let g = view_of(req, &rec, &c, &c.cgw_ids.iter().map(|x| x.to_string()).collect::<Vec<_>>()).await?;
    ensure_writable(&g.rec, &g.gw)?;
    if rec.status != Lifecycle::Active.as_str() {
        return Err(ApiError::new(Code::VpnTaskConflict));
    }
    let others_bgp = g.siblings.iter().any(|(sid, o)| *sid != id && o.bgp_enabled());
    // Its routes go with it; so do an attachment's addresses (with its record).
    let mut muts = g.route_mutations(req, &id, None)?;
    muts.push(Mutation::Delete { kind: Kind::VpnConnection, id });
    if !g.attachment {
        muts.extend(gateway_updating(req, &g, others_bgp));
    }
    Ok(muts)
}

pub async fn describe_vpn_connection(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpnConnectionId")?.to_string();
    let (rec, tags) = load_tagged(req, Kind::VpnConnection, &id, Code::InvalidVpnConnectionId).await?;
    let c: VpnConnection = doc(&rec)?;
    let cgws = load_cgws(req, &[&c]).await?;
    Ok(obj(connection_json(&rec, &c, &cgws, Shape::Describe, Some(&tags))))
}

pub async fn describe_vpn_connections(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    let mut q = ListQuery { offset, limit, tags: validate::tag_filters(p)?, parent: p.opt("VpnGatewayId").map(str::to_string), ..Default::default() };
    if let Some(id) = p.opt("VpnConnectionId") {
        q.ids = vec![id.to_string()];
    }
    if let Some(cgw) = p.opt("CustomerGatewayId") {
        q.fields.push(("cgw_ids[]".into(), cgw.to_string()));
    }
    let (page, tags) = list_with_tags(req, Kind::VpnConnection, &q).await?;
    let conns = page.items.iter().map(doc::<VpnConnection>).collect::<Result<Vec<_>, _>>()?;
    let cgws = load_cgws(req, &conns.iter().collect::<Vec<_>>()).await?;
    let items: Vec<Value> = page.items.iter().zip(&conns).map(|(r, c)| connection_json(r, c, &cgws, Shape::List, tags.get(&r.id))).collect();
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "VpnConnections": {"VpnConnection": items}})))
}

/// DescribeVpnCrossAccountAuthorizations: the grants that let another account's transit router
/// attach a connection. This service has no API that makes such a grant (on Alibaba Cloud it is
/// made from the CEN side), so every connection has none: the answer is an empty page. A
/// connection named by VpnConnectionId must still exist in the caller's account.
pub async fn describe_vpn_cross_account_authorizations(req: &mut Req<'_>) -> HandlerResult {
    let (_, _, number, size) = validate::paging(&req.params)?;
    if let Some(id) = req.params.opt("VpnConnectionId").map(str::to_string) {
        load(req, Kind::VpnConnection, &id, Code::InvalidVpnConnectionId).await?;
    }
    Ok(obj(json!({"TotalCount": 0, "PageNumber": number, "PageSize": size, "CrossAccountAuthorizations": []})))
}
