//! IPsec servers (2022 reference 9.1-9.4): remote clients connect to a VPN gateway with IKE
//! (IKEv2 by default), authenticate with the server's PSK and get an address from ClientIpPool.
//!
//! One per gateway, only on a gateway with SSL-VPN enabled (its clients share the gateway's
//! SslConnections), and never beside IPsec connections on the same gateway. Every change puts
//! the gateway through `updating` until the data plane has applied it. OnlineClientCount is
//! observed: the number of clients' IKE_SAs established at the gateway.

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code, Params};
pub use vpngw_model::ipsec_server::IpsecServer;
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::neighbourhood::{check_client_pool, model_error, neighbourhood};
use super::vpn_connection::{apply_ike, apply_ipsec, check_ike, check_ipsec, overlaps, psk_ok, subnets, IkeCfg, IpsecCfg};
use super::vpn_gateway::{gateway_busy, ssl_connections, ssl_gateway_for_server, writable_child};
use super::{default_resource_group, doc, iso_time, new_record, obj, to_doc, Lifecycle};
use crate::validate::{self, cidr};
use crate::{ids, store_error, HandlerResult, Req};
use vpngw_model::id::VpnGatewayId;
use vpngw_model::rules::Pool;

/// The server's name, under the key its action spells it with: CreateIpsecServer says
/// `IpSecServerName`, UpdateIpsecServer `IpsecServerName` (the documents and the SDK models).
fn server_name(p: &Params, key: &'static str) -> Result<Option<String>, ApiError> {
    match p.get(key) {
        None => Ok(None),
        Some(n) if validate::vpn_name(n, 2, 128) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::invalid(key)),
    }
}

fn pool(v: &str) -> Result<String, ApiError> {
    cidr(v).map(|n| n.to_string()).ok_or_else(|| ApiError::arg(Code::IllegalClientIpPool, v))
}

/// The parameters Create and Update share, applied to `s` (`name_key`: how the action spells
/// the name).
fn apply(s: &mut IpsecServer, p: &Params, name_key: &'static str) -> Result<(), ApiError> {
    if let Some(n) = server_name(p, name_key)? {
        s.name = n;
    }
    if let Some(v) = p.opt("LocalSubnet") {
        s.local_subnet = subnets(v, Code::IllegalLocalSubnet)?;
    }
    if let Some(v) = p.opt("ClientIpPool") {
        s.client_ip_pool = pool(v)?;
    }
    if let Some(v) = p.opt_bool("EffectImmediately")? {
        s.effect_immediately = v;
    }
    if let Some(v) = p.opt_bool("PskEnabled")? {
        // Only PSK authentication exists: the documents allow `true` alone.
        if !v {
            return Err(ApiError::invalid("PskEnabled"));
        }
        s.psk_enabled = true;
    }
    if let Some(v) = p.get("Psk") {
        if !psk_ok(v) {
            return Err(ApiError::invalid("Psk"));
        }
        s.ike.psk = v.into();
    }
    if let Some(o) = p.json_object("IkeConfig")? {
        if o.contains_key("Psk") {
            return Err(ApiError::invalid("IkeConfig.Psk"));
        }
        apply_ike(&mut s.ike, &o, "IkeConfig")?;
    }
    if let Some(o) = p.json_object("IpsecConfig")? {
        apply_ipsec(&mut s.ipsec, &o, "IpsecConfig")?;
    }
    check_ike(&s.ike, false, "IkeConfig")?;
    check_ipsec(&s.ipsec, false, "IpsecConfig")?;
    if s.local_subnet.iter().any(|l| overlaps(l, &s.client_ip_pool)) {
        return Err(ApiError::arg(Code::IllegalClientIpPool, &s.client_ip_pool));
    }
    Ok(())
}

/// Whether a gateway has an IPsec server (for CreateVpnConnection's conflict rule).
pub async fn create_ipsec_server(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (gw_rec, gw) = ssl_gateway_for_server(req, p.req("VpnGatewayId")?).await?;
    let gw_id = VpnGatewayId::new(gw_rec.id.as_str());
    let read = neighbourhood(req, &gw_rec).await?;
    if read.n.side(&gw_id).is_some_and(|s| s.ipsec_pool.is_some()) {
        return Err(ApiError::new(Code::IpsecServerExist));
    }
    if req.store().count(Kind::VpnConnection, &req.scope, Some(&gw_rec.id)).await.map_err(store_error)? > 0 {
        return Err(ApiError::new(Code::IpsecServerAndVpnConnectionConflict));
    }
    let id = ids::new_id("iss");
    let mut s = IpsecServer {
        name: id.clone(),
        local_subnet: subnets(p.req("LocalSubnet")?, Code::IllegalLocalSubnet)?,
        client_ip_pool: pool(p.req("ClientIpPool")?)?,
        effect_immediately: false,
        psk_enabled: true,
        ike: IkeCfg {
            psk: ids::secret(16).into(),
            ike_version: "ikev2".into(),
            ike_mode: "main".into(),
            ike_enc_alg: "aes".into(),
            ike_auth_alg: "sha1".into(),
            ike_pfs: "group2".into(),
            ike_lifetime: 86400,
            local_id: gw.internet_ip.clone(),
            remote_id: String::new(),
        },
        ipsec: IpsecCfg { ipsec_enc_alg: "aes".into(), ipsec_auth_alg: "sha1".into(), ipsec_pfs: "group2".into(), ipsec_lifetime: 86400 },
        internet_ip: gw.internet_ip.clone(),
        resource_group_id: if gw.resource_group_id.is_empty() { default_resource_group(req.scope.account) } else { gw.resource_group_id.clone() },
        online_client_count: 0,
    };
    apply(&mut s, &p, "IpSecServerName")?;
    read.n.client_pool_ok(&gw_id, &s.client_ip_pool, Pool::Ipsec).map_err(model_error)?;
    req.dry_run()?;
    let rec = new_record(req, Kind::IpsecServer, &id, Some(gw_rec.id.clone()), Lifecycle::Active.as_str(), to_doc(&s));
    let body = obj(json!({
        "IpsecServerId": id, "IpsecServerName": s.name, "VpnGatewayId": gw_rec.id, "RegionId": req.scope.region,
        "CreationTime": iso_time(rec.created_ms),
    }));
    let mut muts = vec![Mutation::Put(rec)];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, body).await
}

