//! One handler per action, grouped by resource. Each is named after its action (see the list in
//! `vpngw_api::actions`) and has the signature `async fn(&mut Req) -> HandlerResult`.

use std::collections::HashMap;

use serde_json::{json, Value};
use vpngw_api::ApiError;
use vpngw_store::{Kind, ListQuery, Mutation, Page, Record, Task};

use crate::{store_error, Req};
pub(crate) use vpngw_model::state::{Lifecycle, TaskOp};

mod certificate;
mod customer_gateway;
mod diagnose;
mod gateway_diagnosis;
mod ipsec_server;
mod logs;
mod neighbourhood;
mod regions;
mod resource_group;
mod ssl_vpn;
mod tags;
mod vpc;
mod vpn_connection;
mod vpn_gateway;
mod vpn_route;

pub use certificate::*;
pub use customer_gateway::*;
pub use diagnose::diagnose_vpn_connections;
pub use gateway_diagnosis::{diagnose_vpn_gateway, get_vpn_gateway_diagnose_result, DiagnoseItem, GatewayDiagnosis, PRIVATE_PROBE, PUBLIC_PROBE};
pub use ipsec_server::*;
pub use logs::{describe_vpn_connection_logs, list_ipsec_server_logs, log_line_time};
pub use regions::*;
pub use resource_group::move_vpn_resource_group;
pub use ssl_vpn::*;
pub use tags::*;
pub use vpc::*;
pub(crate) use vpn_connection::PeerTunnel;
pub use vpn_connection::{
    create_vco_route_entry, create_vpn_attachment, delete_vco_route_entry, delete_vpn_attachment, describe_vco_route_entries, describe_vpn_attachments, modify_vco_route_entry_weight,
    modify_vpn_attachment_attribute,
};
pub use vpn_connection::{
    create_vpn_connection, delete_vpn_connection, describe_vpn_connection, describe_vpn_connections, describe_vpn_cross_account_authorizations, download_vpn_connection_config,
    modify_tunnel_attribute, modify_vpn_connection_attribute,
};
pub use vpn_connection::{BgpCfg, HealthCheck, IkeCfg, IpsecCfg, Tunnel, VpnConnection, NOT_ESTABLISHED};
pub use vpn_gateway::*;
pub use vpn_route::*;

/// `{"Tag": [{"Key": .., "Value": ..}]}`, the wrapper every SDK model expects.
pub(crate) fn tags_json(tags: Option<&Vec<(String, String)>>) -> Value {
    let list: Vec<Value> = tags.map(|t| t.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect()).unwrap_or_default();
    json!({ "Tag": list })
}

/// `YYYY-MM-DDThh:mm:ssZ`, the string time some models use.
pub(crate) fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

/// The default resource group of an account.
pub(crate) fn default_resource_group(account: i64) -> String {
    format!("rg-acfm{account:015x}")
}

/// Loads a record of the caller's scope, or the kind's NotFound code.
pub(crate) async fn load(req: &Req<'_>, kind: Kind, id: &str, not_found: vpngw_api::Code) -> Result<Record, ApiError> {
    req.store().get(kind, &req.scope, id).await.map_err(store_error)?.ok_or_else(|| ApiError::new(not_found))
}

/// Like [`load`], with the record's tags.
pub(crate) async fn load_tagged(req: &Req<'_>, kind: Kind, id: &str, not_found: vpngw_api::Code) -> Result<(Record, Vec<(String, String)>), ApiError> {
    req.store().get_tagged(kind, &req.scope, id).await.map_err(store_error)?.ok_or_else(|| ApiError::new(not_found))
}

/// A page of records with the tags of each.
pub(crate) async fn list_with_tags(req: &Req<'_>, kind: Kind, q: &ListQuery) -> Result<(Page, HashMap<String, Vec<(String, String)>>), ApiError> {
    let page = req.store().list(kind, &req.scope, q).await.map_err(store_error)?;
    let ids: Vec<String> = page.items.iter().map(|r| r.id.clone()).collect();
    let tags = req.store().tags(&ids).await.map_err(store_error)?;
    Ok((page, tags))
}

