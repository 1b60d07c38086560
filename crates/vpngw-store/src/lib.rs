//! `vpngw-store`: where intent and identity live.
//!
//! One [`Store`] trait, at the level of the domain (resources of a [`Kind`] in an account's
//! region, their tags, ClientToken results, scheduled lifecycle tasks, accounts and keys), and
//! its two backends: the embedded SQLite file ([`sqlite::SqliteStore`], one process) and
//! PostgreSQL ([`postgres::PgStore`], any number of servers on one database). Handlers only ever
//! see the trait; `conformance.rs` (test code) is the suite both backends pass.
//!
//! What we store: intent (every resource as its handler wrote it), identity (accounts, keys),
//! ClientToken results, and the lifecycle tasks that move resources between states, so that a
//! restart picks them up. Every write is one transaction ([`Store::commit`]) that is durable
//! before it is acknowledged. Observed data-plane state, once there is any, is a cache that
//! reconcilers can rebuild.
//!
//! This crate must not know about the wire format or the data plane.

use std::collections::HashMap;

use async_trait::async_trait;

#[cfg(test)]
mod conformance;
pub mod postgres;
pub mod sqlite;

/// The kinds of resources the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Vpc,
    VSwitch,
    VpnGateway,
    CustomerGateway,
    VpnConnection,
    /// A VPN route entry (destination or policy-based) of a gateway; routes have no API id.
    VpnRoute,
    IpsecServer,
    /// An SSL-VPN server of a gateway (parent: the gateway).
    SslVpnServer,
    /// An SSL-VPN client certificate (parent: its SSL-VPN server).
    SslVpnClientCert,
    /// A certificate the operator imported (`vpngw cert import`); region-independent.
    Certificate,
    /// A one-click diagnosis of a gateway (DiagnoseVpnGateway; parent: the gateway).
    VpnGatewayDiagnosis,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Vpc,
        Kind::VSwitch,
        Kind::VpnGateway,
        Kind::CustomerGateway,
        Kind::VpnConnection,
        Kind::VpnRoute,
        Kind::IpsecServer,
        Kind::SslVpnServer,
        Kind::SslVpnClientCert,
        Kind::Certificate,
        Kind::VpnGatewayDiagnosis,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::VSwitch => "vswitch",
            Kind::VpnGateway => "vpn_gateway",
            Kind::CustomerGateway => "customer_gateway",
            Kind::VpnConnection => "vpn_connection",
            Kind::VpnRoute => "vpn_route",
            Kind::IpsecServer => "ipsec_server",
            Kind::SslVpnServer => "ssl_vpn_server",
            Kind::SslVpnClientCert => "ssl_vpn_client_cert",
            Kind::Certificate => "certificate",
            Kind::VpnGatewayDiagnosis => "vpn_gateway_diagnosis",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// An account's view: every read and write is inside one account and one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account: i64,
    pub region: String,
}

/// One stored resource. `doc` is the resource itself, as the service serialized it; `parent`
/// (the VPC of a vSwitch or gateway, ...) and `status` are kept beside it for filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    pub id: String,
    pub account: i64,
    pub region: String,
    pub parent: Option<String>,
    pub status: String,
    pub created_ms: i64,
    pub doc: serde_json::Value,
}

/// A filtered, paged listing. Filters are AND-ed; `fields` compare top-level keys of `doc`
/// (a key written `name[]` matches when the array `name` contains the value);
/// `tags` match a key and, if given, its value. Results come newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub ids: Vec<String>,
    pub parent: Option<String>,
    pub status: Option<String>,
    pub fields: Vec<(String, String)>,
    pub tags: Vec<(String, Option<String>)>,
    pub offset: u64,
    pub limit: u64,
}

impl ListQuery {
    /// A field filter's document key and whether it tests array membership (`name[]`); only
    /// letters, digits and `_` may name a key (it is written into the query).
    pub(crate) fn field(f: &str) -> Result<(&str, bool)> {
        let (name, contains) = match f.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (f, false),
        };
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
            return Err(StoreError::Other(format!("bad field name {f}")));
        }
        Ok((name, contains))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Record>,
    pub total: u64,
}

