//! Customer gateways (2022 reference 5.1-5.5).

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code};
pub use vpngw_model::customer_gateway::CustomerGateway;
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::{default_resource_group, doc, list_with_tags, load, load_tagged, new_record, obj, put_tagged, tags_json, to_doc};
use crate::validate::{self, opt_text, vpn_description, vpn_name};
use crate::{ids::new_id, store_error, HandlerResult, Req};

fn cgw_json(rec: &Record, c: &CustomerGateway, tags: Option<&Vec<(String, String)>>) -> Value {
    json!({
        "CustomerGatewayId": rec.id, "IpAddress": c.ip_address, "Asn": c.asn, "AuthKey": c.auth_key,
        "Name": c.name, "Description": c.description, "CreateTime": rec.created_ms,
        "ResourceGroupId": c.resource_group_id, "Tags": tags_json(tags),
    })
}

/// The connections (single- or dual-tunnel) that use a customer gateway.
async fn connections_using(req: &Req<'_>, id: &str) -> Result<Vec<Record>, ApiError> {
    let q = ListQuery { fields: vec![("cgw_ids[]".into(), id.to_string())], limit: u32::MAX as u64, ..Default::default() };
    Ok(req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error)?.items)
}

pub async fn create_customer_gateway(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let ip = validate::public_ip(p.req("IpAddress")?).ok_or_else(|| ApiError::new(Code::InvalidIpAddressWrongFormat))?.to_string();
    let name = opt_text(p, "Name", |v| vpn_name(v, 2, 128), Code::InvalidName)?.unwrap_or("").to_string();
    let description = opt_text(p, "Description", vpn_description, Code::InvalidDescription)?.unwrap_or("").to_string();
    let asn = match p.opt("Asn") {
        Some(a) => Some(validate::asn(a).ok_or_else(|| ApiError::new(Code::InvalidAsn))?),
        None => None,
    };
    let auth_key = match p.opt("AuthKey") {
        Some(k) if !validate::auth_key(k) => return Err(ApiError::arg(Code::InvalidAuthKey, k)),
        Some(_) if asn.is_none() => return Err(ApiError::new(Code::MissingAsn)),
        Some(k) => k.to_string(),
        None => String::new(),
    };
    let tags = validate::tags(p, "Tags")?;
    let same_ip = ListQuery { fields: vec![("ip_address".into(), ip.clone())], limit: 1, ..Default::default() };
    if req.store().list(Kind::CustomerGateway, &req.scope, &same_ip).await.map_err(store_error)?.total > 0 {
        return Err(ApiError::new(Code::InvalidIpAddressAlreadyExist));
    }
    if req.store().count(Kind::CustomerGateway, &req.scope, None).await.map_err(store_error)? >= req.svc.config.quotas.customer_gateways {
        return Err(ApiError::new(Code::ResourceQuotaFull));
    }
    let id = new_id("cgw");
    let c = CustomerGateway {
        name,
        description,
        ip_address: ip,
        asn,
        auth_key: auth_key.into(),
        resource_group_id: p.opt("ResourceGroupId").map(str::to_string).unwrap_or_else(|| default_resource_group(req.scope.account)),
    };
    let rec = new_record(req, Kind::CustomerGateway, &id, None, "available", to_doc(&c));
    let body = obj(json!({"CustomerGatewayId": id, "IpAddress": c.ip_address, "Name": c.name, "Description": c.description, "CreateTime": rec.created_ms}));
    req.commit(put_tagged(req, rec, tags), body).await
}

pub async fn modify_customer_gateway_attribute(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let id = p.req("CustomerGatewayId")?.to_string();
    let name = opt_text(p, "Name", |v| vpn_name(v, 2, 128), Code::InvalidName)?.map(str::to_string);
    let description = opt_text(p, "Description", vpn_description, Code::InvalidDescription)?.map(str::to_string);
    let auth_key = match p.opt("AuthKey") {
        Some(k) if !validate::auth_key(k) => return Err(ApiError::arg(Code::InvalidAuthKey, k)),
        other => other.map(str::to_string),
    };
    let mut rec = load(req, Kind::CustomerGateway, &id, Code::InvalidCustomerGatewayId).await?;
    let mut c: CustomerGateway = doc(&rec)?;
    if auth_key.is_some() && c.asn.is_none() {
        return Err(ApiError::new(Code::MissingAsn));
    }
    // Linked to VPN gateways through connections: while one of those is locked or configuring,
    // the change is refused.
    for conn in connections_using(req, &id).await? {
        let Some(gw) = req.store().get(Kind::VpnGateway, &req.scope, conn.parent.as_deref().unwrap_or_default()).await.map_err(store_error)? else { continue };
        if doc::<super::vpn_gateway::VpnGateway>(&gw)?.business_status == super::vpn_gateway::BusinessStatus::FinancialLocked {
            return Err(ApiError::new(Code::CgwVpnFinancialLocked));
        }
        if gw.status != super::Lifecycle::Active.as_str() {
            return Err(ApiError::new(Code::CgwVpnConfiguring));
        }
    }
    if let Some(n) = name {
        c.name = n;
    }
    if let Some(d) = description {
        c.description = d;
    }
    if let Some(k) = auth_key {
        c.auth_key = k.into();
    }
    rec.doc = to_doc(&c);
    let body = obj(json!({
        "CustomerGatewayId": id, "IpAddress": c.ip_address, "Name": c.name, "Description": c.description,
        "CreateTime": rec.created_ms, "ResourceGroupId": c.resource_group_id,
    }));
    req.commit(vec![Mutation::Put(rec)], body).await
}

pub async fn describe_customer_gateway(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("CustomerGatewayId")?.to_string();
    let (rec, tags) = load_tagged(req, Kind::CustomerGateway, &id, Code::InvalidCustomerGatewayId).await?;
    Ok(obj(cgw_json(&rec, &doc(&rec)?, Some(&tags))))
}

pub async fn describe_customer_gateways(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    let mut q = ListQuery { offset, limit, tags: validate::tag_filters(p)?, ..Default::default() };
    if let Some(id) = p.opt("CustomerGatewayId") {
        q.ids = vec![id.to_string()];
    }
    super::field_filters(&mut q, p, &[("ResourceGroupId", "resource_group_id")]);
    let (page, tags) = list_with_tags(req, Kind::CustomerGateway, &q).await?;
    let items = page.items.iter().map(|r| Ok(cgw_json(r, &doc(r)?, tags.get(&r.id)))).collect::<Result<Vec<_>, ApiError>>()?;
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "CustomerGateways": {"CustomerGateway": items}})))
}

pub async fn delete_customer_gateway(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("CustomerGatewayId")?.to_string();
    load(req, Kind::CustomerGateway, &id, Code::InvalidCustomerGatewayId).await?;
    if !connections_using(req, &id).await?.is_empty() {
        return Err(ApiError::new(Code::DependencyViolationVpnConnection));
    }
    req.commit(vec![Mutation::Delete { kind: Kind::CustomerGateway, id }], Default::default()).await
}
