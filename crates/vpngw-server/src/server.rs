//! Start-up: open the store, sync the configured accounts, build the service, serve.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use vpngw_service::{ids, Service};
use vpngw_store::postgres::PgStore;
use vpngw_store::sqlite::SqliteStore;
use vpngw_store::{AccessKey, Store};

use crate::config::Config;
use crate::http::{app, AppState};

/// Opens the store the configuration names, with secrets sealed under the master key (see
/// `vpngw_service::sealed`); values written in the clear before sealing existed are sealed now.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let raw = open_raw_store(cfg).await?;
    let sealer = Arc::new(cfg.sealer()?);
    vpngw_service::sealed::check_key(raw.as_ref(), &sealer).await?;
    // Only an SQLite file can hold what a version before sealing wrote; a shared database was
    // always written sealed, and its servers need not read it whole at every start.
    if !raw.shared() {
        let swept = vpngw_service::sealed::reseal(raw.as_ref(), &sealer, &sealer, true).await.context("seal the secrets stored in the clear")?;
        if swept != Default::default() {
            tracing::info!(secrets = swept.secrets, keys = swept.keys, answers = swept.answers, "Sealed secrets that were stored in the clear.");
        }
    }
    Ok(vpngw_service::sealed::SealedStore::wrap(raw, sealer))
}

/// Opens the store the configuration names, as it is (secrets as stored): PostgreSQL for a
/// `postgres://` or `postgresql://` URL, else the embedded SQLite file (`sqlite://PATH`, or
/// `<data_dir>/vpngw.db`), in a data directory only its owner may read, as a file only its
/// owner may read.
pub async fn open_raw_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = cfg.store.as_deref().unwrap_or("").trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url).await.context("open the PostgreSQL store")?;
        return Ok(Arc::new(store));
    }
    let path = match url.strip_prefix("sqlite://") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        Some(_) => anyhow::bail!("store = \"sqlite://\" names no file"),
        None if url.is_empty() => cfg.data_dir.join("vpngw.db"),
        None => anyhow::bail!("store {url:?}: use postgres://…, postgresql://… or sqlite://PATH"),
    };
    crate::config::private_dir(&cfg.data_dir)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    private_file(&path)?;
    Ok(Arc::new(SqliteStore::open(&path).context("open the SQLite store")?))
}

/// The SQLite file, created 0600 if missing (its -wal and -shm files take its mode), or made
/// 0600 with them.
fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).with_context(|| format!("create {}", path.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).with_context(|| format!("make {} private", p.display()))?;
        }
    }
    Ok(())
}

/// Replaces the master key: the new key is written beside the old as `<file>.new`, every secret
/// is re-sealed under it, and it replaces the old in the key file (the old one is kept as
/// `<file>.previous`). Run again after a failure, it finishes the same rotation. With
/// `VPNGW_MASTER_KEY`, the new key is returned for the operator to set instead. Run it with
/// every server of the cluster stopped; start them with the new key.
pub async fn rotate_master_key(cfg: &Config) -> anyhow::Result<Option<String>> {
    let old = cfg.sealer()?;
    let raw = open_raw_store(cfg).await?;
    let from_env = std::env::var("VPNGW_MASTER_KEY").is_ok_and(|v| !v.is_empty());
    let path = cfg.master_key_path();
    let staged = PathBuf::from(format!("{}.new", path.display()));
    // A rotation that stopped half-way left its new key here: finish that one.
    let resumed = (!from_env).then(|| std::fs::read(&staged).ok()).flatten().filter(|b| b.len() == 32);
    let resuming = resumed.is_some();
    let (new, bytes) = match resumed {
        Some(b) => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&b);
            (vpngw_service::secrets::Sealer::from_hex(&hex::encode(k))?, k)
        }
        None => vpngw_service::secrets::Sealer::generate(),
    };
    if !from_env && !resuming {
        // The new key is on disk before any secret depends on it.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&staged);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged).with_context(|| format!("create {}", staged.display()))?;
        f.write_all(&bytes).and_then(|_| f.sync_all()).with_context(|| format!("write {}", staged.display()))?;
    }
    let done = vpngw_service::sealed::reseal(raw.as_ref(), &old, &new, false).await.context("re-seal the secrets")?;
    tracing::info!(secrets = done.secrets, keys = done.keys, answers = done.answers, "Re-sealed every secret under the new master key.");
    if from_env {
        return Ok(Some(hex::encode(bytes)));
    }
    let previous = PathBuf::from(format!("{}.previous", path.display()));
    std::fs::rename(&path, &previous).with_context(|| format!("keep the old key as {}", previous.display()))?;
    std::fs::rename(&staged, &path).with_context(|| format!("put the new key in {}", path.display()))?;
    Ok(None)
}

