//! The PostgreSQL backend: any number of `vpngw serve` processes, on any number of hosts, on
//! one database, answering as one service.
//!
//! **Writes.** Each server has one writer connection. A batch is a transaction that first takes
//! the cluster's write lock (`pg_advisory_xact_lock`, released by its COMMIT): batches of
//! different servers never overlap, and a batch sees every batch committed before it. Inside a
//! server, writes are staged into the open batch under savepoints and committed together (group
//! commit, `synchronous_commit = on`: an answer leaves only once its batch is durable). Reads of
//! a write scope go to the writer, inside the batch, so a handler's checks and its commit see
//! one state, whichever server wrote last; and a batch is never committed from outside while a
//! scope of this server runs in it ([`Store::end_scope`]), lest another server write between
//! the scope's reads and its writes.
//!
//! **Reads** outside a write scope go to a pool and see what is committed: exact on every
//! server, with no cache.
//!
//! **Across servers** live here too: ClientToken results and tasks (in the batch), the
//! SignatureNonce window (`nonces`: a request's nonce is spent in the statement that reads its
//! AccessKey, [`Store::key_and_nonce`]), the data plane's converged
//! digests, wake-ups (NOTIFY at each commit, LISTEN on a connection of its own) and the data
//! plane's leader (a session advisory lock held by one server's connection).
//!
//! The pool's connections run with `synchronous_commit = off`: what they write (nonces,
//! converged digests) is not intent. A database crash may forget the last moments of the nonce
//! window, never an acknowledged write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::*;

mod schema;
mod writer;

use writer::*;

/// The advisory locks of a cluster (arbitrary, fixed numbers).
const WRITE_LOCK: i64 = 0x7670_6e67_0001;
const MIGRATE_LOCK: i64 = 0x7670_6e67_0002;
const LEAD_LOCK: i64 = 0x7670_6e67_0003;
/// How long a batch may stay open while write scopes follow each other.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(1);
/// Connections in each server's pool.
const POOL_SIZE: usize = 32;

/// The database's clock in Unix milliseconds: leases are measured by one clock, whatever the
/// hosts' clocks say.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

const RECORD_COLS: &str = "kind, id, account_id, region, parent_id, status, created_ms, doc";

fn other<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Other(e.to_string())
}

pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    pool: Pool,
    writer: tokio::sync::Mutex<Writer>,
    /// A write scope of this server runs in the open batch.
    pinned: AtomicBool,
    changes: tokio::sync::watch::Sender<u64>,
    nonce_inserts: AtomicU64,
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.listener.lock().ok().and_then(|mut h| h.take()) {
            h.abort();
        }
    }
}

fn record(r: &tokio_postgres::Row) -> Record {
    let kind: String = r.get(0);
    Record { kind: Kind::parse(&kind).unwrap_or(Kind::Vpc), id: r.get(1), account: r.get(2), region: r.get(3), parent: r.get(4), status: r.get(5), created_ms: r.get(6), doc: r.get(7) }
}

fn task(r: &tokio_postgres::Row) -> Task {
    let kind: String = r.get(1);
    Task { id: r.get(0), kind: Kind::parse(&kind).unwrap_or(Kind::Vpc), resource_id: r.get(2), op: r.get(3), due_ms: r.get(4) }
}

