//! VPN gateways (2022 reference 4.1-4.4 and DeleteVpnGateway) and enhanced gateways
//! (CreateEnhancedVpnGateway, UpdateEnhancedVpnGateway, DeleteEnhancedVpnGateway: GatewayType
//! `Enhanced.SiteToSite`, IPsec only, with no bandwidth, charge or SSL-VPN settings; the same
//! resource otherwise, listed by DescribeVpnGateway(s) with its GatewayType). Each family's
//! delete refuses the other's gateways.
//!
//! Lifecycle: Create answers at once with the gateway in `init`; the task engine moves it to
//! `provisioning` and then `active`. A change that must be applied puts it in `updating`;
//! Delete puts it in `deleting` and the engine removes it. A write to a gateway that is not
//! `active` gets `VpnGateway.Configuring`; one to a gateway whose BusinessStatus is
//! `FinancialLocked` gets `VpnGateway.FinancialLocked`.

use std::net::Ipv4Addr;
pub use vpngw_model::gateway::{public_network, BusinessStatus, CertAssociation, VpnGateway, ENHANCED_SITE_TO_SITE, NORMAL};

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code};
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::vpc::VSwitch;
use super::{default_resource_group, doc, list_with_tags, load, load_tagged, obj, schedule, tags_json, to_doc, Lifecycle, TaskOp};
use crate::validate::{self, opt_text, vpn_description, vpn_name};
use crate::{ids::new_id, now_ms, store_error, HandlerResult, Req};

const BANDWIDTHS: &[u32] = &[5, 10, 20, 50, 100, 200, 500, 1000];
const SSL_CONNECTIONS: &[u32] = &[5, 10, 20, 50, 100, 200, 500, 1000];
const PERIODS: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 24, 36];
/// The end of a pay-as-you-go gateway's life: none, written as the far future.
const NO_END_MS: i64 = 4_102_415_999_000;

/// Refuses a write to a gateway that is locked or busy.
pub(crate) fn ensure_writable(rec: &Record, gw: &VpnGateway) -> Result<(), ApiError> {
    if gw.business_status == BusinessStatus::FinancialLocked {
        return Err(ApiError::new(Code::VpnGatewayFinancialLocked));
    }
    if rec.status != Lifecycle::Active.as_str() {
        return Err(ApiError::new(Code::VpnGatewayConfiguring));
    }
    Ok(())
}

/// The gateway a new IPsec or SSL-VPN server is to be created on: the caller's, writable, with
/// SSL-VPN enabled (both kinds of server count against its SslConnections).
pub(crate) async fn ssl_gateway_for_server(req: &crate::Req<'_>, id: &str) -> Result<(Record, VpnGateway), ApiError> {
    let rec = super::load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?;
    let gw: VpnGateway = super::doc(&rec)?;
    ensure_writable(&rec, &gw)?;
    if !gw.enable_ssl {
        return Err(ApiError::new(Code::SslVpnDisabled));
    }
    Ok((rec, gw))
}

/// The SslConnections of a gateway of the caller's (0 if it is gone): the MaxConnections of its
/// IPsec and SSL-VPN servers.
pub(crate) async fn ssl_connections(req: &crate::Req<'_>, gw: Option<&str>) -> Result<u32, ApiError> {
    let rec = req.store().get(Kind::VpnGateway, &req.scope, gw.unwrap_or_default()).await.map_err(crate::store_error)?;
    Ok(rec.and_then(|g| serde_json::from_value::<VpnGateway>(g.doc).ok()).map(|g| g.ssl_connections).unwrap_or(0))
}

/// A resource of a gateway (an IPsec or SSL-VPN server) with its gateway, which must accept
/// writes: the record, its document and the gateway's record.
pub(crate) async fn writable_child<T: serde::de::DeserializeOwned>(req: &crate::Req<'_>, kind: Kind, id: &str, not_found: Code) -> Result<(Record, T, Record), ApiError> {
    let rec = load(req, kind, id, not_found).await?;
    let child: T = doc(&rec)?;
    let gw_rec = load(req, Kind::VpnGateway, rec.parent.as_deref().unwrap_or_default(), Code::InvalidVpnGatewayId).await?;
    ensure_writable(&gw_rec, &doc(&gw_rec)?)?;
    Ok((rec, child, gw_rec))
}

