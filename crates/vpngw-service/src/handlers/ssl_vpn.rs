//! SSL-VPN (2022 reference section 8, and the current SDK's DescribeSslVpnClientCert and
//! DescribeSslVpnClients): OpenVPN-compatible servers on VPN gateways, with a PKI of their own.
//!
//! One server per gateway, only on a gateway with SSL-VPN enabled. Each server gets its own
//! certificate authority and server certificate at creation; each client certificate is an
//! X.509 certificate that authority signs (common name: the certificate's id). Deleting a
//! client certificate revokes it: its serial joins the server's revocation list, which the
//! data plane turns into the CRL OpenVPN checks, and a client connected with it is
//! disconnected. Private keys are sealed before they reach the store ([`crate::secrets`]).
//!
//! Connections and the client list are observed by the data plane (live, not stored);
//! MaxConnections is the gateway's SslConnections, which IPsec-server clients share.

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code, Params};
pub use vpngw_model::ssl_vpn::{SslClient, SslVpnClientCert, SslVpnServer};
use vpngw_store::{Kind, ListQuery, Mutation, Record};

use super::logs::LogQuery;
use super::neighbourhood::check_client_pool;
use super::vpn_connection::{overlaps, subnets};
use super::vpn_gateway::{gateway_busy, ssl_connections, ssl_gateway_for_server, writable_child, VpnGateway};
use super::{default_resource_group, doc, load, new_record, obj, to_doc, Lifecycle};
use crate::pki::{self, Revoked};
use crate::secrets::key_context;
use crate::validate::{self, cidr};
use crate::{ids, store_error, HandlerResult, Req};
use vpngw_model::rules::Pool;

/// Ports an SSL-VPN server cannot use (sections 8.1 and 8.2).
const FORBIDDEN_PORTS: &[u16] = &[22, 2222, 22222, 9000, 9001, 9002, 7505, 80, 443, 53, 68, 123, 4510, 4560, 500, 4500];
const CIPHERS: &[&str] = &["AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "none"];
/// How long a server's CA and server certificate are valid.
const CA_VALIDITY: std::time::Duration = std::time::Duration::from_secs(20 * 365 * 86400);
const MAX_DNS_SERVERS: usize = 3;

/// Names of servers and certificates: 1-100 characters, not starting with `http://` or
/// `https://` (the current SDK; the 2022 reference's 2-128 rule is older).
fn name_param(p: &Params) -> Result<Option<String>, ApiError> {
    match p.get("Name") {
        None => Ok(None),
        Some(n) if validate::vpc_text(n, 100) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::new(Code::InvalidName)),
    }
}

/// Address ranges neither a client pool nor a local subnet may touch (the current SDK).
const RESERVED: &[&str] = &["127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.0.0.0/8"];

fn reserved(n: &ipnet::Ipv4Net, extra: &[&str]) -> bool {
    RESERVED.iter().chain(extra).any(|r| overlaps(r, &n.to_string()))
}

/// A client pool: mask 16-29, outside the reserved ranges and 100.64.0.0/10.
fn pool(v: &str) -> Result<String, ApiError> {
    match cidr(v) {
        Some(n) if (16..=29).contains(&n.prefix_len()) && !reserved(&n, &["100.64.0.0/10"]) => Ok(n.to_string()),
        _ => Err(ApiError::arg(Code::IllegalClientIpPool, v)),
    }
}

/// Local subnets: comma-separated CIDR blocks, mask 8-32, outside the reserved ranges.
fn local_subnets(v: &str) -> Result<Vec<String>, ApiError> {
    let list = subnets(v, Code::IllegalLocalSubnet)?;
    for l in &list {
        let n: ipnet::Ipv4Net = l.parse().map_err(|_| ApiError::arg(Code::IllegalLocalSubnet, l))?;
        if n.prefix_len() < 8 || reserved(&n, &[]) {
            return Err(ApiError::arg(Code::IllegalLocalSubnet, l));
        }
    }
    Ok(list)
}

