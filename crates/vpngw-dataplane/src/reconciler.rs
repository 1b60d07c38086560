//! The IPsec reconciler: makes charon hold exactly the tunnels the store's intent describes,
//! and writes back what it sees.
//!
//! ```text
//!   handlers ──commit──▶ store (intent) ──▶ pass(): desired definitions per charon
//!                                              │  list-conns ▶ unload stale ▶ load missing ▶ initiate
//!   charon events (ike/child up-down, rekey) ──┤  list-sas ▶ statuses ▶ Service::observe
//!   timer, charon restarts ────────────────────┘  converged digests ▶ the engine ends `updating`
//! ```
//!
//! A pass takes no input: it reads the whole intent and what charon holds, so it is idempotent
//! and re-converges after anything (a charon restart, a vpngw restart, a failed call). Its VICI
//! calls per charon are `list-conns` and `list-sas` plus one load/unload per changed tunnel: a
//! change among 1,000 connections costs the same few calls as among 10. A definition already
//! loaded under its name (which carries a fingerprint of its settings) is left alone, so a
//! restart of vpngw never tears down an established SA.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use tokio::sync::{mpsc, Mutex, Notify};
use vpngw_model::connection::VpnConnection;
use vpngw_model::diagnosis::{DiagnoseItem, PUBLIC_PROBE};
use vpngw_model::gateway::VpnGateway;
use vpngw_model::ipsec_server::IpsecServer;
use vpngw_model::route::VpnRoute;
use vpngw_model::ssl_vpn::{SslClient, SslVpnServer};
use vpngw_plane::{converged_key, gateway_digest, log_line_time, Diagnosis, IntentSource, LivePlane, Observation, ObservationSink, PlaneError, Role, Sides, Unreadable};

use vpngw_model::bgp::{Peer, Session};

use crate::bgp::BgpPlane;
use crate::capabilities::Capabilities;
use crate::charon::{disconnected, Charon, Connector, Vici};
use crate::config::{DataPlaneConfig, Mode};
use crate::health::{HealthChecks, Probe};
use crate::ipsec::{self, ConnDef, Unsupported};
use crate::lab::{Lab, Node, VpcView};
use crate::plan;
use crate::sslvpn::{self, SslObservations, SslPlane};

/// reqid → (definition, child) of the definitions that wait for traffic, per charon.
type TrapMap = HashMap<u32, (String, String)>;

/// What this data plane observes live, for handlers ([`LivePlane`]): SSL-VPN clients and logs,
/// charon's log and the negotiation failures in it. File reads run on blocking threads.
#[derive(Default)]
pub struct Live {
    ssl: Arc<SslObservations>,
    charon_logs: CharonLogs,
}

/// Where charon logs.
#[derive(Default, Clone)]
enum CharonLogs {
    /// Nowhere vpngw knows.
    #[default]
    None,
    /// One log (host mode's `charon_log`).
    File(PathBuf),
    /// One log per gateway, `<dir>/<gateway id>/charon.log` (lab mode).
    PerGateway(PathBuf),
}

/// Runs a blocking read off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> vpngw_plane::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PlaneError(format!("read: {e}")))
}

#[async_trait]
impl LivePlane for Live {
    async fn ssl_clients(&self, _gateway_id: &str, server_id: &str) -> vpngw_plane::Result<Vec<SslClient>> {
        Ok(self.ssl.clients(server_id))
    }
    async fn ssl_log(&self, _gateway_id: &str, server_id: &str) -> vpngw_plane::Result<Vec<String>> {
        let (ssl, id) = (self.ssl.clone(), server_id.to_string());
        blocking(move || ssl.log(&id)).await
    }
    async fn ipsec_log(&self, gateway_id: &str, keys: &[String]) -> vpngw_plane::Result<Vec<String>> {
        let Some(path) = self.charon_log(gateway_id) else { return Ok(Vec::new()) };
        let keys = keys.to_vec();
        blocking(move || crate::logs::lines(&path, |l| keys.iter().any(|k| l.contains(k.as_str())))).await
    }
    async fn ipsec_diagnoses(&self, gateway_id: &str, tunnels: &[(String, String)], window_s: i64) -> vpngw_plane::Result<Vec<Option<Diagnosis>>> {
        let since = vpngw_model::now_ms() / 1000 - window_s;
        let path = self.charon_log(gateway_id);
        let tunnels = tunnels.to_vec();
        blocking(move || {
            let lines = path.map(|path| crate::logs::lines(&path, |l| log_line_time(l).is_some_and(|t| t >= since))).unwrap_or_default();
            tunnels.iter().map(|(key, peer)| crate::diagnose::diagnose(&lines, key, peer, log_line_time)).collect()
        })
        .await
    }
}

impl Live {
    /// The file the charon serving a gateway logs to, if vpngw knows it.
    fn charon_log(&self, gateway_id: &str) -> Option<PathBuf> {
        match &self.charon_logs {
            CharonLogs::None => None,
            CharonLogs::File(p) => Some(p.clone()),
            CharonLogs::PerGateway(dir) => Some(dir.join(gateway_id).join("charon.log")),
        }
    }
}