/// One tag of one resource, as ListTagResources returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub kind: Kind,
    pub resource_id: String,
    pub key: String,
    pub value: String,
}

/// A ClientToken's first result, kept so that a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemEntry {
    pub account: i64,
    pub action: String,
    pub token: String,
    /// A digest of the request's parameters: a reuse with other parameters is refused.
    pub digest: String,
    /// The response body (JSON object without RequestId).
    pub response: String,
    pub created_ms: i64,
}

/// A lifecycle step due at `due_ms`: the task engine applies `op` to the resource then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub kind: Kind,
    pub resource_id: String,
    pub op: String,
    pub due_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret: String,
    pub account_id: i64,
    pub readonly: bool,
    /// When it was revoked (ms since the epoch): a revoked key is refused. [`Store::put_key`]
    /// never clears it, so a configuration that still names the key does not bring it back.
    pub revoked_ms: Option<i64>,
}

/// The secret is never printed.
impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("readonly", &self.readonly)
            .field("revoked_ms", &self.revoked_ms)
            .finish()
    }
}

/// One change inside a [`Store::commit`]: all of a commit's mutations apply together or not
/// at all.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Inserts the record, or replaces the one with the same id (its creation order is kept).
    Put(Record),
    /// Removes the record, its tags and the addresses it holds.
    Delete {
        kind: Kind,
        id: String,
    },
    /// Sets these tags (replacing the value of a key it already has).
    SetTags {
        kind: Kind,
        id: String,
        scope: Scope,
        tags: Vec<(String, String)>,
    },
    /// Removes these tag keys, or every tag when `keys` is `None`.
    RemoveTags {
        id: String,
        keys: Option<Vec<String>>,
    },
    PutIdem(IdemEntry),
    /// Replaces a ClientToken's entry (re-sealing its answer under a new master key).
    ReplaceIdem(IdemEntry),
    PutTask(Task),
    DeleteTask {
        id: String,
    },
    /// Claims an address from a pool for a resource; fails with `Conflict` if it is taken.
    ClaimAddress {
        ip: String,
        owner: String,
    },
    /// Places a gateway side on an agent (at its epoch), or takes it off any (`None`).
    Place {
        side: String,
        on: Option<(String, i64)>,
    },
    /// Fails the whole commit with `Conflict` unless `side` is placed on `agent` at `epoch`: what
    /// an agent's every write carries, so that one which lost its lease changes nothing.
    Fence {
        side: String,
        agent: String,
        epoch: i64,
    },
    /// The intent digest the data plane runs for a resource (an agent's report, fenced in the
    /// same commit; the embedded data plane uses [`Store::set_converged`]).
    Converged {
        id: String,
        digest: String,
    },
}

/// What an agent says of itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentInfo {
    pub name: String,
    pub zone: String,
    /// The public addresses it can bind (empty: any).
    pub addresses: Vec<String>,
    /// Where the API servers ask it live questions.
    pub live_url: String,
}

/// An agent as the fleet's table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub info: AgentInfo,
    /// Moves at each registration: placements and writes name the epoch they belong to.
    pub epoch: i64,
    /// When its lease ends, and how long from now (negative once expired), by the store's clock.
    pub lease_until_ms: i64,
    pub lease_left_ms: i64,
}

impl AgentRow {
    pub fn alive(&self) -> bool {
        self.lease_left_ms > 0
    }
}

/// A gateway side placed on an agent at one of its epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub side: String,
    pub agent: String,
    pub epoch: i64,
}

/// How a batch of staged writes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Durable,
    Failed(String),
}

/// A staged write's promise: [`Durable::wait`] returns once its batch is on disk.
pub struct Durable(pub(crate) Option<tokio::sync::watch::Receiver<Outcome>>);

impl Durable {
    /// Nothing to wait for.
    pub fn ready() -> Durable {
        Durable(None)
    }

