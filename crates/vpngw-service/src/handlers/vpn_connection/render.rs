//! A connection as the SDK models have it (Create, Modify and Describe shapes differ).

#[allow(unused_imports)]
use super::*;

/// The SDK models type the same fields differently per action (WIRE.md §c).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// DescribeVpnConnection: tags under `Tags`, tunnel fields as strings.
    Describe,
    /// DescribeVpnConnections items: tags under `Tag`, tunnel fields as strings.
    List,
    /// ModifyVpnConnectionAttribute: tunnel fields as booleans and integers, no tags.
    Modify,
}

pub(super) fn ike_json(c: &IkeCfg, lifetime_as_text: bool) -> Value {
    json!({
        "Psk": c.psk, "IkeVersion": c.ike_version, "IkeMode": c.ike_mode, "IkeEncAlg": c.ike_enc_alg,
        "IkeAuthAlg": c.ike_auth_alg, "IkePfs": c.ike_pfs,
        "IkeLifetime": if lifetime_as_text { json!(c.ike_lifetime.to_string()) } else { json!(c.ike_lifetime) },
        "LocalId": c.local_id, "RemoteId": c.remote_id,
    })
}

pub(super) fn ipsec_json(c: &IpsecCfg, lifetime_as_text: bool) -> Value {
    json!({
        "IpsecEncAlg": c.ipsec_enc_alg, "IpsecAuthAlg": c.ipsec_auth_alg, "IpsecPfs": c.ipsec_pfs,
        "IpsecLifetime": if lifetime_as_text { json!(c.ipsec_lifetime.to_string()) } else { json!(c.ipsec_lifetime) },
    })
}

/// A BGP session's status: `success` only while its BGP daemon last said it was Established
/// (the data plane's observation), `failed` otherwise; "" with BGP off.
pub(super) fn bgp_status(enabled: bool, up: bool) -> &'static str {
    match (enabled, up) {
        (false, _) => "",
        (true, true) => "success",
        (true, false) => "failed",
    }
}

/// A connection's State: its lifecycle step; an attachment at rest is `init` (bound to no
/// resource, the documented value), a gateway's is `active`.
pub(super) fn state<'a>(rec: &'a Record, c: &VpnConnection) -> &'a str {
    if c.is_attachment() && rec.status == Lifecycle::Active.as_str() {
        "init"
    } else {
        &rec.status
    }
}

pub(super) fn connection_json(rec: &Record, c: &VpnConnection, cgws: &HashMap<CustomerGatewayId, CustomerGateway>, shape: Shape, tags: Option<&Vec<(String, String)>>) -> Value {
    let text = shape != Shape::Modify;
    let b = |v: bool| if text { json!(v.to_string()) } else { json!(v) };
    let asn = |v: Option<u32>| match (v, text) {
        (Some(n), true) => json!(n.to_string()),
        (Some(n), false) => json!(n),
        (None, true) => json!(""),
        (None, false) => Value::Null,
    };
    let tunnels: Vec<Value> = c
        .tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let peer_asn = cgws.get(&t.customer_gateway_id).and_then(|g| g.asn);
            let mut v = json!({
                "TunnelId": t.tunnel_id, "Role": t.role, "CustomerGatewayId": t.customer_gateway_id, "InternetIp": t.internet_ip,
                "ZoneNo": t.zone_no, "State": rec.status, "EnableDpd": b(t.enable_dpd), "EnableNatTraversal": b(t.enable_nat_traversal),
                "RemoteCaCertificate": t.remote_ca_certificate, "TunnelIkeConfig": ike_json(&t.ike, text), "TunnelIpsecConfig": ipsec_json(&t.ipsec, text),
                "TunnelBgpConfig": {
                    "LocalAsn": asn(Some(t.bgp.local_asn)), "PeerAsn": asn(peer_asn), "TunnelCidr": t.bgp.tunnel_cidr,
                    "LocalBgpIp": t.bgp.local_bgp_ip, "PeerBgpIp": t.bgp.peer_ip(), "BgpStatus": bgp_status(t.bgp.enable, t.bgp_up),
                },
            });
            if shape != Shape::Modify {
                v["Status"] = json!(t.status);
                v["TunnelIndex"] = json!(i + 1);
            }
            v
        })
        .collect();
    let cgw = cgws.get(&c.customer_gateway_id);
    let mut v = json!({
        "VpnConnectionId": rec.id, "VpnGatewayId": rec.parent.clone().unwrap_or_default(), "CustomerGatewayId": c.customer_gateway_id, "Name": c.name,
        "LocalSubnet": c.local_subnet.join(","), "RemoteSubnet": c.remote_subnet.join(","), "CreateTime": rec.created_ms,
        "EffectImmediately": c.effect_immediately, "EnableDpd": c.enable_dpd, "EnableNatTraversal": c.enable_nat_traversal,
        "EnableTunnelsBgp": c.enable_tunnels_bgp, "RemoteCaCertificate": c.remote_ca_certificate, "ResourceGroupId": c.resource_group_id,
        "IkeConfig": ike_json(&c.ike, false), "IpsecConfig": ipsec_json(&c.ipsec, false),
        "VcoHealthCheck": {
            "Enable": c.health.enable.to_string(), "Sip": c.health.sip, "Dip": c.health.dip,
            "Interval": c.health.interval, "Retry": c.health.retry,
        },
        "VpnBgpConfig": {
            "EnableBgp": c.bgp.enable.to_string(), "LocalAsn": c.bgp.local_asn, "TunnelCidr": c.bgp.tunnel_cidr,
            "LocalBgpIp": c.bgp.local_bgp_ip, "PeerBgpIp": c.bgp.peer_ip(), "PeerAsn": cgw.and_then(|g| g.asn),
            "AuthKey": cgw.map(|g| g.auth_key.clone()).unwrap_or_default(), "Status": bgp_status(c.bgp.enable, c.bgp_up),
        },
        "TunnelOptionsSpecification": {"TunnelOptions": tunnels},
    });
    if shape == Shape::Modify {
        v["Description"] = json!("");
        return v;
    }
    // Health checks run in the data plane; until a probe has answered, an enabled check is failing.
    v["VcoHealthCheck"]["Policy"] = json!(c.health.policy);
    v["VcoHealthCheck"]["Status"] = json!(match (c.health.enable, c.health_status.as_str()) {
        (false, _) => "",
        (true, "") => "failed",
        (true, s) => s,
    });
    for (k, val) in [
        ("Status", json!(if c.dual() { c.tunnels[0].status } else { c.status })),
        ("State", json!(state(rec, c))),
        ("InternetIp", json!(c.internet_ip)),
        ("ZoneNo", json!(c.zone_no)),
        ("Spec", json!("")),
        ("NetworkType", json!(c.attachment.as_ref().map(|a| a.network_type.as_str()).unwrap_or("public"))),
        // `VPNGW` (bound to a VPN gateway) or `NO_ASSOCIATED` (an attachment: no transit router
        // exists here to bind it to).
        ("AttachType", json!(c.attach_type)),
        ("AttachInstanceId", json!("")),
        ("CrossAccountAuthorized", json!(false)),
        ("TransitRouterId", json!("")),
        ("TransitRouterName", json!("")),
        ("TunnelBandwidth", json!(c.attachment.as_ref().map(|a| a.tunnel_bandwidth.as_str()).unwrap_or(""))),
        (if shape == Shape::Describe { "Tags" } else { "Tag" }, tags_json(tags)),
    ] {
        v[k] = val;
    }
    v
}
