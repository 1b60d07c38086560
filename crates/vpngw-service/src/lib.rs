//! `vpngw-service`: one handler per action, the dispatcher in front of them, and the task
//! engine that moves resources through their lifecycle.
//!
//! A handler validates its input against the stored state, records intent in one
//! [`Store::commit`] and returns the response body. It never touches the data plane: a commit
//! wakes the reconcilers (`vpngw-dataplane`), which make the data plane follow the intent and
//! report back through [`dataplane`].
//!
//! Writes are serialized by one lock (`Service::write_lock`), so a handler's checks and its
//! commit see the same state; reads run beside them. A write's changes are staged into the
//! store's open batch under the lock (the next writer's checks see them); the lock is released
//! before the fsync, and the write answers once its batch is durable. Writers that queue
//! during one fsync share the next (group commit); the last writer of a burst commits it.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify};
use vpngw_api::{Access, ActionSpec, ApiError, Code, Params};
use vpngw_store::{IdemEntry, Mutation, Scope, Store, StoreError};

pub mod config;
pub mod dataplane;
pub mod device;
pub mod engine;
pub mod fleet;
pub mod handlers;
pub mod ids;
pub use vpngw_model::{openvpn, pki};
pub mod sealed;
pub mod secrets;
pub mod validate;

pub use config::ServiceConfig;

/// Who is calling: the account of the AccessKey that signed the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: i64,
    pub access_key_id: String,
    pub readonly: bool,
}

pub struct Service {
    pub store: Arc<dyn Store>,
    pub config: ServiceConfig,
    write_lock: Mutex<()>,
    /// Wakes the task engine when a write scheduled a task.
    pub tasks_changed: Notify,
    /// Wakes the reconcilers when intent changed (any committed write, any applied step).
    pub intent_changed: Notify,
    /// The live data plane; `None` when there is none (mode `none`), in which case lifecycle
    /// steps take the configured transition time only.
    live: std::sync::RwLock<Option<Arc<dyn vpngw_plane::LivePlane>>>,
    /// How live questions reach a fleet's agents (a server of a shared store).
    fleet_live: std::sync::RwLock<Option<Arc<dyn vpngw_plane::LivePlane>>>,
    /// The cluster has a data plane, here or on another server.
    dataplane_expected: std::sync::atomic::AtomicBool,
    /// When each lifecycle step first waited for the data plane (by task id; the engine's).
    pub(crate) waiting: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Writers waiting for the write lock: the last of a burst commits the batch.
    queued: std::sync::atomic::AtomicUsize,
    /// A diagnosis may have probes to run (set when one is made, and at start): the
    /// reconciler looks for them only then, not on every pass.
    diagnoses_pending: std::sync::atomic::AtomicBool,
}

/// Counts a writer as queued until it holds the lock (or gives up).
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Queued<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Queued(n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a handler gets: the service, the caller's scope, the parameters (common ones removed),
/// and, for writes with a ClientToken, the idempotency record its commit must carry.
pub struct Req<'a> {
    pub svc: &'a Service,
    pub action: &'static ActionSpec,
    pub scope: Scope,
    pub params: Params,
    pub request_id: String,
    idem: Option<IdemEntry>,
    /// What this request staged (it answers once that is durable), and whether it scheduled
    /// lifecycle tasks.
    staged: std::sync::Mutex<Option<(vpngw_store::Durable, bool)>>,
}

pub type Body = Map<String, Value>;
pub type HandlerResult = Result<Body, ApiError>;

impl Req<'_> {
    pub fn store(&self) -> &dyn Store {
        self.svc.store.as_ref()
    }

    /// Commits the mutations together with the ClientToken's record of this response, so a
    /// crash can never leave one without the other. They are staged now (the next writer sees
    /// them); the request answers once they are durable ([`Service::dispatch`] waits).
    pub async fn commit(&self, mut mutations: Vec<Mutation>, body: Body) -> HandlerResult {
        if let Some(idem) = &self.idem {
            let mut e = idem.clone();
            e.response = serde_json::to_string(&body).map_err(|_| ApiError::internal())?;
            mutations.push(Mutation::PutIdem(e));
        }
        if mutations.is_empty() {
            return Ok(body);
        }
        let scheduled = mutations.iter().any(|m| matches!(m, Mutation::PutTask(_)));
        let durable = self.store().stage(mutations).await.map_err(store_error)?;
        *self.staged.lock().unwrap_or_else(|e| e.into_inner()) = Some((durable, scheduled));
        Ok(body)
    }

    /// `DryRun=true`: every check passed; answer DryRunOperation and change nothing.
    pub fn dry_run(&self) -> Result<(), ApiError> {
        if self.params.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(ApiError::new(Code::DryRunOperation));
        }
        Ok(())
    }
}

/// Store failures become InternalError (retryable 5xx) and are logged once, here.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "Store call failed.");
    match e {
        StoreError::Conflict(_) => ApiError::new(Code::ServiceUnavailable),
        _ => ApiError::internal(),
    }
}

pub use vpngw_model::now_ms;

macro_rules! make_dispatch {
    ($( ($name:ident, $access:ident, $handler:ident, [$($req:ident),*]) ),* $(,)?) => {
        async fn call_handler(req: &mut Req<'_>) -> HandlerResult {
            match req.action.name {
                $( stringify!($name) => handlers::$handler(req).await, )*
                _ => Err(ApiError::new(Code::InvalidAction)),
            }
        }
    };
}

