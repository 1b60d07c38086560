//! DiagnoseVpnGateway and GetVpnGatewayDiagnoseResult (current SDK): a one-click diagnosis of
//! an IPsec-VPN connection of a gateway.
//!
//! DiagnoseVpnGateway records the diagnosis and answers its DiagnoseId at once. The items that
//! need only the configuration are decided then: RouteEntryConflict (a route into Alibaba's
//! reserved 100.64.0.0/10), VpnIPsecQuota, VpnRouteQuota, VpnPbrRouteQuota, and
//! VcoConfigConsistency (what the negotiation showed of the peer's settings, from the data
//! plane's log). The probes are the data plane's to run, as every packet is: it pings the
//! customer gateway's public address (VcoUserInternetIpConnectivity) and, when IPsecExtendInfo
//! names them, from PrivateSourceIp to PrivateDestinationIp through the tunnel
//! (VcoPrivateConnectivity), and records each result; FinishedCount reaches TotalCount when it
//! has. Without a data plane the probes finish at once as warnings that say so.

use std::net::Ipv4Addr;
pub use vpngw_model::diagnosis::{DiagnoseItem, GatewayDiagnosis, PRIVATE_PROBE, PUBLIC_PROBE};

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code};
use vpngw_store::{Kind, Mutation, Record};

use super::diagnose::{findings, targets_of};
use super::vpn_connection::{load_cgws, VpnConnection};
use super::vpn_route::VpnRoute;
use super::{children, doc, iso_time, load, new_record, obj, to_doc, Lifecycle};
use crate::{device, ids, store_error, HandlerResult, Req};

/// Diagnoses kept per gateway; creating one more drops the oldest.
const KEPT: usize = 20;

/// `IPsecExtendInfo`: `{"PrivateSourceIp": "...", "PrivateDestinationIp": "..."}`, both or none.
fn private_pair(raw: Option<&str>) -> Result<Option<(String, String)>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || ApiError::invalid("IPsecExtendInfo");
    let v: Value = serde_json::from_str(raw).map_err(|_| bad())?;
    let ip = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| s.parse::<Ipv4Addr>().is_ok()).map(str::to_string);
    match (ip("PrivateSourceIp"), ip("PrivateDestinationIp")) {
        (Some(s), Some(d)) => Ok(Some((s, d))),
        _ => Err(bad()),
    }
}

fn quota(name: &str, quantity: u64, used: u64) -> DiagnoseItem {
    let level = if used >= quantity { "warning" } else { "normal" };
    DiagnoseItem::new(name, level, json!({"quotaName": name, "quantity": quantity, "used": used}))
}

pub async fn diagnose_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let gw_id = p.req("VpnGatewayId")?.to_string();
    if !p.req("ResourceType")?.eq_ignore_ascii_case("IPsec") {
        return Err(ApiError::invalid("ResourceType"));
    }
    let vco = p.req("ResourceId")?.to_string();
    let private = private_pair(p.opt("IPsecExtendInfo"))?;
    let gw = load(req, Kind::VpnGateway, &gw_id, Code::InvalidVpnGatewayId).await?;
    let gateway: super::vpn_gateway::VpnGateway = doc(&gw)?;
    let rec = load(req, Kind::VpnConnection, &vco, Code::InvalidVpnConnectionId).await?;
    if rec.parent.as_deref() != Some(gw.id.as_str()) {
        return Err(ApiError::new(Code::InvalidVpnConnectionId));
    }
    let c: VpnConnection = doc(&rec)?;
    let q = &req.svc.config.quotas;
    let mut items = Vec::new();

    let routes: Vec<VpnRoute> = children(req, Kind::VpnRoute, &gw.id).await?.iter().map(doc).collect::<Result<_, _>>()?;
    let reserved: ipnet::Ipv4Net = "100.64.0.0/10".parse().expect("a valid CIDR");
    let conflicts: Vec<Value> = routes
        .iter()
        .filter(|r| r.route_dest.parse::<ipnet::Ipv4Net>().is_ok_and(|d| d.contains(&reserved) || reserved.contains(&d)))
        .map(|r| json!({"routeDest": r.route_dest, "nextHop": r.next_hop, "routeType": r.route_kind}))
        .collect();
    items.push(DiagnoseItem::new("RouteEntryConflict", if conflicts.is_empty() { "normal" } else { "error" }, json!({"reservedCidr": reserved.to_string(), "conflictRoutes": conflicts})));
    let connections = req.store().count(Kind::VpnConnection, &req.scope, Some(&gw.id)).await.map_err(store_error)?;
    items.push(quota("VpnIPsecQuota", q.vpn_connections_per_gateway, connections));
    items.push(quota("VpnRouteQuota", q.dbr_routes_per_gateway, routes.iter().filter(|r| r.route_kind == "dbr").count() as u64));
    items.push(quota("VpnPbrRouteQuota", q.pbr_routes_per_gateway, routes.iter().filter(|r| r.route_kind == "pbr").count() as u64));
    items.push(consistency(req, &rec, &c).await?);

    // The probes: the customer gateway's public address (a dual-tunnel connection's first
    // tunnel's), and the private pair if named.
    let cgw_id = c.tunnels.first().map(|t| &t.customer_gateway_id).unwrap_or(&c.customer_gateway_id);
    let peer_ip = load_cgws(req, &[&c]).await?.remove(cgw_id).map(|g| g.ip_address).unwrap_or_default();
    let (source, destination) = private.unwrap_or_default();
    let mut pending = vec![PUBLIC_PROBE.to_string()];
    if !source.is_empty() {
        pending.push(PRIVATE_PROBE.to_string());
    }
    let now = crate::now_ms();
    let mut d = GatewayDiagnosis {
        resource_type: "IPsec".into(),
        resource_id: rec.id.clone(),
        gateway_ip: gateway.internet_ip.clone(),
        peer_ip,
        private_source_ip: source,
        private_destination_ip: destination,
        begin_ms: now,
        finish_ms: None,
        total: (items.len() + pending.len()) as u32,
        items,
        pending,
    };
    if !req.svc.expects_dataplane() {
        for name in d.pending.clone() {
            d.record(
                DiagnoseItem::new(
                    &name,
                    "warning",
                    json!({"targetIp": if name == PUBLIC_PROBE { &d.peer_ip } else { &d.private_destination_ip }, "reason": "This vpngw runs without a data plane: nothing was sent."}),
                ),
                now,
            );
        }
    }
    let id = ids::new_id("vpndgn");
    let mut muts = vec![Mutation::Put(new_record(req, Kind::VpnGatewayDiagnosis, &id, Some(gw.id.clone()), Lifecycle::Active.as_str(), to_doc(&d)))];
    let mut older = children(req, Kind::VpnGatewayDiagnosis, &gw.id).await?;
    older.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
    muts.extend(older.into_iter().skip(KEPT - 1).map(|r| Mutation::Delete { kind: Kind::VpnGatewayDiagnosis, id: r.id }));
    let answer = req.commit(muts, obj(json!({"DiagnoseId": id}))).await;
    if answer.is_ok() && d.finish_ms.is_none() {
        req.svc.diagnoses_waiting();
    }
    answer
}

