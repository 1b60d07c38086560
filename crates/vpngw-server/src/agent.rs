//! `vpngw agent`: a gateway host of the fleet. It serves no API: it registers in the shared
//! store, keeps its lease, takes part in placement, runs the data plane of the gateway sides
//! placed on it (`vpngw_service::fleet::Member` is its intent source and fenced observation
//! sink) and answers the API servers' live questions on a port of its own.
//!
//! **Live questions** (logs, diagnoses, SSL-VPN clients) go from the API server that got the
//! request straight to the agent that runs the gateway's master side: `POST <live_url>/live`
//! with the question as JSON, the time, and an HMAC-SHA256 of both under a key derived from the
//! cluster's master key (which every server and agent holds). An agent refuses a request whose
//! MAC does not check out or whose time is more than [`LIVE_SKEW_S`] away, and answers only for
//! gateways placed on it. A direct port rather than rows in the database: an answer is read from
//! files on the agent's host, needs no durability, and must not queue behind writes; what an
//! operator opens between hosts is this one TCP port, from the API servers to the agents.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use vpngw_model::placement::{side_key, Role};
use vpngw_plane::remote::{Answer, Question, RemoteLive, Transport};
use vpngw_plane::{LivePlane, PlaneError};
use vpngw_service::fleet::{AgentConfig, Member};
use vpngw_service::secrets::Sealer;
use vpngw_service::Service;
use vpngw_store::{AgentInfo, Store};

use crate::config::Config;
use crate::server::{open_store, Running};

/// What a live question's MAC is for.
const LIVE_PURPOSE: &str = "vpngw live question";
/// How far a live question's time may be from the agent's clock, in seconds.
pub const LIVE_SKEW_S: i64 = 30;
/// How long an API server waits for an agent's answer.
const LIVE_TIMEOUT: Duration = Duration::from_secs(5);

fn now_s() -> i64 {
    vpngw_model::now_ms() / 1000
}

fn signed_message(time: i64, body: &[u8]) -> Vec<u8> {
    let mut m = time.to_string().into_bytes();
    m.push(b'\n');
    m.extend_from_slice(body);
    m
}

/// Starts an agent: registers it, places, starts its data plane and its live port. Runs until
/// `shutdown` is sent; then ends its lease (its sides move at once) and stops its data plane.
pub async fn start_agent(cfg: &Config) -> anyhow::Result<Running> {
    let a = &cfg.agent;
    anyhow::ensure!(!a.name.trim().is_empty(), "[agent] name is empty (and the host has no name to take)");
    anyhow::ensure!(!a.zone.trim().is_empty(), "[agent] zone is empty: name the zone (a VSwitch's ZoneId) whose gateways this agent runs");
    anyhow::ensure!(a.lease_ms >= 500, "[agent] lease_ms must be at least 500");
    if let Some(bad) = a.addresses.iter().find(|s| vpngw_service::fleet::parse_address(s).is_none()) {
        anyhow::bail!("[agent] addresses: {bad:?} is neither an IPv4 address nor a CIDR block");
    }
    anyhow::ensure!(cfg.dataplane.mode != vpngw_dataplane::config::Mode::None, "an agent runs a data plane: set [dataplane] mode = \"lab\" or \"host\"");
    let store = open_store(cfg).await?;
    anyhow::ensure!(store.shared(), "an agent needs the fleet's shared store: set store = \"postgres://…\"");
    let svc = Service::new(store, cfg.service_config()?);
    let listener = tokio::net::TcpListener::bind(&a.live_listen).await.with_context(|| format!("listen on {}", a.live_listen))?;
    let addr = listener.local_addr()?;
    let live_url = a.live_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let member =
        Member::new(svc.clone(), AgentConfig { info: AgentInfo { name: a.name.clone(), zone: a.zone.clone(), addresses: a.addresses.clone(), live_url }, lease: Duration::from_millis(a.lease_ms) });
    // Placed before the first pass: a restarted agent does not tear down what it still holds.
    member.tick().await.context("register in the fleet")?;
    let reconciler = vpngw_dataplane::reconciler::Reconciler::new(member.clone(), member.clone(), cfg.dataplane.clone())?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(mut changes) = svc.store.changes() {
        let svc = svc.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                svc.intent_changed.notify_one();
                svc.diagnoses_waiting();
            }
        });
    }
    // Its reconcile passes are counted here; the gauges of what exists are the cluster's.
    let metrics = crate::server::serve_metrics(cfg, svc.clone(), rx.clone()).await?;
    let state = LiveState { sealer: svc.config.sealer.clone(), live: reconciler.live(), member: member.clone() };
    let app = axum::Router::new().route("/live", axum::routing::post(live)).with_state(Arc::new(state));
    let plane = tokio::spawn(reconciler.run(rx.clone()));
    let lease = tokio::spawn(member.clone().run(rx.clone()));
    let done = tokio::spawn(async move {
        crate::server::serve_until(listener, app, rx, "The live port failed.").await;
        let _ = lease.await;
        let _ = plane.await;
    });
    tracing::info!(agent = %a.name, zone = %a.zone, epoch = member.epoch(), live = %addr, "Agent running.");
    Ok(Running { addr, tls: None, created: None, metrics, shutdown: tx, done })
}