    pub async fn wait(&mut self) -> Result<()> {
        let Some(rx) = self.0.as_mut() else { return Ok(()) };
        loop {
            match &*rx.borrow_and_update() {
                Outcome::Durable => return Ok(()),
                Outcome::Failed(e) => return Err(StoreError::Other(format!("the commit failed: {e}"))),
                Outcome::Pending => {}
            }
            if rx.changed().await.is_err() {
                return match &*rx.borrow() {
                    Outcome::Durable => Ok(()),
                    other => Err(StoreError::Other(format!("the batch ended without committing: {other:?}"))),
                };
            }
        }
    }
}

tokio::task_local! {
    /// Set while a request holds the service's write lock: its reads see staged writes. Holds
    /// the batch it first read from (0 until it reads).
    static WRITE_SCOPE: std::cell::Cell<u64>;
}

/// Runs `f` as a write scope (under the service's write lock): its reads see what earlier
/// writers staged but have not yet made durable.
pub async fn write_scope<F: std::future::Future>(f: F) -> F::Output {
    WRITE_SCOPE.scope(std::cell::Cell::new(0), f).await
}

pub(crate) fn in_write_scope() -> bool {
    WRITE_SCOPE.try_with(|_| ()).is_ok()
}

/// The batch the current write scope first read from, recording `current` if it had none
/// (0 outside a scope).
pub(crate) fn scope_batch(current: u64) -> u64 {
    WRITE_SCOPE
        .try_with(|c| {
            if c.get() == 0 {
                c.set(current);
            }
            c.get()
        })
        .unwrap_or(0)
}

pub(crate) fn current_scope() -> Option<u64> {
    WRITE_SCOPE.try_with(|c| c.get()).ok()
}

/// Runs `f` (on another thread) in a copy of the scope, and brings what it recorded back.
pub(crate) fn with_scope<T>(scope: Option<u64>, f: impl FnOnce() -> T) -> (T, Option<u64>) {
    match scope {
        Some(v) => WRITE_SCOPE.sync_scope(std::cell::Cell::new(v), || {
            let out = f();
            (out, current_scope())
        }),
        None => (f(), None),
    }
}

pub(crate) fn restore_scope(v: Option<u64>) {
    if let Some(v) = v {
        let _ = WRITE_SCOPE.try_with(|c| {
            if c.get() == 0 {
                c.set(v)
            }
        });
    }
}

/// The right to drive the data plane: held by one process of a cluster at a time
/// ([`Store::lead`]). Dropping it gives it up.
pub struct Leadership {
    lost: Option<tokio::sync::oneshot::Receiver<()>>,
    hold: Option<tokio::task::JoinHandle<()>>,
}

impl Leadership {
    /// Held for as long as the process runs (a store no other process shares).
    pub fn for_good() -> Leadership {
        Leadership { lost: None, hold: None }
    }

    /// Held until `lost` fires; `hold` keeps it (aborted when this is dropped).
    pub fn until(lost: tokio::sync::oneshot::Receiver<()>, hold: tokio::task::JoinHandle<()>) -> Leadership {
        Leadership { lost: Some(lost), hold: Some(hold) }
    }

