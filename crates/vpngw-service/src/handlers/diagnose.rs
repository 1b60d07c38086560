//! DiagnoseVpnConnections (current SDK): why each tunnel is down, from the data plane's log.
//!
//! VpnConnectionIds names single-tunnel connections (a dual-tunnel one stands for both its
//! tunnels), TunnelIds names tunnels; with neither, every connection of VpnGatewayId (or of the
//! region) is diagnosed. A tunnel whose IPsec SA is up is `Normal`; otherwise the newest failure
//! its charon logged in the last ten minutes is reported with the documented fields. The
//! FailedReasonCode values are vpngw's own (the documents list none); docs/dataplane.md lists them.

use std::collections::HashMap;

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code};
use vpngw_store::{Kind, ListQuery, Record};

use super::vpn_connection::{load_cgws, IkeCfg, IpsecCfg, VpnConnection};
use super::{doc, load, obj};
use crate::dataplane::{status, Diagnosis};
use crate::{device, store_error, validate, HandlerResult, Req};

/// How far back a failure counts.
const WINDOW_S: i64 = 600;

/// One tunnel to diagnose: its connection, and which of its tunnels (None: single-tunnel).
pub(crate) struct Target {
    rec: Record,
    conn: VpnConnection,
    tunnel: Option<usize>,
}

/// A tunnel and the data plane's finding on it (None when it is up or nothing was logged).
pub(crate) type Finding = (Target, Option<Diagnosis>);

/// The tunnels of a connection: itself when single-tunnel, else each of its tunnels.
pub(crate) fn targets_of(rec: &Record, c: &VpnConnection) -> Vec<Target> {
    if c.dual() {
        (0..c.tunnels.len()).map(|i| Target { rec: rec.clone(), conn: c.clone(), tunnel: Some(i) }).collect()
    } else {
        vec![Target { rec: rec.clone(), conn: c.clone(), tunnel: None }]
    }
}

pub async fn diagnose_vpn_connections(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let conn_ids = p.list("VpnConnectionIds")?;
    let tunnel_ids = p.list("TunnelIds")?;
    let (offset, limit, number, size) = validate::paging(&p)?;
    let gateway = match p.opt("VpnGatewayId") {
        Some(id) => Some(load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?.id),
        None => None,
    };
    let q = ListQuery { parent: gateway, limit: u32::MAX as u64, ..Default::default() };
    let mut conns = Vec::new();
    for rec in req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error)?.items {
        let c: VpnConnection = doc(&rec)?;
        conns.push((rec, c));
    }
    let mut targets = Vec::new();
    for id in &conn_ids {
        let (rec, c) = conns.iter().find(|(r, _)| &r.id == id).ok_or_else(|| ApiError::new(Code::InvalidVpnConnectionId))?;
        targets.extend(targets_of(rec, c));
    }
    for tid in &tunnel_ids {
        let (rec, c, i) = conns.iter().find_map(|(r, c)| c.tunnels.iter().position(|t| &t.tunnel_id == tid).map(|i| (r, c, i))).ok_or_else(|| ApiError::new(Code::IllegalTunnelId))?;
        targets.push(Target { rec: rec.clone(), conn: c.clone(), tunnel: Some(i) });
    }
    if conn_ids.is_empty() && tunnel_ids.is_empty() {
        targets = conns.iter().flat_map(|(rec, c)| targets_of(rec, c)).collect();
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert((t.rec.id.clone(), t.tunnel)));
    let total = targets.len();
    let page: Vec<Target> = targets.into_iter().skip(offset as usize).take(limit as usize).collect();
    let items: Vec<Value> = findings(req, page).await?.into_iter().map(|(t, d)| entry(&t, d)).collect();
    Ok(obj(json!({"TotalCount": total, "PageNumber": number, "PageSize": size, "VpnConnections": items})))
}

/// The data plane's newest failure of each down tunnel among `targets` (in their order),
/// reading each gateway's log once.
pub(crate) async fn findings(req: &Req<'_>, targets: Vec<Target>) -> Result<Vec<Finding>, ApiError> {
    let mut found: Vec<Option<Diagnosis>> = vec![None; targets.len()];
    if req.svc.expects_dataplane() {
        let cgws = load_cgws(req, &targets.iter().map(|t| &t.conn).collect::<Vec<_>>()).await?;
        let mut by_gateway: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in targets.iter().enumerate().filter(|(_, t)| t.view().status != status::IPSEC_UP) {
            by_gateway.entry(super::plane_gateway(&t.rec).unwrap_or_default()).or_default().push(i);
        }
        for (gw, at) in by_gateway {
            let gw = gw.as_str();
            let asks: Vec<(String, String)> = at.iter().map(|i| (targets[*i].view().key.to_string(), cgws.get(targets[*i].view().cgw).map(|g| g.ip_address.clone()).unwrap_or_default())).collect();
            for (i, d) in at.iter().zip(req.svc.live_ipsec_diagnoses(gw, &asks, WINDOW_S).await?) {
                found[*i] = d;
            }
        }
    }
    Ok(targets.into_iter().zip(found).collect())
}

impl Target {
    /// Whether the tunnel's IPsec SA is up.
    pub(crate) fn up(&self) -> bool {
        self.view().status == status::IPSEC_UP
    }
}