/// The children of one kind of a parent in the caller's scope (a gateway's IPsec or SSL-VPN
/// server, a VPC's gateways), newest first.
pub(crate) async fn children(req: &Req<'_>, kind: Kind, parent: &str) -> Result<Vec<Record>, ApiError> {
    let q = ListQuery { parent: Some(parent.to_string()), limit: u32::MAX as u64, ..Default::default() };
    Ok(req.store().list(kind, &req.scope, &q).await.map_err(store_error)?.items)
}

/// Equality filters on document fields from optional parameters: `(parameter, field)` pairs.
pub(crate) fn field_filters(q: &mut ListQuery, p: &vpngw_api::Params, pairs: &[(&str, &str)]) {
    for (param, field) in pairs {
        if let Some(v) = p.opt(param) {
            q.fields.push(((*field).to_string(), v.to_string()));
        }
    }
}

/// A new resource of the caller's scope, created now.
pub(crate) fn new_record(req: &Req<'_>, kind: Kind, id: &str, parent: Option<String>, status: &str, doc: Value) -> Record {
    Record { kind, id: id.to_string(), account: req.scope.account, region: req.scope.region.clone(), parent, status: status.into(), created_ms: crate::now_ms(), doc }
}

/// The mutations that store a new record with its tags.
pub(crate) fn put_tagged(req: &Req<'_>, rec: Record, tags: Vec<(String, String)>) -> Vec<Mutation> {
    let (kind, id) = (rec.kind, rec.id.clone());
    let mut muts = vec![Mutation::Put(rec)];
    if !tags.is_empty() {
        muts.push(Mutation::SetTags { kind, id, scope: req.scope.clone(), tags });
    }
    muts
}

/// Lifecycle tasks: each `(op, after)` step runs `after` from now. Each step falls due strictly
/// after the one before it, so the engine (which applies due tasks in due order) never applies
/// them out of order, even with a zero transition time.
pub(crate) fn schedule(kind: Kind, id: &str, steps: &[(TaskOp, std::time::Duration)]) -> Vec<Mutation> {
    let now = crate::now_ms();
    let mut last = i64::MIN;
    steps
        .iter()
        .map(|(op, after)| {
            last = (now + after.as_millis() as i64).max(last.saturating_add(1));
            Mutation::PutTask(Task { id: crate::ids::new_id("task"), kind, resource_id: id.to_string(), op: op.encode(), due_ms: last })
        })
        .collect()
}

/// The data-plane gateway that runs a connection: its VPN gateway, or for a VPN attachment its
/// own (`att-<id>`).
pub(crate) fn plane_gateway(rec: &Record) -> Option<String> {
    rec.parent.clone().or_else(|| (rec.kind == Kind::VpnConnection && rec.doc["attach_type"] == vpngw_model::connection::ATTACH_NONE).then(|| vpngw_model::connection::attachment_gateway_id(&rec.id)))
}

/// A typed view of a record's document.
pub(crate) fn doc<T: serde::de::DeserializeOwned>(r: &Record) -> Result<T, ApiError> {
    T::deserialize(&r.doc).map_err(|e| {
        tracing::error!(id = %r.id, error = %e, "Stored document does not parse.");
        ApiError::internal()
    })
}

pub(crate) fn to_doc<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub(crate) fn obj(v: Value) -> crate::Body {
    match v {
        Value::Object(m) => m,
        _ => crate::Body::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_fall_due_in_order_even_with_no_delay() {
        let zero = std::time::Duration::ZERO;
        let due: Vec<i64> = super::schedule(
            vpngw_store::Kind::VpnGateway,
            "vpn-1",
            &[(super::TaskOp::Become(super::Lifecycle::Provisioning), zero), (super::TaskOp::Become(super::Lifecycle::Active), zero), (super::TaskOp::Delete, zero)],
        )
        .into_iter()
        .map(|m| match m {
            vpngw_store::Mutation::PutTask(t) => t.due_ms,
            _ => unreachable!("schedule only makes tasks"),
        })
        .collect();
        assert!(due.windows(2).all(|w| w[0] < w[1]), "{due:?}");
    }
}
