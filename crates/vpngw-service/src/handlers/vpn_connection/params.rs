//! Parsing and validating a connection's parameters: the JSON configs (IkeConfig, IpsecConfig,
//! BgpConfig, HealthCheckConfig), the single- and dual-tunnel forms, their defaults and limits.

#[allow(unused_imports)]
use super::*;
use crate::handlers::neighbourhood::{model_error, setting_error};

pub(crate) use vpngw_model::proposal::psk_ok;

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
                // Empty clears it: the Terraform provider sends `"dip":""` with a disabled check.
                let ip = match text(v).as_deref().map(str::trim) {
                    Some("") => String::new(),
                    other => other.and_then(|s| s.parse::<std::net::Ipv4Addr>().ok()).ok_or_else(|| ApiError::invalid(&name))?.to_string(),
                };
                if k == "sip" {
                    c.sip = ip
                } else {
                    c.dip = ip
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

/// Every value of the settings against the gateway type's allowed sets (the model's).
pub(crate) fn check_ike(c: &IkeCfg, national: bool, at: &str) -> Result<(), ApiError> {
    vpngw_model::proposal::check_ike(c, national).map_err(setting_error(at))
}

pub(crate) fn check_ipsec(c: &IpsecCfg, national: bool, at: &str) -> Result<(), ApiError> {
    vpngw_model::proposal::check_ipsec(c, national).map_err(setting_error(at))
}

/// The model's BGP rule against the customer gateway's ASN.
pub(super) fn check_bgp(c: &mut BgpCfg, cgw: &CustomerGateway) -> Result<(), ApiError> {
    c.settle(cgw.asn).map_err(model_error)
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
    vpngw_model::proposal::default_ike(national, ids::secret(16), local_id, remote_id)
}

pub(super) use vpngw_model::proposal::default_ipsec;

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
