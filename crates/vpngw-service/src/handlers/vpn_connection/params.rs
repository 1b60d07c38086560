//! Parsing and validating a connection's parameters: the JSON configs (IkeConfig, IpsecConfig,
//! BgpConfig, HealthCheckConfig), the single- and dual-tunnel forms, their defaults and limits.

#[allow(unused_imports)]
use super::*;

pub(super) const DEFAULT_LOCAL_ASN: u32 = 45104;

pub(super) const PSK_SPECIALS: &str = "~!`@#$%^&*()_-+={}[]|;:',.<>/?";

/// The algorithms of each gateway type, the same for IKE (phase 1) and IPsec (phase 2).
pub(super) const NORMAL_ENCS: &[&str] = &["aes", "aes192", "aes256", "des", "3des"];

pub(super) const NORMAL_AUTHS: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512"];

pub(super) const NATIONAL_ENCS: &[&str] = &["sm4"];

pub(super) const NATIONAL_AUTHS: &[&str] = &["sm3"];

pub(super) const DH_GROUPS: &[&str] = &["group1", "group2", "group5", "group14"];

pub(super) fn algorithms(national: bool) -> (&'static [&'static str], &'static [&'static str]) {
    if national {
        (NATIONAL_ENCS, NATIONAL_AUTHS)
    } else {
        (NORMAL_ENCS, NORMAL_AUTHS)
    }
}

/// A JSON config value as text: the SDKs send numbers or strings (`"IkeLifetime":86400`,
/// `"interval":"3"`).
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => text(other).and_then(|s| vpngw_api::params::parse_bool(&s)),
    }
}

/// The fields below `prefix.` of flattened parameters as a JSON object of strings
/// (`TunnelIkeConfig.Psk=x` → `{"Psk":"x"}`).
pub(super) fn sub_object(p: &Params, prefix: &str) -> Option<Map<String, Value>> {
    let pre = format!("{prefix}.");
    let m: Map<String, Value> = p.iter().filter_map(|(k, v)| k.strip_prefix(&pre).map(|f| (f.to_string(), Value::String(v.to_string())))).collect();
    (!m.is_empty()).then_some(m)
}

pub(super) fn lifetime(v: &Value, name: &str) -> Result<u32, ApiError> {
    text(v).and_then(|s| s.trim().parse::<u32>().ok()).filter(|n| *n <= 86400).ok_or_else(|| ApiError::invalid(name))
}

pub(crate) fn psk_ok(p: &str) -> bool {
    (1..=100).contains(&p.chars().count()) && p.chars().all(|c| c.is_ascii_alphanumeric() || PSK_SPECIALS.contains(c))
}

