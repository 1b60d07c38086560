//! The service's side of the plane boundary (`vpngw-plane`): the store read as a data plane's
//! [`IntentSource`], observations written through its [`ObservationSink`], and how the task
//! engine learns that a change has really been applied.
//!
//! Handlers never call into the data plane's daemons. They commit intent, and
//! [`Service::intent_changed`] wakes the data plane; it reports what it observes through the
//! sink, which only ever touches the observed fields, and what it has applied as converged
//! digests. Handlers ask a running plane for live facts (logs, diagnoses, SSL clients) only
//! through the async [`LivePlane`] attached to the service.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use vpngw_api::{ApiError, Code};
use vpngw_plane::{GatewayIntent, Intent, IntentSource, LivePlane, ObservationSink, PendingDiagnosis, PlaneError, Unreadable};
use vpngw_store::{Kind, ListQuery, Mutation, Record, Scope, StoreError};

pub use crate::handlers::{CustomerGateway, HealthCheck, IkeCfg, IpsecCfg, IpsecServer, Tunnel, VSwitch, VpnConnection, VpnGateway, VpnRoute, NOT_ESTABLISHED};
pub use crate::handlers::{DiagnoseItem, GatewayDiagnosis, SslClient, SslVpnClientCert, SslVpnServer, PRIVATE_PROBE, PUBLIC_PROBE};
pub use crate::secrets::key_context;
use crate::Service;
pub use vpngw_model::plane::{gateway_digest, status, Diagnosis, Observation};

/// A live plane that cannot answer: `ServiceUnavailable`, which clients retry.
fn unavailable(gateway: &str, e: PlaneError) -> ApiError {
    tracing::warn!(gateway = %gateway, error = %e, "The data plane could not answer.");
    ApiError::new(Code::ServiceUnavailable)
}

fn plane_error(e: StoreError) -> PlaneError {
    PlaneError(e.to_string())
}

#[async_trait]
impl IntentSource for Service {
    async fn intent(&self) -> vpngw_plane::Result<Intent> {
        self.read_intent().await.map_err(plane_error)
    }
    async fn changed(&self) {
        self.intent_changed.notified().await
    }
    async fn pending_diagnoses(&self) -> vpngw_plane::Result<Vec<PendingDiagnosis>> {
        Service::pending_diagnoses(self).await.map_err(plane_error)
    }
    fn diagnoses_waiting(&self) {
        Service::diagnoses_waiting(self)
    }
    fn open_secret(&self, record: &str, field: &str, sealed: &str) -> vpngw_plane::Result<String> {
        self.config.sealer.open(&key_context(record, field), sealed).map_err(|e| PlaneError(format!("open {field} of {record}: {e}")))
    }
}

#[async_trait]
impl ObservationSink for Service {
    async fn connection(&self, id: &str, o: &Observation) -> vpngw_plane::Result<bool> {
        self.observe(id, o).await.map_err(plane_error)
    }
    async fn ipsec_server(&self, id: &str, online: u32) -> vpngw_plane::Result<bool> {
        self.observe_ipsec_server(id, online).await.map_err(plane_error)
    }
    async fn diagnosis(&self, id: &str, item: DiagnoseItem) -> vpngw_plane::Result<bool> {
        self.observe_diagnosis(id, item).await.map_err(plane_error)
    }
    async fn converged(&self, id: &str, digest: &str) -> vpngw_plane::Result<()> {
        self.store.set_converged(id, digest).await.map_err(plane_error)?;
        self.tasks_changed.notify_one();
        Ok(())
    }
}

impl Service {
    /// Connects a live data plane: from now on `updating` ends only when it has applied a
    /// change, and handlers ask it for logs, diagnoses and clients.
    pub fn attach_dataplane(&self, live: std::sync::Arc<dyn LivePlane>) {
        self.expect_dataplane();
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Some(live);
    }