/// VcoConfigConsistency: this side's settings, and what the negotiation showed of the peer's.
async fn consistency(req: &Req<'_>, rec: &Record, c: &VpnConnection) -> Result<DiagnoseItem, ApiError> {
    let proposals = |ike, ipsec| json!({"IkeConfig": device::ike_proposal(ike).unwrap_or_default(), "IpsecConfig": device::esp_proposal(ipsec).unwrap_or_default()});
    let mut conf = json!({"LocalSubnet": c.local_subnet.join(","), "RemoteSubnet": c.remote_subnet.join(",")});
    if c.dual() {
        conf["Tunnels"] = c.tunnels.iter().map(|t| json!({"TunnelId": t.tunnel_id, "Role": t.role, "Proposals": proposals(&t.ike, &t.ipsec)})).collect();
    } else {
        conf["Proposals"] = proposals(&c.ike, &c.ipsec);
    }
    let targets = targets_of(rec, c);
    if targets.iter().all(|t| t.up()) {
        // Both sides agreed on every setting the negotiation carries.
        return Ok(DiagnoseItem::new("VcoConfigConsistency", "normal", json!({"vcoConf": conf, "vcoRunningConf": conf, "vcoDiffConf": []})));
    }
    let diffs: Vec<Value> = findings(req, targets).await?.into_iter().filter_map(|(_, d)| d).map(|d| json!({"failedReasonCode": d.code, "local": d.local, "remote": d.remote, "log": d.log})).collect();
    Ok(if diffs.is_empty() {
        DiagnoseItem::new("VcoConfigConsistency", "warning", json!({"vcoConf": conf, "vcoLackConf": true}))
    } else {
        DiagnoseItem::new("VcoConfigConsistency", "error", json!({"vcoConf": conf, "vcoDiffConf": diffs}))
    })
}

pub async fn get_vpn_gateway_diagnose_result(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let rec = load(req, Kind::VpnGatewayDiagnosis, p.req("DiagnoseId")?, Code::InvalidDiagnoseId).await?;
    if let Some(gw) = p.opt("VpnGatewayId") {
        if rec.parent.as_deref() != Some(gw) {
            return Err(ApiError::new(Code::InvalidDiagnoseId));
        }
    }
    let d: GatewayDiagnosis = doc(&rec)?;
    let items: Vec<Value> = d.items.iter().map(|i| json!({"DiagnoseName": i.name, "DiagnoseResultLevel": i.level, "DiagnoseResultDescription": i.description})).collect();
    Ok(obj(json!({
        "DiagnoseId": rec.id, "VpnGatewayId": rec.parent, "ResourceType": d.resource_type, "ResourceInstanceId": d.resource_id,
        "BeginTime": iso_time(d.begin_ms), "FinishTime": d.finish_ms.map(iso_time).unwrap_or_default(),
        "TotalCount": d.total, "FinishedCount": d.items.len(), "DiagnoseResult": items,
    })))
}