/// One gateway's intent.
pub struct GatewayIntent {
    pub(crate) id: String,
    pub(crate) gw: VpnGateway,
    pub(crate) vpc_addrs: Vec<Ipv4Addr>,
    /// The VPC's CIDR blocks (its VSwitches).
    pub(crate) vpc_cidrs: Vec<String>,
    pub(crate) conns: Vec<(String, VpnConnection)>,
    pub(crate) routes: Vec<VpnRoute>,
    /// The gateway's IPsec server (at most one), by id.
    pub(crate) servers: Vec<(String, IpsecServer)>,
    /// The gateway's SSL-VPN server (at most one), by id, with the ids of its client
    /// certificates that may connect (unexpired).
    pub(crate) ssl: Vec<(String, SslVpnServer, HashSet<String>)>,
    pub(crate) defs: Vec<ConnDef>,
    pub(crate) unsupported: Vec<Unsupported>,
    /// Why this gateway's data plane is left exactly as it is: a document it depends on cannot
    /// be read (its connections, routes, servers, certificates, customer gateways or VSwitches).
    pub(crate) frozen: Option<String>,
    /// (connection id, intent digest) of each connection, and the gateway's digest.
    pub(crate) conn_digests: Vec<(String, String)>,
    pub(crate) digest: String,
    /// The sides of the gateway this plane runs: the master side has its InternetIp, the
    /// single-tunnel connections, the master tunnels and the servers; the slave side its
    /// DisasterRecoveryInternetIp and the slave tunnels.
    pub(crate) sides: Sides,
    /// The BGP sessions of the tunnels of the sides held here.
    pub(crate) bgp: Vec<Session>,
    /// The prefixes its BGP sessions learned that its tunnels carry.
    pub(crate) bgp_prefixes: Vec<String>,
}

impl GatewayIntent {
    /// A gateway's definitions from its intent: `cgw_ip` gives customer gateways' addresses,
    /// `health` each connection's usability for routing.
    pub(crate) fn build(g: vpngw_plane::GatewayIntent, cgw_ip: &HashMap<String, String>, peers: &HashMap<String, Peer>, health: &HashMap<String, ipsec::Health>) -> GatewayIntent {
        let mut defs = Vec::new();
        let mut unsupported = Vec::new();
        // Learned prefixes never take the tunnels' own packets (public addresses) or the VPC's.
        let mut avoid: Vec<ipnet::Ipv4Net> = g.vpc_cidrs.clone();
        avoid.extend([g.gw.internet_ip.as_str()].into_iter().chain(g.gw.dr_internet_ip.as_deref()).filter_map(|a| a.parse::<Ipv4Addr>().ok()).map(ipnet::Ipv4Net::from));
        avoid.extend(cgw_ip.values().filter_map(|a| a.parse::<Ipv4Addr>().ok()).map(ipnet::Ipv4Net::from));
        let plan = ipsec::RoutePlan::new(&g.routes, health).with_learned(&g.conns, &avoid, &g.vpc_cidrs);
        let sides = g.sides;
        if sides.master {
            for (id, s) in &g.servers {
                match ipsec::server_definition(id, s) {
                    Ok(d) => defs.push(d),
                    Err(u) => unsupported.push(u),
                }
            }
        }
        let mut bgp = Vec::new();
        for (id, c) in &g.conns {
            let held = |r: Option<vpngw_model::state::TunnelRole>| sides.holds(if r == Some(vpngw_model::state::TunnelRole::Slave) { Role::Slave } else { Role::Master });
            bgp.extend(vpngw_model::bgp::sessions(id, c, peers).into_iter().filter(|(r, _)| held(*r)).map(|(_, s)| s));
            let (d, u) = ipsec::definitions(id, c, cgw_ip, &plan);
            // Only the tunnels of the sides held here.
            defs.extend(d.into_iter().filter(|d| sides.holds(tunnel_role(c, &d.key))));
            unsupported.extend(u.into_iter().filter(|u| sides.holds(tunnel_role(c, &u.key))));
        }
        let mut gi = GatewayIntent {
            vpc_addrs: g.vpc_cidrs.iter().filter_map(|n| n.hosts().next()).collect(),
            vpc_cidrs: g.vpc_cidrs.iter().map(|n| n.to_string()).collect(),
            id: g.id,
            gw: g.gw,
            conns: g.conns,
            routes: g.routes,
            servers: g.servers,
            ssl: g.ssl,
            defs,
            unsupported,
            frozen: g.frozen,
            conn_digests: Vec::new(),
            digest: String::new(),
            sides,
            bgp,
            bgp_prefixes: plan.learned_prefixes(),
        };
        gi.digests();
        gi
    }

    /// Each connection's intent digest, and the digest of everything this gateway's data plane
    /// must apply (computed once per pass).
    fn digests(&mut self) {
        self.conn_digests = self.conns.iter().map(|(id, c)| (id.clone(), c.intent_digest())).collect();
        let servers: Vec<IpsecServer> = self.servers.iter().map(|(_, s)| s.clone()).collect();
        let ssl: Vec<SslVpnServer> = self.ssl.iter().map(|(_, s, _)| s.clone()).collect();
        self.digest = gateway_digest(&self.gw, &self.conn_digests, &self.routes, &servers, &ssl);
    }
}

/// A charon and the gateways whose tunnels it holds.
struct Target {
    socket: PathBuf,
    netns: Option<String>,
    gateways: Vec<usize>,
    /// Keep loaded definitions that no readable intent names: while a document cannot be
    /// read, a definition vpngw does not recognise may be one of its tunnels.
    keep_unknown: bool,
}