struct LiveState {
    sealer: Arc<Sealer>,
    live: Arc<dyn LivePlane>,
    member: Arc<Member>,
}

/// `POST /live`: one authenticated question about a gateway placed here.
async fn live(State(st): State<Arc<LiveState>>, headers: HeaderMap, body: Bytes) -> Result<([(axum::http::header::HeaderName, &'static str); 1], Vec<u8>), (StatusCode, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let time: i64 = header("x-vpngw-time").parse().map_err(|_| (StatusCode::UNAUTHORIZED, "no time".to_string()))?;
    if (now_s() - time).abs() > LIVE_SKEW_S || !st.sealer.verify_mac(LIVE_PURPOSE, &signed_message(time, &body), &header("x-vpngw-mac")) {
        return Err((StatusCode::UNAUTHORIZED, "the request is not signed with the cluster's master key, or is too old".into()));
    }
    let q: Question = serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let answer = if st.member.holds(q.gateway()).is_some_and(|s| s.master) {
        vpngw_plane::remote::answer(st.live.as_ref(), q).await
    } else {
        Answer::Error(format!("{} is not placed on agent {}", q.gateway(), st.member.name()))
    };
    let body = serde_json::to_vec(&answer).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body))
}

/// How an API server reaches the agent that runs a gateway.
pub struct FleetTransport {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl FleetTransport {
    /// The fleet's live plane, as the service asks it.
    pub fn live(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Arc<dyn LivePlane> {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(2)));
        Arc::new(RemoteLive(FleetTransport { store, sealer, http: HyperClient::builder(TokioExecutor::new()).build(conn) }))
    }

    /// The live URL of the agent that runs a gateway's master side now.
    async fn url_of(&self, gateway: &str) -> vpngw_plane::Result<(String, String)> {
        let err = |e: vpngw_store::StoreError| PlaneError(e.to_string());
        let side = side_key(gateway, Role::Master);
        let Some(p) = self.store.placements().await.map_err(err)?.into_iter().find(|p| p.side == side) else {
            return Err(PlaneError(format!("no agent runs {gateway} (none is live in its zone)")));
        };
        let agents = self.store.agents().await.map_err(err)?;
        match agents.into_iter().find(|a| a.info.name == p.agent && a.epoch == p.epoch && a.alive()) {
            Some(a) => Ok((a.info.name, a.info.live_url)),
            None => Err(PlaneError(format!("the agent of {gateway}, {}, is not live", p.agent))),
        }
    }
}

#[async_trait]
impl Transport for FleetTransport {
    async fn ask(&self, q: &Question) -> vpngw_plane::Result<Answer> {
        let (agent, url) = self.url_of(q.gateway()).await?;
        let body = serde_json::to_vec(q).map_err(|e| PlaneError(e.to_string()))?;
        let time = now_s();
        let mac = self.sealer.mac(LIVE_PURPOSE, &signed_message(time, &body));
        let req = hyper::Request::post(format!("{}/live", url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .header("x-vpngw-time", time.to_string())
            .header("x-vpngw-mac", mac)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PlaneError(e.to_string()))?;
        let failed = |e: &dyn std::fmt::Display| PlaneError(format!("agent {agent} at {url}: {e}"));
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| failed(&e))?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| failed(&e))?.to_bytes();
            if !status.is_success() {
                return Err(failed(&format!("{status}: {}", String::from_utf8_lossy(&bytes))));
            }
            serde_json::from_slice::<Answer>(&bytes).map_err(|e| failed(&e))
        };
        tokio::time::timeout(LIVE_TIMEOUT, exchange).await.map_err(|_| failed(&"no answer in time"))?
    }
}
