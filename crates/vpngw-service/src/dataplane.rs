//! The service's side of the data plane: what reconcilers read (intent) and write back
//! (observations), and how the task engine learns that a change has really been applied.
//!
//! Handlers never call into the data plane. They commit intent and [`Service::intent_changed`]
//! wakes the reconcilers; reconcilers report what they applied through [`Converged`] and what
//! they observed through [`Service::observe`], which only ever touches the observed fields.

use std::collections::HashMap;

use vpngw_store::{Kind, ListQuery, Mutation, Scope, StoreError};

pub use crate::handlers::{CustomerGateway, HealthCheck, IpsecServer, IkeCfg, IpsecCfg, Tunnel, VSwitch, VpnConnection, VpnGateway, VpnRoute, NOT_ESTABLISHED};
use crate::Service;

/// Statuses of the API's negotiation field (`Status` of a connection and of each tunnel).
pub mod status {
    pub const IKE_DOWN: &str = "ike_sa_not_established";
    pub const IKE_UP: &str = "ike_sa_established";
    pub const IPSEC_DOWN: &str = "ipsec_sa_not_established";
    pub const IPSEC_UP: &str = "ipsec_sa_established";
}

/// What a reconciler has applied, by resource id: the intent digest it converged on.
pub trait Converged: Send + Sync {
    fn converged(&self, resource_id: &str) -> Option<String>;
}

/// The digest of a gateway's whole intent: its addresses, every connection's digest and every
/// route. A reconciler that converged on a gateway reports this; the engine compares it with
/// the store.
pub fn gateway_digest(gw: &VpnGateway, conns: &[(String, String)], routes: &[VpnRoute], servers: &[IpsecServer]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted = conns.to_vec();
    sorted.sort();
    let mut routes: Vec<String> = routes.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
    routes.sort();
    let mut servers: Vec<String> = servers.iter().map(IpsecServer::intent_digest).collect();
    servers.sort();
    let v = serde_json::json!([gw.internet_ip, gw.dr_internet_ip, sorted, routes, servers]);
    hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8])
}

/// What a reconciler saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// The single-tunnel status (ignored for dual-tunnel connections).
    pub status: String,
    /// Status by tunnel id (dual-tunnel connections).
    pub tunnels: HashMap<String, String>,
    /// `success`/`failed`, or `None` to leave the health verdict as it is.
    pub health: Option<String>,
    /// The data plane's own state (`converged`, or `unknown: why` after a failure), or `None`.
    pub plane: Option<String>,
}

impl Service {
    /// Records how many clients an IPsec server has online (observed), changing nothing else.
    pub async fn observe_ipsec_server(&self, id: &str, online: u32) -> Result<bool, StoreError> {
        self.with_write_lock(async {
            let Some(mut rec) = self.store.get_any(Kind::IpsecServer, id).await? else { return Ok(false) };
            let Ok(mut s) = serde_json::from_value::<IpsecServer>(rec.doc.clone()) else { return Ok(false) };
            if s.online_client_count == online {
                return Ok(false);
            }
            tracing::info!(ipsec_server = %id, online, "Observed an IPsec server.");
            s.online_client_count = online;
            rec.doc = serde_json::to_value(&s).map_err(|e| StoreError::Other(e.to_string()))?;
            self.store.commit(vec![Mutation::Put(rec)]).await?;
            Ok(true)
        })
        .await
    }

    /// The intent digest the store holds for a resource, as [`Converged`] reports it once applied.
    pub async fn intent_digest(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        let Some(rec) = self.store.get_any(kind, id).await? else { return Ok(None) };
        match kind {
            Kind::VpnConnection => Ok(serde_json::from_value::<VpnConnection>(rec.doc).ok().map(|c| c.intent_digest())),
            Kind::VpnGateway => {
                let Ok(gw) = serde_json::from_value::<VpnGateway>(rec.doc.clone()) else { return Ok(None) };
                let scope = Scope { account: rec.account, region: rec.region.clone() };
                let q = ListQuery { parent: Some(rec.id.clone()), limit: u64::MAX >> 1, ..Default::default() };
                let page = self.store.list(Kind::VpnConnection, &scope, &q).await?;
                let conns: Vec<(String, String)> =
                    page.items.into_iter().filter_map(|r| serde_json::from_value::<VpnConnection>(r.doc).ok().map(|c| (r.id, c.intent_digest()))).collect();
                let routes: Vec<VpnRoute> = self.store.list(Kind::VpnRoute, &scope, &q).await?.items.into_iter().filter_map(|r| serde_json::from_value(r.doc).ok()).collect();
                let servers: Vec<IpsecServer> = self.store.list(Kind::IpsecServer, &scope, &q).await?.items.into_iter().filter_map(|r| serde_json::from_value(r.doc).ok()).collect();
                Ok(Some(gateway_digest(&gw, &conns, &routes, &servers)))
            }
            _ => Ok(None),
        }
    }

    /// Records an observation of a connection's negotiation and health, changing nothing else.
    /// Returns whether anything changed.
    pub async fn observe(&self, conn_id: &str, o: &Observation) -> Result<bool, StoreError> {
        self.with_write_lock(async {
            let Some(mut rec) = self.store.get_any(Kind::VpnConnection, conn_id).await? else { return Ok(false) };
            let Ok(mut c) = serde_json::from_value::<VpnConnection>(rec.doc.clone()) else { return Ok(false) };
            let snapshot = |c: &VpnConnection| (c.status.clone(), c.tunnels.iter().map(|t| t.status.clone()).collect::<Vec<_>>(), c.health_status.clone(), c.plane_state.clone());
            let before = snapshot(&c);
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
            }
            if before == snapshot(&c) {
                return Ok(false);
            }
            tracing::info!(connection = %conn_id, status = %c.status, tunnels = ?o.tunnels, health = %c.health_status, "Observed a connection.");
            rec.doc = serde_json::to_value(&c).map_err(|e| StoreError::Other(e.to_string()))?;
            self.store.commit(vec![Mutation::Put(rec)]).await?;
            Ok(true)
        })
        .await
    }
}