pub struct Reconciler {
    source: Arc<dyn IntentSource>,
    sink: Arc<dyn ObservationSink>,
    cfg: DataPlaneConfig,
    pub lab: Option<Arc<Lab>>,
    /// What handlers may ask of this plane.
    live: Arc<Live>,
    /// The intent digest applied, by gateway or connection id (reported to the sink too).
    applied: RwLock<HashMap<String, String>>,
    ssl: SslPlane,
    bgp: BgpPlane,
    /// How charons are reached, and a command connection to each (by socket).
    connector: Arc<dyn Connector>,
    charons: Mutex<HashMap<PathBuf, Box<dyn Charon>>>,
    timing: Timing,
    /// What each charon can negotiate, asked when vpngw connects to it.
    caps: Mutex<HashMap<PathBuf, Arc<Capabilities>>>,
    listeners: Mutex<HashMap<PathBuf, tokio::task::JoinHandle<()>>>,
    /// Woken by charon events.
    events: Arc<Notify>,
    traps: mpsc::UnboundedSender<(PathBuf, u32)>,
    trap_rx: Mutex<mpsc::UnboundedReceiver<(PathBuf, u32)>>,
    /// Per socket: reqid → (definition, child) of definitions that wait for traffic.
    trap_map: Mutex<HashMap<PathBuf, TrapMap>>,
    last_initiate: std::sync::Mutex<HashMap<String, Instant>>,
    observed: Mutex<HashMap<String, Observation>>,
    /// The BGP sessions' CHILD_SAs seen installed at the last pass (by child name).
    bgp_children: Mutex<HashSet<String>>,
    /// When each connection was first seen down (for [`Reconciler::steady`]).
    down_since: std::sync::Mutex<HashMap<String, Instant>>,
    /// Moves whenever a negotiation status or health verdict changes in the store.
    observed_generation: Arc<std::sync::atomic::AtomicU64>,
    reported: Mutex<HashSet<String>>,
    /// How many stored documents could not be read in the last pass.
    unreadable: std::sync::atomic::AtomicUsize,
    health: Mutex<HealthChecks>,
    /// Diagnoses whose probes run now (DiagnoseVpnGateway).
    diagnosing: Arc<Mutex<HashSet<String>>>,
}

/// The reconciler's clocks.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a connection must stay down before its routes move to their standbys.
    pub down_grace: Duration,
    /// How often an initiator re-initiates a tunnel that has no IKE_SA at all.
    pub reinitiate: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { down_grace: Duration::from_secs(3), reinitiate: Duration::from_secs(5) }
    }
}

impl Reconciler {
    /// A data plane that reads intent from `source`, reports to `sink` and drives charons over
    /// VICI. Fails when the lab cannot start its charons (a missing binary or plugin).
    pub fn new(source: Arc<dyn IntentSource>, sink: Arc<dyn ObservationSink>, cfg: DataPlaneConfig) -> Result<Arc<Reconciler>> {
        Reconciler::with(source, sink, cfg, Arc::new(Vici), Timing::default())
    }