/// Makes the store's accounts and keys include the configured ones. With none configured and
/// none stored, creates one account and key and prints them once.
/// Brings the configuration's accounts and keys into the store. On a first start with no
/// account at all, creates `default` with a new key and returns it (to be shown once).
pub async fn sync_accounts(store: &dyn Store, cfg: &Config) -> anyhow::Result<Option<(String, AccessKey)>> {
    for a in &cfg.accounts {
        let account = match store.account_by_name(&a.name).await? {
            Some(acc) => acc,
            // Another server starting beside this one may create it first.
            None => match store.create_account(&a.name).await {
                Ok(acc) => acc,
                Err(vpngw_store::StoreError::Conflict(_)) => store.account_by_name(&a.name).await?.context("an account that exists and does not")?,
                Err(e) => return Err(e.into()),
            },
        };
        store.put_key(&AccessKey { access_key_id: a.access_key_id.clone(), secret: a.access_key_secret.clone(), account_id: account.id, readonly: a.readonly, revoked_ms: None }).await?;
    }
    if cfg.accounts.is_empty() && store.accounts().await?.is_empty() {
        return match create_account_with_key(store, "default").await {
            Ok(made) => Ok(Some(made)),
            // Another server starting beside this one made it (and printed its key).
            Err(e) if e.downcast_ref::<vpngw_store::StoreError>().is_some_and(|e| matches!(e, vpngw_store::StoreError::Conflict(_))) => Ok(None),
            Err(e) => Err(e),
        };
    }
    Ok(None)
}

pub async fn create_account_with_key(store: &dyn Store, name: &str) -> anyhow::Result<(String, AccessKey)> {
    let account = store.create_account(name).await?;
    let key = create_key(store, account.id, false).await?;
    Ok((account.name, key))
}

pub async fn create_key(store: &dyn Store, account_id: i64, readonly: bool) -> anyhow::Result<AccessKey> {
    create_key_with_prefix(store, account_id, readonly, "LTAI").await
}

/// A new key whose id starts with `prefix` (`LTAICON`: a console sign-in link's).
pub async fn create_key_with_prefix(store: &dyn Store, account_id: i64, readonly: bool, prefix: &str) -> anyhow::Result<AccessKey> {
    let key = AccessKey { access_key_id: format!("{prefix}{}", ids::secret(20)), secret: ids::secret(30), account_id, readonly, revoked_ms: None };
    store.put_key(&key).await?;
    Ok(key)
}

