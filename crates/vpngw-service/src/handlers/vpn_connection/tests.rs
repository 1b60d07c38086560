use super::*;

fn p(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn base() -> VpnConnection {
    VpnConnection {
        name: "n".into(),
        customer_gateway_id: "cgw-1".into(),
        cgw_ids: vec!["cgw-1".into()],
        local_subnet: vec!["10.0.0.0/24".into()],
        remote_subnet: vec!["192.168.0.0/24".into()],
        effect_immediately: false,
        auto_config_route: true,
        enable_dpd: true,
        enable_nat_traversal: true,
        remote_ca_certificate: String::new(),
        ike: default_ike(false, "198.51.100.1", "203.0.113.1"),
        ipsec: default_ipsec(false),
        bgp: BgpCfg::default(),
        health: HealthCheck { enable: false, sip: String::new(), dip: String::new(), interval: 3, retry: 3, policy: "revoke_route".into() },
        enable_tunnels_bgp: false,
        tunnels: Vec::new(),
        status: NOT_ESTABLISHED,
        internet_ip: "198.51.100.1".into(),
        zone_no: "z".into(),
        resource_group_id: "rg".into(),
        negotiation_generation: 1,
        routing: RoutingMode::Static,
        health_status: String::new(),
        plane_state: String::new(),
        plane_unsupported: Default::default(),
        bgp_up: false,
        bgp_routes: Vec::new(),
        bgp_info: Default::default(),
        attach_type: vpngw_model::connection::ATTACH_VPNGW.into(),
        attachment: None,
    }
}

fn code(r: Result<(), ApiError>) -> &'static str {
    r.err().map(|e| e.code.wire()).unwrap_or("ok")
}