/// A change the data plane must apply: the gateway goes to `updating` until it has.
pub(crate) fn gateway_busy(req: &crate::Req<'_>, mut rec: Record) -> Vec<Mutation> {
    rec.status = Lifecycle::Updating.as_str().into();
    let mut muts = schedule(Kind::VpnGateway, &rec.id, &[(TaskOp::Become(Lifecycle::Active), req.svc.config.transition)]);
    muts.insert(0, Mutation::Put(rec));
    muts
}

/// The first free addresses of the pool (network and broadcast excluded), one per request.
pub(crate) async fn allocate_public_ips(req: &Req<'_>, n: usize) -> Result<Vec<Ipv4Addr>, ApiError> {
    let taken: std::collections::HashSet<String> = req.store().claimed_addresses().await.map_err(store_error)?.into_iter().collect();
    let free: Vec<Ipv4Addr> = req.svc.config.public_ip_pool.hosts().filter(|ip| !taken.contains(&ip.to_string())).take(n).collect();
    if free.len() < n {
        return Err(ApiError::new(Code::NoPublicIpAvailable));
    }
    Ok(free)
}

/// What CreateVpnGateway sets and CreateEnhancedVpnGateway does not.
struct Offering {
    gateway_type: &'static str,
    bandwidth: u32,
    charge_type: String,
    period: Option<u32>,
    enable_ipsec: bool,
    enable_ssl: bool,
    auto_pay: bool,
    ssl_connections: u32,
}

pub async fn create_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let bandwidth: u32 = p.req_num("Bandwidth")?;
    if !BANDWIDTHS.contains(&bandwidth) {
        return Err(ApiError::invalid("Bandwidth"));
    }
    // Not required by the current CreateVpnGateway page; POSTPAY when left out (what the
    // Terraform provider relies on).
    let charge_type = p.opt("InstanceChargeType").unwrap_or("POSTPAY").to_ascii_uppercase();
    if charge_type != "PREPAY" && charge_type != "POSTPAY" {
        return Err(ApiError::invalid("InstanceChargeType"));
    }
    let period: Option<u32> = p.opt_num("Period")?;
    if charge_type == "PREPAY" {
        match period {
            None => return Err(ApiError::missing("Period")),
            Some(m) if !PERIODS.contains(&m) => return Err(ApiError::invalid("Period")),
            _ => {}
        }
    }
    let enable_ipsec = p.opt_bool("EnableIpsec")?.unwrap_or(true);
    let enable_ssl = p.opt_bool("EnableSsl")?.unwrap_or(false);
    let auto_pay = p.opt_bool("AutoPay")?.unwrap_or(false);
    let ssl_connections: u32 = p.opt_num("SslConnections")?.unwrap_or(5);
    if !SSL_CONNECTIONS.contains(&ssl_connections) {
        return Err(ApiError::invalid("SslConnections"));
    }
    let offer = Offering { gateway_type: NORMAL, bandwidth, charge_type, period, enable_ipsec, enable_ssl, auto_pay, ssl_connections };
    create_gateway(req, offer).await
}

pub async fn create_enhanced_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    match req.params.opt("GatewayType") {
        None | Some(ENHANCED_SITE_TO_SITE) => {}
        Some(_) => return Err(ApiError::invalid("GatewayType")),
    }
    let offer = Offering { gateway_type: ENHANCED_SITE_TO_SITE, bandwidth: 0, charge_type: "POSTPAY".into(), period: None, enable_ipsec: true, enable_ssl: false, auto_pay: false, ssl_connections: 0 };
    let mut body = create_gateway(req, offer).await?;
    body.remove("OrderId");
    Ok(body)
}