/// The parts of a target's tunnel (or single-tunnel connection) a diagnosis reads.
struct View<'a> {
    tunnel_id: &'a str,
    key: &'a str,
    status: status::NegotiationStatus,
    cgw: &'a str,
    ike: &'a IkeCfg,
    ipsec: &'a IpsecCfg,
}

impl Target {
    fn view(&self) -> View<'_> {
        match self.tunnel.map(|i| &self.conn.tunnels[i]) {
            Some(tu) => View { tunnel_id: &tu.tunnel_id, key: &tu.tunnel_id, status: tu.status, cgw: &tu.customer_gateway_id, ike: &tu.ike, ipsec: &tu.ipsec },
            None => View { tunnel_id: "", key: &self.rec.id, status: self.conn.status, cgw: &self.conn.customer_gateway_id, ike: &self.conn.ike, ipsec: &self.conn.ipsec },
        }
    }
}

/// A tunnel whose IPsec SA is up but whose BGP session is not Established: what its BGP
/// daemon says. vpngw's codes (the documents list none): `BgpPeerAsMismatch` (the peer speaks
/// another AS than its customer gateway's Asn), `BgpHoldTimerExpired` (the peer stopped
/// answering), `BgpNotEstablished` (anything else, a wrong AuthKey included: TCP MD5 drops every
/// segment signed with another key, so the peer never seems to answer).
fn bgp_finding(t: &Target) -> Option<Diagnosis> {
    let c = &t.conn;
    let (bgp, up, key) = match t.tunnel.map(|i| &c.tunnels[i]) {
        Some(tu) => (&tu.bgp, tu.bgp_up, tu.tunnel_id.as_str()),
        None => (&c.bgp, c.bgp_up, t.rec.id.as_str()),
    };
    let enabled = bgp.enable && (t.tunnel.is_none() || c.enable_tunnels_bgp);
    if !enabled || up {
        return None;
    }
    let info = c.bgp_info.get(key).cloned().unwrap_or_default();
    let code = if info.contains("Bad peer AS") {
        "BgpPeerAsMismatch"
    } else if info.contains("Hold timer expired") {
        "BgpHoldTimerExpired"
    } else {
        "BgpNotEstablished"
    };
    let hint = match code {
        "BgpPeerAsMismatch" => "the peer's AS is not its customer gateway's Asn",
        "BgpHoldTimerExpired" => "the peer stopped answering",
        _ => "nothing answers on TCP port 179 at the peer's BGP address inside the tunnel: no BGP speaker there, another TunnelCidr, or another AuthKey (TCP MD5 drops every segment signed with a wrong key)",
    };
    Some(Diagnosis {
        code,
        reason: format!("The tunnel is up but its BGP session is not Established: {hint}. The BGP daemon says: {}", if info.is_empty() { "nothing yet" } else { info.as_str() }),
        severity: "Warn",
        local: format!("LocalAsn {}, LocalBgpIp {}", bgp.local_asn, bgp.local_bgp_ip),
        remote: format!("PeerBgpIp {}", bgp.peer_ip()),
        ..Default::default()
    })
}

fn entry(t: &Target, found: Option<Diagnosis>) -> Value {
    let c = &t.conn;
    let v = t.view();
    let d = if t.up() {
        bgp_finding(t).unwrap_or(Diagnosis { severity: "Normal", ..Default::default() })
    } else if let Some(why) = c.plane_unsupported.get(v.key) {
        // The data plane did not load the tunnel: its strongSwan lacks an algorithm it needs.
        Diagnosis {
            code: "AlgorithmUnsupported",
            reason: why.clone(),
            severity: "Critical",
            local: format!("IkeConfig {}/{}/{}, IpsecConfig {}/{}/{}", v.ike.ike_enc_alg, v.ike.ike_auth_alg, v.ike.ike_pfs, v.ipsec.ipsec_enc_alg, v.ipsec.ipsec_auth_alg, v.ipsec.ipsec_pfs),
            ..Default::default()
        }
    } else {
        let mut d = found.unwrap_or_else(|| Diagnosis {
            code: "NotNegotiated",
            reason: "No negotiation of this tunnel was logged in the last ten minutes: it waits for traffic (EffectImmediately false), or for the peer.".into(),
            severity: "Warn",
            ..Default::default()
        });
        // Where the log does not print this side's setting, the configuration says it.
        if d.local.is_empty() {
            d.local = match d.code {
                "IkeProposalMismatch" => device::ike_proposal(v.ike).unwrap_or_default(),
                "IpsecProposalMismatch" => device::esp_proposal(v.ipsec).unwrap_or_default(),
                "TrafficSelectorMismatch" => format!("{} === {}", c.local_subnet.join(","), c.remote_subnet.join(",")),
                _ => String::new(),
            };
        }
        d
    };
    json!({
        "VpnConnectionId": t.rec.id, "TunnelId": v.tunnel_id, "Severity": d.severity, "FailedReasonCode": d.code,
        "FailedReason": d.reason, "FailedTime": d.time_ms, "MismatchLocalParam": d.local, "MismatchRemoteParam": d.remote, "SourceLog": d.log,
    })
}
