//! TagResources, UnTagResources, ListTagResources (2022 reference 4.5-4.7).
//!
//! ResourceType is matched case-insensitively (`VpnGateWay`, `CUSTOMERGATEWAY`, ...). A
//! resource has at most 20 tags, counting those it already has.

use serde_json::json;
use vpngw_api::{ApiError, Code};
use vpngw_store::{Kind, Mutation};

use super::obj;
use crate::validate;
use crate::{store_error, HandlerResult, Req};

/// The resource types tags apply to, and the kind each names.
fn kind_of(resource_type: &str) -> Result<Kind, ApiError> {
    match resource_type.to_ascii_lowercase().as_str() {
        "vpngateway" => Ok(Kind::VpnGateway),
        "customergateway" => Ok(Kind::CustomerGateway),
        "vpc" => Ok(Kind::Vpc),
        "vswitch" => Ok(Kind::VSwitch),
        "vpnconnection" => Ok(Kind::VpnConnection),
        // A VPN attachment is a connection of no gateway.
        "vpnattachment" => Ok(Kind::VpnConnection),
        _ => Err(ApiError::new(Code::InvalidResourceType)),
    }
}

/// `ResourceId.N`: 1 to 50 ids, each of a resource the caller has.
async fn resource_ids(req: &Req<'_>, kind: Kind) -> Result<Vec<String>, ApiError> {
    let ids = req.params.list("ResourceId")?;
    if ids.is_empty() {
        return Err(ApiError::missing("ResourceId.N"));
    }
    if ids.len() > 50 {
        return Err(ApiError::invalid("ResourceId.N"));
    }
    for id in &ids {
        if req.store().get(kind, &req.scope, id).await.map_err(store_error)?.is_none() {
            return Err(ApiError::msg(Code::InvalidResourceId, format!("The specified resource {id} does not exist.")));
        }
    }
    Ok(ids)
}

pub async fn tag_resources(req: &mut Req<'_>) -> HandlerResult {
    let kind = kind_of(req.params.req("ResourceType")?)?;
    let tags = validate::tags(&req.params, "Tag")?;
    if tags.is_empty() {
        return Err(ApiError::missing("Tag.N"));
    }
    let ids = resource_ids(req, kind).await?;
    let existing = req.store().tags(&ids).await.map_err(store_error)?;
    for id in &ids {
        let have = existing.get(id).map(Vec::as_slice).unwrap_or_default();
        let added = tags.iter().filter(|(k, _)| !have.iter().any(|(h, _)| h == k)).count();
        if have.len() + added > 20 {
            return Err(ApiError::new(Code::TagNumExceeded));
        }
    }
    let muts = ids.into_iter().map(|id| Mutation::SetTags { kind, id, scope: req.scope.clone(), tags: tags.clone() }).collect();
    req.commit(muts, Default::default()).await
}

pub async fn untag_resources(req: &mut Req<'_>) -> HandlerResult {
    let kind = kind_of(req.params.req("ResourceType")?)?;
    let all = req.params.opt_bool("All")?.unwrap_or(false);
    let keys = req.params.list("TagKey")?;
    if keys.len() > 20 {
        return Err(ApiError::invalid("TagKey.N"));
    }
    if keys.iter().any(|k| k.is_empty()) {
        return Err(ApiError::new(Code::InvalidTagKey));
    }
    if keys.is_empty() && !all {
        return Err(ApiError::missing("TagKey.N"));
    }
    let ids = resource_ids(req, kind).await?;
    let keys = if keys.is_empty() { None } else { Some(keys) };
    let muts = ids.into_iter().map(|id| Mutation::RemoveTags { id, keys: keys.clone() }).collect();
    req.commit(muts, Default::default()).await
}

fn encode_token(offset: u64) -> String {
    format!("vt{offset:016x}")
}

fn decode_token(t: &str) -> Result<u64, ApiError> {
    t.strip_prefix("vt").and_then(|h| u64::from_str_radix(h, 16).ok()).ok_or_else(|| ApiError::new(Code::InvalidNextToken))
}

pub async fn list_tag_resources(req: &mut Req<'_>) -> HandlerResult {
    let resource_type = req.params.req("ResourceType")?.to_string();
    let kind = kind_of(&resource_type)?;
    let ids = req.params.list("ResourceId")?;
    let having = validate::tag_filters(&req.params)?;
    if ids.is_empty() && having.is_empty() {
        return Err(ApiError::new(Code::MissingResourceIdOrTag));
    }
    if ids.len() > 50 {
        return Err(ApiError::invalid("ResourceId.N"));
    }
    let limit: u64 = req.params.opt_num("MaxResults")?.unwrap_or(50);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid("MaxResults"));
    }
    let offset = match req.params.opt("NextToken") {
        Some(t) => decode_token(t)?,
        None => 0,
    };
    let mut rows = req.store().list_tags(kind, &req.scope, &ids, &having, offset, limit + 1).await.map_err(store_error)?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        encode_token(offset + limit)
    } else {
        String::new()
    };
    let items: Vec<_> = rows.into_iter().map(|r| json!({"ResourceType": resource_type, "ResourceId": r.resource_id, "TagKey": r.key, "TagValue": r.value})).collect();
    Ok(obj(json!({"NextToken": next, "TagResources": {"TagResource": items}})))
}