    /// Returns once the leadership is lost (never, for [`Leadership::for_good`]).
    pub async fn lost(&mut self) {
        match self.lost.as_mut() {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(h) = self.hold.take() {
            h.abort();
        }
    }
}

/// The in-process SignatureNonce window of a store no other process shares: sharded maps of
/// `key → when seen` (Unix seconds).
pub struct LocalNonces {
    shards: Vec<std::sync::Mutex<HashMap<String, i64>>>,
}

impl Default for LocalNonces {
    fn default() -> Self {
        LocalNonces { shards: (0..16).map(|_| Default::default()).collect() }
    }
}

impl LocalNonces {
    /// Records `key` seen at `now_s`; false if it was seen at or after `horizon_s` already.
    pub fn fresh(&self, key: &str, now_s: i64, horizon_s: i64) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let Ok(mut seen) = self.shards[h.finish() as usize % self.shards.len()].lock() else { return false };
        if seen.len() > 4096 && seen.len().is_power_of_two() {
            seen.retain(|_, t| *t >= horizon_s);
        }
        match seen.get(key) {
            Some(t) if *t >= horizon_s => false,
            _ => {
                seen.insert(key.to_string(), now_s);
                true
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("store failure: {0}")]
    Other(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<Record>>;
    /// A record with its tags (sorted by key), in one call.
    async fn get_tagged(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<(Record, Vec<(String, String)>)>> {
        let Some(rec) = self.get(kind, scope, id).await? else { return Ok(None) };
        let tags = self.tags(std::slice::from_ref(&rec.id)).await?.remove(&rec.id).unwrap_or_default();
        Ok(Some((rec, tags)))
    }
    /// Outside any scope: for operator commands and the task engine.
    async fn get_any(&self, kind: Kind, id: &str) -> Result<Option<Record>>;
    /// Every record of a kind, of every account and region, oldest first (for reconcilers).
    async fn all(&self, kind: Kind) -> Result<Vec<Record>>;
    async fn list(&self, kind: Kind, scope: &Scope, q: &ListQuery) -> Result<Page>;
    /// `root` (of any kind) and, in one read, its descendants of the given kinds: children whose
    /// parent is `root`, their children, and so on, following only records of those kinds.
    /// Oldest first, the root first. What a write's rules read: a VPC with its gateways and
    /// their routes and servers, say. Empty if the scope has no `root`.
    async fn family(&self, scope: &Scope, root: &str, kinds: &[Kind]) -> Result<Vec<Record>>;
    /// How many records of a kind the scope has (under one parent, if given).
    async fn count(&self, kind: Kind, scope: &Scope, parent: Option<&str>) -> Result<u64>;
    /// The tags of these resources, each list sorted by key.
    async fn tags(&self, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>>;
    /// Tag rows of resources of `kind` in the scope: of the given ids (if any), of resources
    /// carrying all of `having` (if any); ordered by resource then key; paged by offset.
    async fn list_tags(&self, kind: Kind, scope: &Scope, ids: &[String], having: &[(String, Option<String>)], offset: u64, limit: u64) -> Result<Vec<TagRow>>;
    async fn idem_get(&self, account: i64, action: &str, token: &str) -> Result<Option<IdemEntry>>;
    async fn due_tasks(&self, now_ms: i64) -> Result<Vec<Task>>;
    async fn next_due(&self) -> Result<Option<i64>>;
    async fn tasks_of(&self, resource_id: &str) -> Result<Vec<Task>>;
    async fn claimed_addresses(&self) -> Result<Vec<String>>;
    /// Applies all mutations, all or nothing, and returns once they are durable.
    async fn commit(&self, mutations: Vec<Mutation>) -> Result<()> {
        let d = self.stage(mutations).await?;
        self.flush().await?;
        self.durable(d).await
    }
    /// Stages the mutations, all or nothing, into the open batch: reads in a write scope see
    /// them at once, other reads once the batch is durable. The answer says when it is.
    async fn stage(&self, mutations: Vec<Mutation>) -> Result<Durable>;
    /// Commits the open batch, if any, in one durable transaction (group commit).
    async fn flush(&self) -> Result<()>;
    /// What a write scope must wait for before it answers: the open batch it may have read.
    async fn staged(&self) -> Result<Durable>;
    /// Waits until `d` is durable; commits the open batch itself if nobody has within a
    /// moment (so no writer waits on another that went away).
    async fn durable(&self, mut d: Durable) -> Result<()> {
        loop {
            tokio::select! {
                r = d.wait() => return r,
                _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => self.flush().await?,
            }
        }
    }

    /// Ends the current write scope (called by whoever ran it, before it lets the next one
    /// start): a backend shared between servers may commit the open batch only outside a
    /// scope, lest another server write between a scope's reads and its writes.
    async fn end_scope(&self) {}

    /// Records that `key` (an AccessKey and a SignatureNonce) was used at `now_s`: false if it
    /// was used at or after `horizon_s` already, by this process or any other of the cluster.
    async fn fresh_nonce(&self, key: &str, now_s: i64, horizon_s: i64) -> Result<bool>;

    /// The intent digest the data plane reports it runs for a resource (observed state).
    async fn set_converged(&self, id: &str, digest: &str) -> Result<()>;
    async fn converged(&self, id: &str) -> Result<Option<String>>;

    /// Changes committed by other processes: the value moves on each (None: no other process
    /// writes this store).
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Whether other processes may write this store while this one runs (a cache of what it
    /// read may then be stale).
    fn shared(&self) -> bool {
        false
    }

    /// Waits until this process may drive the data plane: the only one of those sharing the
    /// store.
    async fn lead(&self) -> Result<Leadership> {
        Ok(Leadership::for_good())
    }

    async fn create_account(&self, name: &str) -> Result<Account>;
    async fn account_by_name(&self, name: &str) -> Result<Option<Account>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    /// Inserts the key, or updates its secret, account and read-only flag (never its revocation).
    async fn put_key(&self, key: &AccessKey) -> Result<()>;
    /// Revokes a key for good, durably; false if there is no such key.
    async fn revoke_key(&self, access_key_id: &str, now_ms: i64) -> Result<bool>;
    async fn key(&self, access_key_id: &str) -> Result<Option<AccessKey>>;
    /// An AccessKey and, if it exists, the spending of a nonce `nonce_key` ([`Store::fresh_nonce`])
    /// in one step: whether the nonce was fresh. A backend shared by servers does both in one
    /// round trip; the caller still refuses the request unless its signature checks out.
    async fn key_and_nonce(&self, access_key_id: &str, nonce_key: &str, now_s: i64, horizon_s: i64) -> Result<Option<(AccessKey, bool)>> {
        let Some(k) = self.key(access_key_id).await? else { return Ok(None) };
        let fresh = self.fresh_nonce(nonce_key, now_s, horizon_s).await?;
        Ok(Some((k, fresh)))
    }
    /// Every AccessKey (for re-sealing their secrets).
    async fn all_keys(&self) -> Result<Vec<AccessKey>>;
    /// Every ClientToken entry (for re-sealing their answers).
    async fn all_idem(&self) -> Result<Vec<IdemEntry>>;

    // The fleet: gateway agents on other hosts, their leases and where each gateway side runs.
    // Only a store that several processes share can hold one; the others hold no agent.

    /// Registers an agent (again): a new epoch, and a lease of `lease_ms` from now by the
    /// store's clock. Durable on return. Returns the epoch.
    async fn register_agent(&self, _info: &AgentInfo, _lease_ms: i64) -> Result<i64> {
        Err(StoreError::Other("this store is not shared: gateway agents need a PostgreSQL store (store = \"postgres://…\")".into()))
    }
    /// Extends an agent's lease at `epoch`; false when it has expired or the agent registered
    /// again since (it must then register anew and forget what it held).
    async fn renew_agent(&self, _name: &str, _epoch: i64, _lease_ms: i64) -> Result<bool> {
        Ok(false)
    }
    /// Ends an agent's lease now (a clean stop): its sides move at the next placement.
    async fn release_agent(&self, _name: &str, _epoch: i64) -> Result<()> {
        Ok(())
    }
    /// Every registered agent, alive or not.
    async fn agents(&self) -> Result<Vec<AgentRow>> {
        Ok(Vec::new())
    }
    /// Every placed gateway side.
    async fn placements(&self) -> Result<Vec<Placement>> {
        Ok(Vec::new())
    }
}

/// Counts a committed batch of `writes` writes, opened at `opened`, in the process's metrics.
pub(crate) fn committed(opened: Option<std::time::Instant>, writes: u64) {
    let m = vpngw_metrics::get();
    m.commits.inc();
    m.commit_batch.observe(writes as f64);
    if let Some(t) = opened {
        m.commit_seconds.observe(t.elapsed().as_secs_f64());
    }
}