async fn writable_server(req: &Req<'_>) -> Result<(Record, IpsecServer, Record), ApiError> {
    writable_child(req, Kind::IpsecServer, req.params.req("IpsecServerId")?, Code::InvalidIpsecServerId).await
}

pub async fn update_ipsec_server(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (mut rec, before, gw_rec) = writable_server(req).await?;
    let mut s = before.clone();
    apply(&mut s, &p, "IpsecServerName")?;
    check_client_pool(req, &gw_rec, &s.client_ip_pool, Pool::Ipsec).await?;
    req.dry_run()?;
    if s == before {
        return req.commit(Vec::new(), Default::default()).await;
    }
    rec.doc = to_doc(&s);
    let mut muts = vec![Mutation::Put(rec)];
    if s.intent_digest() != before.intent_digest() {
        muts.extend(gateway_busy(req, gw_rec));
    }
    req.commit(muts, Default::default()).await
}

pub async fn delete_ipsec_server(req: &mut Req<'_>) -> HandlerResult {
    let (rec, _, gw_rec) = writable_server(req).await?;
    req.dry_run()?;
    let mut muts = vec![Mutation::Delete { kind: Kind::IpsecServer, id: rec.id }];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, Default::default()).await
}

fn server_json(req: &Req<'_>, rec: &Record, s: &IpsecServer, max_connections: u32) -> Value {
    json!({
        "IpsecServerId": rec.id, "IpsecServerName": s.name, "VpnGatewayId": rec.parent, "RegionId": req.scope.region,
        "CreationTime": iso_time(rec.created_ms), "InternetIp": s.internet_ip, "LocalSubnet": s.local_subnet.join(","),
        "ClientIpPool": s.client_ip_pool, "EffectImmediately": s.effect_immediately, "PskEnabled": s.psk_enabled, "Psk": s.ike.psk,
        "OnlineClientCount": s.online_client_count, "MaxConnections": max_connections, "MultiFactorAuthEnabled": false,
        "IDaaSInstanceId": "", "IDaaSRegionId": "", "ResourceGroupId": s.resource_group_id,
        "IkeConfig": {
            "IkeVersion": s.ike.ike_version, "IkeMode": s.ike.ike_mode, "IkeEncAlg": s.ike.ike_enc_alg, "IkeAuthAlg": s.ike.ike_auth_alg,
            "IkePfs": s.ike.ike_pfs, "IkeLifetime": s.ike.ike_lifetime, "LocalId": s.ike.local_id, "RemoteId": s.ike.remote_id,
        },
        "IpsecConfig": {
            "IpsecEncAlg": s.ipsec.ipsec_enc_alg, "IpsecAuthAlg": s.ipsec.ipsec_auth_alg, "IpsecPfs": s.ipsec.ipsec_pfs, "IpsecLifetime": s.ipsec.ipsec_lifetime,
        },
    })
}

pub async fn list_ipsec_servers(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (offset, max) = validate::token_paging(&p)?;
    let mut q = ListQuery { parent: p.opt("VpnGatewayId").map(str::to_string), offset, limit: max, ..Default::default() };
    q.ids = p.list("IpsecServerId")?;
    super::field_filters(&mut q, &p, &[("IpsecServerName", "name"), ("ResourceGroupId", "resource_group_id")]);
    let page = req.store().list(Kind::IpsecServer, &req.scope, &q).await.map_err(store_error)?;
    let mut items = Vec::new();
    for rec in &page.items {
        let s: IpsecServer = doc(rec)?;
        items.push(server_json(req, rec, &s, ssl_connections(req, rec.parent.as_deref()).await?));
    }
    let next_token = validate::next_token(offset, page.items.len(), page.total);
    Ok(obj(json!({"IpsecServers": items, "TotalCount": page.total, "MaxResults": max, "NextToken": next_token})))
}
