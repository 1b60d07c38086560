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
pub use vpngw_model::connection::{BgpCfg, HealthCheck, IkeCfg, IpsecCfg, Tunnel, VpnConnection, NOT_ESTABLISHED};

use ipnet::Ipv4Net;
use serde_json::{json, Map, Value};
use vpngw_api::{ApiError, Code, Params};
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::customer_gateway::CustomerGateway;
use super::vpc::VSwitch;
use super::vpn_gateway::{ensure_writable, VpnGateway};
use super::vpn_route::{check_against, check_client_pools, check_publish, gateway_routes, VpnRoute, DBR, PBR, SYSTEM};
use super::{doc, list_with_tags, load, load_tagged, new_record, obj, put_tagged, schedule, tags_json, to_doc};
use crate::validate::{self, cidr};
use crate::{ids, store_error, HandlerResult, Req};

const DEFAULT_LOCAL_ASN: u32 = 45104;
const PSK_SPECIALS: &str = "~!`@#$%^&*()_-+={}[]|;:',.<>/?";
/// The algorithms of each gateway type, the same for IKE (phase 1) and IPsec (phase 2).
const NORMAL_ENCS: &[&str] = &["aes", "aes192", "aes256", "des", "3des"];
const NORMAL_AUTHS: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512"];
const NATIONAL_ENCS: &[&str] = &["sm4"];
const NATIONAL_AUTHS: &[&str] = &["sm3"];
const DH_GROUPS: &[&str] = &["group1", "group2", "group5", "group14"];

fn algorithms(national: bool) -> (&'static [&'static str], &'static [&'static str]) {
    if national {
        (NATIONAL_ENCS, NATIONAL_AUTHS)
    } else {
        (NORMAL_ENCS, NORMAL_AUTHS)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation

/// A JSON config value as text: the SDKs send numbers or strings (`"IkeLifetime":86400`,
/// `"interval":"3"`).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => text(other).and_then(|s| vpngw_api::params::parse_bool(&s)),
    }
}

/// The fields below `prefix.` of flattened parameters as a JSON object of strings
/// (`TunnelIkeConfig.Psk=x` → `{"Psk":"x"}`).
fn sub_object(p: &Params, prefix: &str) -> Option<Map<String, Value>> {
    let pre = format!("{prefix}.");
    let m: Map<String, Value> = p.iter().filter_map(|(k, v)| k.strip_prefix(&pre).map(|f| (f.to_string(), Value::String(v.to_string())))).collect();
    (!m.is_empty()).then_some(m)
}