vpngw_api::for_each_action!(make_dispatch);

impl Service {
    pub fn new(store: Arc<dyn Store>, config: ServiceConfig) -> Arc<Self> {
        Arc::new(Service {
            store,
            config,
            write_lock: Mutex::new(()),
            tasks_changed: Notify::new(),
            intent_changed: Notify::new(),
            diagnoses_pending: std::sync::atomic::AtomicBool::new(true),
            live: Default::default(),
            fleet_live: Default::default(),
            dataplane_expected: Default::default(),
            waiting: Default::default(),
            queued: Default::default(),
        })
    }

    /// Authorizes and runs one action for an authenticated principal. `params` holds the
    /// action's own parameters (common ones removed).
    pub async fn dispatch(&self, action: &'static ActionSpec, principal: &Principal, params: Params, request_id: &str) -> HandlerResult {
        if action.access == Access::Write && principal.readonly {
            return Err(ApiError::msg(Code::Forbidden, "User not authorized to operate on the specified resource: the AccessKey is read-only."));
        }
        for name in action.required {
            params.req(name)?;
        }
        let region = match params.opt("RegionId") {
            Some(r) => {
                if self.config.region(r).is_none() {
                    return Err(ApiError::new(Code::InvalidRegionId));
                }
                r.to_string()
            }
            None => self.config.regions.first().map(|r| r.id.clone()).unwrap_or_default(),
        };
        let scope = Scope { account: principal.account, region };
        let mut req = Req { svc: self, action, scope, params, request_id: request_id.to_string(), idem: None, staged: Default::default() };
        if action.access == Access::Read {
            return call_handler(&mut req).await;
        }

        let queued = Queued::new(&self.queued);
        let guard = self.write_lock.lock().await;
        drop(queued);
        let (result, wait) = vpngw_store::write_scope(async {
            let result = self.write(&mut req, principal).await;
            let staged = req.staged.lock().unwrap_or_else(|e| e.into_inner()).take();
            let wait = match staged {
                Some((d, scheduled)) => Ok((d, Some(scheduled))),
                // Nothing staged: the answer may still rest on what others staged and it read.
                None => self.store.staged().await.map(|d| (d, None)),
            };
            (result, wait)
        })
        .await;
        self.store.end_scope().await;
        drop(guard);
        let (durable, committed) = wait.map_err(store_error)?;
        // The last writer of a burst commits the batch; the others ride along.
        if self.queued.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            self.store.flush().await.map_err(store_error)?;
        }
        self.store.durable(durable).await.map_err(store_error)?;
        if let Some(scheduled) = committed {
            if scheduled {
                self.tasks_changed.notify_one();
            }
            self.intent_changed.notify_one();
        }
        result
    }

    /// A write action under the write lock: ClientToken, then the handler.
    async fn write(&self, req: &mut Req<'_>, principal: &Principal) -> HandlerResult {
        let action = req.action;
        if let Some(token) = req.params.opt("ClientToken").map(str::to_string) {
            if token.len() > 64 || !token.is_ascii() {
                return Err(ApiError::invalid("ClientToken"));
            }
            let digest = params_digest(&req.params, &req.scope.region);
            if let Some(prev) = self.store.idem_get(principal.account, action.name, &token).await.map_err(store_error)? {
                if prev.digest != digest {
                    return Err(ApiError::new(Code::IdempotentParameterMismatch));
                }
                return serde_json::from_str(&prev.response).map_err(|_| ApiError::internal());
            }
            req.idem = Some(IdemEntry { account: principal.account, action: action.name.to_string(), token, digest, response: String::new(), created_ms: now_ms() });
        }
        call_handler(req).await
    }

    /// Runs `f` under the write lock, as a write scope (its reads see staged writes; its
    /// [`Store::commit`]s wait until durable): for the task engine, observations and operator
    /// commands.
    pub async fn with_write_lock<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let guard = self.write_lock.lock().await;
        let (out, staged) = vpngw_store::write_scope(async {
            let out = f.await;
            // A scope that only read still opened a batch (and, on PostgreSQL, took the
            // cluster's write lock): it must end too.
            (out, self.store.staged().await)
        })
        .await;
        self.store.end_scope().await;
        drop(guard);
        if let Ok(d) = staged {
            if let Err(e) = self.store.durable(d).await {
                tracing::warn!(error = %e, "A batch failed to commit.");
            }
        }
        out
    }
}

fn params_digest(params: &Params, region: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(region.as_bytes());
    h.update([0]);
    for (k, v) in params.iter() {
        if k != "ClientToken" {
            h.update(k.as_bytes());
            h.update([1]);
            h.update(v.as_bytes());
            h.update([2]);
        }
    }
    hex::encode(h.finalize())
}

/// What the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// Runs one action as account 1, as the HTTP front would after authentication; panics on
    /// an error answer.
    pub(crate) async fn call(svc: &crate::Service, action: &str, params: &[(&str, &str)]) -> crate::Body {
        let principal = crate::Principal { account: 1, access_key_id: "test".into(), readonly: false };
        let params = vpngw_api::Params::from_pairs(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        svc.dispatch(vpngw_api::actions::find(action).unwrap(), &principal, params, "test").await.unwrap_or_else(|e| panic!("{action}: {e:?}"))
    }
}