/// Each client takes four addresses of the pool (a /30 each): the pool must hold four per
/// connection the gateway allows (the current SDK's table: /27 for 5, /26 for 10, ...).
fn check_pool_size(pool: &str, ssl_connections: u32) -> Result<(), ApiError> {
    let n: ipnet::Ipv4Net = pool.parse().map_err(|_| ApiError::arg(Code::IllegalClientIpPool, pool))?;
    if (1u64 << (32 - n.prefix_len())) < 4 * ssl_connections as u64 {
        return Err(ApiError::msg(
            Code::IllegalClientIpPool,
            format!("The specified \"ClientIpPool\" ({pool}) is too small: it must hold four addresses per SSL connection of the VPN gateway ({ssl_connections})."),
        ));
    }
    Ok(())
}

/// The parameters Create and Modify share, applied to `s`.
fn apply(s: &mut SslVpnServer, p: &Params) -> Result<(), ApiError> {
    if let Some(n) = name_param(p)? {
        s.name = n;
    }
    if let Some(v) = p.opt("ClientIpPool") {
        s.client_ip_pool = pool(v)?;
    }
    if let Some(v) = p.opt("LocalSubnet") {
        s.local_subnet = local_subnets(v)?;
    }
    if let Some(v) = p.opt("Proto") {
        s.proto = match v.to_ascii_uppercase().as_str() {
            "UDP" => "UDP".into(),
            "TCP" => "TCP".into(),
            _ => return Err(ApiError::invalid("Proto")),
        };
    }
    if let Some(v) = p.opt("Cipher") {
        s.cipher = CIPHERS.iter().find(|c| c.eq_ignore_ascii_case(v)).ok_or_else(|| ApiError::invalid("Cipher"))?.to_string();
    }
    if let Some(v) = p.opt("Port") {
        match v.trim().parse::<u16>() {
            Ok(port) if port > 0 && !FORBIDDEN_PORTS.contains(&port) => s.port = port,
            _ => return Err(ApiError::arg(Code::IllegalSslVpnPort, v)),
        }
    }
    if let Some(v) = p.opt_bool("Compress")? {
        s.compress = v;
    }
    if let Some(v) = p.opt("DnsServers") {
        let list: Vec<String> = v.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_string).collect();
        if list.len() > MAX_DNS_SERVERS || list.iter().any(|d| d.parse::<std::net::Ipv4Addr>().is_err()) {
            return Err(ApiError::invalid("DnsServers"));
        }
        s.dns_servers = list;
    }
    if let Some(v) = p.opt_bool("EnableMultiFactorAuth")? {
        if v {
            return Err(ApiError::new(Code::MultiFactorAuthUnsupported));
        }
        s.enable_multi_factor_auth = false;
    }
    for (param, field) in [("IDaaSInstanceId", &mut s.idaas_instance_id), ("IDaaSRegionId", &mut s.idaas_region_id), ("IDaaSApplicationId", &mut s.idaas_application_id)] {
        if let Some(v) = p.get(param) {
            if v.len() > 128 {
                return Err(ApiError::invalid(param));
            }
            *field = v.to_string();
        }
    }
    if s.local_subnet.iter().any(|l| overlaps(l, &s.client_ip_pool)) {
        return Err(ApiError::arg(Code::IllegalClientIpPool, &s.client_ip_pool));
    }
    Ok(())
}

/// The client pool must be large enough, and overlap neither the VPC, the gateway's
/// IPsec-server pool, nor a route of the VPC's gateways ([`check_client_pool`]).
async fn check_pool(req: &Req<'_>, gw: &Record, pool: &str) -> Result<(), ApiError> {
    check_pool_size(pool, doc::<VpnGateway>(gw)?.ssl_connections)?;
    check_client_pool(req, gw, pool, Pool::Ssl).await
}

fn pki_error(e: pki::PkiError) -> ApiError {
    tracing::error!(error = %e, "Certificate issuance failed.");
    ApiError::internal()
}