fn lifetime(v: &Value, name: &str) -> Result<u32, ApiError> {
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

fn apply_bgp(c: &mut BgpCfg, o: &Map<String, Value>) -> Result<(), ApiError> {
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

fn apply_health(c: &mut HealthCheck, o: &Map<String, Value>) -> Result<(), ApiError> {
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
fn check_bgp(c: &mut BgpCfg, cgw: &CustomerGateway) -> Result<(), ApiError> {
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
fn peer_bgp_ip(c: &BgpCfg) -> String {
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

pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    match (a.parse::<Ipv4Net>(), b.parse::<Ipv4Net>()) {
        (Ok(a), Ok(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

fn selectors_overlap(a: &VpnConnection, b: &VpnConnection) -> bool {
    a.local_subnet.iter().any(|al| b.local_subnet.iter().any(|bl| overlaps(al, bl))) && a.remote_subnet.iter().any(|ar| b.remote_subnet.iter().any(|br| overlaps(ar, br)))
}

/// IKE settings that must agree between connections of one gateway and customer gateway.
fn same_ike(a: &IkeCfg, b: &IkeCfg) -> bool {
    (&a.psk, &a.ike_version, &a.ike_mode, &a.ike_enc_alg, &a.ike_auth_alg, &a.ike_pfs, a.ike_lifetime)
        == (&b.psk, &b.ike_version, &b.ike_mode, &b.ike_enc_alg, &b.ike_auth_alg, &b.ike_pfs, b.ike_lifetime)
}

fn default_ike(national: bool, local_id: &str, remote_id: &str) -> IkeCfg {
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

fn default_ipsec(national: bool) -> IpsecCfg {
    IpsecCfg { ipsec_enc_alg: if national { "sm4" } else { "aes" }.into(), ipsec_auth_alg: if national { "sm3" } else { "md5" }.into(), ipsec_pfs: "group2".into(), ipsec_lifetime: 86400 }
}

fn default_bgp() -> BgpCfg {
    BgpCfg { enable: false, local_asn: DEFAULT_LOCAL_ASN, tunnel_cidr: String::new(), local_bgp_ip: String::new() }
}

const SINGLE_TUNNEL_PARAMS: &[&str] = &["CustomerGatewayId", "IkeConfig", "IpsecConfig", "HealthCheckConfig", "BgpConfig", "EnableDpd", "EnableNatTraversal", "RemoteCaCertificate"];

/// What a connection's checks need to know about its gateway.
struct GatewayView {
    rec: Record,
    gw: VpnGateway,
    national: bool,
    /// Zone of the gateway's vSwitch and of its disaster-recovery vSwitch.
    zones: (String, String),
}

async fn gateway_view(req: &Req<'_>, id: &str) -> Result<GatewayView, ApiError> {
    let rec = load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?;
    let gw: VpnGateway = doc(&rec)?;
    let zone = |vsw: &str| {
        let vsw = vsw.to_string();
        async move {
            match req.store().get(Kind::VSwitch, &req.scope, &vsw).await.map_err(store_error)? {
                Some(r) => Ok::<String, ApiError>(doc::<VSwitch>(&r)?.zone_id),
                None => Ok(String::new()),
            }
        }
    };
    let zones = (zone(&gw.vswitch_id).await?, zone(gw.dr_vswitch_id.as_deref().unwrap_or("")).await?);
    Ok(GatewayView { national: gw.vpn_type == "NationalStandard", rec, gw, zones })
}

async fn customer_gateway(req: &Req<'_>, id: &str) -> Result<CustomerGateway, ApiError> {
    doc(&load(req, Kind::CustomerGateway, id, Code::InvalidCustomerGatewayId).await?)
}

/// The gateway's other connections that the rules compare `c` with: those sharing a customer
/// gateway, and those with BGP. Returns them and whether any other connection has BGP.
async fn related(req: &Req<'_>, gateway_id: &str, c: &VpnConnection, except: &str) -> Result<(Vec<VpnConnection>, bool), ApiError> {
    let list = |field: &str, value: &str| {
        let q = ListQuery { parent: Some(gateway_id.to_string()), fields: vec![(field.to_string(), value.to_string())], limit: u32::MAX as u64, ..Default::default() };
        async move { req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error) }
    };
    let mut found: HashMap<String, VpnConnection> = HashMap::new();
    for cgw in &c.cgw_ids {
        for r in list("cgw_ids[]", cgw).await?.items.iter().filter(|r| r.id != except) {
            found.insert(r.id.clone(), doc(r)?);
        }
    }
    let mut others_bgp = false;
    for r in list("routing", "bgp").await?.items.iter().filter(|r| r.id != except) {
        others_bgp = true;
        found.insert(r.id.clone(), doc(r)?);
    }
    Ok((found.into_values().collect(), others_bgp))
}

/// The rules that compare a connection with the gateway's other connections (`others` holds at
/// least those sharing a customer gateway and those with BGP).
fn check_against_siblings(c: &VpnConnection, others: &[VpnConnection]) -> Result<(), ApiError> {
    for o in others {
        for (cgw, ike) in c.endpoints() {
            for (ocgw, oike) in o.endpoints() {
                if cgw == ocgw {
                    if !same_ike(ike, oike) {
                        return Err(ApiError::new(Code::SameVpnAndCgwDifferentIkeConfigs));
                    }
                    if selectors_overlap(c, o) {
                        return Err(ApiError::new(Code::SameVpnAndCgwTrafficSelectorOverlap));
                    }
                }
            }
        }
        for tc in c.tunnel_cidrs() {
            if o.tunnel_cidrs().iter().any(|x| overlaps(x, tc)) {
                return Err(ApiError::msg(Code::IllegalTunnelCidr, "The specified TunnelCidr is invalid: another IPsec connection of the VPN gateway uses it."));
            }
        }
        if o.bgp_enabled() && !c.bgp_enabled() {
            return Err(ApiError::new(Code::IllegalEnableBgp));
        }
    }
    let cidrs = c.tunnel_cidrs();
    if cidrs.len() == 2 && overlaps(cidrs[0], cidrs[1]) {
        return Err(ApiError::new(Code::IllegalTunnelCidr));
    }
    Ok(())
}

/// Applies one `TunnelOptionsSpecification.N` entry to a tunnel.
fn apply_tunnel(t: &mut Tunnel, spec: &Params, at: &str, national: bool, enable_bgp: bool) -> Result<(), ApiError> {
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

fn check_remote_ca(ca: &str, national: bool) -> Result<(), ApiError> {
    match (national, ca.is_empty()) {
        (true, true) => Err(ApiError::missing("RemoteCaCertificate")),
        (false, false) => Err(ApiError::msg(Code::InvalidParameter, "RemoteCaCertificate must be empty for a Normal VPN gateway.")),
        _ => Ok(()),
    }
}

/// The top-level parameters both Create and Modify take, applied to `c`.
fn apply_common(c: &mut VpnConnection, p: &Params) -> Result<(), ApiError> {
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
fn apply_single(c: &mut VpnConnection, p: &Params, dual: bool, national: bool) -> Result<(), ApiError> {
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

/// AutoConfigRoute: a connection that routes by destination (LocalSubnet 0.0.0.0/0) gets a
/// destination route per RemoteSubnet; one with traffic selectors on both sides gets a policy
/// route per (LocalSubnet, RemoteSubnet) pair; one with 0.0.0.0/0 on both sides gets none (its
/// routes are the user's).
fn system_routes(conn_id: &str, c: &VpnConnection) -> Vec<VpnRoute> {
    let any = |v: &[String]| v.len() == 1 && v[0] == "0.0.0.0/0";
    match (c.auto_config_route, any(&c.local_subnet), any(&c.remote_subnet)) {
        (false, _, _) | (true, true, true) => Vec::new(),
        (true, true, false) => c.remote_subnet.iter().map(|r| VpnRoute::system(DBR, r, "", conn_id)).collect(),
        (true, false, _) => c.local_subnet.iter().flat_map(|l| c.remote_subnet.iter().map(move |r| VpnRoute::system(PBR, r, l, conn_id))).collect(),
    }
}

/// The mutations that make a connection's system routes match `c` (`None`: the connection
/// goes, and every route to it with it), with the route rules checked against the gateway's
/// other routes.
async fn sync_routes(req: &Req<'_>, gw_rec: &Record, conn_id: &str, c: Option<&VpnConnection>) -> Result<Vec<Mutation>, ApiError> {
    let routes = gateway_routes(req, &gw_rec.id).await?;
    let Some(c) = c else {
        return Ok(routes.into_iter().filter(|(_, r)| r.next_hop == conn_id).map(|(rec, _)| Mutation::Delete { kind: Kind::VpnRoute, id: rec.id }).collect());
    };
    let (own, others): (Vec<_>, Vec<_>) = routes.iter().partition(|(_, r)| r.entry_type == SYSTEM && r.origin == conn_id);
    let want = system_routes(conn_id, c);
    let mut seen: Vec<&VpnRoute> = others.iter().map(|(_, r)| r).collect();
    for w in &want {
        check_against(w, &seen, false)?;
        check_client_pools(req, gw_rec, w).await?;
        seen.push(w);
    }
    let count = |kind: &str| others.iter().filter(|(_, r)| r.route_kind == kind).count();
    let (pbr_new, dbr_new) = (want.iter().filter(|r| r.route_kind == PBR).count(), want.iter().filter(|r| r.route_kind == DBR).count());
    let quota = req.svc.config.quotas.pbr_routes_per_gateway as usize;
    if pbr_new > 0 && count(PBR) + pbr_new > quota {
        return Err(ApiError::msg(
            Code::PolicyRouteQuota,
            format!("The maximum number of policy-based routes is exceeded. Existing routes: {}. Routes to be created: {pbr_new}. Maximum routes: {quota}.", count(PBR)),
        ));
    }
    if dbr_new > 0 && count(DBR) + dbr_new > req.svc.config.quotas.dbr_routes_per_gateway as usize {
        return Err(ApiError::new(Code::DbrRoutesQuotaFull));
    }
    let mut muts = Vec::new();
    for (rec, r) in &own {
        if !want.contains(r) {
            muts.push(Mutation::Delete { kind: Kind::VpnRoute, id: rec.id.clone() });
        }
    }
    let others_only: Vec<&VpnRoute> = others.iter().map(|(_, r)| r).collect();
    for w in want.iter().filter(|w| !own.iter().any(|(_, r)| r == *w)) {
        check_publish(req, gw_rec, w, &others_only).await?;
        muts.push(Mutation::Put(new_record(req, Kind::VpnRoute, &ids::new_id("vrt"), Some(gw_rec.id.clone()), w.state(), to_doc(w))));
    }
    Ok(muts)
}

/// The gateway goes to `updating` with the connection, and shows whether any connection has BGP.
fn gateway_updating(req: &Req<'_>, mut g: GatewayView, bgp: bool) -> Vec<Mutation> {
    g.rec.status = "updating".into();
    g.gw.enable_bgp = bgp;
    g.rec.doc = to_doc(&g.gw);
    let mut muts = schedule(Kind::VpnGateway, &g.rec.id, &[("status:active", req.svc.config.transition)]);
    muts.insert(0, Mutation::Put(g.rec));
    muts
}

// ---------------------------------------------------------------------------------------------
// Actions

pub async fn create_vpn_connection(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let g = gateway_view(req, p.req("VpnGatewayId")?).await?;
    ensure_writable(&g.rec, &g.gw)?;
    if !g.gw.enable_ipsec {
        return Err(ApiError::new(Code::IpsecVpnDisabled));
    }
    if super::ipsec_server::gateway_has_server(req, &g.rec.id).await? {
        return Err(ApiError::new(Code::IpsecServerAndVpnConnectionConflict));
    }
    let dual = g.gw.dr_vswitch_id.is_some();
    let id = ids::new_id("vco");
    let mut c = VpnConnection {
        name: id.clone(),
        customer_gateway_id: String::new(),
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
        bgp: default_bgp(),
        health: HealthCheck { enable: false, sip: String::new(), dip: String::new(), interval: 3, retry: 3, policy: "revoke_route".into() },
        enable_tunnels_bgp: false,
        tunnels: Vec::new(),
        status: NOT_ESTABLISHED.into(),
        internet_ip: g.gw.internet_ip.clone(),
        zone_no: g.zones.0.clone(),
        resource_group_id: g.gw.resource_group_id.clone(),
        negotiation_generation: 1,
        routing: String::new(),
        health_status: String::new(),
        plane_state: String::new(),
        plane_unsupported: Default::default(),
    };
    apply_common(&mut c, &p)?;
    let tags = validate::tags(&p, "Tags")?;
    let mut cgws: HashMap<String, CustomerGateway> = HashMap::new();

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
            let cgw = customer_gateway(req, &cgw_id).await?;
            let master = spec.opt("Role") == Some("master");
            let (ip, zone) = if master { (g.gw.internet_ip.clone(), g.zones.0.clone()) } else { (g.gw.dr_internet_ip.clone().unwrap_or_default(), g.zones.1.clone()) };
            let explicit_remote_id = sub_object(spec, "TunnelIkeConfig").is_some_and(|o| o.contains_key("RemoteId"));
            let mut t = Tunnel {
                tunnel_id: ids::new_id("tun"),
                role: if master { "master" } else { "slave" }.into(),
                customer_gateway_id: cgw_id.clone(),
                internet_ip: ip.clone(),
                zone_no: zone,
                enable_dpd: true,
                enable_nat_traversal: true,
                remote_ca_certificate: String::new(),
                ike: default_ike(g.national, &ip, &cgw.ip_address),
                ipsec: default_ipsec(g.national),
                bgp: default_bgp(),
                status: NOT_ESTABLISHED.into(),
            };
            apply_tunnel(&mut t, spec, &at, g.national, c.enable_tunnels_bgp)?;
            if g.national && !explicit_remote_id {
                return Err(ApiError::new(Code::MissingRemoteId));
            }
            check_bgp(&mut t.bgp, &cgw)?;
            cgws.insert(cgw_id, cgw);
            c.tunnels.push(t);
        }
        // Master first, as Describe lists them.
        c.tunnels.sort_by(|a, b| a.role.cmp(&b.role));
        c.cgw_ids = c.tunnels.iter().map(|t| t.customer_gateway_id.clone()).collect();
    } else {
        let cgw_id = p.req("CustomerGatewayId")?.to_string();
        let cgw = customer_gateway(req, &cgw_id).await?;
        c.ike.remote_id = cgw.ip_address.clone();
        apply_single(&mut c, &p, false, g.national)?;
        if g.national && !p.json_object("IkeConfig")?.is_some_and(|o| o.contains_key("RemoteId")) {
            return Err(ApiError::new(Code::MissingRemoteId));
        }
        check_bgp(&mut c.bgp, &cgw)?;
        c.customer_gateway_id = cgw_id.clone();
        c.cgw_ids = vec![cgw_id.clone()];
        cgws.insert(cgw_id, cgw);
    }
    for cgw in cgws.values() {
        if cgw.ip_address == g.gw.internet_ip || g.gw.dr_internet_ip.as_deref() == Some(cgw.ip_address.as_str()) {
            return Err(ApiError::new(Code::CustomerGatewayConflictVpnIp));
        }
    }
    if req.store().count(Kind::VpnConnection, &req.scope, Some(&g.rec.id)).await.map_err(store_error)? >= req.svc.config.quotas.vpn_connections_per_gateway {
        return Err(ApiError::new(Code::VpnConnectionsQuotaFull));
    }
    let (others, others_bgp) = related(req, &g.rec.id, &c, "").await?;
    check_against_siblings(&c, &others)?;

    let bgp = c.bgp_enabled() || others_bgp;
    c.routing = if c.bgp_enabled() { "bgp" } else { "static" }.into();
    let rec = new_record(req, Kind::VpnConnection, &id, Some(g.rec.id.clone()), "updating", to_doc(&c));
    let body = obj(json!({"VpnConnectionId": id, "Name": c.name, "CreateTime": rec.created_ms}));
    let routes = sync_routes(req, &g.rec, &id, Some(&c)).await?;
    let mut muts = put_tagged(req, rec, tags);
    muts.extend(routes);
    muts.extend(schedule(Kind::VpnConnection, &id, &[("status:active", req.svc.config.transition)]));
    muts.extend(gateway_updating(req, g, bgp));
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
        check_tunnels(req, &mut c, g.national).await?;
    } else {
        apply_single(&mut c, &p, false, g.national)?;
        let cgw = customer_gateway(req, &c.customer_gateway_id).await?;
        check_bgp(&mut c.bgp, &cgw)?;
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
    check_tunnels(req, &mut c, g.national).await?;
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
    let g = gateway_view(req, rec.parent.as_deref().unwrap_or_default()).await?;
    ensure_writable(&g.rec, &g.gw)?;
    if rec.status != "active" {
        return Err(ApiError::new(Code::VpnTaskConflict));
    }
    Ok((rec, before, g))
}

/// Applies one TunnelOptionsSpecification to the tunnel `tid` names; its role and customer
/// gateway stay as they are.
fn apply_tunnel_spec(c: &mut VpnConnection, tid: &str, spec: &Params, at: &str, national: bool) -> Result<(), ApiError> {
    let enable = c.enable_tunnels_bgp;
    let t = c.tunnels.iter_mut().find(|t| t.tunnel_id == tid).ok_or_else(|| ApiError::new(Code::IllegalTunnelId))?;
    if spec.opt("Role").is_some_and(|r| r != t.role) {
        return Err(ApiError::new(Code::IllegalRole));
    }
    if spec.opt("CustomerGatewayId").is_some_and(|x| x != t.customer_gateway_id) {
        return Err(ApiError::new(Code::TunnelCustomerGatewayImmutable));
    }
    apply_tunnel(t, spec, at, national, enable)
}

/// Every tunnel's BGP follows EnableTunnelsBgp, and its IKE and BGP settings must suit its
/// customer gateway.
async fn check_tunnels(req: &Req<'_>, c: &mut VpnConnection, national: bool) -> Result<(), ApiError> {
    let enable = c.enable_tunnels_bgp;
    for t in c.tunnels.iter_mut() {
        t.bgp.enable = enable;
        check_ike(&t.ike, national, "TunnelIkeConfig")?;
        let cgw = customer_gateway(req, &t.customer_gateway_id).await?;
        check_bgp(&mut t.bgp, &cgw)?;
    }
    Ok(())
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
    body: impl FnOnce(&Record, &VpnConnection, &HashMap<String, CustomerGateway>) -> Value,
) -> HandlerResult {
    let id = rec.id.clone();
    let ikev1 = if c.dual() { c.tunnels.iter().any(|t| t.ike.ike_version == "ikev1") } else { c.ike.ike_version == "ikev1" };
    if touches_selectors && ikev1 && (c.local_subnet.len() > 1 || c.remote_subnet.len() > 1) {
        return Err(ApiError::new(Code::ModifyIkeV1WithMultiRoutes));
    }
    let (others, others_bgp) = related(req, &g.rec.id, &c, &id).await?;
    check_against_siblings(&c, &others)?;
    c.routing = if c.bgp_enabled() { "bgp" } else { "static" }.into();

    let mut muts = Vec::new();
    let applied = c.negotiable() != before.negotiable() || c.bgp_enabled() != before.bgp_enabled() || c.health != before.health || c.bgp != before.bgp;
    if c.negotiable() != before.negotiable() {
        c.negotiation_generation += 1;
    }
    let routes = sync_routes(req, &g.rec, &id, Some(&c)).await?;
    let applied = applied || !routes.is_empty();
    muts.extend(routes);
    if applied {
        rec.status = "updating".into();
        muts.extend(schedule(Kind::VpnConnection, &id, &[("status:active", req.svc.config.transition)]));
        muts.extend(gateway_updating(req, g, c.bgp_enabled() || others_bgp));
    }
    rec.doc = to_doc(&c);
    let cgws = load_cgws(req, &[&c]).await?;
    let body = obj(body(&rec, &c, &cgws));
    muts.insert(0, Mutation::Put(rec));
    req.commit(muts, body).await
}

pub async fn delete_vpn_connection(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpnConnectionId")?.to_string();
    let rec = load(req, Kind::VpnConnection, &id, Code::InvalidVpnConnectionId).await?;
    let g = gateway_view(req, rec.parent.as_deref().unwrap_or_default()).await?;
    ensure_writable(&g.rec, &g.gw)?;
    if rec.status != "active" {
        return Err(ApiError::new(Code::VpnTaskConflict));
    }
    let c: VpnConnection = doc(&rec)?;
    let (_, others_bgp) = related(req, &g.rec.id, &c, &id).await?;
    let mut muts = sync_routes(req, &g.rec, &id, None).await?;
    muts.push(Mutation::Delete { kind: Kind::VpnConnection, id });
    muts.extend(gateway_updating(req, g, others_bgp));
    req.commit(muts, Default::default()).await
}

/// The customer gateways of these connections, in one read.
pub(crate) async fn load_cgws(req: &Req<'_>, conns: &[&VpnConnection]) -> Result<HashMap<String, CustomerGateway>, ApiError> {
    let mut ids: Vec<String> = conns.iter().flat_map(|c| c.cgw_ids.iter().cloned()).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = ListQuery { limit: ids.len() as u64, ids, ..Default::default() };
    let page = req.store().list(Kind::CustomerGateway, &req.scope, &q).await.map_err(store_error)?;
    page.items.iter().map(|r| Ok((r.id.clone(), doc(r)?))).collect()
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

// ---------------------------------------------------------------------------------------------
// Responses

/// The SDK models type the same fields differently per action (WIRE.md §c).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// DescribeVpnConnection: tags under `Tags`, tunnel fields as strings.
    Describe,
    /// DescribeVpnConnections items: tags under `Tag`, tunnel fields as strings.
    List,
    /// ModifyVpnConnectionAttribute: tunnel fields as booleans and integers, no tags.
    Modify,
}

fn ike_json(c: &IkeCfg, lifetime_as_text: bool) -> Value {
    json!({
        "Psk": c.psk, "IkeVersion": c.ike_version, "IkeMode": c.ike_mode, "IkeEncAlg": c.ike_enc_alg,
        "IkeAuthAlg": c.ike_auth_alg, "IkePfs": c.ike_pfs,
        "IkeLifetime": if lifetime_as_text { json!(c.ike_lifetime.to_string()) } else { json!(c.ike_lifetime) },
        "LocalId": c.local_id, "RemoteId": c.remote_id,
    })
}

fn ipsec_json(c: &IpsecCfg, lifetime_as_text: bool) -> Value {
    json!({
        "IpsecEncAlg": c.ipsec_enc_alg, "IpsecAuthAlg": c.ipsec_auth_alg, "IpsecPfs": c.ipsec_pfs,
        "IpsecLifetime": if lifetime_as_text { json!(c.ipsec_lifetime.to_string()) } else { json!(c.ipsec_lifetime) },
    })
}

/// BGP sessions need a BGP daemon, which the data plane does not have yet: an enabled session
/// is reported as not up.
fn bgp_status(enabled: bool) -> &'static str {
    if enabled {
        "failed"
    } else {
        ""
    }
}

fn connection_json(rec: &Record, c: &VpnConnection, cgws: &HashMap<String, CustomerGateway>, shape: Shape, tags: Option<&Vec<(String, String)>>) -> Value {
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
                    "LocalBgpIp": t.bgp.local_bgp_ip, "PeerBgpIp": peer_bgp_ip(&t.bgp), "BgpStatus": bgp_status(t.bgp.enable),
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
        "VpnConnectionId": rec.id, "VpnGatewayId": rec.parent, "CustomerGatewayId": c.customer_gateway_id, "Name": c.name,
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
            "LocalBgpIp": c.bgp.local_bgp_ip, "PeerBgpIp": peer_bgp_ip(&c.bgp), "PeerAsn": cgw.and_then(|g| g.asn),
            "AuthKey": cgw.map(|g| g.auth_key.clone()).unwrap_or_default(), "Status": bgp_status(c.bgp.enable),
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
        ("Status", json!(if c.dual() { c.tunnels[0].status.clone() } else { c.status.clone() })),
        ("State", json!(rec.status)),
        ("InternetIp", json!(c.internet_ip)),
        ("ZoneNo", json!(c.zone_no)),
        ("Spec", json!("")),
        ("NetworkType", json!("public")),
        ("AttachType", json!("")),
        ("AttachInstanceId", json!("")),
        ("CrossAccountAuthorized", json!(false)),
        ("TransitRouterId", json!("")),
        ("TransitRouterName", json!("")),
        ("TunnelBandwidth", json!("")),
        (if shape == Shape::Describe { "Tags" } else { "Tag" }, tags_json(tags)),
    ] {
        v[k] = val;
    }
    v
}

// ---------------------------------------------------------------------------------------------
// DownloadVpnConnectionConfig: the customer's side

/// The customer side of one tunnel: its own address and IDs first.
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
    pub role: String,
    pub local_subnet: Vec<String>,
    pub remote_subnet: Vec<String>,
}

fn peer_ike(ike: &IkeCfg) -> IkeCfg {
    IkeCfg { local_id: ike.remote_id.clone(), remote_id: ike.local_id.clone(), ..ike.clone() }
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
                tunnel_id: t.tunnel_id.clone(),
                local: cgw_ip(&t.customer_gateway_id),
                remote: t.internet_ip.clone(),
                ike: peer_ike(&t.ike),
                ipsec: t.ipsec.clone(),
                enable_dpd: t.enable_dpd,
                effect_immediately: c.effect_immediately,
                role: t.role.clone(),
                local_subnet: c.remote_subnet.clone(),
                remote_subnet: c.local_subnet.clone(),
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
            role: String::new(),
            local_subnet: c.remote_subnet.clone(),
            remote_subnet: c.local_subnet.clone(),
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
                    "LocalBgpIp": peer_bgp_ip(&t.bgp), "PeerBgpIp": t.bgp.local_bgp_ip,
                    "LocalAsn": cgws.get(&t.customer_gateway_id).and_then(|g| g.asn).map(|n| n.to_string()).unwrap_or_default(),
                    "PeerAsn": t.bgp.local_asn.to_string(),
                })
            })
            .collect();
        cfg["BgpConfigs"] = json!({ "BgpConfig": bgp });
    } else if c.bgp.enable {
        cfg["BgpConfigs"] = json!({"BgpConfig": [{
            "TunnelCidr": c.bgp.tunnel_cidr, "LocalBgpIp": peer_bgp_ip(&c.bgp), "PeerBgpIp": c.bgp.local_bgp_ip,
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

#[cfg(test)]
mod tests {
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
            bgp: default_bgp(),
            health: HealthCheck { enable: false, sip: String::new(), dip: String::new(), interval: 3, retry: 3, policy: "revoke_route".into() },
            enable_tunnels_bgp: false,
            tunnels: Vec::new(),
            status: NOT_ESTABLISHED.into(),
            internet_ip: "198.51.100.1".into(),
            zone_no: "z".into(),
            resource_group_id: "rg".into(),
            negotiation_generation: 1,
            routing: "static".into(),
            health_status: String::new(),
            plane_state: String::new(),
            plane_unsupported: Default::default(),
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
        let mut b = default_bgp();
        b.enable = true;
        assert_eq!(check_bgp(&mut b.clone(), &cgw(Some(65000))).unwrap_err().code, Code::MissingTunnelCidr);
        b.tunnel_cidr = "169.254.10.0/30".into();
        assert_eq!(check_bgp(&mut b.clone(), &cgw(None)).unwrap_err().code, Code::MissingCustomerGatewayAsn);
        let mut ok = b.clone();
        check_bgp(&mut ok, &cgw(Some(65000))).unwrap();
        assert_eq!((ok.local_bgp_ip.as_str(), peer_bgp_ip(&ok).as_str()), ("169.254.10.1", "169.254.10.2"));
        b.local_bgp_ip = "169.254.10.3".into();
        assert_eq!(check_bgp(&mut b, &cgw(Some(65000))).unwrap_err().code, Code::IllegalLocalBgpIp);
        let mut asn = default_bgp();
        apply_bgp(&mut asn, &serde_json::from_str(r#"{"LocalAsn": "123.456"}"#).unwrap()).unwrap();
        assert_eq!(asn.local_asn, 123 * 65536 + 456);
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
}