pub(crate) fn apply_ike(c: &mut IkeCfg, o: &Map<String, Value>, at: &str) -> Result<(), ApiError> {
    for (k, v) in o {
        let name = format!("{at}.{k}");
        let s = || text(v).ok_or_else(|| ApiError::invalid(&name));
        match k.as_str() {
            "Psk" => c.psk = s()?.into(),
            "IkeVersion" => c.ike_version = s()?,
            "IkeMode" => c.ike_mode = s()?,
            "IkeEncAlg" => c.ike_enc_alg = s()?,
            "IkeAuthAlg" => c.ike_auth_alg = s()?,
            "IkePfs" => c.ike_pfs = s()?,
            "IkeLifetime" => c.ike_lifetime = lifetime(v, &name)?,
            "LocalId" => c.local_id = s()?,
            "RemoteId" => c.remote_id = s()?,
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn apply_ipsec(c: &mut IpsecCfg, o: &Map<String, Value>, at: &str) -> Result<(), ApiError> {
    for (k, v) in o {
        let name = format!("{at}.{k}");
        let s = || text(v).ok_or_else(|| ApiError::invalid(&name));
        match k.as_str() {
            "IpsecEncAlg" => c.ipsec_enc_alg = s()?,
            "IpsecAuthAlg" => c.ipsec_auth_alg = s()?,
            "IpsecPfs" => c.ipsec_pfs = s()?,
            "IpsecLifetime" => c.ipsec_lifetime = lifetime(v, &name)?,
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn apply_bgp(c: &mut BgpCfg, o: &Map<String, Value>) -> Result<(), ApiError> {
    for (k, v) in o {
        match k.as_str() {
            "EnableBgp" => c.enable = flag(v).ok_or_else(|| ApiError::new(Code::IllegalBgpConfig))?,
            "LocalAsn" => c.local_asn = text(v).and_then(|s| validate::asn(&s)).ok_or_else(|| ApiError::new(Code::IllegalLocalAsn))?,
            "TunnelCidr" => {
                let raw = text(v).ok_or_else(|| ApiError::new(Code::MalformedTunnelCidr))?;
                let net: Ipv4Net = raw.trim().parse().map_err(|_| ApiError::new(Code::MalformedTunnelCidr))?;
                let link_local: Ipv4Net = "169.254.0.0/16".parse().expect("valid literal");
                if net.prefix_len() != 30 || net.trunc() != net || !link_local.contains(&net) {
                    return Err(ApiError::new(Code::IllegalTunnelCidr));
                }
                c.tunnel_cidr = net.to_string();
            }
            "LocalBgpIp" => {
                let raw = text(v).ok_or_else(|| ApiError::new(Code::MalformedLocalBgpIp))?;
                let ip: std::net::Ipv4Addr = raw.trim().parse().map_err(|_| ApiError::new(Code::MalformedLocalBgpIp))?;
                c.local_bgp_ip = ip.to_string();
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn apply_health(c: &mut HealthCheck, o: &Map<String, Value>) -> Result<(), ApiError> {
    for (k, v) in o {
        let name = format!("HealthCheckConfig.{k}");
        match k.as_str() {
            "enable" => c.enable = flag(v).ok_or_else(|| ApiError::invalid(&name))?,
            "sip" | "dip" => {
                let ip: std::net::Ipv4Addr = text(v).and_then(|s| s.trim().parse().ok()).ok_or_else(|| ApiError::invalid(&name))?;
                if k == "sip" {
                    c.sip = ip.to_string()
                } else {
                    c.dip = ip.to_string()
                }
            }
            "interval" | "retry" => {
                let n = text(v).and_then(|s| s.trim().parse::<u32>().ok()).filter(|n| (1..=3600).contains(n)).ok_or_else(|| ApiError::invalid(&name))?;
                if k == "interval" {
                    c.interval = n
                } else {
                    c.retry = n
                }
            }
            "policy" => {
                let s = text(v).unwrap_or_default();
                if s != "revoke_route" && s != "reserve_route" {
                    return Err(ApiError::invalid(&name));
                }
                c.policy = s;
            }
            _ => {}
        }
    }
    if c.enable && (c.sip.is_empty() || c.dip.is_empty()) {
        return Err(ApiError::missing(if c.sip.is_empty() { "HealthCheckConfig.sip" } else { "HealthCheckConfig.dip" }));
    }
    Ok(())
}

/// Every value of the settings against the gateway type's allowed sets.
pub(crate) fn check_ike(c: &IkeCfg, national: bool, at: &str) -> Result<(), ApiError> {
    let bad = |f: &str| Err(ApiError::invalid(&format!("{at}.{f}")));
    if !psk_ok(&c.psk) {
        return bad("Psk");
    }
    let (versions, modes): (&[&str], &[&str]) = if national { (&["ikev1"], &["main"]) } else { (&["ikev1", "ikev2"], &["main", "aggressive"]) };
    let (encs, auths) = algorithms(national);
    if !versions.contains(&c.ike_version.as_str()) {
        return bad("IkeVersion");
    }
    if !modes.contains(&c.ike_mode.as_str()) {
        return bad("IkeMode");
    }
    if !encs.contains(&c.ike_enc_alg.as_str()) {
        return bad("IkeEncAlg");
    }
    if !auths.contains(&c.ike_auth_alg.as_str()) {
        return bad("IkeAuthAlg");
    }
    if !DH_GROUPS.contains(&c.ike_pfs.as_str()) {
        return bad("IkePfs");
    }
    if c.local_id.chars().count() > 100 {
        return bad("LocalId");
    }
    if c.remote_id.chars().count() > 100 {
        return bad("RemoteId");
    }
    Ok(())
}

pub(crate) fn check_ipsec(c: &IpsecCfg, national: bool, at: &str) -> Result<(), ApiError> {
    let (encs, auths) = algorithms(national);
    if !encs.contains(&c.ipsec_enc_alg.as_str()) {
        return Err(ApiError::invalid(&format!("{at}.IpsecEncAlg")));
    }
    if !auths.contains(&c.ipsec_auth_alg.as_str()) {
        return Err(ApiError::new(Code::NotSupportIpsecAuthAlg));
    }
    if c.ipsec_pfs != "disabled" && !DH_GROUPS.contains(&c.ipsec_pfs.as_str()) {
        return Err(ApiError::new(Code::NotSupportIpsecPfs));
    }
    Ok(())
}

/// With BGP on: a tunnel CIDR, a customer-gateway ASN, and the local BGP address inside the /30
/// (the first usable address when not given).
pub(super) fn check_bgp(c: &mut BgpCfg, cgw: &CustomerGateway) -> Result<(), ApiError> {
    if !c.enable {
        return Ok(());
    }
    if c.tunnel_cidr.is_empty() {
        return Err(ApiError::new(Code::MissingTunnelCidr));
    }
    if cgw.asn.is_none() {
        return Err(ApiError::new(Code::MissingCustomerGatewayAsn));
    }
    let net: Ipv4Net = c.tunnel_cidr.parse().map_err(|_| ApiError::new(Code::IllegalTunnelCidr))?;
    let hosts: Vec<String> = net.hosts().map(|h| h.to_string()).collect();
    if c.local_bgp_ip.is_empty() {
        c.local_bgp_ip = hosts[0].clone();
    } else if !hosts.contains(&c.local_bgp_ip) {
        return Err(ApiError::new(Code::IllegalLocalBgpIp));
    }
    Ok(())
}

/// The peer's BGP address: the other usable address of the /30.
pub(super) fn peer_bgp_ip(c: &BgpCfg) -> String {
    c.tunnel_cidr.parse::<Ipv4Net>().ok().and_then(|n| n.hosts().find(|h| h.to_string() != c.local_bgp_ip)).map(|h| h.to_string()).unwrap_or_default()
}

/// A comma-separated list of CIDR blocks written exactly.
pub(crate) fn subnets(v: &str, code: Code) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        let net = cidr(part).ok_or_else(|| ApiError::arg(code, part))?;
        out.push(net.to_string());
    }
    Ok(out)
}

pub(crate) use vpngw_model::rules::overlaps;

pub(super) fn default_ike(national: bool, local_id: &str, remote_id: &str) -> IkeCfg {
    IkeCfg {
        psk: ids::secret(16).into(),
        ike_version: "ikev1".into(),
        ike_mode: "main".into(),
        ike_enc_alg: if national { "sm4" } else { "aes" }.into(),
        ike_auth_alg: if national { "sm3" } else { "md5" }.into(),
        ike_pfs: "group2".into(),
        ike_lifetime: 86400,
        local_id: local_id.into(),
        remote_id: remote_id.into(),
    }
}

pub(super) fn default_ipsec(national: bool) -> IpsecCfg {
    IpsecCfg { ipsec_enc_alg: if national { "sm4" } else { "aes" }.into(), ipsec_auth_alg: if national { "sm3" } else { "md5" }.into(), ipsec_pfs: "group2".into(), ipsec_lifetime: 86400 }
}

pub(super) fn default_bgp() -> BgpCfg {
    BgpCfg { enable: false, local_asn: DEFAULT_LOCAL_ASN, tunnel_cidr: String::new(), local_bgp_ip: String::new() }
}

pub(super) const SINGLE_TUNNEL_PARAMS: &[&str] = &["CustomerGatewayId", "IkeConfig", "IpsecConfig", "HealthCheckConfig", "BgpConfig", "EnableDpd", "EnableNatTraversal", "RemoteCaCertificate"];

/// Applies one `TunnelOptionsSpecification.N` entry to a tunnel.
pub(super) fn apply_tunnel(t: &mut Tunnel, spec: &Params, at: &str, national: bool, enable_bgp: bool) -> Result<(), ApiError> {
    if let Some(v) = spec.opt_bool("EnableDpd").map_err(|_| ApiError::invalid(&format!("{at}.EnableDpd")))? {
        t.enable_dpd = v;
    }
    if let Some(v) = spec.opt_bool("EnableNatTraversal").map_err(|_| ApiError::invalid(&format!("{at}.EnableNatTraversal")))? {
        t.enable_nat_traversal = v;
    }
    if let Some(v) = spec.opt("RemoteCaCertificate") {
        t.remote_ca_certificate = v.to_string();
    }
    if let Some(o) = sub_object(spec, "TunnelIkeConfig") {
        apply_ike(&mut t.ike, &o, &format!("{at}.TunnelIkeConfig"))?;
    }
    if let Some(o) = sub_object(spec, "TunnelIpsecConfig") {
        apply_ipsec(&mut t.ipsec, &o, &format!("{at}.TunnelIpsecConfig"))?;
    }
    if let Some(o) = sub_object(spec, "TunnelBgpConfig") {
        apply_bgp(&mut t.bgp, &o)?;
    }
    t.bgp.enable = enable_bgp;
    check_ike(&t.ike, national, &format!("{at}.TunnelIkeConfig"))?;
    check_ipsec(&t.ipsec, national, &format!("{at}.TunnelIpsecConfig"))?;
    check_remote_ca(&t.remote_ca_certificate, national)
}

pub(super) fn check_remote_ca(ca: &str, national: bool) -> Result<(), ApiError> {
    match (national, ca.is_empty()) {
        (true, true) => Err(ApiError::missing("RemoteCaCertificate")),
        (false, false) => Err(ApiError::msg(Code::InvalidParameter, "RemoteCaCertificate must be empty for a Normal VPN gateway.")),
        _ => Ok(()),
    }
}

/// The top-level parameters both Create and Modify take, applied to `c`.
pub(super) fn apply_common(c: &mut VpnConnection, p: &Params) -> Result<(), ApiError> {
    if let Some(n) = p.get("Name") {
        if !validate::vpc_text(n, 100) {
            return Err(ApiError::new(Code::InvalidVpnConnectionName));
        }
        c.name = n.to_string();
    }
    if let Some(v) = p.opt("LocalSubnet") {
        c.local_subnet = subnets(v, Code::IllegalLocalSubnet)?;
    }
    if let Some(v) = p.opt("RemoteSubnet") {
        c.remote_subnet = subnets(v, Code::IllegalRemoteSubnet)?;
    }
    if let Some(v) = p.opt_bool("EffectImmediately")? {
        c.effect_immediately = v;
    }
    if let Some(v) = p.opt_bool("AutoConfigRoute")? {
        c.auto_config_route = v;
    }
    Ok(())
}

/// The top-level single-tunnel parameters, applied to `c`; refused on a dual-tunnel gateway.
pub(super) fn apply_single(c: &mut VpnConnection, p: &Params, dual: bool, national: bool) -> Result<(), ApiError> {
    let given: Vec<&str> = SINGLE_TUNNEL_PARAMS.iter().copied().filter(|k| p.opt(k).is_some()).collect();
    if dual {
        return match given.first() {
            Some(k) => Err(ApiError::arg(Code::SingleTunnelParamOnDualTunnel, k)),
            None => Ok(()),
        };
    }
    if p.has("TunnelOptionsSpecification") || p.opt("EnableTunnelsBgp").is_some() {
        return Err(ApiError::new(Code::TunnelOptionsOnSingleTunnel));
    }
    if let Some(o) = p.json_object("IkeConfig")? {
        apply_ike(&mut c.ike, &o, "IkeConfig")?;
    }
    if let Some(o) = p.json_object("IpsecConfig")? {
        apply_ipsec(&mut c.ipsec, &o, "IpsecConfig")?;
    }
    if let Some(o) = p.json_object("HealthCheckConfig")? {
        apply_health(&mut c.health, &o)?;
    }
    if let Some(o) = p.json_object("BgpConfig").map_err(|_| ApiError::new(Code::IllegalBgpConfig))? {
        apply_bgp(&mut c.bgp, &o)?;
    }
    if let Some(v) = p.opt_bool("EnableDpd")? {
        c.enable_dpd = v;
    }
    if let Some(v) = p.opt_bool("EnableNatTraversal")? {
        c.enable_nat_traversal = v;
    }
    if let Some(v) = p.opt("RemoteCaCertificate") {
        c.remote_ca_certificate = v.to_string();
    }
    check_ike(&c.ike, national, "IkeConfig")?;
    check_ipsec(&c.ipsec, national, "IpsecConfig")?;
    check_remote_ca(&c.remote_ca_certificate, national)
}

/// Applies one TunnelOptionsSpecification to the tunnel `tid` names; its role and customer
/// gateway stay as they are.
pub(super) fn apply_tunnel_spec(c: &mut VpnConnection, tid: &str, spec: &Params, at: &str, national: bool) -> Result<(), ApiError> {
    let enable = c.enable_tunnels_bgp;
    let t = c.tunnels.iter_mut().find(|t| t.tunnel_id == tid).ok_or_else(|| ApiError::new(Code::IllegalTunnelId))?;
    if spec.opt("Role").is_some_and(|r| r != t.role.as_str()) {
        return Err(ApiError::new(Code::IllegalRole));
    }
    if spec.opt("CustomerGatewayId").is_some_and(|x| t.customer_gateway_id != x) {
        return Err(ApiError::new(Code::TunnelCustomerGatewayImmutable));
    }
    apply_tunnel(t, spec, at, national, enable)
}
