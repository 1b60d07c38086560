//! DownloadVpnConnectionConfig: the customer's side of each tunnel, and its device rendering.

#[allow(unused_imports)]
use super::*;

/// The customer side of one tunnel: its own address and IDs first.
#[derive(Clone)]
pub(crate) struct PeerTunnel {
    pub name: String,
    pub tunnel_id: String,
    pub local: String,
    pub remote: String,
    pub ike: IkeCfg,
    pub ipsec: IpsecCfg,
    pub enable_dpd: bool,
    pub effect_immediately: bool,
    /// `master`/`slave` for dual-tunnel connections, empty otherwise.
    pub role: Option<TunnelRole>,
    pub local_subnet: Vec<String>,
    pub remote_subnet: Vec<String>,
    /// The customer's side of the tunnel's BGP session, when BGP is on for it.
    pub bgp: Option<vpngw_model::bgp::Session>,
}

pub(super) fn peer_ike(ike: &IkeCfg) -> IkeCfg {
    IkeCfg { local_id: ike.remote_id.clone(), remote_id: ike.local_id.clone(), ..ike.clone() }
}

/// The customer's side of a tunnel's BGP session: the mirror of the gateway's.
fn peer_bgp(key: &str, bgp: &BgpCfg, on: bool, cgw: Option<&CustomerGateway>) -> Option<vpngw_model::bgp::Session> {
    if !on {
        return None;
    }
    let peer = vpngw_model::bgp::Peer { asn: cgw?.asn, auth_key: cgw?.auth_key.expose().to_string() };
    let s = vpngw_model::bgp::session(key, bgp, Some(&peer))?;
    Some(vpngw_model::bgp::Session { key: s.key, local_ip: s.peer_ip, local_asn: s.peer_asn, peer_ip: s.local_ip, peer_asn: s.local_asn, password: s.password })
}

pub async fn download_vpn_connection_config(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpnConnectionId")?.to_string();
    let device = req.params.opt("DeviceType").map(str::to_ascii_lowercase);
    let rec = load(req, Kind::VpnConnection, &id, Code::InvalidVpnConnectionId).await?;
    let c: VpnConnection = doc(&rec)?;
    let cgws = load_cgws(req, &[&c]).await?;
    let cgw_ip = |id: &str| cgws.get(id).map(|g| g.ip_address.clone()).unwrap_or_default();
    let peers: Vec<PeerTunnel> = if c.dual() {
        c.tunnels
            .iter()
            .map(|t| PeerTunnel {
                name: format!("{}-{}", rec.id, t.role),
                tunnel_id: t.tunnel_id.to_string(),
                local: cgw_ip(&t.customer_gateway_id),
                remote: t.internet_ip.clone(),
                ike: peer_ike(&t.ike),
                ipsec: t.ipsec.clone(),
                enable_dpd: t.enable_dpd,
                effect_immediately: c.effect_immediately,
                role: Some(t.role),
                local_subnet: c.remote_subnet.clone(),
                remote_subnet: c.local_subnet.clone(),
                bgp: peer_bgp(&t.tunnel_id, &t.bgp, c.enable_tunnels_bgp, cgws.get(&t.customer_gateway_id)),
            })
            .collect()
    } else {
        vec![PeerTunnel {
            name: rec.id.clone(),
            tunnel_id: String::new(),
            local: cgw_ip(&c.customer_gateway_id),
            remote: c.internet_ip.clone(),
            ike: peer_ike(&c.ike),
            ipsec: c.ipsec.clone(),
            enable_dpd: c.enable_dpd,
            effect_immediately: c.effect_immediately,
            role: None,
            local_subnet: c.remote_subnet.clone(),
            remote_subnet: c.local_subnet.clone(),
            bgp: peer_bgp(&rec.id, &c.bgp, true, cgws.get(&c.customer_gateway_id)),
        }]
    };
    let first = &peers[0];
    let mut cfg = json!({
        "Local": first.local, "Remote": first.remote,
        "LocalSubnet": c.remote_subnet.join(","), "RemoteSubnet": c.local_subnet.join(","),
        "IkeConfig": ike_json(&first.ike, false), "IpsecConfig": ipsec_json(&first.ipsec, false),
    });
    if c.dual() {
        cfg["TunnelsConfig"] = json!({"TunnelConfig": peers.iter().map(|t| json!({
            "TunnelId": t.tunnel_id, "Local": t.local, "Remote": t.remote,
            "IkeConfig": ike_json(&t.ike, false), "IpsecConfig": ipsec_json(&t.ipsec, false),
        })).collect::<Vec<_>>()});
        let bgp: Vec<Value> = c
            .tunnels
            .iter()
            .filter(|t| t.bgp.enable)
            .map(|t| {
                json!({
                    "TunnelId": t.tunnel_id, "TunnelCidr": t.bgp.tunnel_cidr,
                    "LocalBgpIp": t.bgp.peer_ip(), "PeerBgpIp": t.bgp.local_bgp_ip,
                    "LocalAsn": cgws.get(&t.customer_gateway_id).and_then(|g| g.asn).map(|n| n.to_string()).unwrap_or_default(),
                    "PeerAsn": t.bgp.local_asn.to_string(),
                })
            })
            .collect();
        cfg["BgpConfigs"] = json!({ "BgpConfig": bgp });
    } else if c.bgp.enable {
        cfg["BgpConfigs"] = json!({"BgpConfig": [{
            "TunnelCidr": c.bgp.tunnel_cidr, "LocalBgpIp": c.bgp.peer_ip(), "PeerBgpIp": c.bgp.local_bgp_ip,
            "LocalAsn": cgws.get(&c.customer_gateway_id).and_then(|g| g.asn).map(|n| n.to_string()).unwrap_or_default(),
            "PeerAsn": c.bgp.local_asn.to_string(),
        }]});
    }
    if let Some(device) = device {
        let text = crate::device::render(&device, &peers).map_err(|why| ApiError::arg(Code::UnsupportedDeviceType, why))?;
        cfg["DeviceConfig"] = json!(text);
    }
    Ok(obj(json!({ "VpnConnectionConfig": cfg })))
}