pub async fn create_ssl_vpn_server(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (gw_rec, gw) = ssl_gateway_for_server(req, p.req("VpnGatewayId")?).await?;
    let read = super::neighbourhood::neighbourhood(req, &gw_rec).await?;
    if read.n.side(&gw_rec.id.as_str().into()).is_some_and(|s| s.ssl_pool.is_some()) {
        return Err(ApiError::msg(Code::ResourceQuotaFull, "The quota of resource is full: a VPN gateway has one SSL-VPN server."));
    }
    let id = ids::new_id("vss");
    let mut s = SslVpnServer {
        name: id.clone(),
        // The current SDK's default (the 2022 reference said UDP).
        proto: "TCP".into(),
        port: 1194,
        cipher: "AES-128-CBC".into(),
        compress: false,
        internet_ip: gw.internet_ip.clone(),
        resource_group_id: if gw.resource_group_id.is_empty() { default_resource_group(req.scope.account) } else { gw.resource_group_id.clone() },
        ..Default::default()
    };
    apply(&mut s, &p)?;
    check_pool_size(&s.client_ip_pool, gw.ssl_connections)?;
    read.n.client_pool_ok(&gw_rec.id.as_str().into(), &s.client_ip_pool, Pool::Ssl).map_err(super::neighbourhood::model_error)?;
    req.dry_run()?;
    let ca = pki::new_ca(&format!("vpngw SSL-VPN CA {id}"), CA_VALIDITY).map_err(pki_error)?;
    let server = pki::issue(&ca.cert_pem, &ca.key_pem, &id, pki::Role::Server, CA_VALIDITY).map_err(pki_error)?;
    let sealer = &req.svc.config.sealer;
    s.ca_cert = ca.cert_pem;
    s.ca_key = sealer.seal(&key_context(&id, "ca_key"), &ca.key_pem).into();
    s.server_cert = server.cert_pem;
    s.server_key = sealer.seal(&key_context(&id, "server_key"), &server.key_pem).into();
    let rec = new_record(req, Kind::SslVpnServer, &id, Some(gw_rec.id.clone()), Lifecycle::Active.as_str(), to_doc(&s));
    let body = obj(json!({"SslVpnServerId": id, "Name": s.name}));
    let mut muts = vec![Mutation::Put(rec)];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, body).await
}

/// An SSL-VPN server of the caller's and its gateway, which must accept writes.
async fn writable_server(req: &Req<'_>, id: &str) -> Result<(Record, SslVpnServer, Record), ApiError> {
    writable_child(req, Kind::SslVpnServer, id, Code::InvalidSslVpnServerId).await
}

pub async fn modify_ssl_vpn_server(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (mut rec, before, gw_rec) = writable_server(req, p.req("SslVpnServerId")?).await?;
    let mut s = before.clone();
    apply(&mut s, &p)?;
    if s.client_ip_pool != before.client_ip_pool {
        check_pool(req, &gw_rec, &s.client_ip_pool).await?;
    }
    req.dry_run()?;
    let gw: VpnGateway = doc(&gw_rec)?;
    let connections = req.svc.live_ssl_clients(rec.parent.as_deref(), &rec.id).await?.len();
    let body = obj(server_json(req, &rec, &s, gw.ssl_connections, connections));
    if s == before {
        return req.commit(Vec::new(), body).await;
    }
    let changes_plane = s.intent_digest() != before.intent_digest();
    rec.doc = to_doc(&s);
    let mut muts = vec![Mutation::Put(rec)];
    if changes_plane {
        muts.extend(gateway_busy(req, gw_rec));
    }
    req.commit(muts, body).await
}

pub async fn delete_ssl_vpn_server(req: &mut Req<'_>) -> HandlerResult {
    let (rec, _, gw_rec) = writable_server(req, req.params.req("SslVpnServerId")?).await?;
    if req.store().count(Kind::SslVpnClientCert, &req.scope, Some(&rec.id)).await.map_err(store_error)? > 0 {
        return Err(ApiError::new(Code::DependencyViolationSslVpnClientCert));
    }
    req.dry_run()?;
    let mut muts = vec![Mutation::Delete { kind: Kind::SslVpnServer, id: rec.id }];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, Default::default()).await
}

fn server_json(req: &Req<'_>, rec: &Record, s: &SslVpnServer, max_connections: u32, connections: usize) -> Value {
    json!({
        "SslVpnServerId": rec.id, "Name": s.name, "VpnGatewayId": rec.parent, "RegionId": req.scope.region,
        "CreateTime": rec.created_ms, "InternetIp": s.internet_ip, "ClientIpPool": s.client_ip_pool,
        "LocalSubnet": s.local_subnet.join(","), "Proto": s.proto, "Port": s.port, "Cipher": s.cipher, "Compress": s.compress,
        "DnsServers": s.dns_servers.join(","), "Connections": connections, "MaxConnections": max_connections,
        "EnableMultiFactorAuth": s.enable_multi_factor_auth, "IDaaSInstanceId": s.idaas_instance_id, "IDaaSRegionId": s.idaas_region_id,
        "IDaaSApplicationId": s.idaas_application_id, "IDaaSInstanceVersion": "", "ResourceGroupId": s.resource_group_id,
    })
}