async fn create_gateway(req: &mut Req<'_>, offer: Offering) -> HandlerResult {
    let Offering { gateway_type, bandwidth, charge_type, period, enable_ipsec, enable_ssl, auto_pay, ssl_connections } = offer;
    let p = &req.params;
    let vpc_id = p.req("VpcId")?.to_string();
    let vpn_type = match p.opt("VpnType") {
        None => "Normal".to_string(),
        Some(t) if t.eq_ignore_ascii_case("Normal") => "Normal".to_string(),
        Some(t) if t.eq_ignore_ascii_case("NationalStandard") => "NationalStandard".to_string(),
        Some(_) => return Err(ApiError::invalid("VpnType")),
    };
    let network_type = match p.opt("NetworkType") {
        None => public_network(),
        Some(nt @ ("public" | "private")) => nt.to_string(),
        Some(_) => return Err(ApiError::invalid("NetworkType")),
    };
    let name = opt_text(p, "Name", |v| vpn_name(v, 2, 100), Code::InvalidName)?.map(str::to_string);

    let vpc_rec = load(req, Kind::Vpc, &vpc_id, Code::InvalidVpcId).await?;
    let switches = req.store().list(Kind::VSwitch, &req.scope, &ListQuery { parent: Some(vpc_id.clone()), limit: u32::MAX as u64, ..Default::default() }).await.map_err(store_error)?;
    let find_switch = |id: &str| -> Result<Option<(Record, VSwitch)>, ApiError> {
        match switches.items.iter().find(|s| s.id == id) {
            Some(r) => Ok(Some((r.clone(), doc(r)?))),
            None => Ok(None),
        }
    };
    let (vswitch_id, vswitch) = match p.opt("VSwitchId") {
        Some(id) => match find_switch(id)? {
            Some((_, v)) => (id.to_string(), Some(v)),
            // Another VPC's vSwitch of the caller, or none at all.
            None => {
                if req.store().get(Kind::VSwitch, &req.scope, id).await.map_err(store_error)?.is_some() {
                    return Err(ApiError::new(Code::VSwitchNotInVpc));
                }
                return Err(ApiError::new(Code::InvalidVSwitchId));
            }
        },
        None => match switches.items.last() {
            Some(first) => (first.id.clone(), Some(doc::<VSwitch>(first)?)),
            None => (String::new(), None),
        },
    };
    let dr_vswitch_id = match p.opt("DisasterRecoveryVSwitchId") {
        None => None,
        Some(id) => {
            let Some(main) = &vswitch else { return Err(ApiError::missing("VSwitchId")) };
            match find_switch(id)? {
                Some((_, dr)) if dr.zone_id != main.zone_id && id != vswitch_id => Some(id.to_string()),
                Some(_) => return Err(ApiError::new(Code::IllegalDisasterRecoveryVSwitch)),
                None => {
                    if req.store().get(Kind::VSwitch, &req.scope, id).await.map_err(store_error)?.is_some() {
                        return Err(ApiError::new(Code::IllegalDisasterRecoveryVSwitch));
                    }
                    return Err(ApiError::new(Code::InvalidVSwitchId));
                }
            }
        }
    };
    if req.store().count(Kind::VpnGateway, &req.scope, None).await.map_err(store_error)? >= req.svc.config.quotas.vpn_gateways {
        return Err(ApiError::new(Code::ResourceQuotaFull));
    }
    let ips = allocate_public_ips(req, if dr_vswitch_id.is_some() { 2 } else { 1 }).await?;
    let intranet_ip = match &vswitch {
        Some(v) => v.cidr_block.parse::<ipnet::Ipv4Net>().ok().and_then(|n| n.hosts().last()).map(|ip| ip.to_string()).unwrap_or_default(),
        None => String::new(),
    };

    let id = new_id("vpn");
    let now = now_ms();
    let end_ms = match period {
        Some(m) if charge_type == "PREPAY" => {
            chrono::DateTime::from_timestamp_millis(now).and_then(|t| t.checked_add_months(chrono::Months::new(m))).map(|t| t.timestamp_millis()).unwrap_or(NO_END_MS)
        }
        _ => NO_END_MS,
    };
    let gw = VpnGateway {
        name: name.unwrap_or_else(|| id.clone()),
        description: String::new(),
        vswitch_id: vswitch_id.into(),
        dr_vswitch_id: dr_vswitch_id.map(Into::into),
        bandwidth,
        enable_ipsec,
        enable_ssl,
        ssl_connections,
        vpn_type,
        charge_type,
        period,
        auto_pay,
        internet_ip: ips[0].to_string(),
        dr_internet_ip: ips.get(1).map(|ip| ip.to_string()),
        intranet_ip,
        business_status: BusinessStatus::Normal,
        auto_propagate: true,
        enable_bgp: false,
        end_ms,
        resource_group_id: p.opt("ResourceGroupId").map(str::to_string).unwrap_or_else(|| default_resource_group(req.scope.account)),
        order_id: 200_000_000_000_000 + (rand::random::<u32>() as i64) * 1000 + (now % 1000),
        certificates: Vec::new(),
        network_type,
        gateway_type: gateway_type.to_string(),
    };
    let body = obj(json!({"VpnGatewayId": id, "Name": gw.name, "OrderId": gw.order_id}));
    let t = req.svc.config.transition;
    let mut muts = vec![Mutation::Put(Record {
        kind: Kind::VpnGateway,
        id: id.clone(),
        account: req.scope.account,
        region: req.scope.region.clone(),
        parent: Some(vpc_rec.id.clone()),
        status: Lifecycle::Init.as_str().into(),
        created_ms: now,
        doc: to_doc(&gw),
    })];
    for ip in &ips {
        muts.push(Mutation::ClaimAddress { ip: ip.to_string(), owner: id.clone() });
    }
    muts.extend(schedule(Kind::VpnGateway, &id, &[(TaskOp::Become(Lifecycle::Provisioning), t / 3), (TaskOp::Become(Lifecycle::Active), t)]));
    req.commit(muts, body).await
}