/// Each documented code beside an input that triggers it.
#[test]
fn validation_table() {
    let apply = |pairs: &[(&str, &str)]| {
        let mut c = base();
        apply_common(&mut c, &p(pairs))?;
        apply_single(&mut c, &p(pairs), false, false)
    };
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("LocalSubnet", "10.0.0.0/24,10.1.0.0/33")], "IllegalParam.LocalSubnet"),
        (&[("RemoteSubnet", "192.168.0.1/24")], "IllegalParam.RemoteSubnet"),
        (&[("Name", "http://x")], "InvalidParameter.VpnConnectionName"),
        (&[("IkeConfig", r#"{"IkeLifetime": 86401}"#)], "InvalidParameter"),
        (&[("IkeConfig", r#"{"IkeEncAlg": "sm4"}"#)], "InvalidParameter"),
        (&[("IkeConfig", r#"{"IkePfs": "group3"}"#)], "InvalidParameter"),
        (&[("IkeConfig", r#"{"Psk": "has space"}"#)], "InvalidParameter"),
        (&[("IkeConfig", r#"{"IkeVersion": "ikev3"}"#)], "InvalidParameter"),
        (&[("IpsecConfig", r#"{"IpsecPfs": "group3"}"#)], "NotSupportVpnConnectionParameter.IpsecPfs"),
        (&[("IpsecConfig", r#"{"IpsecAuthAlg": "sha3"}"#)], "NotSupportVpnConnectionParameter.IpsecAuthAlg"),
        (&[("IpsecConfig", r#"{"IpsecLifetime": "-1"}"#)], "InvalidParameter"),
        (&[("BgpConfig", r#"{"TunnelCidr": "169.254.1.0/29"}"#)], "IllegalParam.TunnelCidr"),
        (&[("BgpConfig", r#"{"TunnelCidr": "10.0.0.0/30"}"#)], "IllegalParam.TunnelCidr"),
        (&[("BgpConfig", r#"{"TunnelCidr": "nope"}"#)], "InvalidTunnelCidr.Malformed"),
        (&[("BgpConfig", r#"{"LocalBgpIp": "nope"}"#)], "InvalidLocalBgpIp.Malformed"),
        (&[("BgpConfig", r#"{"LocalAsn": "0"}"#)], "IllegalParam.LocalAsn"),
        (&[("BgpConfig", r#"{"EnableBgp": "maybe"}"#)], "IllegalParam.BgpConfig"),
        (&[("HealthCheckConfig", r#"{"enable": "true", "dip": "10.0.0.1"}"#)], "MissingParameter"),
        (&[("HealthCheckConfig", r#"{"policy": "drop"}"#)], "InvalidParameter"),
        (&[("RemoteCaCertificate", "-----BEGIN CERTIFICATE-----")], "InvalidParameter"),
        (&[("TunnelOptionsSpecification.1.Role", "master")], "IllegalParam.TunnelOptionsSpecification"),
        (&[("IkeConfig", r#"{"IkeVersion": "ikev2", "IkeLifetime": "0", "LocalId": "gw.example.com"}"#)], "ok"),
    ];
    for (pairs, want) in cases {
        assert_eq!(code(apply(pairs)), *want, "{pairs:?}");
    }
    // National standard gateways take only sm4/sm3, IKEv1 main mode, and need a CA.
    let mut c = base();
    c.ike = default_ike(true, "a", "b");
    c.ipsec = default_ipsec(true);
    assert_eq!(code(apply_single(&mut c.clone(), &p(&[("RemoteCaCertificate", "ca")]), false, true)), "ok");
    assert_eq!(code(apply_single(&mut c.clone(), &p(&[]), false, true)), "MissingParameter");
    assert_eq!(code(apply_single(&mut c.clone(), &p(&[("RemoteCaCertificate", "ca"), ("IkeConfig", r#"{"IkeVersion":"ikev2"}"#)]), false, true)), "InvalidParameter");
    assert_eq!(code(apply_single(&mut c, &p(&[("RemoteCaCertificate", "ca"), ("IkeConfig", r#"{"IkeMode":"aggressive"}"#)]), false, true)), "InvalidParameter");
    // Single-tunnel parameters on a dual-tunnel gateway.
    assert_eq!(code(apply_single(&mut base(), &p(&[("IkeConfig", "{}")]), true, false)), "IllegalParam.SingleTunnelParameter");
}

#[test]
fn bgp_rules() {
    let cgw = |asn| CustomerGateway { name: String::new(), description: String::new(), ip_address: "203.0.113.1".into(), asn, auth_key: Default::default(), resource_group_id: String::new() };
    let mut b = BgpCfg { enable: true, ..Default::default() };
    assert_eq!(check_bgp(&mut b.clone(), &cgw(Some(65000))).unwrap_err().code, Code::MissingTunnelCidr);
    b.tunnel_cidr = "169.254.10.0/30".into();
    assert_eq!(check_bgp(&mut b.clone(), &cgw(None)).unwrap_err().code, Code::MissingCustomerGatewayAsn);
    let mut ok = b.clone();
    check_bgp(&mut ok, &cgw(Some(65000))).unwrap();
    assert_eq!((ok.local_bgp_ip.as_str(), ok.peer_ip().as_str()), ("169.254.10.1", "169.254.10.2"));
    b.local_bgp_ip = "169.254.10.3".into();
    assert_eq!(check_bgp(&mut b, &cgw(Some(65000))).unwrap_err().code, Code::IllegalLocalBgpIp);
    let mut asn = BgpCfg::default();
    apply_bgp(&mut asn, &serde_json::from_str(r#"{"LocalAsn": "123.456"}"#).unwrap()).unwrap();
    assert_eq!(asn.local_asn, 123 * 65536 + 456);
}

/// The model's sibling rules, in the error table's codes.
fn check_against_siblings(c: &VpnConnection, others: &[VpnConnection]) -> Result<(), ApiError> {
    vpngw_model::rules::siblings(c, others).map_err(crate::handlers::neighbourhood::model_error)
}

#[test]
fn sibling_rules() {
    let a = base();
    let mut b = a.clone();
    b.local_subnet = vec!["10.0.0.128/25".into()];
    b.remote_subnet = vec!["192.168.0.0/16".into()];
    assert_eq!(check_against_siblings(&b, std::slice::from_ref(&a)).unwrap_err().code, Code::SameVpnAndCgwTrafficSelectorOverlap);
    b.local_subnet = vec!["10.9.0.0/24".into()];
    check_against_siblings(&b, std::slice::from_ref(&a)).unwrap();
    b.ike.psk = "different".into();
    assert_eq!(check_against_siblings(&b, std::slice::from_ref(&a)).unwrap_err().code, Code::SameVpnAndCgwDifferentIkeConfigs);
    let mut other_cgw = b.clone();
    other_cgw.customer_gateway_id = "cgw-2".into();
    check_against_siblings(&other_cgw, std::slice::from_ref(&a)).unwrap();
    let mut bgp_a = a.clone();
    bgp_a.bgp = BgpCfg { enable: true, local_asn: 1, tunnel_cidr: "169.254.1.0/30".into(), local_bgp_ip: "169.254.1.1".into() };
    assert_eq!(check_against_siblings(&other_cgw, &[bgp_a.clone()]).unwrap_err().code, Code::IllegalEnableBgp);
    other_cgw.bgp = bgp_a.bgp.clone();
    assert_eq!(check_against_siblings(&other_cgw, &[bgp_a]).unwrap_err().code, Code::IllegalTunnelCidr);
}