pub async fn describe_ssl_vpn_servers(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (offset, limit, number, size) = validate::paging(&p)?;
    let mut q = ListQuery { parent: p.opt("VpnGatewayId").map(str::to_string), offset, limit, ..Default::default() };
    if let Some(id) = p.opt("SslVpnServerId") {
        q.ids = vec![id.to_string()];
    }
    super::field_filters(&mut q, &p, &[("Name", "name"), ("ResourceGroupId", "resource_group_id")]);
    let page = req.store().list(Kind::SslVpnServer, &req.scope, &q).await.map_err(store_error)?;
    let mut items = Vec::new();
    for rec in &page.items {
        let s: SslVpnServer = doc(rec)?;
        let max = ssl_connections(req, rec.parent.as_deref()).await?;
        let connections = req.svc.live_ssl_clients(rec.parent.as_deref(), &rec.id).await?.len();
        items.push(server_json(req, rec, &s, max, connections));
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "SslVpnServers": {"SslVpnServer": items}})))
}

// ---- client certificates ----

pub async fn create_ssl_vpn_client_cert(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (srv_rec, s, _) = writable_server(req, p.req("SslVpnServerId")?).await?;
    let name = name_param(&p)?;
    if req.store().count(Kind::SslVpnClientCert, &req.scope, Some(&srv_rec.id)).await.map_err(store_error)? >= req.svc.config.quotas.ssl_client_certs_per_server {
        return Err(ApiError::new(Code::ResourceQuotaFull));
    }
    req.dry_run()?;
    let id = ids::new_id("vsc");
    let sealer = &req.svc.config.sealer;
    let ca_key = sealer.open(&key_context(&srv_rec.id, "ca_key"), &s.ca_key).map_err(|e| {
        tracing::error!(ssl_vpn_server = %srv_rec.id, error = %e, "The server's CA key does not open.");
        ApiError::internal()
    })?;
    let issued = pki::issue(&s.ca_cert, &ca_key, &id, pki::Role::Client, req.svc.config.ssl_client_cert_validity).map_err(pki_error)?;
    let c = SslVpnClientCert {
        name: name.unwrap_or_else(|| id.clone()),
        serial: issued.serial,
        cert: issued.cert_pem,
        key: sealer.seal(&key_context(&id, "key"), &issued.key_pem).into(),
        not_after_ms: issued.not_after_ms,
        resource_group_id: s.resource_group_id.clone(),
    };
    // A new certificate needs nothing from the data plane (OpenVPN accepts whatever the CA
    // signed), so the gateway does not go through `updating`.
    let rec = new_record(req, Kind::SslVpnClientCert, &id, Some(srv_rec.id.clone()), Lifecycle::Active.as_str(), to_doc(&c));
    let body = obj(json!({"SslVpnClientCertId": id, "Name": c.name}));
    req.commit(vec![Mutation::Put(rec)], body).await
}

/// A client certificate of the caller's, with its server and the server's gateway.
async fn client_cert(req: &Req<'_>, id: &str) -> Result<(Record, SslVpnClientCert, Record, SslVpnServer), ApiError> {
    let rec = load(req, Kind::SslVpnClientCert, id, Code::InvalidSslVpnClientCertId).await?;
    let c: SslVpnClientCert = doc(&rec)?;
    let srv = load(req, Kind::SslVpnServer, rec.parent.as_deref().unwrap_or_default(), Code::InvalidSslVpnServerId).await?;
    let s = doc(&srv)?;
    Ok((rec, c, srv, s))
}

pub async fn modify_ssl_vpn_client_cert(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (mut rec, mut c, _, _) = client_cert(req, p.req("SslVpnClientCertId")?).await?;
    if let Some(n) = name_param(&p)? {
        c.name = n;
    }
    let body = obj(json!({"SslVpnClientCertId": rec.id, "Name": c.name}));
    rec.doc = to_doc(&c);
    req.commit(vec![Mutation::Put(rec)], body).await
}