/// The DescribeVpnGateway(s) item.
fn gateway_json(rec: &Record, gw: &VpnGateway, tags: Option<&Vec<(String, String)>>) -> Value {
    /// The system tags of every gateway, as the model's `Tag` string carries them.
    static SYSTEM_TAG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        json!({
            "VpnEnableBgp": "true", "VisuallySsl": "true", "PbrPriority": "true", "VpnNewImage": "true",
            "VpnVersion": concat!("vpngw-", env!("CARGO_PKG_VERSION")),
        })
        .to_string()
    });
    let enable = |b: bool| if b { "enable" } else { "disable" };
    json!({
        "VpnGatewayId": rec.id,
        "VpcId": rec.parent,
        "VSwitchId": gw.vswitch_id,
        "DisasterRecoveryVSwitchId": gw.dr_vswitch_id.clone().unwrap_or_default(),
        "InternetIp": gw.internet_ip,
        "DisasterRecoveryInternetIp": gw.dr_internet_ip.clone().unwrap_or_default(),
        "SslVpnInternetIp": if gw.enable_ssl { gw.internet_ip.as_str() } else { "" },
        "CreateTime": rec.created_ms,
        "EndTime": gw.end_ms,
        // An enhanced gateway has no bandwidth setting: no Spec.
        "Spec": (gw.bandwidth > 0).then(|| format!("{}M", gw.bandwidth)),
        "Name": gw.name,
        "Description": gw.description,
        "Status": rec.status,
        "BusinessStatus": gw.business_status,
        // Pay-as-you-go gateways are billed by traffic: `PostpayByFlow`, the value the live
        // service answers and the Terraform provider maps to payment_type `PayAsYouGo` (its
        // acceptance test reads that back); `Postpay` would make every plan replace the gateway.
        "ChargeType": if gw.charge_type == "PREPAY" { "Prepay" } else { "PostpayByFlow" },
        "IpsecVpn": enable(gw.enable_ipsec),
        "SslVpn": enable(gw.enable_ssl),
        "SslMaxConnections": gw.ssl_connections,
        "Tag": SYSTEM_TAG.as_str(),
        "Tags": tags_json(tags),
        "EnableBgp": gw.enable_bgp,
        "AutoPropagate": gw.auto_propagate,
        "VpnType": gw.vpn_type,
        "NetworkType": gw.network_type,
        "GatewayType": gw.gateway_type,
        "ResourceGroupId": gw.resource_group_id,
        "EniInstanceIds": {"EniInstanceId": []},
    })
}

pub async fn describe_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpnGatewayId")?.to_string();
    req.params.opt_bool("IncludeReservationData")?;
    let (rec, tags) = load_tagged(req, Kind::VpnGateway, &id, Code::InvalidVpnGatewayId).await?;
    Ok(obj(gateway_json(&rec, &doc(&rec)?, Some(&tags))))
}