/// Query arguments built alongside dynamic SQL.
struct Args {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Args {
    fn new() -> Args {
        Args { values: Vec::new() }
    }
    /// Adds a value and returns its placeholder.
    fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(v));
        format!("${}", self.values.len())
    }
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// `AND column IN (resources with this tag)` for each tag filter.
fn tag_clauses(sql: &mut String, args: &mut Args, column: &str, tags: &[(String, Option<String>)]) {
    for (k, v) in tags {
        let key = args.push(k.clone());
        match v {
            Some(v) => {
                let value = args.push(v.clone());
                sql.push_str(&format!(" AND {column} IN (SELECT resource_id FROM tags WHERE key = {key} AND value = {value})"));
            }
            None => sql.push_str(&format!(" AND {column} IN (SELECT resource_id FROM tags WHERE key = {key})")),
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`; a socket
    /// directory as `?host=/path`), brings its schema up to date and starts listening for the
    /// other servers' changes.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        let (mut client, conn) = config.connect(NoTls).await.map_err(|e| StoreError::Other(format!("cannot connect to PostgreSQL: {e}")))?;
        let driver = tokio::spawn(conn);
        schema::migrate(&mut client).await?;
        drop(client);
        let _ = driver.await;

        // This server's name in its notifications (letters and digits: safe inside a literal).
        let origin = {
            // A random name (the standard library's hasher keys are random per instance).
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(std::process::id() as u128 ^ now_ms() as u128);
            format!("s{:016x}", h.finish())
        };
        let manager = Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
                Box::pin(async move { client.batch_execute("SET synchronous_commit = off").await.map_err(deadpool_postgres::HookError::Backend) })
            }))
            .build()
            .map_err(other)?;
        let inner = Arc::new(Inner {
            config,
            pool,
            writer: tokio::sync::Mutex::new(Writer::new(&origin)),
            pinned: AtomicBool::new(false),
            changes: tokio::sync::watch::channel(0).0,
            nonce_inserts: AtomicU64::new(0),
            listener: std::sync::Mutex::new(None),
        });
        let handle = tokio::spawn(listen(inner.config.clone(), inner.changes.clone(), origin));
        *inner.listener.lock().map_err(other)? = Some(handle);
        Ok(PgStore { inner })
    }

    /// The pool reads go through (its connections as the store configures them): for the
    /// benchmark's bare-PostgreSQL baselines.
    pub fn pool(&self) -> Pool {
        self.inner.pool.clone()
    }

    async fn query(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        if crate::in_write_scope() {
            // The scope's first read opens the batch: BEGIN and the lock go out in one pipeline
            // with the query (which the server runs once it holds the lock).
            let mut w = self.inner.writer.lock().await;
            crate::scope_batch(w.batch);
            self.inner.pinned.store(true, Ordering::SeqCst);
            return w.query(&self.inner.pool, sql, args).await;
        }
        let c = self.inner.pool.get().await.map_err(other)?;
        let st = c.prepare_cached(sql).await.map_err(other)?;
        c.query(&st, args).await.map_err(other)
    }

    /// Runs `sql` in a transaction of its own, durable on return.
    async fn durable_write(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        let mut c = self.inner.pool.get().await.map_err(other)?;
        let tx = c.transaction().await.map_err(other)?;
        tx.batch_execute("SET LOCAL synchronous_commit = on").await.map_err(other)?;
        let rows = tx.query(sql, args).await;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                return Err(match e.code() {
                    Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => StoreError::Conflict(e.to_string()),
                    _ => other(e),
                })
            }
        };
        tx.commit().await.map_err(other)?;
        Ok(rows)
    }
}

/// Turns the other servers' NOTIFYs into ticks of `changes`, reconnecting when the connection
/// breaks.
async fn listen(config: tokio_postgres::Config, changes: tokio::sync::watch::Sender<u64>, origin: String) {
    use futures_util::StreamExt;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let me = origin.clone();
                let driver = tokio::spawn(messages.for_each(move |m| {
                    if let Ok(tokio_postgres::AsyncMessage::Notification(n)) = m {
                        if n.payload() != me {
                            let _ = tx.send(());
                        }
                    }
                    std::future::ready(())
                }));
                if client.batch_execute("LISTEN vpngw_changes").await.is_ok() {
                    // A tick now too: whatever happened while we were not listening.
                    changes.send_modify(|v| *v = v.wrapping_add(1));
                    while rx.recv().await.is_some() {
                        changes.send_modify(|v| *v = v.wrapping_add(1));
                    }
                }
                driver.abort();
                tracing::warn!("The PostgreSQL connection that listens for other servers' changes broke; reconnecting.");
            }
            Err(e) => tracing::warn!(error = %e, "Cannot connect to PostgreSQL to listen for changes; retrying."),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn get(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<Record>> {
        let sql = format!("SELECT {RECORD_COLS} FROM resources WHERE id = $1 AND kind = $2 AND account_id = $3 AND region = $4");
        Ok(self.query(&sql, &[&id, &kind.as_str(), &scope.account, &scope.region]).await?.first().map(record))
    }

    async fn get_tagged(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<(Record, Vec<(String, String)>)>> {
        let sql = format!(
            "SELECT {RECORD_COLS}, (SELECT COALESCE(json_agg(json_build_array(t.key, t.value) ORDER BY t.key), '[]'::json) FROM tags t WHERE t.resource_id = r.id) \
             FROM resources r WHERE id = $1 AND kind = $2 AND account_id = $3 AND region = $4"
        );
        let rows = self.query(&sql, &[&id, &kind.as_str(), &scope.account, &scope.region]).await?;
        Ok(rows.first().map(|r| {
            let tags: serde_json::Value = r.get(8);
            let tags = serde_json::from_value::<Vec<(String, String)>>(tags).unwrap_or_default();
            (record(r), tags)
        }))
    }

    async fn get_any(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        let sql = format!("SELECT {RECORD_COLS} FROM resources WHERE id = $1 AND kind = $2");
        Ok(self.query(&sql, &[&id, &kind.as_str()]).await?.first().map(record))
    }

    async fn all(&self, kind: Kind) -> Result<Vec<Record>> {
        let sql = format!("SELECT {RECORD_COLS} FROM resources WHERE kind = $1 ORDER BY seq");
        Ok(self.query(&sql, &[&kind.as_str()]).await?.iter().map(record).collect())
    }

    async fn family(&self, scope: &Scope, root: &str, kinds: &[Kind]) -> Result<Vec<Record>> {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let sql = format!(
            "WITH RECURSIVE fam(id) AS (SELECT id FROM resources WHERE id = $1 AND account_id = $2 AND region = $3 \
             UNION SELECT r.id FROM resources r JOIN fam ON r.parent_id = fam.id WHERE r.kind = ANY($4) AND r.account_id = $2 AND r.region = $3) \
             SELECT {RECORD_COLS} FROM resources WHERE id IN (SELECT id FROM fam) ORDER BY (id = $1) DESC, seq"
        );
        Ok(self.query(&sql, &[&root, &scope.account, &scope.region, &kinds]).await?.iter().map(record).collect())
    }

    async fn list(&self, kind: Kind, scope: &Scope, q: &ListQuery) -> Result<Page> {
        let mut args = Args::new();
        let (k, a, r) = (args.push(kind.as_str().to_string()), args.push(scope.account), args.push(scope.region.clone()));
        let mut filter = format!(" FROM resources WHERE kind = {k} AND account_id = {a} AND region = {r}");
        if !q.ids.is_empty() {
            filter.push_str(&format!(" AND id = ANY({})", args.push(q.ids.clone())));
        }
        if let Some(p) = &q.parent {
            filter.push_str(&format!(" AND parent_id = {}", args.push(p.clone())));
        }
        if let Some(s) = &q.status {
            filter.push_str(&format!(" AND status = {}", args.push(s.clone())));
        }
        for (f, v) in &q.fields {
            let (name, contains) = ListQuery::field(f)?;
            let value = args.push(v.clone());
            if contains {
                filter.push_str(&format!(" AND doc->'{name}' ? {value}"));
            } else {
                filter.push_str(&format!(" AND doc->>'{name}' = {value}"));
            }
        }
        tag_clauses(&mut filter, &mut args, "id", &q.tags);
        let filter_args = args.values.len();
        let (limit, offset) = (args.push(q.limit.min(i64::MAX as u64) as i64), args.push(q.offset.min(i64::MAX as u64) as i64));
        // The page and the total in one query; only a page past the end needs a count of its own.
        let rows = self.query(&format!("SELECT {RECORD_COLS}, COUNT(*) OVER (){filter} ORDER BY seq DESC LIMIT {limit} OFFSET {offset}"), &args.refs()).await?;
        let total = match rows.first() {
            Some(r) => r.get::<_, i64>(8),
            None => {
                let refs = args.refs();
                self.query(&format!("SELECT COUNT(*){filter}"), &refs[..filter_args]).await?.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0)
            }
        };
        Ok(Page { items: rows.iter().map(record).collect(), total: total as u64 })
    }

    async fn count(&self, kind: Kind, scope: &Scope, parent: Option<&str>) -> Result<u64> {
        let rows = match parent {
            // Children share their parent's scope: the parent's count is the scope's whenever
            // the parent belongs to it; a parent outside the scope has none the caller may see.
            Some(p) => {
                self.query(
                    "SELECT CASE WHEN EXISTS (SELECT 1 FROM resources WHERE id = $4 AND account_id = $2 AND region = $3) \
                     THEN COALESCE((SELECT n FROM parent_counts WHERE kind = $1 AND parent_id = $4), 0) \
                     ELSE (SELECT COUNT(*) FROM resources WHERE kind = $1 AND account_id = $2 AND region = $3 AND parent_id = $4) END",
                    &[&kind.as_str(), &scope.account, &scope.region, &p],
                )
                .await?
            }
            None => self.query("SELECT COALESCE((SELECT n FROM counts WHERE kind = $1 AND account_id = $2 AND region = $3), 0)", &[&kind.as_str(), &scope.account, &scope.region]).await?,
        };
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64)
    }

    async fn tags(&self, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = ids.to_vec();
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in self.query("SELECT resource_id, key, value FROM tags WHERE resource_id = ANY($1) ORDER BY resource_id, key", &[&ids]).await? {
            out.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
        }
        Ok(out)
    }

    async fn list_tags(&self, kind: Kind, scope: &Scope, ids: &[String], having: &[(String, Option<String>)], offset: u64, limit: u64) -> Result<Vec<TagRow>> {
        let mut args = Args::new();
        let (k, a, r) = (args.push(kind.as_str().to_string()), args.push(scope.account), args.push(scope.region.clone()));
        let mut sql = format!("SELECT t.resource_id, t.key, t.value FROM tags t JOIN resources r ON r.id = t.resource_id WHERE t.kind = {k} AND t.account_id = {a} AND t.region = {r}");
        if !ids.is_empty() {
            sql.push_str(&format!(" AND t.resource_id = ANY({})", args.push(ids.to_vec())));
        }
        tag_clauses(&mut sql, &mut args, "t.resource_id", having);
        let (l, o) = (args.push(limit.min(i64::MAX as u64) as i64), args.push(offset.min(i64::MAX as u64) as i64));
        sql.push_str(&format!(" ORDER BY r.seq, t.key LIMIT {l} OFFSET {o}"));
        Ok(self.query(&sql, &args.refs()).await?.iter().map(|r| TagRow { kind, resource_id: r.get(0), key: r.get(1), value: r.get(2) }).collect())
    }

    async fn idem_get(&self, account: i64, action: &str, token: &str) -> Result<Option<IdemEntry>> {
        let rows = self.query("SELECT digest, response, created_ms FROM idempotency WHERE account_id = $1 AND action = $2 AND token = $3", &[&account, &action, &token]).await?;
        Ok(rows.first().map(|r| IdemEntry { account, action: action.to_string(), token: token.to_string(), digest: r.get(0), response: r.get(1), created_ms: r.get(2) }))
    }

    async fn due_tasks(&self, now_ms: i64) -> Result<Vec<Task>> {
        Ok(self.query("SELECT id, kind, resource_id, op, due_ms FROM tasks WHERE due_ms <= $1 ORDER BY due_ms, id", &[&now_ms]).await?.iter().map(task).collect())
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        Ok(self.query("SELECT MIN(due_ms) FROM tasks", &[]).await?.first().and_then(|r| r.get(0)))
    }

    async fn tasks_of(&self, resource_id: &str) -> Result<Vec<Task>> {
        Ok(self.query("SELECT id, kind, resource_id, op, due_ms FROM tasks WHERE resource_id = $1 ORDER BY due_ms", &[&resource_id]).await?.iter().map(task).collect())
    }

    async fn claimed_addresses(&self) -> Result<Vec<String>> {
        Ok(self.query("SELECT ip FROM addresses", &[]).await?.iter().map(|r| r.get(0)).collect())
    }

    async fn stage(&self, mutations: Vec<Mutation>) -> Result<Durable> {
        let mut w = self.inner.writer.lock().await;
        if crate::in_write_scope() {
            self.inner.pinned.store(true, Ordering::SeqCst);
        }
        w.stage(&self.inner.pool, mutations).await
    }

    async fn flush(&self) -> Result<()> {
        // From outside a running scope, its batch must wait for it to end.
        if !crate::in_write_scope() && self.inner.pinned.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.writer.lock().await.flush().await
    }

    async fn staged(&self) -> Result<Durable> {
        let w = self.inner.writer.lock().await;
        w.check_scope()?;
        Ok(Durable(w.open.then(|| w.outcome.subscribe())))
    }

    async fn end_scope(&self) {
        self.inner.pinned.store(false, Ordering::SeqCst);
        // Under load the next scope starts at once and a batch would never be committed from
        // outside one: one that has been open a while is committed here, still inside this
        // server's write lock (a burst shares a commit; no batch waits more than this).
        let mut w = self.inner.writer.lock().await;
        if w.open && w.opened.elapsed() >= BATCH_WINDOW {
            let _ = w.flush().await;
        }
    }

    async fn fresh_nonce(&self, key: &str, now_s: i64, horizon_s: i64) -> Result<bool> {
        let c = self.inner.pool.get().await.map_err(other)?;
        let st = c.prepare_cached("INSERT INTO nonces (key, seen_s) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET seen_s = EXCLUDED.seen_s WHERE nonces.seen_s < $3").await.map_err(other)?;
        let fresh = c.execute(&st, &[&key, &now_s, &horizon_s]).await.map_err(other)? == 1;
        // Now and then, forget what is outside every window.
        if self.inner.nonce_inserts.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            let _ = c.execute("DELETE FROM nonces WHERE seen_s < $1", &[&horizon_s]).await;
        }
        Ok(fresh)
    }

    async fn set_converged(&self, id: &str, digest: &str) -> Result<()> {
        let c = self.inner.pool.get().await.map_err(other)?;
        let st = c.prepare_cached("INSERT INTO converged (resource_id, digest) VALUES ($1, $2) ON CONFLICT (resource_id) DO UPDATE SET digest = EXCLUDED.digest").await.map_err(other)?;
        c.execute(&st, &[&id, &digest]).await.map_err(other)?;
        Ok(())
    }

    async fn converged(&self, id: &str) -> Result<Option<String>> {
        let c = self.inner.pool.get().await.map_err(other)?;
        let st = c.prepare_cached("SELECT digest FROM converged WHERE resource_id = $1").await.map_err(other)?;
        Ok(c.query_opt(&st, &[&id]).await.map_err(other)?.map(|r| r.get(0)))
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.inner.changes.subscribe())
    }

    fn shared(&self) -> bool {
        true
    }

    async fn lead(&self) -> Result<Leadership> {
        loop {
            match self.inner.config.connect(NoTls).await {
                Ok((client, connection)) => {
                    let mut driver = tokio::spawn(connection);
                    let won: bool = match client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEAD_LOCK]).await {
                        Ok(row) => row.get(0),
                        Err(e) => {
                            tracing::warn!(error = %e, "Cannot ask PostgreSQL for the data plane's leadership; retrying.");
                            false
                        }
                    };
                    if won {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let hold = tokio::spawn(async move {
                            // The session holds the lock for as long as it lives.
                            let _client = client;
                            let _ = (&mut driver).await;
                            let _ = tx.send(());
                        });
                        return Ok(Leadership::until(rx, hold));
                    }
                    driver.abort();
                }
                Err(e) => tracing::warn!(error = %e, "Cannot connect to PostgreSQL to ask for the data plane's leadership; retrying."),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    async fn create_account(&self, name: &str) -> Result<Account> {
        let rows = self.durable_write("INSERT INTO accounts (name, created_ms) VALUES ($1, $2) RETURNING id", &[&name, &now_ms()]).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!("account {name} exists")),
            e => e,
        })?;
        Ok(Account { id: rows.first().map(|r| r.get(0)).unwrap_or(0), name: name.to_string() })
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<Account>> {
        Ok(self.query("SELECT id, name FROM accounts WHERE name = $1", &[&name]).await?.first().map(|r| Account { id: r.get(0), name: r.get(1) }))
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.query("SELECT id, name FROM accounts ORDER BY id", &[]).await?.iter().map(|r| Account { id: r.get(0), name: r.get(1) }).collect())
    }

    async fn put_key(&self, key: &AccessKey) -> Result<()> {
        self.durable_write(
            "INSERT INTO access_keys (access_key_id, secret, account_id, readonly, created_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (access_key_id) DO UPDATE SET secret = EXCLUDED.secret, account_id = EXCLUDED.account_id, readonly = EXCLUDED.readonly",
            &[&key.access_key_id, &key.secret, &key.account_id, &key.readonly, &now_ms()],
        )
        .await?;
        Ok(())
    }

    async fn revoke_key(&self, access_key_id: &str, now_ms: i64) -> Result<bool> {
        let rows = self.durable_write("UPDATE access_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE access_key_id = $2 RETURNING 1", &[&now_ms, &access_key_id]).await?;
        Ok(!rows.is_empty())
    }

    async fn all_keys(&self) -> Result<Vec<AccessKey>> {
        let rows = self.query("SELECT access_key_id, secret, account_id, readonly, revoked_ms FROM access_keys ORDER BY access_key_id", &[]).await?;
        Ok(rows.iter().map(|r| AccessKey { access_key_id: r.get(0), secret: r.get(1), account_id: r.get(2), readonly: r.get(3), revoked_ms: r.get(4) }).collect())
    }

    async fn all_idem(&self) -> Result<Vec<IdemEntry>> {
        let rows = self.query("SELECT account_id, action, token, digest, response, created_ms FROM idempotency", &[]).await?;
        Ok(rows.iter().map(|r| IdemEntry { account: r.get(0), action: r.get(1), token: r.get(2), digest: r.get(3), response: r.get(4), created_ms: r.get(5) }).collect())
    }

    async fn key_and_nonce(&self, access_key_id: &str, nonce_key: &str, now_s: i64, horizon_s: i64) -> Result<Option<(AccessKey, bool)>> {
        // One statement: the key, and the nonce spent only if the key exists.
        let rows = self
            .query(
                "WITH k AS (SELECT access_key_id, secret, account_id, readonly, revoked_ms FROM access_keys WHERE access_key_id = $1), \
                 n AS (INSERT INTO nonces (key, seen_s) SELECT $2, $3 WHERE EXISTS (SELECT 1 FROM k) \
                       ON CONFLICT (key) DO UPDATE SET seen_s = EXCLUDED.seen_s WHERE nonces.seen_s < $4 RETURNING 1) \
                 SELECT k.access_key_id, k.secret, k.account_id, k.readonly, k.revoked_ms, EXISTS (SELECT 1 FROM n) FROM k",
                &[&access_key_id, &nonce_key, &now_s, &horizon_s],
            )
            .await?;
        if self.inner.nonce_inserts.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            let _ = self.query("DELETE FROM nonces WHERE seen_s < $1", &[&horizon_s]).await;
        }
        Ok(rows.first().map(|r| (AccessKey { access_key_id: r.get(0), secret: r.get(1), account_id: r.get(2), readonly: r.get(3), revoked_ms: r.get(4) }, r.get(5))))
    }

    async fn key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        let rows = self.query("SELECT access_key_id, secret, account_id, readonly, revoked_ms FROM access_keys WHERE access_key_id = $1", &[&access_key_id]).await?;
        Ok(rows.first().map(|r| AccessKey { access_key_id: r.get(0), secret: r.get(1), account_id: r.get(2), readonly: r.get(3), revoked_ms: r.get(4) }))
    }

    async fn register_agent(&self, info: &AgentInfo, lease_ms: i64) -> Result<i64> {
        let sql = format!(
            "INSERT INTO agents (name, zone, addresses, live_url, epoch, lease_until_ms, registered_ms) VALUES ($1, $2, $3, $4, 1, {DB_NOW} + $5, {DB_NOW}) \
             ON CONFLICT (name) DO UPDATE SET zone = EXCLUDED.zone, addresses = EXCLUDED.addresses, live_url = EXCLUDED.live_url, epoch = agents.epoch + 1, \
             lease_until_ms = EXCLUDED.lease_until_ms, registered_ms = EXCLUDED.registered_ms RETURNING epoch"
        );
        let rows = self.durable_write(&sql, &[&info.name, &info.zone, &info.addresses, &info.live_url, &lease_ms]).await?;
        rows.first().map(|r| r.get(0)).ok_or_else(|| StoreError::Other("registered no agent".into()))
    }

    async fn renew_agent(&self, name: &str, epoch: i64, lease_ms: i64) -> Result<bool> {
        let sql = format!("UPDATE agents SET lease_until_ms = {DB_NOW} + $3 WHERE name = $1 AND epoch = $2 AND lease_until_ms > {DB_NOW}");
        let c = self.inner.pool.get().await.map_err(other)?;
        let st = c.prepare_cached(&sql).await.map_err(other)?;
        Ok(c.execute(&st, &[&name, &epoch, &lease_ms]).await.map_err(other)? == 1)
    }

    async fn release_agent(&self, name: &str, epoch: i64) -> Result<()> {
        self.durable_write("UPDATE agents SET lease_until_ms = 0 WHERE name = $1 AND epoch = $2", &[&name, &epoch]).await?;
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentRow>> {
        let sql = format!("SELECT name, zone, addresses, live_url, epoch, lease_until_ms, lease_until_ms - {DB_NOW} FROM agents ORDER BY name");
        Ok(self
            .query(&sql, &[])
            .await?
            .iter()
            .map(|r| AgentRow { info: AgentInfo { name: r.get(0), zone: r.get(1), addresses: r.get(2), live_url: r.get(3) }, epoch: r.get(4), lease_until_ms: r.get(5), lease_left_ms: r.get(6) })
            .collect())
    }

    async fn placements(&self) -> Result<Vec<Placement>> {
        Ok(self.query("SELECT side, agent, epoch FROM placements ORDER BY side", &[]).await?.iter().map(|r| Placement { side: r.get(0), agent: r.get(1), epoch: r.get(2) }).collect())
    }
}

/// Makes an empty database `name` (replacing one of that name) on the cluster of `url` and
/// returns its URL: for tests and benchmarks, which want a database of their own.
pub async fn fresh_database(url: &str, name: &str) -> Result<String> {
    let config: tokio_postgres::Config = url.parse().map_err(other)?;
    let (client, conn) = config.connect(NoTls).await.map_err(other)?;
    let driver = tokio::spawn(conn);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.map_err(other)?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(other)?;
    drop(client);
    let _ = driver.await;
    Ok(with_database(url, name))
}

/// Drops database `name` on the cluster of `url` (if it is there).
pub async fn drop_database(url: &str, name: &str) -> Result<()> {
    let config: tokio_postgres::Config = url.parse().map_err(other)?;
    let (client, conn) = config.connect(NoTls).await.map_err(other)?;
    let driver = tokio::spawn(conn);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.map_err(other)?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// `url` with database `name` in place of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, format!("?{q}"))).unwrap_or((url, String::new()));
    let base = base.rsplit_once('/').map(|(h, _)| h).unwrap_or(base);
    format!("{base}/{name}{query}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    async fn two_servers(name: &str) -> Option<(PgStore, PgStore)> {
        let url = crate::conformance::test_pg_url()?;
        let url = crate::conformance::fresh_pg_database(&url, name).await;
        // Two servers starting together on an empty database: one migrates, the other waits.
        let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
        Some((a.unwrap(), b.unwrap()))
    }

    fn vpc(id: &str, n: i64) -> Mutation {
        Mutation::Put(Record { kind: Kind::Vpc, id: id.into(), account: 1, region: "r".into(), parent: None, status: "Available".into(), created_ms: 0, doc: json!({ "n": n }) })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scope_on_one_server_holds_every_other_servers_writes_until_it_commits() {
        let Some((a, b)) = two_servers("write_lock").await else { return };
        let scope = Scope { account: 1, region: "r".into() };
        a.commit(vec![vpc("vpc-1", 1)]).await.unwrap();
        // A's scope reads, then takes its time before it writes what it read plus one.
        let (read_tx, read_rx) = tokio::sync::oneshot::channel();
        let a_scope = async {
            crate::write_scope(async {
                let n = a.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["n"].as_i64().unwrap();
                read_tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let d = a.stage(vec![vpc("vpc-1", n + 1)]).await.unwrap();
                a.end_scope().await;
                a.durable(d).await.unwrap();
            })
            .await
        };
        // B, meanwhile, does the same in a scope of its own.
        let b_scope = async {
            read_rx.await.unwrap();
            let started = std::time::Instant::now();
            crate::write_scope(async {
                let n = b.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["n"].as_i64().unwrap();
                let d = b.stage(vec![vpc("vpc-1", n + 1)]).await.unwrap();
                b.end_scope().await;
                b.durable(d).await.unwrap();
            })
            .await;
            started.elapsed()
        };
        let ((), waited) = tokio::join!(a_scope, b_scope);
        assert!(waited >= Duration::from_millis(200), "B read while A's scope ran ({waited:?})");
        assert_eq!(b.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["n"], 3, "both increments count: the writes were serialized");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_server_leads_and_another_takes_over_when_it_goes() {
        let Some((a, b)) = two_servers("leader").await else { return };
        let led = a.lead().await.unwrap();
        let b_leads = tokio::spawn(async move {
            let l = b.lead().await.unwrap();
            (b, l)
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!b_leads.is_finished(), "two leaders at once");
        drop(led);
        let (_b, _l) = tokio::time::timeout(Duration::from_secs(5), b_leads).await.expect("B took over").unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_on_one_server_wakes_the_other_and_a_nonce_is_spent_for_both() {
        let Some((a, b)) = two_servers("wakeups").await else { return };
        let mut changes = b.changes().unwrap();
        // The listener's first tick (connected) may or may not have come yet.
        tokio::time::sleep(Duration::from_millis(200)).await;
        changes.borrow_and_update();
        a.commit(vec![vpc("vpc-w", 1)]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), changes.changed()).await.expect("B heard of A's commit").unwrap();
        assert!(a.fresh_nonce("AK\nn", 100, 70).await.unwrap());
        assert!(!b.fresh_nonce("AK\nn", 101, 71).await.unwrap(), "a nonce used on A is refused on B");
        a.set_converged("vco-1", "d").await.unwrap();
        assert_eq!(b.converged("vco-1").await.unwrap(), Some("d".into()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_that_lost_its_lease_is_fenced_off_the_sides_it_held() {
        let Some((a, b)) = two_servers("fleet").await else { return };
        let info = |name: &str| AgentInfo { name: name.into(), zone: "z1".into(), addresses: vec!["198.51.100.1".into()], live_url: format!("http://{name}") };
        let e1 = a.register_agent(&info("ag1"), 300).await.unwrap();
        let e2 = b.register_agent(&info("ag2"), 60_000).await.unwrap();
        assert_eq!((e1, e2), (1, 1));
        let rows = b.agents().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(AgentRow::alive) && rows[0].info == info("ag1"));
        a.commit(vec![Mutation::Place { side: "vpn-1/master".into(), on: Some(("ag1".into(), e1)) }]).await.unwrap();
        let fenced =
            |agent: &str, epoch| vec![Mutation::Fence { side: "vpn-1/master".into(), agent: agent.into(), epoch }, Mutation::Converged { id: "vpn-1".into(), digest: format!("{agent}-{epoch}") }];
        a.commit(fenced("ag1", e1)).await.unwrap();
        assert_eq!(b.converged("vpn-1").await.unwrap().as_deref(), Some("ag1-1"));
        assert!(a.renew_agent("ag1", e1, 300).await.unwrap(), "a live lease renews");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!b.agents().await.unwrap()[0].alive(), "the lease expired by the database's clock");
        assert!(!a.renew_agent("ag1", e1, 300).await.unwrap(), "an expired lease does not renew");
        // Another agent takes the side over; the old one's writes change nothing.
        b.commit(vec![Mutation::Place { side: "vpn-1/master".into(), on: Some(("ag2".into(), e2)) }]).await.unwrap();
        assert!(matches!(a.commit(fenced("ag1", e1)).await, Err(StoreError::Conflict(_))));
        assert_eq!(a.converged("vpn-1").await.unwrap().as_deref(), Some("ag1-1"), "the fenced commit wrote nothing");
        // Registering again gives a new epoch; the old epoch's writes stay fenced.
        let e1b = a.register_agent(&info("ag1"), 60_000).await.unwrap();
        assert_eq!(e1b, 2);
        a.commit(vec![Mutation::Place { side: "vpn-1/master".into(), on: Some(("ag1".into(), e1b)) }]).await.unwrap();
        assert!(matches!(a.commit(fenced("ag1", e1)).await, Err(StoreError::Conflict(_))), "an old epoch stays fenced");
        a.commit(fenced("ag1", e1b)).await.unwrap();
        a.release_agent("ag1", e1b).await.unwrap();
        assert!(!b.agents().await.unwrap()[0].alive(), "a released lease ends at once");
        b.commit(vec![Mutation::Place { side: "vpn-1/master".into(), on: None }]).await.unwrap();
        assert!(b.placements().await.unwrap().is_empty());
    }
}