/// Runs the embedded data plane while this process leads the cluster (always, on SQLite; on
/// PostgreSQL, while it holds the leader's lock): it reads intent from this service's store and
/// reports back to it, through the same two interfaces a plane on another host would use. A
/// process that loses the lead stops its reconciler before another may start one.
async fn drive_dataplane(
    svc: Arc<Service>,
    first: Arc<vpngw_dataplane::reconciler::Reconciler>,
    dp: vpngw_dataplane::config::DataPlaneConfig,
    mode: vpngw_dataplane::config::Mode,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut next = Some(first);
    loop {
        let mut lead = tokio::select! {
            l = svc.store.lead() => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "Cannot take the data plane's lead.");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let r = match next.take().map(Ok).unwrap_or_else(|| vpngw_dataplane::reconciler::Reconciler::new(svc.clone(), svc.clone(), dp.clone())) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "Cannot start the data plane.");
                return;
            }
        };
        // A cluster with a fleet of agents: they run the data plane, not its leader.
        if fleet_exists(&svc).await {
            tracing::info!("A fleet of gateway agents runs the data plane: this server does not.");
            drop(lead);
            next = None;
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => continue,
                _ = shutdown.changed() => return,
            }
        }
        tracing::info!(?mode, "Starting the data plane reconciler: this server drives the data plane.");
        svc.attach_dataplane(r.live());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut run = tokio::spawn(r.run(stop_rx));
        let fleet = async {
            while !fleet_exists(&svc).await {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        };
        tokio::select! {
            _ = fleet => {
                tracing::info!("Gateway agents joined: this server stops driving the data plane.");
                svc.detach_dataplane();
                let _ = stop_tx.send(true);
                let _ = (&mut run).await;
                next = None;
            }
            _ = lead.lost() => {
                tracing::error!("This server lost the data plane's lead (its database session ended): stopping its reconciler.");
                svc.detach_dataplane();
                run.abort();
                let _ = run.await;
            }
            _ = shutdown.changed() => {
                let _ = stop_tx.send(true);
                let _ = (&mut run).await;
                return;
            }
            _ = &mut run => return,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true (then lets open requests finish);
/// `failed` is what the log says if serving fails.
pub(crate) async fn serve_until<L>(listener: L, router: axum::Router, mut shutdown: tokio::sync::watch::Receiver<bool>, failed: &'static str)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    });
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "{failed}");
    }
}

/// Whether the store has gateway agents (registered, live or not).
async fn fleet_exists(svc: &Service) -> bool {
    svc.store.shared() && svc.store.agents().await.is_ok_and(|a| !a.is_empty())
}

/// A running server: its address and a handle to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    /// Whether the port speaks TLS (then plain HTTP only to loopback peers), and the CA file a
    /// client should trust when vpngw made the certificate.
    pub tls: Option<Option<std::path::PathBuf>>,
    /// The account and key a first start created (shown once, by the caller).
    pub created: Option<(String, AccessKey)>,
    /// Where `GET /metrics` is served, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub done: tokio::task::JoinHandle<()>,
}

use crate::tls::ApiListener;
use axum::response::IntoResponse;