pub async fn delete_ssl_vpn_client_cert(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (rec, c, _, _) = client_cert(req, p.req("SslVpnClientCertId")?).await?;
    let (mut srv_rec, mut s, gw_rec) = writable_server(req, rec.parent.as_deref().unwrap_or_default()).await?;
    // Revoked: the serial joins the server's CRL; the data plane disconnects its client.
    s.revoked.push(Revoked { serial: c.serial.clone(), revoked_ms: crate::now_ms() });
    srv_rec.doc = to_doc(&s);
    let mut muts = vec![Mutation::Delete { kind: Kind::SslVpnClientCert, id: rec.id }, Mutation::Put(srv_rec)];
    muts.extend(gateway_busy(req, gw_rec));
    req.commit(muts, Default::default()).await
}

fn cert_json(req: &Req<'_>, rec: &Record, c: &SslVpnClientCert, now: i64) -> Value {
    json!({
        "SslVpnClientCertId": rec.id, "Name": c.name, "SslVpnServerId": rec.parent, "RegionId": req.scope.region,
        "CreateTime": rec.created_ms, "EndTime": c.not_after_ms, "Status": c.status(now), "ResourceGroupId": c.resource_group_id,
    })
}

pub async fn describe_ssl_vpn_client_certs(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (offset, limit, number, size) = validate::paging(&p)?;
    let mut q = ListQuery { parent: p.opt("SslVpnServerId").map(str::to_string), offset, limit, ..Default::default() };
    if let Some(id) = p.opt("SslVpnClientCertId") {
        q.ids = vec![id.to_string()];
    }
    super::field_filters(&mut q, &p, &[("Name", "name"), ("ResourceGroupId", "resource_group_id")]);
    let page = req.store().list(Kind::SslVpnClientCert, &req.scope, &q).await.map_err(store_error)?;
    let now = crate::now_ms();
    let items = page.items.iter().map(|r| Ok(cert_json(req, r, &doc(r)?, now))).collect::<Result<Vec<_>, ApiError>>()?;
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "SslVpnClientCertKeys": {"SslVpnClientCertKey": items}})))
}