pub async fn describe_vpn_gateways(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    p.opt_bool("IncludeReservationData")?;
    let mut q = ListQuery { offset, limit, tags: validate::tag_filters(p)?, parent: p.opt("VpcId").map(str::to_string), ..Default::default() };
    if let Some(id) = p.opt("VpnGatewayId") {
        q.ids = vec![id.to_string()];
    }
    if let Some(s) = p.opt("Status") {
        let s = s.to_ascii_lowercase();
        if Lifecycle::parse(&s).is_none() {
            return Err(ApiError::invalid("Status"));
        }
        q.status = Some(s);
    }
    if let Some(b) = p.opt("BusinessStatus") {
        let b = BusinessStatus::parse(b).ok_or_else(|| ApiError::invalid("BusinessStatus"))?;
        q.fields.push(("business_status".into(), b.as_str().into()));
    }
    super::field_filters(&mut q, p, &[("ResourceGroupId", "resource_group_id"), ("GatewayType", "gateway_type")]);
    let (page, tags) = list_with_tags(req, Kind::VpnGateway, &q).await?;
    let items = page.items.iter().map(|r| Ok(gateway_json(r, &doc(r)?, tags.get(&r.id)))).collect::<Result<Vec<_>, ApiError>>()?;
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "VpnGateways": {"VpnGateway": items}})))
}

/// Name, Description and AutoPropagate, as ModifyVpnGatewayAttribute and
/// UpdateEnhancedVpnGateway take them (`enhanced`: only an enhanced gateway may be named): the
/// changed record and the steps to commit with it.
async fn change_attributes(req: &Req<'_>, enhanced: bool) -> Result<(Record, VpnGateway, Vec<Mutation>), ApiError> {
    let p = &req.params;
    let id = p.req("VpnGatewayId")?.to_string();
    let name = opt_text(p, "Name", |v| vpn_name(v, 2, 100), Code::InvalidName)?.map(str::to_string);
    let description = opt_text(p, "Description", vpn_description, Code::InvalidDescription)?.map(str::to_string);
    let auto_propagate = p.opt_bool("AutoPropagate")?;
    let (mut rec, mut gw) = if enhanced {
        load_family(req, &id, true).await?
    } else {
        let rec = load(req, Kind::VpnGateway, &id, Code::InvalidVpnGatewayId).await?;
        let gw = doc(&rec)?;
        (rec, gw)
    };
    ensure_writable(&rec, &gw)?;
    let mut muts = Vec::new();
    if let Some(n) = name {
        gw.name = n;
    }
    if let Some(d) = description {
        gw.description = d;
    }
    if let Some(a) = auto_propagate.filter(|a| *a != gw.auto_propagate) {
        // Route propagation is data-plane configuration: the gateway applies it.
        gw.auto_propagate = a;
        rec.status = Lifecycle::Updating.as_str().into();
        muts.extend(schedule(Kind::VpnGateway, &id, &[(TaskOp::Become(Lifecycle::Active), req.svc.config.transition)]));
    }
    rec.doc = to_doc(&gw);
    Ok((rec, gw, muts))
}

pub async fn modify_vpn_gateway_attribute(req: &mut Req<'_>) -> HandlerResult {
    let (rec, gw, mut muts) = change_attributes(req, false).await?;
    let body = obj(json!({
        "VpnGatewayId": rec.id, "VpcId": rec.parent, "VSwitchId": gw.vswitch_id, "InternetIp": gw.internet_ip,
        "IntranetIp": gw.intranet_ip, "DisasterRecoveryInternetIp": gw.dr_internet_ip.clone().unwrap_or_default(),
        "DisasterRecoveryVSwitchId": gw.dr_vswitch_id.clone().unwrap_or_default(),
        "SslVpnInternetIp": if gw.enable_ssl { gw.internet_ip.as_str() } else { "" },
        "CreateTime": rec.created_ms, "EndTime": gw.end_ms, "Spec": (gw.bandwidth > 0).then(|| format!("{}M", gw.bandwidth)), "Name": gw.name,
        "Description": gw.description, "Status": rec.status, "BusinessStatus": gw.business_status,
        "EnableBgp": gw.enable_bgp, "AutoPropagate": gw.auto_propagate, "ResourceGroupId": gw.resource_group_id,
    }));
    muts.insert(0, Mutation::Put(rec));
    req.commit(muts, body).await
}