/// Serves `GET /metrics` (the Prometheus text format) on `metrics_listen`, apart from the API;
/// the gauges of what exists are read from the store at each scrape. The address it serves on.
pub(crate) async fn serve_metrics(cfg: &Config, svc: Arc<Service>, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let (addr, required) = match cfg.metrics_listen.as_deref() {
        None => ("127.0.0.1:9464", false),
        Some("") | Some("off") => return Ok(None),
        Some(a) => (a, true),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if !required => {
            tracing::warn!(%addr, error = %e, "Metrics are not served: their default address is busy (set metrics_listen).");
            return Ok(None);
        }
        Err(e) => return Err(anyhow::Error::from(e).context(format!("listen on {addr} (metrics_listen)"))),
    };
    let bound = listener.local_addr()?;
    let svc_for_status = svc.clone();
    let scrape = move || {
        let svc = svc.clone();
        async move {
            let m = vpngw_metrics::get();
            match svc.census().await {
                Ok(c) => m.set_census(&c),
                Err(e) => tracing::warn!(error = %e, "Metrics: the store could not be read; the gauges keep their last values."),
            }
            ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode())
        }
    };
    let report_svc = svc_for_status.clone();
    let status = move || {
        let svc = report_svc.clone();
        async move {
            match status_report(&svc).await {
                Ok(v) => ([(axum::http::header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
                Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("the store could not be read: {e}")).into_response(),
            }
        }
    };
    let router = axum::Router::new().route("/metrics", axum::routing::get(scrape)).route("/status", axum::routing::get(status));
    tokio::spawn(serve_until(listener, router, stop, "The metrics listener failed."));
    Ok(Some(bound))
}

/// `GET /status` on the operator's listener: every gateway (and VPN attachment) with its
/// connections and each tunnel's negotiation status, health and BGP state from the store, and
/// its SAs' age and counters as this process's data plane read them from charon last (absent
/// where another process runs the tunnel). What `vpngw status` prints.
pub async fn status_report(svc: &Service) -> anyhow::Result<serde_json::Value> {
    use serde_json::json;
    use vpngw_model::connection::VpnConnection;
    use vpngw_store::Kind;
    let sas = vpngw_metrics::get().tunnel_sas();
    let tunnel = |key: &str, role: &str, status: &str, bgp: Option<bool>, health: &str| {
        let sa = sas.get(key);
        json!({
            "tunnel": key, "role": role, "status": status,
            "established_secs": sa.map(|s| s.established_secs), "bytes_in": sa.map(|s| s.bytes_in), "bytes_out": sa.map(|s| s.bytes_out),
            "packets_in": sa.map(|s| s.packets_in), "packets_out": sa.map(|s| s.packets_out),
            "health": health, "bgp": bgp.map(|up| if up { "established" } else { "down" }),
        })
    };
    let conn_json = |r: &vpngw_store::Record| -> serde_json::Value {
        let Ok(c) = serde_json::from_value::<VpnConnection>(r.doc.clone()) else { return json!({"id": r.id, "state": r.status, "tunnels": []}) };
        let health = if c.health.enable {
            if c.health_status == "success" {
                "success"
            } else {
                "failed"
            }
        } else {
            ""
        };
        let tunnels: Vec<serde_json::Value> = if c.dual() {
            c.tunnels.iter().map(|t| tunnel(t.tunnel_id.as_str(), t.role.as_str(), t.status.as_str(), c.enable_tunnels_bgp.then_some(t.bgp_up), health)).collect()
        } else {
            vec![tunnel(&r.id, "", c.status.as_str(), c.bgp.enable.then_some(c.bgp_up), health)]
        };
        json!({"id": r.id, "name": c.name, "state": r.status, "attach_type": c.attach_type, "tunnels": tunnels})
    };
    let conns = svc.store.all(Kind::VpnConnection).await?;
    let mut gateways = Vec::new();
    for g in svc.store.all(Kind::VpnGateway).await? {
        let doc: vpngw_model::gateway::VpnGateway = match serde_json::from_value(g.doc.clone()) {
            Ok(d) => d,
            Err(_) => continue,
        };
        let mine: Vec<serde_json::Value> = conns.iter().filter(|c| c.parent.as_deref() == Some(g.id.as_str())).map(conn_json).collect();
        gateways.push(json!({
            "id": g.id, "account": g.account, "region": g.region, "name": doc.name, "type": doc.gateway_type, "state": g.status,
            "internet_ip": doc.internet_ip, "dr_internet_ip": doc.dr_internet_ip, "connections": mine,
        }));
    }
    for c in conns.iter().filter(|c| c.parent.is_none()) {
        let ip = c.doc["internet_ip"].as_str().unwrap_or_default().to_string();
        gateways.push(json!({
            "id": vpngw_model::connection::attachment_gateway_id(&c.id), "account": c.account, "region": c.region, "name": "", "type": "Attachment",
            "state": c.status, "internet_ip": ip, "dr_internet_ip": null, "connections": [conn_json(c)],
        }));
    }
    Ok(json!({"gateways": gateways}))
}

/// The file in the data directory that names the running server's process.
pub const PID_FILE: &str = "serve.pid";

/// Asks the server running on `data_dir`, if any, to read AccessKeys again (SIGHUP); whether one
/// was told. Only a process whose command line is `vpngw … serve` is signalled.
pub fn signal_running_server(data_dir: &std::path::Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(data_dir.join(PID_FILE)) else { return false };
    let pid = pid.trim();
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args.first().is_some_and(|a| a.ends_with(b"vpngw")) && args.iter().any(|a| *a == b"serve");
    ours && std::process::Command::new("kill").args(["-HUP", pid]).status().is_ok_and(|s| s.success())
}

/// Builds everything from the configuration and serves until `shutdown` is sent.
pub async fn start(cfg: &Config, store: Arc<dyn Store>) -> anyhow::Result<Running> {
    let tls = crate::tls::load(cfg, &cfg.listen)?;
    // The port first: a start that cannot serve makes no key.
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let created = sync_accounts(store.as_ref(), cfg).await?;
    let mut svc_cfg = cfg.service_config()?;
    svc_cfg.endpoint = addr.to_string();
    let svc = Service::new(store, svc_cfg);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(vpngw_service::engine::run(svc.clone(), rx.clone()));
    // Other servers' commits wake this one's engine and reconciler.
    if let Some(mut changes) = svc.store.changes() {
        let svc = svc.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                svc.tasks_changed.notify_one();
                svc.intent_changed.notify_one();
                svc.diagnoses_waiting();
            }
        });
    }
    // On a shared store, a fleet's agents may run the data plane: live questions go to them.
    if svc.store.shared() {
        svc.attach_fleet(crate::agent::FleetTransport::live(svc.store.clone(), svc.config.sealer.clone()));
    }
    let reconciler = match cfg.dataplane.mode {
        vpngw_dataplane::config::Mode::None => None,
        mode => {
            // Built now, so that a configuration it cannot run stops the start.
            let first = vpngw_dataplane::reconciler::Reconciler::new(svc.clone(), svc.clone(), cfg.dataplane.clone())?;
            svc.expect_dataplane();
            Some(tokio::spawn(drive_dataplane(svc.clone(), first, cfg.dataplane.clone(), mode, rx.clone())))
        }
    };
    let metrics = serve_metrics(cfg, svc.clone(), rx.clone()).await?;
    let state = AppState::new(svc, cfg.host_id.clone(), cfg.max_clock_skew_secs);
    // `vpngw key revoke` beside a running server finds it by this file and signals it (SIGHUP)
    // to forget the keys it has read, so that a revoked key is refused at once.
    let pid_file = cfg.data_dir.join(PID_FILE);
    std::fs::write(&pid_file, std::process::id().to_string()).with_context(|| format!("write {}", pid_file.display()))?;
    {
        let (state, mut stop) = (state.clone(), rx.clone());
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        got = hup.recv() => {
                            if got.is_none() {
                                break;
                            }
                            state.forget_keys();
                            tracing::info!("SIGHUP: AccessKeys are read again from the store.");
                        }
                        _ = stop.changed() => break,
                    }
                }
            });
        }
    }
    let tls_info = tls.as_ref().map(|t| t.ca.clone());
    let listener = match &tls {
        Some(t) => ApiListener::Tls(crate::tls::Listener::new(listener, t, cfg.host_id.clone())?),
        None => ApiListener::Plain(listener),
    };
    let done = tokio::spawn(async move {
        match listener {
            ApiListener::Plain(plain) => serve_until(plain, app(state), rx, "Server failed.").await,
            ApiListener::Tls(tls) => serve_until(tls, app(state), rx, "Server failed.").await,
        }
        let _ = std::fs::remove_file(&pid_file);
        let _ = engine.await;
        if let Some(r) = reconciler {
            let _ = r.await;
        }
    });
    Ok(Running { addr, tls: tls_info, created, metrics, shutdown: tx, done })
}