pub async fn describe_ssl_vpn_client_cert(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (rec, c, _, s) = client_cert(req, p.req("SslVpnClientCertId")?).await?;
    let key = req.svc.config.sealer.open(&key_context(&rec.id, "key"), &c.key).map_err(|e| {
        tracing::error!(ssl_vpn_client_cert = %rec.id, error = %e, "The client key does not open.");
        ApiError::internal()
    })?;
    let mut body = cert_json(req, &rec, &c, crate::now_ms());
    let extra = json!({
        "CaCert": s.ca_cert, "ClientCert": c.cert, "ClientKey": key,
        "ClientConfig": crate::openvpn::client_config(&s, &s.ca_cert, &c.cert, &key),
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    Ok(obj(body))
}

// ---- observation: logs and clients ----

pub async fn describe_vpn_ssl_server_logs(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let srv = load(req, Kind::SslVpnServer, p.req("VpnSslServerId")?, Code::InvalidSslVpnServerId).await?;
    let q = LogQuery::parse(&p, crate::now_ms() / 1000, None)?;
    let cert = match p.opt("SslVpnClientCertId") {
        Some(id) => {
            let c = load(req, Kind::SslVpnClientCert, id, Code::InvalidSslVpnClientCertId).await?;
            if c.parent.as_deref() != Some(srv.id.as_str()) {
                return Err(ApiError::new(Code::InvalidSslVpnClientCertId));
            }
            Some(c.id)
        }
        None => None,
    };
    let lines = req.svc.live_ssl_log(srv.parent.as_deref(), &srv.id).await?;
    let (total, page) = q.page(lines.into_iter().filter(|l| cert.as_deref().is_none_or(|c| l.contains(c))).collect());
    Ok(obj(json!({"Count": total, "PageNumber": q.number, "PageSize": q.size, "IsCompleted": true, "Data": {"Logs": page}})))
}

pub async fn describe_ssl_vpn_clients(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let gw = load(req, Kind::VpnGateway, p.req("VpnGatewayId")?, Code::InvalidVpnGatewayId).await?;
    let (offset, limit, number, size) = validate::paging(&p)?;
    let mut clients = Vec::new();
    if req.svc.expects_dataplane() {
        for s in super::children(req, Kind::SslVpnServer, &gw.id).await? {
            clients.extend(req.svc.live_ssl_clients(Some(&gw.id), &s.id).await?);
        }
    }
    clients.sort_by(|x, y| (x.connected_ms, &x.common_name).cmp(&(y.connected_ms, &y.common_name)));
    let total = clients.len();
    let items: Vec<Value> = clients
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|c| {
            json!({
                "CommonName": c.common_name, "Ip": c.ip, "Port": c.port.to_string(), "PrivateIp": c.private_ip,
                "ConnectedTime": c.connected_ms, "ReceiveBytes": c.receive_bytes, "SendBytes": c.send_bytes, "Status": "online",
            })
        })
        .collect();
    Ok(obj(json!({"VpnGatewayId": gw.id, "RegionId": req.scope.region, "TotalCount": total, "PageNumber": number, "PageSize": size, "ClientInfoList": items})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn certificate_status_follows_the_expiry() {
        let c = SslVpnClientCert { not_after_ms: 10 * 86400 * 1000, ..Default::default() };
        assert_eq!(c.status(0), "normal");
        assert_eq!(c.status(3 * 86400 * 1000), "expiring-soon");
        assert_eq!(c.status(10 * 86400 * 1000), "expired");
    }

    #[test]
    fn server_parameters_are_checked() {
        let mut s = SslVpnServer { client_ip_pool: "192.168.0.0/24".into(), local_subnet: vec!["10.0.0.0/8".into()], ..Default::default() };
        for port in ["22", "443", "4500", "9001", "0", "65536", "x"] {
            assert_eq!(apply(&mut s.clone(), &params(&[("Port", port)])).unwrap_err().code, Code::IllegalSslVpnPort, "{port}");
        }
        assert_eq!(apply(&mut s.clone(), &params(&[("ClientIpPool", "10.1.0.0/24")])).unwrap_err().code, Code::IllegalClientIpPool);
        assert_eq!(apply(&mut s.clone(), &params(&[("ClientIpPool", "192.168.0.0/30")])).unwrap_err().code, Code::IllegalClientIpPool);
        assert_eq!(apply(&mut s.clone(), &params(&[("ClientIpPool", "192.0.0.0/8")])).unwrap_err().code, Code::IllegalClientIpPool);
        assert_eq!(apply(&mut s.clone(), &params(&[("EnableMultiFactorAuth", "true")])).unwrap_err().code, Code::MultiFactorAuthUnsupported);
        assert_eq!(apply(&mut s.clone(), &params(&[("Cipher", "AES-128-GCM")])).unwrap_err().code, Code::InvalidParameter);
        assert_eq!(apply(&mut s.clone(), &params(&[("Name", "http://x")])).unwrap_err().code, Code::InvalidName);
        assert_eq!(apply(&mut s.clone(), &params(&[("Name", &"n".repeat(101))])).unwrap_err().code, Code::InvalidName);
        for bad in ["100.64.0.0/24", "127.0.0.0/24", "169.254.1.0/24", "224.0.0.0/24"] {
            assert_eq!(apply(&mut s.clone(), &params(&[("ClientIpPool", bad)])).unwrap_err().code, Code::IllegalClientIpPool, "{bad}");
        }
        for bad in ["10.0.0.0/7", "127.0.0.0/8", "10.0.0.1/8", "0.0.0.0/0"] {
            assert_eq!(apply(&mut s.clone(), &params(&[("LocalSubnet", bad)])).unwrap_err().code, Code::IllegalLocalSubnet, "{bad}");
        }
        assert!(check_pool_size("192.168.0.0/27", 5).is_ok() && check_pool_size("192.168.0.0/28", 5).is_err());
        assert!(check_pool_size("192.168.0.0/20", 1000).is_ok() && check_pool_size("192.168.0.0/21", 1000).is_err());
        apply(&mut s, &params(&[("Proto", "tcp"), ("Cipher", "aes-256-cbc"), ("Port", "1195"), ("Compress", "true"), ("DnsServers", "10.0.0.53,10.0.0.54")])).unwrap();
        assert_eq!((s.proto.as_str(), s.cipher.as_str(), s.port, s.compress, s.dns_servers.len()), ("TCP", "AES-256-CBC", 1195, true, 2));
    }
}