pub async fn delete_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    delete_gateway(req, false).await
}

pub async fn delete_enhanced_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    delete_gateway(req, true).await
}

/// Loads a gateway of the caller's and checks it is of the family the action serves.
async fn load_family(req: &Req<'_>, id: &str, enhanced: bool) -> Result<(Record, VpnGateway), ApiError> {
    let rec = load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?;
    let gw: VpnGateway = doc(&rec)?;
    if (gw.gateway_type == ENHANCED_SITE_TO_SITE) != enhanced {
        return Err(ApiError::arg(Code::GatewayTypeMismatch, gw.gateway_type));
    }
    Ok((rec, gw))
}

async fn delete_gateway(req: &mut Req<'_>, enhanced: bool) -> HandlerResult {
    let id = req.params.req("VpnGatewayId")?.to_string();
    let (mut rec, gw) = load_family(req, &id, enhanced).await?;
    ensure_writable(&rec, &gw)?;
    // Routes, certificate associations and tags go with the gateway.
    if req.store().count(Kind::VpnConnection, &req.scope, Some(&id)).await.map_err(store_error)? > 0 {
        return Err(ApiError::new(Code::DependencyViolationVpnConnection));
    }
    if !super::children(req, Kind::IpsecServer, &id).await?.is_empty() {
        return Err(ApiError::new(Code::DependencyViolationIpsecServer));
    }
    if !super::children(req, Kind::SslVpnServer, &id).await?.is_empty() {
        return Err(ApiError::new(Code::DependencyViolationSslVpnServer));
    }
    rec.status = Lifecycle::Deleting.as_str().into();
    let mut muts = vec![Mutation::Put(rec)];
    // Its diagnoses go with it.
    muts.extend(super::children(req, Kind::VpnGatewayDiagnosis, &id).await?.into_iter().map(|d| Mutation::Delete { kind: d.kind, id: d.id }));
    muts.extend(schedule(Kind::VpnGateway, &id, &[(TaskOp::Delete, req.svc.config.transition)]));
    req.commit(muts, Default::default()).await
}

pub async fn update_enhanced_vpn_gateway(req: &mut Req<'_>) -> HandlerResult {
    let (rec, gw, mut muts) = change_attributes(req, true).await?;
    let id = rec.id.clone();
    let tags = req.store().tags(std::slice::from_ref(&id)).await.map_err(store_error)?;
    let full = gateway_json(&rec, &gw, tags.get(&id));
    let mut body = crate::Body::new();
    for k in [
        "AutoPropagate",
        "CreateTime",
        "Description",
        "DisasterRecoveryVSwitchId",
        "EnableBgp",
        "EniInstanceIds",
        "GatewayType",
        "Name",
        "NetworkType",
        "ResourceGroupId",
        "Status",
        "Tag",
        "Tags",
        "VSwitchId",
        "VpcId",
        "VpnGatewayId",
        "VpnType",
    ] {
        if let Some(v) = full.get(k) {
            body.insert(k.to_string(), v.clone());
        }
    }
    muts.insert(0, Mutation::Put(rec));
    req.commit(muts, body).await
}

/// Operator command: sets BusinessStatus to FinancialLocked (`lock = true`) or Normal.
pub async fn set_financial_lock(svc: &crate::Service, id: &str, lock: bool) -> Result<(), ApiError> {
    svc.with_write_lock(async {
        let mut rec = svc.store.get_any(Kind::VpnGateway, id).await.map_err(store_error)?.ok_or_else(|| ApiError::new(Code::InvalidVpnGatewayId))?;
        let mut gw: VpnGateway = doc(&rec)?;
        gw.business_status = if lock { BusinessStatus::FinancialLocked } else { BusinessStatus::Normal };
        rec.doc = to_doc(&gw);
        svc.store.commit(vec![Mutation::Put(rec)]).await.map_err(store_error)
    })
    .await
}