    /// This process no longer runs the data plane (it lost the cluster's leadership).
    pub fn detach_dataplane(&self) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The cluster has a data plane (this process's or another's): `updating` ends only when
    /// it has applied a change.
    pub fn expect_dataplane(&self) {
        self.dataplane_expected.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn expects_dataplane(&self) -> bool {
        self.dataplane_expected.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The live data plane, if one is attached.
    pub fn dataplane(&self) -> Option<std::sync::Arc<dyn LivePlane>> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Says how live questions reach a fleet's agents (asked when a fleet exists and this
    /// process runs no data plane).
    pub fn attach_fleet(&self, live: std::sync::Arc<dyn LivePlane>) {
        *self.fleet_live.write().unwrap_or_else(|e| e.into_inner()) = Some(live);
    }

    /// The data plane to ask live questions: this process's; else a fleet's agent, when the
    /// cluster has agents; none when the cluster has no data plane (nothing runs, so nothing is
    /// live); unavailable when another server of the cluster runs it.
    async fn live_here(&self) -> Result<Option<std::sync::Arc<dyn LivePlane>>, ApiError> {
        if let Some(l) = self.dataplane() {
            return Ok(Some(l));
        }
        let fleet = self.fleet_live.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(f) = fleet {
            let agents = self.store.agents().await.map_err(|e| {
                tracing::warn!(error = %e, "Cannot read the fleet's agents.");
                ApiError::new(Code::ServiceUnavailable)
            })?;
            if !agents.is_empty() {
                return Ok(Some(f));
            }
        }
        if self.expects_dataplane() {
            return Err(ApiError::msg(Code::ServiceUnavailable, "The data plane runs on another server of the cluster: ask that server."));
        }
        Ok(None)
    }

    /// The clients connected to an SSL-VPN server now (its gateway's plane answers; without a
    /// data plane there are none).
    pub(crate) async fn live_ssl_clients(&self, gateway: Option<&str>, server: &str) -> Result<Vec<SslClient>, ApiError> {
        let (Some(live), Some(gw)) = (self.live_here().await?, gateway) else { return Ok(Vec::new()) };
        live.ssl_clients(gw, server).await.map_err(|e| unavailable(gw, e))
    }

    /// An SSL-VPN server's log lines, oldest first.
    pub(crate) async fn live_ssl_log(&self, gateway: Option<&str>, server: &str) -> Result<Vec<String>, ApiError> {
        let (Some(live), Some(gw)) = (self.live_here().await?, gateway) else { return Ok(Vec::new()) };
        live.ssl_log(gw, server).await.map_err(|e| unavailable(gw, e))
    }

    /// The lines of a gateway's charon that name one of `keys`, oldest first.
    pub(crate) async fn live_ipsec_log(&self, gateway: Option<&str>, keys: &[String]) -> Result<Vec<String>, ApiError> {
        let (Some(live), Some(gw)) = (self.live_here().await?, gateway) else { return Ok(Vec::new()) };
        live.ipsec_log(gw, keys).await.map_err(|e| unavailable(gw, e))
    }

    /// The newest failure of each of a gateway's tunnels (`key`, `peer_ip`), one per tunnel.
    pub(crate) async fn live_ipsec_diagnoses(&self, gateway: &str, tunnels: &[(String, String)], window_s: i64) -> Result<Vec<Option<Diagnosis>>, ApiError> {
        let Some(live) = self.live_here().await? else { return Ok(vec![None; tunnels.len()]) };
        let found = live.ipsec_diagnoses(gateway, tunnels, window_s).await.map_err(|e| unavailable(gateway, e))?;
        Ok(if found.len() == tunnels.len() { found } else { vec![None; tunnels.len()] })
    }

    /// What exists, for the metrics' gauges: resources by kind and state; tunnels by
    /// negotiation status; enabled health checks by result; BGP sessions up and down and the
    /// prefixes they learned; IPsec server clients online. One reading of the store per scrape.
    pub async fn census(&self) -> Result<vpngw_metrics::Census, StoreError> {
        let mut c = vpngw_metrics::Census::default();
        let count = |map: &mut Vec<(String, i64)>, key: &str| match map.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => map.push((key.to_string(), 1)),
        };
        for kind in Kind::ALL {
            let records = self.store.all(*kind).await?;
            let mut states: Vec<(String, i64)> = Vec::new();
            for r in &records {
                count(&mut states, &r.status);
            }
            c.resources.extend(states.into_iter().map(|(s, n)| (kind.as_str().to_string(), s, n)));
            match kind {
                Kind::VpnConnection => {
                    for r in &records {
                        let Ok(conn) = serde_json::from_value::<VpnConnection>(r.doc.clone()) else { continue };
                        if conn.dual() {
                            for t in &conn.tunnels {
                                count(&mut c.tunnels, t.status.as_str());
                                if conn.enable_tunnels_bgp {
                                    count(&mut c.bgp, if t.bgp_up { "established" } else { "down" });
                                }
                            }
                        } else {
                            count(&mut c.tunnels, conn.status.as_str());
                            if conn.bgp.enable {
                                count(&mut c.bgp, if conn.bgp_up { "established" } else { "down" });
                            }
                        }
                        if conn.health.enable {
                            count(&mut c.health, if conn.health_status == "success" { "success" } else { "failed" });
                        }
                        c.bgp_prefixes += conn.bgp_routes.len() as i64;
                    }
                }
                Kind::IpsecServer => {
                    for r in &records {
                        if let Ok(s) = serde_json::from_value::<IpsecServer>(r.doc.clone()) {
                            c.ipsec_clients_online += i64::from(s.online_client_count);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Reads everything a data plane must hold.
    pub async fn read_intent(&self) -> Result<Intent, StoreError> {
        let mut records: HashMap<Kind, Vec<Record>> = HashMap::new();
        for kind in [Kind::CustomerGateway, Kind::VSwitch, Kind::VpnConnection, Kind::VpnRoute, Kind::IpsecServer, Kind::SslVpnClientCert, Kind::SslVpnServer, Kind::VpnGateway] {
            records.insert(kind, self.store.all(kind).await?);
        }
        Ok(assemble(records))
    }

    /// Reads what the data plane of these gateways (an agent's share) must hold, and nothing
    /// else: each gateway and everything under it, its VPC's VSwitches, and the customer
    /// gateways its connections name. Gateways that do not exist are left out.
    pub async fn read_intent_of(&self, ids: &[String]) -> Result<Intent, StoreError> {
        let mut records: HashMap<Kind, Vec<Record>> = HashMap::new();
        let mut vpcs: HashSet<(Scope, String)> = HashSet::new();
        let mut cgws: HashMap<Scope, HashSet<String>> = HashMap::new();
        let kinds = [Kind::VpnConnection, Kind::VpnRoute, Kind::IpsecServer, Kind::SslVpnServer, Kind::SslVpnClientCert];
        for id in ids {
            let Some(gw) = self.store.get_any(Kind::VpnGateway, id).await? else { continue };
            let scope = Scope { account: gw.account, region: gw.region.clone() };
            if let Some(vpc) = gw.parent.clone() {
                if vpcs.insert((scope.clone(), vpc.clone())) {
                    let vsw = self.store.family(&scope, &vpc, &[Kind::VSwitch]).await?;
                    records.entry(Kind::VSwitch).or_default().extend(vsw.into_iter().filter(|r| r.kind == Kind::VSwitch));
                }
            }
            for r in self.store.family(&scope, id, &kinds).await?.into_iter().filter(|r| r.kind != Kind::VpnGateway) {
                if r.kind == Kind::VpnConnection {
                    let named = r.doc["cgw_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string));
                    cgws.entry(scope.clone()).or_default().extend(named);
                }
                records.entry(r.kind).or_default().push(r);
            }
            records.entry(Kind::VpnGateway).or_default().push(gw);
        }
        for (scope, ids) in cgws {
            let q = ListQuery { ids: ids.into_iter().collect(), limit: u64::MAX >> 1, ..Default::default() };
            records.entry(Kind::CustomerGateway).or_default().extend(self.store.list(Kind::CustomerGateway, &scope, &q).await?.items);
        }
        Ok(assemble(records))
    }

    /// Reads a record's document, lets `f` change its observed fields, and commits it when `f`
    /// says something changed; all under the write lock, so a handler's read-modify-write and
    /// an observation never interleave. Returns whether anything changed.
    /// `fence` (an agent's `Mutation::Fence`) goes into the same commit: a write of an agent
    /// that no longer holds the resource's side changes nothing.
    async fn update_observed<T, F>(&self, kind: Kind, id: &str, fence: Option<Mutation>, f: F) -> Result<bool, StoreError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce(&mut T) -> bool,
    {
        self.with_write_lock(async {
            let Some(mut rec) = self.store.get_any(kind, id).await? else { return Ok(false) };
            let Ok(mut doc) = serde_json::from_value::<T>(rec.doc.clone()) else { return Ok(false) };
            if !f(&mut doc) {
                return Ok(false);
            }
            rec.doc = serde_json::to_value(&doc).map_err(|e| StoreError::Other(e.to_string()))?;
            self.store.commit(fence.into_iter().chain([Mutation::Put(rec)]).collect()).await?;
            Ok(true)
        })
        .await
    }

    /// Records the result of a diagnosis probe (DiagnoseVpnGateway) that was still pending.
    pub async fn observe_diagnosis(&self, id: &str, item: DiagnoseItem) -> Result<bool, StoreError> {
        self.observe_diagnosis_fenced(id, item, None).await
    }

    pub async fn observe_diagnosis_fenced(&self, id: &str, item: DiagnoseItem, fence: Option<Mutation>) -> Result<bool, StoreError> {
        self.update_observed(Kind::VpnGatewayDiagnosis, id, fence, |d: &mut GatewayDiagnosis| d.record(item, crate::now_ms())).await
    }

    /// Says that a diagnosis has probes the data plane has yet to run (the next pass looks).
    pub fn diagnoses_waiting(&self) {
        self.diagnoses_pending.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The diagnoses whose probes the data plane has yet to run, with their gateway; none
    /// (without reading the store) unless [`Service::diagnoses_waiting`] was said since the last
    /// call. A caller that cannot start one says it again.
    pub async fn pending_diagnoses(&self) -> Result<Vec<PendingDiagnosis>, StoreError> {
        if !self.diagnoses_pending.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .all(Kind::VpnGatewayDiagnosis)
            .await?
            .into_iter()
            .filter_map(|r| Some(PendingDiagnosis { gateway_id: r.parent?, diagnosis: serde_json::from_value::<GatewayDiagnosis>(r.doc).ok()?, id: r.id }))
            .filter(|p| !p.diagnosis.pending.is_empty())
            .collect())
    }

    /// Records how many clients an IPsec server has online (observed), changing nothing else.
    pub async fn observe_ipsec_server(&self, id: &str, online: u32) -> Result<bool, StoreError> {
        self.observe_ipsec_server_fenced(id, online, None).await
    }

    pub async fn observe_ipsec_server_fenced(&self, id: &str, online: u32, fence: Option<Mutation>) -> Result<bool, StoreError> {
        self.update_observed(Kind::IpsecServer, id, fence, |s: &mut IpsecServer| {
            if s.online_client_count == online {
                return false;
            }
            tracing::info!(ipsec_server = %id, online, "Observed an IPsec server.");
            s.online_client_count = online;
            true
        })
        .await
    }

    /// Records an observation of a connection's negotiation and health, changing nothing else.
    /// Returns whether anything changed.
    pub async fn observe(&self, conn_id: &str, o: &Observation) -> Result<bool, StoreError> {
        self.observe_fenced(conn_id, o, None).await
    }

    pub async fn observe_fenced(&self, conn_id: &str, o: &Observation, fence: Option<Mutation>) -> Result<bool, StoreError> {
        self.update_observed(Kind::VpnConnection, conn_id, fence, |c: &mut VpnConnection| {
            let snapshot = |c: &VpnConnection| {
                (
                    c.status,
                    c.tunnels.iter().map(|t| (t.status, t.bgp_up)).collect::<Vec<_>>(),
                    c.health_status.clone(),
                    c.plane_state.clone(),
                    c.plane_unsupported.clone(),
                    c.bgp_up,
                    c.bgp_routes.clone(),
                    c.bgp_info.clone(),
                )
            };
            let before = snapshot(c);
            if let Some(s) = o.status {
                c.status = s;
            }
            for t in c.tunnels.iter_mut() {
                if let Some(s) = o.tunnels.get(&t.tunnel_id) {
                    t.status = *s;
                }
                if let Some(up) = o.bgp.get(t.tunnel_id.as_str()) {
                    t.bgp_up = *up;
                }
            }
            if let Some(up) = o.bgp.get(conn_id) {
                c.bgp_up = *up;
            }
            for key in o.bgp.keys() {
                match o.bgp_info.get(key) {
                    Some(info) => c.bgp_info.insert(key.clone(), info.clone()),
                    None => c.bgp_info.remove(key),
                };
            }
            // Each observed session's routes replace what it had (a route it still has keeps
            // when it was first learned).
            for (key, learned) in &o.learned {
                let before: Vec<vpngw_model::connection::BgpRoute> = c.bgp_routes.iter().filter(|r| &r.tunnel == key).cloned().collect();
                c.bgp_routes.retain(|r| &r.tunnel != key);
                let now = crate::now_ms();
                for l in learned {
                    let created_ms = before.iter().find(|b| &b.route == l).map(|b| b.created_ms).unwrap_or(now);
                    c.bgp_routes.push(vpngw_model::connection::BgpRoute { tunnel: key.clone(), route: l.clone(), created_ms });
                }
            }
            if let Some(h) = &o.health {
                c.health_status = h.clone();
            }
            if let Some(p) = &o.plane {
                c.plane_state = p.clone();
                c.plane_unsupported = o.unsupported.clone();
            }
            if before == snapshot(c) {
                return false;
            }
            tracing::info!(connection = %conn_id, status = %c.status, tunnels = ?o.tunnels, health = %c.health_status, bgp = ?o.bgp, "Observed a connection.");
            true
        })
        .await
    }

    /// The documents of a gateway's children of one kind.
    async fn children<T: serde::de::DeserializeOwned>(&self, kind: Kind, scope: &Scope, gw: &str) -> Result<Vec<(String, T)>, StoreError> {
        let q = ListQuery { parent: Some(gw.to_string()), limit: u64::MAX >> 1, ..Default::default() };
        Ok(self.store.list(kind, scope, &q).await?.items.into_iter().filter_map(|r| serde_json::from_value(r.doc).ok().map(|d| (r.id, d))).collect())
    }

    /// The intent digest the store holds for a resource, as [`ObservationSink::converged`] reports it once applied.
    pub async fn intent_digest(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        let Some(rec) = self.store.get_any(kind, id).await? else { return Ok(None) };
        match kind {
            // An attachment's changes (its routes too) are applied by its own gateway.
            Kind::VpnConnection => match serde_json::from_value::<VpnConnection>(rec.doc).ok() {
                Some(c) if c.is_attachment() => {
                    let scope = Scope { account: rec.account, region: rec.region.clone() };
                    let routes: Vec<VpnRoute> = self.children(Kind::VpnRoute, &scope, &vpngw_model::connection::attachment_gateway_id(&rec.id)).await?.into_iter().map(|(_, r)| r).collect();
                    Ok(Some(gateway_digest(&c.attachment_gateway(), &[(rec.id.clone(), c.intent_digest())], &routes, &[], &[])))
                }
                other => Ok(other.map(|c| c.intent_digest())),
            },
            Kind::VpnGateway => {
                let Ok(gw) = serde_json::from_value::<VpnGateway>(rec.doc.clone()) else { return Ok(None) };
                let scope = Scope { account: rec.account, region: rec.region.clone() };
                let conns: Vec<(String, String)> = self.children::<VpnConnection>(Kind::VpnConnection, &scope, &rec.id).await?.into_iter().map(|(id, c)| (id, c.intent_digest())).collect();
                let routes: Vec<VpnRoute> = self.children(Kind::VpnRoute, &scope, &rec.id).await?.into_iter().map(|(_, r)| r).collect();
                let servers: Vec<IpsecServer> = self.children(Kind::IpsecServer, &scope, &rec.id).await?.into_iter().map(|(_, s)| s).collect();
                let ssl: Vec<SslVpnServer> = self.children(Kind::SslVpnServer, &scope, &rec.id).await?.into_iter().map(|(_, s)| s).collect();
                Ok(Some(gateway_digest(&gw, &conns, &routes, &servers, &ssl)))
            }
            _ => Ok(None),
        }
    }
}

/// Builds the intent from its records, by kind (each in creation order). A document that
/// cannot be read is listed as such, and the gateway it belongs to (or whose connections it
/// serves) is frozen.
fn assemble(mut records: HashMap<Kind, Vec<Record>>) -> Intent {
    let mut take = |kind: Kind| records.remove(&kind).unwrap_or_default();
    let mut unreadable: Vec<Unreadable> = Vec::new();
    fn read<T: serde::de::DeserializeOwned>(r: &Record, unreadable: &mut Vec<Unreadable>) -> Option<T> {
        match serde_json::from_value::<T>(r.doc.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                unreadable.push(Unreadable { kind: r.kind.as_str().to_string(), id: r.id.clone(), parent: r.parent.clone(), why: e.to_string() });
                None
            }
        }
    }
    let mut customer_gateways: HashMap<String, String> = HashMap::new();
    let mut bgp_peers: HashMap<String, vpngw_model::bgp::Peer> = HashMap::new();
    for r in take(Kind::CustomerGateway) {
        if let Some(c) = read::<CustomerGateway>(&r, &mut unreadable) {
            bgp_peers.insert(r.id.clone(), vpngw_model::bgp::Peer { asn: c.asn, auth_key: c.auth_key.expose().to_string() });
            customer_gateways.insert(r.id, c.ip_address);
        }
    }
    let mut vswitches: HashMap<String, Vec<ipnet::Ipv4Net>> = HashMap::new();
    for r in take(Kind::VSwitch) {
        let Some(v) = read::<VSwitch>(&r, &mut unreadable) else { continue };
        if let (Some(vpc), Ok(net)) = (r.parent, v.cidr_block.parse::<ipnet::Ipv4Net>()) {
            vswitches.entry(vpc).or_default().push(net);
        }
    }
    let mut conns: HashMap<String, Vec<(String, VpnConnection)>> = HashMap::new();
    // VPN attachments: connections of no gateway, each run as a gateway of its own.
    let mut attachments: Vec<(String, VpnConnection)> = Vec::new();
    for r in take(Kind::VpnConnection) {
        match (read::<VpnConnection>(&r, &mut unreadable), r.parent) {
            (Some(c), Some(p)) => conns.entry(p).or_default().push((r.id, c)),
            (Some(c), None) if c.is_attachment() => attachments.push((r.id, c)),
            _ => {}
        }
    }
    let mut routes: HashMap<String, Vec<VpnRoute>> = HashMap::new();
    for r in take(Kind::VpnRoute) {
        if let (Some(route), Some(p)) = (read::<VpnRoute>(&r, &mut unreadable), r.parent) {
            routes.entry(p).or_default().push(route);
        }
    }
    let mut servers: HashMap<String, Vec<(String, IpsecServer)>> = HashMap::new();
    for r in take(Kind::IpsecServer) {
        if let (Some(s), Some(p)) = (read::<IpsecServer>(&r, &mut unreadable), r.parent) {
            servers.entry(p).or_default().push((r.id, s));
        }
    }
    let now = crate::now_ms();
    let mut certs: HashMap<String, HashSet<String>> = HashMap::new();
    for r in take(Kind::SslVpnClientCert) {
        if let (Some(c), Some(p)) = (read::<SslVpnClientCert>(&r, &mut unreadable), r.parent) {
            if c.not_after_ms > now {
                certs.entry(p).or_default().insert(r.id);
            }
        }
    }
    let mut ssl: HashMap<String, Vec<(String, SslVpnServer, HashSet<String>)>> = HashMap::new();
    let mut ssl_ids = HashSet::new();
    let mut ssl_parent: HashMap<String, String> = HashMap::new();
    for r in take(Kind::SslVpnServer) {
        ssl_ids.insert(r.id.clone());
        if let Some(p) = &r.parent {
            ssl_parent.insert(r.id.clone(), p.clone());
        }
        if let (Some(s), Some(p)) = (read::<SslVpnServer>(&r, &mut unreadable), r.parent) {
            let allowed = certs.remove(&r.id).unwrap_or_default();
            ssl.entry(p).or_default().push((r.id, s, allowed));
        }
    }
    let mut gateways = Vec::new();
    let mut gateway_ids = Vec::new();
    for r in take(Kind::VpnGateway) {
        gateway_ids.push(r.id.clone());
        let Some(gw) = read::<VpnGateway>(&r, &mut unreadable) else { continue };
        let conns = conns.remove(&r.id).unwrap_or_default();
        // What this gateway's data plane depends on that cannot be read.
        let frozen = unreadable
            .iter()
            .find(|u| match Kind::parse(&u.kind) {
                Some(Kind::VpnConnection | Kind::VpnRoute | Kind::IpsecServer | Kind::SslVpnServer) => u.parent.as_deref() == Some(r.id.as_str()),
                Some(Kind::SslVpnClientCert) => u.parent.as_ref().and_then(|s| ssl_parent.get(s)) == Some(&r.id),
                Some(Kind::CustomerGateway) => conns.iter().any(|(_, c)| c.cgw_ids.iter().any(|x| *x == u.id)),
                Some(Kind::VSwitch) => u.parent.is_some() && u.parent == r.parent,
                _ => false,
            })
            .map(|u| format!("{} {} cannot be read", u.kind, u.id));
        gateways.push(GatewayIntent {
            vpc_cidrs: r.parent.as_ref().and_then(|vpc| vswitches.get(vpc)).cloned().unwrap_or_default(),
            routes: routes.remove(&r.id).unwrap_or_default(),
            servers: servers.remove(&r.id).unwrap_or_default(),
            ssl: ssl.remove(&r.id).unwrap_or_default(),
            id: r.id,
            gw,
            conns,
            frozen,
            sides: vpngw_plane::Sides::BOTH,
        });
    }
    for (id, c) in attachments {
        let gid = vpngw_model::connection::attachment_gateway_id(&id);
        gateway_ids.push(gid.clone());
        let frozen = unreadable
            .iter()
            .find(|u| match Kind::parse(&u.kind) {
                Some(Kind::VpnRoute) => u.parent.as_deref() == Some(gid.as_str()),
                Some(Kind::CustomerGateway) => c.cgw_ids.iter().any(|x| *x == u.id),
                _ => false,
            })
            .map(|u| format!("{} {} cannot be read", u.kind, u.id));
        gateways.push(GatewayIntent {
            // Its private side (the transit router's, here a stand-in network): its LocalSubnet.
            vpc_cidrs: c.local_subnet.iter().filter(|s| s.as_str() != "0.0.0.0/0").filter_map(|s| s.parse().ok()).collect(),
            routes: routes.remove(&gid).unwrap_or_default(),
            servers: Vec::new(),
            ssl: Vec::new(),
            gw: c.attachment_gateway(),
            id: gid,
            conns: vec![(id, c)],
            frozen,
            sides: vpngw_plane::Sides::BOTH,
        });
    }
    Intent { gateways, gateway_ids, ssl_ids, customer_gateways, bgp_peers, unreadable }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vpngw_store::Store;

    use crate::testing::call;

    /// An attachment reaches the data plane as a gateway of its own (`att-<id>`) holding it and
    /// its VCO routes, from its own address; its route changes are awaited on that gateway's
    /// digest, which they change.
    #[tokio::test]
    async fn an_attachment_is_a_gateway_of_its_own_for_the_data_plane() {
        let store: Arc<dyn Store> = Arc::new(vpngw_store::sqlite::SqliteStore::memory().unwrap());
        let svc = Service::new(store, crate::ServiceConfig { transition: std::time::Duration::ZERO, ..Default::default() });
        let r = "cn-hangzhou";
        let cgw = call(&svc, "CreateCustomerGateway", &[("RegionId", r), ("IpAddress", "203.0.113.9")]).await["CustomerGatewayId"].as_str().unwrap().to_string();
        let params = [("RegionId", r), ("CustomerGatewayId", cgw.as_str()), ("LocalSubnet", "0.0.0.0/0"), ("RemoteSubnet", "0.0.0.0/0")];
        let vco = call(&svc, "CreateVpnAttachment", &params).await["VpnConnectionId"].as_str().unwrap().to_string();
        crate::engine::apply_due(&svc).await;
        let gid = vpngw_model::connection::attachment_gateway_id(&vco);
        let before = svc.intent_digest(Kind::VpnConnection, &vco).await.unwrap().unwrap();
        call(&svc, "CreateVcoRouteEntry", &[("RegionId", r), ("VpnConnectionId", &vco), ("RouteDest", "10.9.0.0/16"), ("NextHop", &vco), ("Weight", "100")]).await;
        let intent = svc.read_intent().await.unwrap();
        assert!(intent.gateway_ids.contains(&gid), "{:?}", intent.gateway_ids);
        let g = intent.gateways.iter().find(|g| g.id == gid).expect("the attachment's gateway");
        assert_eq!(g.conns.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), [vco.as_str()]);
        assert_eq!(g.routes.iter().map(|r| r.route_dest.clone()).collect::<Vec<_>>(), ["10.9.0.0/16"]);
        assert_eq!(g.gw.internet_ip, g.conns[0].1.internet_ip, "its own public address");
        assert!(g.vpc_cidrs.is_empty(), "0.0.0.0/0 is no private block of its own");
        let after = svc.intent_digest(Kind::VpnConnection, &vco).await.unwrap().unwrap();
        assert_ne!(before, after, "a VCO route changes what the data plane must apply");
        assert_eq!(after, gateway_digest(&g.gw, &[(vco.clone(), g.conns[0].1.intent_digest())], &g.routes, &[], &[]), "the digest its reconciler reports");
        let keys = crate::fleet::converge_keys(&svc, Kind::VpnConnection, &vco, false).await.unwrap();
        assert_eq!(keys, [gid.as_str()], "awaited on its gateway's key, not the connection's");
    }
}
