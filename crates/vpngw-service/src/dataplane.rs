//! The service's side of the data plane: what reconcilers read (intent) and write back
//! (observations), and how the task engine learns that a change has really been applied.
//!
//! Handlers never call into the data plane. They commit intent and [`Service::intent_changed`]
//! wakes the reconcilers; reconcilers report what they applied (and what they see live) through [`PlaneView`] and what
//! they observed through [`Service::observe`], which only ever touches the observed fields.

use vpngw_store::{Kind, ListQuery, Mutation, Scope, StoreError};

pub use crate::handlers::{CustomerGateway, HealthCheck, IkeCfg, IpsecCfg, IpsecServer, Tunnel, VSwitch, VpnConnection, VpnGateway, VpnRoute, NOT_ESTABLISHED};
pub use crate::handlers::{DiagnoseItem, GatewayDiagnosis, SslClient, SslVpnClientCert, SslVpnServer, PRIVATE_PROBE, PUBLIC_PROBE};
pub use crate::secrets::key_context;
use crate::Service;
pub use vpngw_model::plane::{gateway_digest, status, Diagnosis, Observation};

/// What handlers may read of the data plane: what it has applied and what it observes live.
pub trait PlaneView: Send + Sync {
    /// The intent digest the data plane converged on, by resource id.
    fn converged(&self, resource_id: &str) -> Option<String>;
    /// The clients connected to an SSL-VPN server now.
    fn ssl_clients(&self, _server_id: &str) -> Vec<SslClient> {
        Vec::new()
    }
    /// An SSL-VPN server's log lines, oldest first.
    fn ssl_log(&self, _server_id: &str) -> Vec<String> {
        Vec::new()
    }
    /// The lines of the charon serving a gateway that name one of `keys` (the connection, tunnel
    /// or IPsec server ids its definitions are named after), oldest first.
    fn ipsec_log(&self, _gateway_id: &str, _keys: &[String]) -> Vec<String> {
        Vec::new()
    }
    /// For each tunnel of a gateway, given as (`key`, `peer_ip`): the newest negotiation failure
    /// its charon logged in the last `window_s` seconds for the definitions named after `key` (a
    /// connection or tunnel id) and the peer at `peer_ip`. The log is read once for them all.
    fn ipsec_diagnoses(&self, _gateway_id: &str, tunnels: &[(&str, &str)], _window_s: i64) -> Vec<Option<Diagnosis>> {
        vec![None; tunnels.len()]
    }
}

impl Service {
    /// Reads a record's document, lets `f` change its observed fields, and commits it when `f`
    /// says something changed; all under the write lock, so a handler's read-modify-write and
    /// an observation never interleave. Returns whether anything changed.
    async fn update_observed<T, F>(&self, kind: Kind, id: &str, f: F) -> Result<bool, StoreError>
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
            self.store.commit(vec![Mutation::Put(rec)]).await?;
            Ok(true)
        })
        .await
    }

    /// Records the result of a diagnosis probe (DiagnoseVpnGateway) that was still pending.
    pub async fn observe_diagnosis(&self, id: &str, item: DiagnoseItem) -> Result<bool, StoreError> {
        self.update_observed(Kind::VpnGatewayDiagnosis, id, |d: &mut GatewayDiagnosis| d.record(item, crate::now_ms())).await
    }

    /// Says that a diagnosis has probes the data plane has yet to run (the next pass looks).
    pub fn diagnoses_waiting(&self) {
        self.diagnoses_pending.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The diagnoses whose probes the data plane has yet to run, with their gateway; none
    /// (without reading the store) unless [`Service::diagnoses_waiting`] was said since the last
    /// call. A caller that cannot start one says it again.
    pub async fn pending_diagnoses(&self) -> Result<Vec<(String, String, GatewayDiagnosis)>, StoreError> {
        if !self.diagnoses_pending.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .all(Kind::VpnGatewayDiagnosis)
            .await?
            .into_iter()
            .filter_map(|r| Some((r.id, r.parent?, serde_json::from_value::<GatewayDiagnosis>(r.doc).ok()?)))
            .filter(|(_, _, d)| !d.pending.is_empty())
            .collect())
    }

    /// Records how many clients an IPsec server has online (observed), changing nothing else.
    pub async fn observe_ipsec_server(&self, id: &str, online: u32) -> Result<bool, StoreError> {
        self.update_observed(Kind::IpsecServer, id, |s: &mut IpsecServer| {
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
        self.update_observed(Kind::VpnConnection, conn_id, |c: &mut VpnConnection| {
            let snapshot =
                |c: &VpnConnection| (c.status.clone(), c.tunnels.iter().map(|t| t.status.clone()).collect::<Vec<_>>(), c.health_status.clone(), c.plane_state.clone(), c.plane_unsupported.clone());
            let before = snapshot(c);
            if !o.status.is_empty() {
                c.status = o.status.clone();
            }
            for t in c.tunnels.iter_mut() {
                if let Some(s) = o.tunnels.get(&t.tunnel_id) {
                    t.status = s.clone();
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
            tracing::info!(connection = %conn_id, status = %c.status, tunnels = ?o.tunnels, health = %c.health_status, "Observed a connection.");
            true
        })
        .await
    }

    /// The documents of a gateway's children of one kind.
    async fn children<T: serde::de::DeserializeOwned>(&self, kind: Kind, scope: &Scope, gw: &str) -> Result<Vec<(String, T)>, StoreError> {
        let q = ListQuery { parent: Some(gw.to_string()), limit: u64::MAX >> 1, ..Default::default() };
        Ok(self.store.list(kind, scope, &q).await?.items.into_iter().filter_map(|r| serde_json::from_value(r.doc).ok().map(|d| (r.id, d))).collect())
    }

    /// The intent digest the store holds for a resource, as [`PlaneView::converged`] reports it once applied.
    pub async fn intent_digest(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        let Some(rec) = self.store.get_any(kind, id).await? else { return Ok(None) };
        match kind {
            Kind::VpnConnection => Ok(serde_json::from_value::<VpnConnection>(rec.doc).ok().map(|c| c.intent_digest())),
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