    /// The same, with charons reached through `connector` (a fake one in scenario tests).
    pub fn with(source: Arc<dyn IntentSource>, sink: Arc<dyn ObservationSink>, cfg: DataPlaneConfig, connector: Arc<dyn Connector>, timing: Timing) -> Result<Arc<Reconciler>> {
        let lab = (cfg.mode == Mode::Lab).then(|| Arc::new(Lab::new(&cfg)));
        if let Some(lab) = &lab {
            lab.check()?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let ssl = SslPlane::new(cfg.run_dir().join("ssl"), cfg.openvpn.clone());
        let bgp = BgpPlane::new(cfg.bird.clone());
        let charon_logs = match (&cfg.mode, &cfg.charon_log) {
            (Mode::Lab, _) => CharonLogs::PerGateway(cfg.run_dir().join("gw")),
            (Mode::Host, Some(p)) => CharonLogs::File(p.clone()),
            _ => CharonLogs::None,
        };
        let live = Arc::new(Live { ssl: ssl.observed.clone(), charon_logs });
        let r = Arc::new(Reconciler {
            source,
            sink,
            cfg,
            lab,
            live,
            applied: Default::default(),
            ssl,
            bgp,
            connector,
            charons: Default::default(),
            timing,
            caps: Default::default(),
            listeners: Default::default(),
            events: Arc::new(Notify::new()),
            traps: tx,
            trap_rx: Mutex::new(rx),
            trap_map: Default::default(),
            last_initiate: Default::default(),
            observed: Default::default(),
            bgp_children: Default::default(),
            down_since: Default::default(),
            observed_generation: Default::default(),
            reported: Default::default(),
            unreadable: Default::default(),
            health: Default::default(),
            diagnosing: Default::default(),
        });
        Ok(r)
    }

    /// What handlers may ask of this plane, live.
    pub fn live(&self) -> Arc<dyn LivePlane> {
        self.live.clone()
    }

    /// Records (and reports) that the plane now runs this intent digest of a resource.
    /// Only a change is reported (the sink may be a database shared by a cluster).
    async fn set_converged(&self, id: &str, digest: &str) {
        let changed = self.applied.write().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), digest.to_string()).as_deref() != Some(digest);
        if changed {
            if let Err(e) = self.sink.converged(id, digest).await {
                tracing::warn!(resource = %id, error = %e, "Could not report what the data plane runs; will report it again.");
                self.applied.write().unwrap_or_else(|e| e.into_inner()).remove(id);
            }
        }
    }

    fn converged(&self, id: &str) -> Option<String> {
        self.applied.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Runs passes until `shutdown`; then, in lab mode without `persist`, removes the lab.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.cfg.reconcile_interval_ms.max(50));
        let restarted = self.lab.as_ref().map(|l| l.restarted.clone()).unwrap_or_default();
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = format!("{e:#}"), "Reconcile pass failed; retrying.");
            }
            let mut trap_rx = self.trap_rx.lock().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.source.changed() => {}
                _ = self.events.notified() => {}
                _ = restarted.notified() => {}
                Some((sock, reqid)) = trap_rx.recv() => {
                    drop(trap_rx);
                    self.on_trap(sock, reqid).await;
                    continue;
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        self.health.lock().await.stop_all();
        for (_, l) in self.listeners.lock().await.drain() {
            l.abort();
        }
        if !self.cfg.persist {
            sslvpn::stop_all(&self.cfg.run_dir().join("ssl")).await;
            for e in std::fs::read_dir(self.cfg.run_dir().join("bgp")).into_iter().flatten().flatten() {
                self.bgp.stop(&e.path()).await;
            }
        }
        if let Some(lab) = &self.lab {
            if !lab.persist {
                if let Err(e) = lab.teardown().await {
                    tracing::warn!(error = format!("{e:#}"), "Lab teardown failed.");
                }
            }
        }
    }

    /// Reads the whole intent from the source and turns each gateway into definitions.
    async fn intent(&self) -> Result<(Vec<GatewayIntent>, vpngw_plane::Intent)> {
        let mut intent = self.source.intent().await?;
        let mut out = Vec::new();
        for g in std::mem::take(&mut intent.gateways) {
            let health: HashMap<String, ipsec::Health> = g.conns.iter().map(|(id, c)| (id.clone(), self.steady(id, ipsec::Health::of(c)))).collect();
            out.push(GatewayIntent::build(g, &intent.customer_gateways, &intent.bgp_peers, &health));
        }
        Ok((out, intent))
    }

    /// Logs each unreadable document once, and the count whenever the set changes.
    async fn report_unreadable(&self, unreadable: &[Unreadable]) {
        let mut reported = self.reported.lock().await;
        for u in unreadable {
            if reported.insert(format!("unreadable:{}:{}", u.id, u.why)) {
                tracing::error!(kind = %u.kind, id = %u.id, error = %u.why, "A stored document cannot be read: what it belongs to is left exactly as it is in the data plane until it can.");
            }
        }
        let count = unreadable.len();
        if self.unreadable.swap(count, std::sync::atomic::Ordering::SeqCst) != count {
            if count == 0 {
                tracing::info!("Every stored document can be read again.");
            } else {
                tracing::warn!(count, "Stored documents that cannot be read.");
            }
        }
    }

    /// A connection counts as down for routing only after it has been down for
    /// [`Timing::down_grace`]:
    /// a re-negotiation (which a route change itself causes) must not move routes back and forth.
    fn steady(&self, id: &str, mut h: ipsec::Health) -> ipsec::Health {
        let mut down = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        if h.established {
            down.remove(id);
        } else if down.entry(id.to_string()).or_insert_with(Instant::now).elapsed() < self.timing.down_grace {
            h.established = true;
        }
        h
    }

    /// One reconcile pass over everything, repeated (a few times at most) while what it
    /// observed changes what it must apply: a tunnel that went down moves its routes to their
    /// standbys at once.
    pub async fn pass(&self) -> Result<()> {
        let metrics = vpngw_metrics::get();
        for _ in 0..4 {
            let started = Instant::now();
            let before = self.observed_generation.load(std::sync::atomic::Ordering::SeqCst);
            let r = self.pass_inner().await;
            tracing::debug!(took = ?started.elapsed(), ok = r.is_ok(), "Reconcile pass.");
            metrics.reconcile_passes.inc();
            metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
            if r.is_err() {
                metrics.reconcile_errors.inc();
            }
            r?;
            if self.observed_generation.load(std::sync::atomic::Ordering::SeqCst) == before {
                break;
            }
        }
        Ok(())
    }

    async fn pass_inner(&self) -> Result<()> {
        let (intent, vpngw_plane::Intent { gateway_ids, ssl_ids, unreadable, .. }) = self.intent().await?;
        self.report_unreadable(&unreadable).await;
        for g in intent.iter().filter(|g| g.frozen.is_some()) {
            if self.reported.lock().await.insert(format!("frozen:{}:{:?}", g.id, g.frozen)) {
                tracing::warn!(gateway = %g.id, why = g.frozen.as_deref().unwrap_or_default(), "Leaving the gateway's data plane exactly as it is.");
            }
        }
        // The per-tunnel series of tunnels this process no longer runs go.
        let running: HashSet<String> =
            intent.iter().flat_map(|g| g.conns.iter().flat_map(|(id, c)| if c.dual() { c.tunnels.iter().map(|t| t.tunnel_id.to_string()).collect() } else { vec![id.clone()] })).collect();
        vpngw_metrics::get().retain_tunnels(&running);
        for u in intent.iter().flat_map(|g| &g.unsupported) {
            if self.reported.lock().await.insert(format!("{}:{}", u.key, u.reason)) {
                tracing::warn!(connection = %u.conn_id, tunnel = %u.key, reason = %u.reason, "This data plane cannot negotiate the connection; it stays ike_sa_not_established.");
            }
        }
        let targets = match self.cfg.mode {
            Mode::None => return Ok(()),
            Mode::Host => vec![Target {
                socket: self.cfg.vici_socket.clone(),
                netns: self.cfg.netns.clone(),
                gateways: (0..intent.len()).filter(|i| intent[*i].frozen.is_none()).collect(),
                keep_unknown: !unreadable.is_empty(),
            }],
            Mode::Lab => self.lab_targets(&intent, &gateway_ids).await?,
        };
        if self.cfg.mode == Mode::Host {
            // The BGP speakers of gateways that are gone (the lab's go with their namespaces).
            let live: HashSet<&str> = gateway_ids.iter().map(String::as_str).collect();
            for e in std::fs::read_dir(self.cfg.run_dir().join("bgp")).into_iter().flatten().flatten() {
                if !live.contains(e.file_name().to_string_lossy().as_ref()) {
                    self.bgp.stop(&e.path()).await;
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        self.run_diagnoses(&intent, &targets).await;
        // SSL-VPN servers that are gone (from the store, not merely unreadable) stop first; the
        // others converge with their gateway.
        let live: HashSet<&str> = ssl_ids.iter().map(String::as_str).collect();
        self.ssl.remove_gone(&live).await;
        // Gateways with a change to apply go first: a change waits for its gateway's turn, not
        // for every other gateway's tunnels.
        let mut targets = targets;
        targets.sort_by_key(|t| !t.gateways.iter().any(|i| self.converged(&intent[*i].id).as_deref() != Some(intent[*i].digest.as_str())));
        let mut probes = HashMap::new();
        let mut first_error = None;
        for t in &targets {
            let gws: Vec<&GatewayIntent> = t.gateways.iter().map(|i| &intent[*i]).collect();
            for g in gws.iter().filter(|g| g.sides.master) {
                for (id, c) in &g.conns {
                    if c.health.enable && !c.health.sip.is_empty() && !c.health.dip.is_empty() {
                        probes.insert(id.clone(), Probe { netns: t.netns.clone(), sip: c.health.sip.clone(), dip: c.health.dip.clone(), interval: c.health.interval, retry: c.health.retry });
                    }
                }
            }
            let mut outcome = self.converge(t, &gws).await;
            if outcome.as_ref().is_err_and(disconnected) {
                // A restarted charon: the cached connection is gone. Reconnect at once.
                self.charons.lock().await.remove(&t.socket);
                outcome = self.converge(t, &gws).await;
            }
            if let Err(e) = outcome {
                tracing::warn!(socket = %t.socket.display(), error = format!("{e:#}"), "Could not converge a charon; its tunnels are unknown until the next pass.");
                self.charons.lock().await.remove(&t.socket);
                for g in &gws {
                    for (id, _) in &g.conns {
                        self.record(id, Observation { plane: Some(format!("unknown: {e:#}")), ..Default::default() }).await;
                    }
                }
                first_error.get_or_insert(e);
                continue;
            }
            for g in &gws {
                for (key, d) in conn_converged(g) {
                    self.set_converged(&key, d).await;
                }
                // Its SSL-VPN server: one OpenVPN, where the gateway's tunnels are.
                let ipsec_online: u32 = g.servers.iter().map(|(_, s)| s.online_client_count).sum();
                let desired: Vec<sslvpn::Desired> = g
                    .ssl
                    .iter()
                    .filter(|_| g.sides.master)
                    .map(|(id, s, allowed)| sslvpn::Desired {
                        id: id.clone(),
                        server: s.clone(),
                        netns: t.netns.clone(),
                        bind: self.cfg.mode == Mode::Lab,
                        max_clients: g.gw.ssl_connections.saturating_sub(ipsec_online),
                        ssl_connections: g.gw.ssl_connections,
                        allowed: allowed.clone(),
                    })
                    .collect();
                match self.ssl.converge(self.source.as_ref(), &desired).await {
                    // A gateway has converged when its tunnels and its SSL-VPN server have.
                    Ok(()) => {
                        for role in g.sides.roles() {
                            self.set_converged(&converged_key(&g.id, role), &g.digest).await;
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.health.lock().await.sync(&self.sink, probes, &self.events);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs the probes of pending diagnoses (DiagnoseVpnGateway) where each one's gateway has
    /// its tunnels, one task per diagnosis; each result is recorded as it comes in.
    async fn run_diagnoses(&self, intent: &[GatewayIntent], targets: &[Target]) {
        let pending = match self.source.pending_diagnoses().await {
            Ok(p) => p,
            Err(e) => {
                self.source.diagnoses_waiting();
                return tracing::warn!(error = %e, "Could not read pending diagnoses.");
            }
        };
        let mut running = self.diagnosing.lock().await;
        for vpngw_plane::PendingDiagnosis { id, gateway_id: gw, diagnosis: d } in pending {
            let Some(t) = targets.iter().find(|t| t.gateways.iter().any(|i| intent[*i].id == gw)) else {
                // Its gateway has no charon yet: look again on a later pass.
                self.source.diagnoses_waiting();
                continue;
            };
            if !running.insert(id.clone()) {
                continue;
            }
            let (source, sink, netns, running) = (self.source.clone(), self.sink.clone(), t.netns.clone(), self.diagnosing.clone());
            tokio::spawn(async move {
                for name in &d.pending {
                    let (src, dst) = if name == PUBLIC_PROBE { (&d.gateway_ip, &d.peer_ip) } else { (&d.private_source_ip, &d.private_destination_ip) };
                    let (loss, rtt) = crate::health::ping_stats(netns.as_deref(), src, dst, 4).await;
                    let level = if loss == 0.0 {
                        "normal"
                    } else if loss < 100.0 {
                        "warning"
                    } else {
                        "error"
                    };
                    let item = DiagnoseItem::new(name, level, serde_json::json!({"srcIp": src, "targetIp": dst, "rtt": rtt, "lossRate": loss}));
                    if let Err(e) = sink.diagnosis(&id, item).await {
                        tracing::warn!(diagnosis = %id, error = %e, "Failed to record a diagnosis probe; it runs again.");
                        source.diagnoses_waiting();
                    }
                }
                running.lock().await.remove(&id);
            });
        }
    }

    /// Lab mode: every gateway gets its namespace and charon; gone gateways are removed. A
    /// gateway whose document (or a document it depends on) cannot be read is neither: its
    /// namespace and charon stay exactly as they are.
    async fn lab_targets(&self, intent: &[GatewayIntent], gateway_ids: &[String]) -> Result<Vec<Target>> {
        let lab = self.lab.as_ref().context("lab mode without a lab")?;
        let live: HashSet<&str> = gateway_ids.iter().map(String::as_str).collect();
        for gone in lab.gateway_ids().into_iter().filter(|g| !live.contains(g.as_str())) {
            tracing::info!(gateway = %gone, "Removing a deleted gateway's namespace and charon.");
            lab.remove_gateway(&gone).await?;
            let sock = lab.gateway_dir(&gone).join("charon.vici");
            self.charons.lock().await.remove(&sock);
            if let Some(l) = self.listeners.lock().await.remove(&sock) {
                l.abort();
            }
        }
        let mut targets = Vec::new();
        for (i, g) in intent.iter().enumerate().filter(|(_, g)| g.frozen.is_none()) {
            crate::logs::rotate(&lab.gateway_dir(&g.id).join("charon.log"));
            let mut public: Vec<Ipv4Addr> = if g.sides.master { g.gw.internet_ip.parse().into_iter().collect() } else { Vec::new() };
            public.extend(g.gw.dr_internet_ip.as_deref().filter(|_| g.sides.slave).and_then(|ip| ip.parse::<Ipv4Addr>().ok()));
            // The VPC side: one address of each VSwitch and of each connection's LocalSubnet
            // (kernel-libipsec installs a tunnel's route from an address inside its local
            // selector, and fails the CHILD_SA without one).
            let mut private = g.vpc_addrs.clone();
            private.extend(
                g.conns
                    .iter()
                    .flat_map(|(_, c)| &c.local_subnet)
                    .chain(g.servers.iter().flat_map(|(_, s)| &s.local_subnet))
                    .chain(g.ssl.iter().flat_map(|(_, s, _)| &s.local_subnet))
                    .filter_map(|s| s.parse::<ipnet::Ipv4Net>().ok())
                    .filter(|n| n.prefix_len() > 0)
                    .filter_map(|n| n.hosts().next()),
            );
            private.extend(g.conns.iter().filter(|(_, c)| c.health.enable).filter_map(|(_, c)| c.health.sip.parse::<Ipv4Addr>().ok()));
            // Each BGP session's LocalBgpIp (the speaker's end of the session).
            private.extend(g.bgp.iter().map(|s| s.local_ip));
            private.sort();
            private.dedup();
            let ns = lab.gateway_ns(&g.id);
            lab.ensure_node(&Node { ns: ns.clone(), public, private }).await.with_context(|| format!("build the namespace of {}", g.id))?;
            let mut published: Vec<String> = g.routes.iter().filter(|r| r.publish_vpc && !revoked(&g.conns, &r.next_hop)).map(|r| r.route_dest.clone()).collect();
            published.extend(g.servers.iter().map(|(_, s)| s.client_ip_pool.clone()));
            // With AutoPropagate, what BGP learned is in the VPC's route table too.
            if g.gw.auto_propagate {
                published.extend(g.bgp_prefixes.iter().cloned());
            }
            published.sort();
            published.dedup();
            let probes = g.conns.iter().filter(|(_, c)| c.health.enable && !c.health.sip.is_empty()).map(|(_, c)| (c.health.sip.clone(), c.health.dip.clone())).collect();
            let local = g.ssl.iter().map(|(_, s, _)| s.client_ip_pool.clone()).collect();
            lab.ensure_vpc_routes(&ns, &VpcView { sources: g.vpc_cidrs.clone(), published, local, probes }).await.with_context(|| format!("route the VPC side of {}", g.id))?;
            let charon = lab.ensure_charon(&g.id, &ns, lab.gateway_dir(&g.id)).await?;
            targets.push(Target { socket: charon.socket(), netns: Some(ns), gateways: vec![i], keep_unknown: false });
        }
        Ok(targets)
    }

    /// Makes one charon hold exactly the definitions of these gateways, then observes it.
    async fn converge(&self, t: &Target, gws: &[&GatewayIntent]) -> Result<()> {
        self.ensure_listener(&t.socket).await;
        let mut charons = self.charons.lock().await;
        if !charons.contains_key(&t.socket) {
            let mut c = self.connector.connect(&t.socket).await?;
            // A (re)connected charon may have been restarted with other plugins: ask again.
            let caps = c.capabilities().await.with_context(|| format!("ask {} for its algorithms", t.socket.display()))?;
            self.report_caps(&t.socket, &caps).await;
            self.caps.lock().await.insert(t.socket.clone(), Arc::new(caps));
            charons.insert(t.socket.clone(), c);
        }
        let caps = self.caps.lock().await.get(&t.socket).cloned().unwrap_or_default();
        let charon = charons.get_mut(&t.socket).context("charon")?;
        let desired = plan::desired(gws.iter().flat_map(|g| g.defs.iter()), &caps, t.keep_unknown);
        for u in &desired.withheld {
            if self.reported.lock().await.insert(format!("{}:{}", u.key, u.reason)) {
                tracing::warn!(connection = %u.conn_id, tunnel = %u.key, reason = %u.reason, "This charon cannot negotiate the connection; it is not loaded and stays ike_sa_not_established.");
            }
        }

        // Deletes before adds: a changed tunnel's old definition goes first.
        let changes = plan::changes(&desired, &charon.loaded().await?);
        for stale in &changes.unload {
            tracing::info!(definition = %stale, "Unloading a stale definition.");
            charon.unload(stale).await?;
        }
        for d in &changes.load {
            tracing::info!(definition = %d.name, connection = %d.conn_id, "Loading a definition.");
        }
        if !changes.load.is_empty() {
            charon.load(&changes.load).await?;
        }
        let just_loaded: HashSet<String> = changes.load.iter().map(|d| d.name.clone()).collect();
        // A definition whose learned prefixes changed is loaded again under the same name: its
        // IKE_SA and CHILD_SAs stay, the new prefixes' children are initiated under it below,
        // the withdrawn ones' closed.
        for d in &changes.relearn {
            tracing::info!(definition = %d.name, learned = d.learned.len(), "Loading a definition again: the prefixes it carries changed.");
        }
        if !changes.relearn.is_empty() {
            charon.load(&changes.relearn).await?;
        }

        let mut states = charon.sas().await?;
        // An IPsec server's clients share the gateway's SslConnections with SSL-VPN clients.
        let servers: Vec<(String, usize)> = gws
            .iter()
            .flat_map(|g| {
                let ssl_online: usize = g.ssl.iter().map(|(id, _, _)| self.ssl.observed.clients(id).len()).sum();
                let max = (g.gw.ssl_connections as usize).saturating_sub(ssl_online);
                g.servers.iter().map(move |(id, _)| (id.clone(), max))
            })
            .collect();
        let acts = plan::sa_actions(&desired, &mut states, &just_loaded, &servers, |name, fresh| self.may_initiate(name, fresh));
        for (name, id) in &acts.close {
            tracing::info!(definition = %name, ike_sa = %id, "Closing an IKE_SA of a definition that is no longer loaded.");
            charon.terminate(id).await;
        }
        for (ike, child) in &acts.initiate {
            charon.initiate(ike, child.as_deref()).await;
        }
        for (child, id) in &acts.close_children {
            tracing::info!(child = %child, child_sa = %id, "Closing the CHILD_SA of a prefix no longer learned.");
            charon.terminate_child(id).await;
        }
        for (server, id) in &acts.refuse {
            tracing::info!(ipsec_server = %server, ike_sa = %id, "Refusing a client past the gateway's SslConnections.");
            charon.terminate(id).await;
        }
        let traps = ipsec::trap_reqids(&desired.defs.values().copied().collect::<Vec<_>>());
        self.trap_map.lock().await.insert(t.socket.clone(), traps);
        drop(charons);

        // The BGP speaker of each gateway here, converged after its tunnels.
        let mut bgp_up: HashMap<String, bool> = HashMap::new();
        let mut learned: HashMap<String, Vec<vpngw_model::bgp::Learned>> = HashMap::new();
        let mut bgp_info: HashMap<String, String> = HashMap::new();
        for g in gws {
            match self.speak(t, g).await {
                Ok(seen) => {
                    for (k, p) in seen.sessions {
                        if !p.established() {
                            bgp_info.insert(k.clone(), format!("{} {}", p.state, p.info).trim().to_string());
                        }
                        bgp_up.insert(k, p.established());
                    }
                    for (k, why) in seen.refused {
                        bgp_info.insert(k, format!("not configured: {why}"));
                    }
                    learned.extend(seen.learned);
                }
                Err(e) => tracing::warn!(gateway = %g.id, error = format!("{e:#}"), "Could not converge the BGP speaker; its sessions read failed until it can."),
            }
        }
        let plan::Observed { servers, mut conns, sas } = plan::observations(gws, &desired, &states);
        let metrics = vpngw_metrics::get();
        for (tunnel, sa) in sas {
            metrics.tunnel_sa(&tunnel, sa);
        }
        for (id, o) in conns.iter_mut() {
            let Some((g, c)) = gws.iter().find_map(|g| g.conns.iter().find(|(i, _)| i == id).map(|(_, c)| (g, c))) else { continue };
            for (role, s) in vpngw_model::bgp::bgp_keys(id, c) {
                if g.sides.holds(if role == Some(vpngw_model::state::TunnelRole::Slave) { Role::Slave } else { Role::Master }) {
                    o.bgp.insert(s.clone(), bgp_up.get(&s).copied().unwrap_or(false));
                    o.learned.insert(s.clone(), learned.get(&s).cloned().unwrap_or_default());
                    if !bgp_up.get(&s).copied().unwrap_or(false) {
                        o.bgp_info.insert(s.clone(), bgp_info.get(&s).cloned().unwrap_or_else(|| "not configured: the BGP settings are incomplete, or the speaker did not answer".into()));
                    }
                }
            }
        }
        for (id, online) in servers {
            if let Err(e) = self.sink.ipsec_server(&id, online).await {
                tracing::warn!(ipsec_server = %id, error = %e, "Failed to record an observation.");
            }
        }
        // A session whose CHILD_SA has just been installed can connect from now on: BIRD would
        // otherwise wait out its connect-retry timer (5 s) before it tries again.
        let mut kick: Vec<(PathBuf, String)> = Vec::new();
        {
            let mut before = self.bgp_children.lock().await;
            let mut now = HashSet::new();
            for g in gws {
                for d in g.defs.iter() {
                    let Some(child) = &d.bgp_child else { continue };
                    if states.get(&d.name).is_some_and(|s| s.installed.contains(child)) {
                        if !before.contains(child) && conns.iter().any(|(_, o)| o.bgp.get(&d.key) == Some(&false)) {
                            kick.push((self.speaker_dir(&g.id), vpngw_model::bgp::protocol_name(&d.key)));
                        }
                        now.insert(child.clone());
                    }
                }
            }
            before.retain(|c| !gws.iter().any(|g| g.defs.iter().any(|d| d.bgp_child.as_ref() == Some(c))));
            before.extend(now);
        }
        if !kick.is_empty() {
            for (dir, protocol) in kick {
                self.bgp.kick(&dir, &protocol).await;
            }
            // BIRD tells no one when a session comes up: look again shortly.
            let events = self.events.clone();
            tokio::spawn(async move {
                for _ in 0..4 {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    events.notify_one();
                }
            });
        }
        for (id, o) in conns {
            self.record(&id, o).await;
        }
        Ok(())
    }

    /// Where a gateway's BGP speaker keeps its files.
    fn speaker_dir(&self, gw: &str) -> PathBuf {
        match &self.lab {
            Some(lab) => lab.gateway_dir(gw),
            None => self.cfg.run_dir().join("bgp").join(gw),
        }
    }

    /// Makes the gateway's BGP speaker run the sessions of its tunnels held here, and says what
    /// it sees of them.
    async fn speak(&self, t: &Target, g: &GatewayIntent) -> Result<crate::bgp::Speaking> {
        let dir = self.speaker_dir(&g.id);
        let advertise: Vec<ipnet::Ipv4Net> = g.vpc_cidrs.iter().filter_map(|c| c.parse().ok()).collect();
        let seen = self.bgp.converge(&dir, t.netns.as_deref(), &g.bgp, &advertise).await?;
        for (key, why) in &seen.refused {
            if self.reported.lock().await.insert(format!("bgp:{key}:{why}")) {
                tracing::warn!(tunnel = %key, reason = %why, "This BGP session cannot be configured; it reads failed.");
            }
        }
        Ok(seen)
    }

    /// Logs, once for each different answer, what a charon lacks of what the API accepts.
    async fn report_caps(&self, socket: &std::path::Path, caps: &Capabilities) {
        let missing = caps.missing_api();
        let summary = missing.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ");
        if !self.reported.lock().await.insert(format!("caps:{summary}")) {
            return;
        }
        if missing.is_empty() {
            tracing::info!(socket = %socket.display(), plugins = %caps.plugins.join(" "), "charon has every algorithm the API accepts.");
            return;
        }
        let mut hints: Vec<&str> = missing.iter().map(|l| l.hint).collect();
        hints.dedup();
        let hints = hints.join("; ");
        let hints = format!("{}{}", hints[..1].to_uppercase(), &hints[1..]);
        tracing::warn!(
            socket = %socket.display(),
            plugins = %caps.plugins.join(" "),
            "charon lacks {summary}, which the API accepts: connections that use them are not loaded, and DiagnoseVpnConnections says why. {hints}."

        );
    }

    fn may_initiate(&self, name: &str, fresh: bool) -> bool {
        let mut last = self.last_initiate.lock().unwrap_or_else(|e| e.into_inner());
        let due = fresh || last.get(name).is_none_or(|t| t.elapsed() >= self.timing.reinitiate);
        if due {
            last.insert(name.to_string(), Instant::now());
        }
        due
    }

    /// Writes an observation when it differs from the last one written.
    async fn record(&self, conn_id: &str, o: Observation) {
        let mut seen = self.observed.lock().await;
        if seen.get(conn_id) == Some(&o) {
            return;
        }
        match self.sink.connection(conn_id, &o).await {
            Ok(changed) => {
                if changed && seen.get(conn_id).is_none_or(|p| (&p.status, &p.tunnels) != (&o.status, &o.tunnels)) {
                    self.observed_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                seen.insert(conn_id.to_string(), o);
            }
            Err(e) => tracing::warn!(connection = %conn_id, error = %e, "Failed to record an observation."),
        }
    }

    /// Traffic hit a trap policy that libipsec cannot turn into an acquire: initiate its child.
    async fn on_trap(&self, socket: PathBuf, reqid: u32) {
        let Some((ike, child)) = self.trap_map.lock().await.get(&socket).and_then(|m| m.get(&reqid).cloned()) else { return };
        if !self.may_initiate(&child, false) {
            return;
        }
        tracing::info!(definition = %ike, child = %child, "Traffic for a tunnel that waits for it: negotiating.");
        if let Some(c) = self.charons.lock().await.get_mut(&socket) {
            c.initiate(&ike, Some(&child)).await;
        }
    }

    /// A task per charon that turns its events into passes (and trapped traffic into initiates).
    async fn ensure_listener(&self, socket: &PathBuf) {
        let mut listeners = self.listeners.lock().await;
        if listeners.get(socket).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let (sock, events, traps, connector) = (socket.clone(), self.events.clone(), self.traps.clone(), self.connector.clone());
        listeners.insert(
            socket.clone(),
            tokio::spawn(async move {
                // Reconnect quickly (a restarted charon's events must not be missed), backing
                // off while it stays away.
                let mut backoff = Duration::from_millis(10);
                loop {
                    let connected = Instant::now();
                    if let Err(e) = connector.listen(&sock, &events, &traps).await {
                        tracing::debug!(socket = %sock.display(), error = %e, "Event connection closed; reconnecting.");
                    }
                    events.notify_one();
                    backoff = if connected.elapsed() > Duration::from_secs(1) { Duration::from_millis(10) } else { (backoff * 2).min(Duration::from_millis(500)) };
                    tokio::time::sleep(backoff).await;
                }
            }),
        );
    }
}

/// The side a connection's tunnel (by connection id, or tunnel id of a dual-tunnel
/// connection) runs on.
pub(crate) fn tunnel_role(c: &VpnConnection, key: &str) -> Role {
    match c.tunnels.iter().find(|t| t.tunnel_id.as_str() == key).map(|t| t.role) {
        Some(vpngw_model::state::TunnelRole::Slave) => Role::Slave,
        _ => Role::Master,
    }
}

/// The (converged key, digest) pairs a plane reports once it runs a connection: one per side of
/// it held here (a single-tunnel connection is the master side's).
fn conn_converged<'a>(g: &'a GatewayIntent) -> impl Iterator<Item = (String, &'a str)> + 'a {
    g.conns.iter().zip(&g.conn_digests).flat_map(move |((_, c), (id, d))| {
        let roles: Vec<Role> = if c.dual() { g.sides.roles().collect() } else { g.sides.roles().filter(|r| *r == Role::Master).collect() };
        roles.into_iter().map(move |r| (converged_key(id, r), d.as_str()))
    })
}

/// Whether a connection's failed health check (policy revoke_route) withdraws its routes.
fn revoked(conns: &[(String, VpnConnection)], id: &str) -> bool {
    conns.iter().find(|(c, _)| c == id).is_some_and(|(_, c)| ipsec::Health::of(c).revoked)
}
