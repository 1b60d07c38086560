//! Start-up: open the store, sync the configured accounts, build the service, serve.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use vpngw_service::{ids, Service};
use vpngw_store::sqlite::SqliteStore;
use vpngw_store::{AccessKey, Store};

use crate::config::Config;
use crate::http::{app, AppState};

pub fn open_store(data_dir: &Path) -> anyhow::Result<Arc<SqliteStore>> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("create data dir {}", data_dir.display()))?;
    Ok(Arc::new(SqliteStore::open(&data_dir.join("vpngw.db")).context("open the SQLite store")?))
}

/// Makes the store's accounts and keys include the configured ones. With none configured and
/// none stored, creates one account and key and prints them once.
pub async fn sync_accounts(store: &dyn Store, cfg: &Config) -> anyhow::Result<()> {
    for a in &cfg.accounts {
        let account = match store.account_by_name(&a.name).await? {
            Some(acc) => acc,
            None => store.create_account(&a.name).await?,
        };
        store.put_key(&AccessKey { access_key_id: a.access_key_id.clone(), secret: a.access_key_secret.clone(), account_id: account.id, readonly: a.readonly }).await?;
    }
    if cfg.accounts.is_empty() && store.accounts().await?.is_empty() {
        let (account, key) = create_account_with_key(store, "default").await?;
        println!("Created account {} with a new AccessKey (shown only now):", account);
        println!("  AccessKeyId:     {}", key.access_key_id);
        println!("  AccessKeySecret: {}", key.secret);
    }
    Ok(())
}

pub async fn create_account_with_key(store: &dyn Store, name: &str) -> anyhow::Result<(String, AccessKey)> {
    let account = store.create_account(name).await?;
    let key = create_key(store, account.id, false).await?;
    Ok((account.name, key))
}

pub async fn create_key(store: &dyn Store, account_id: i64, readonly: bool) -> anyhow::Result<AccessKey> {
    let key = AccessKey { access_key_id: format!("LTAI{}", ids::secret(20)), secret: ids::secret(30), account_id, readonly };
    store.put_key(&key).await?;
    Ok(key)
}

/// A running server: its address and a handle to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub done: tokio::task::JoinHandle<()>,
}

/// Builds everything from the configuration and serves until `shutdown` is sent.
pub async fn start(cfg: &Config, store: Arc<dyn Store>) -> anyhow::Result<Running> {
    sync_accounts(store.as_ref(), cfg).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let mut svc_cfg = cfg.service_config()?;
    svc_cfg.endpoint = addr.to_string();
    let svc = Service::new(store, svc_cfg);
    let sealed = vpngw_service::handlers::seal_legacy_keys(&svc).await?;
    if sealed > 0 {
        tracing::info!(sealed, "Sealed the private keys of certificates imported before keys were sealed.");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(vpngw_service::engine::run(svc.clone(), rx.clone()));
    let reconciler = match cfg.dataplane.mode {
        vpngw_dataplane::config::Mode::None => None,
        mode => {
            tracing::info!(?mode, "Starting the data plane reconciler.");
            // The embedded data plane: it reads intent from this service's store and reports
            // back to it, through the same two interfaces a plane on another host would use.
            let r = vpngw_dataplane::reconciler::Reconciler::new(svc.clone(), svc.clone(), cfg.dataplane.clone())?;
            svc.attach_dataplane(r.live());
            Some(tokio::spawn(r.run(rx.clone())))
        }
    };
    let state = AppState::new(svc, cfg.host_id.clone(), cfg.max_clock_skew_secs);
    let mut rx2 = rx;
    let done = tokio::spawn(async move {
        let serve = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
            while !*rx2.borrow() {
                if rx2.changed().await.is_err() {
                    break;
                }
            }
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "Server failed.");
        }
        let _ = engine.await;
        if let Some(r) = reconciler {
            let _ = r.await;
        }
    });
    Ok(Running { addr, shutdown: tx, done })
}
