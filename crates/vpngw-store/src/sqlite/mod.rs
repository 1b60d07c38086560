//! The SQLite backend: one file in the data directory, WAL mode, `synchronous=FULL` (a
//! commit is on disk before it is acknowledged), migrations numbered by `PRAGMA user_version`.
//!
//! One writer connection and a few reader connections (WAL lets readers run beside the
//! writer). Reads run inline.
//!
//! **Record cache.** Each reader keeps the records (and tags) its point reads returned, tagged
//! with its connection's `PRAGMA data_version`. SQLite changes that number whenever any other
//! connection, of this process or another (`vpngw admin lock`), has committed since; a point
//! read asks for it first (one step, no table read) and drops the cache when it moved. A hit is
//! therefore exactly what the query would return, with no invalidation protocol of our own.
//!
//! **Group commit.** Writes are staged into a batch (one open transaction on the writer, a
//! savepoint per staged write, so a failing one leaves the others) and the batch is committed
//! with one fsync by [`Store::flush`]; every writer waits for its batch to be durable before it
//! answers (same durability as a commit per write). Reads made in a write scope
//! ([`crate::write_scope`]) go to the writer and so see what is staged; all other reads see
//! only what is durable. A write scope that read a batch which then failed to commit cannot
//! stage: it would build on rows that never happened.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::*;

/// The columns [`record`] reads, in its order (a macro, so that constant queries can `concat!` it).
macro_rules! record_cols {
    () => {
        "kind, id, account_id, region, parent_id, status, created_ms, doc"
    };
}

mod cache;
mod queries;
mod schema;
mod writer;

use cache::*;
use queries::*;
use schema::*;
use writer::*;

const READERS: usize = 4;

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Writer>,
    readers: Vec<Mutex<Reader>>,
    next: AtomicUsize,
    /// One process uses the file: the nonce window and the converged digests live in memory.
    nonces: crate::LocalNonces,
    converged: Mutex<HashMap<String, String>>,
}

fn other<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Other(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = Connection::open(path).map_err(other)?;
        configure(&writer)?;
        migrate(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(path).map_err(other)?;
            configure(&r)?;
            readers.push(Mutex::new(Reader::new(r)));
        }
        Ok(SqliteStore { inner: Arc::new(Inner { writer: Mutex::new(Writer::new(writer)), readers, next: AtomicUsize::new(0), nonces: Default::default(), converged: Default::default() }) })
    }

    /// A private in-memory database (one connection), for tests.
    pub fn memory() -> Result<Self> {
        let c = Connection::open_in_memory().map_err(other)?;
        migrate(&c)?;
        Ok(SqliteStore { inner: Arc::new(Inner { writer: Mutex::new(Writer::new(c)), readers: Vec::new(), next: AtomicUsize::new(0), nonces: Default::default(), converged: Default::default() }) })
    }

    /// Reads run inline on the calling task: a point read or a page of an index takes
    /// microseconds, far less than a hop to the blocking pool (measured: BENCHMARKS.md). In a
    /// write scope they go to the writer (and see what is staged).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if self.inner.readers.is_empty() || crate::in_write_scope() {
            return self
                .with_writer(move |w| {
                    crate::scope_batch(w.batch);
                    f(&w.conn)
                })
                .await;
        }
        f(&self.reader()?.conn)
    }

    /// A free reader if one is, else the next in turn once it is free.
    fn reader(&self) -> Result<std::sync::MutexGuard<'_, Reader>> {
        let inner = &self.inner;
        let n = inner.readers.len();
        let start = inner.next.fetch_add(1, Ordering::Relaxed);
        if let Some(guard) = (0..n).map(|i| &inner.readers[(start + i) % n]).find_map(|m| m.try_lock().ok()) {
            return Ok(guard);
        }
        inner.readers[start % n].lock().map_err(other)
    }

    /// A point read of a record (and its tags if `tagged`): through a reader's cache, or from
    /// the writer in a write scope (which must see what is staged).
    async fn point_read(&self, kind: Kind, scope: &Scope, id: &str, tagged: bool) -> Result<Option<Cached>> {
        if !self.inner.readers.is_empty() && !crate::in_write_scope() {
            return self.reader()?.get(kind, scope, id, tagged);
        }
        let (scope, id) = (scope.clone(), id.to_string());
        self.read(move |c| {
            let Some(rec) = get_record(c, &id)?.filter(|r| in_scope(r, kind, &scope)) else { return Ok(None) };
            let tags = if tagged { Some(tags_of(c, &id)?) } else { None };
            Ok(Some((rec, tags)))
        })
        .await
    }

    /// Runs `f` with the writer: inline when it is free, else (a commit's fsync holds it) on
    /// the blocking pool, so that no async worker waits on the disk.
    async fn with_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        if let Ok(mut w) = self.inner.writer.try_lock() {
            return f(&mut w);
        }
        let inner = self.inner.clone();
        let scope = crate::current_scope();
        let (r, seen) = tokio::task::spawn_blocking(move || {
            crate::with_scope(scope, || match inner.writer.lock() {
                Ok(mut w) => f(&mut w),
                Err(e) => Err(other(e)),
            })
        })
        .await
        .map_err(other)?;
        crate::restore_scope(seen);
        r
    }

    /// Stages a write and waits until it is durable (for the operator's single writes).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (v, durable) = self.with_writer(move |w| w.stage(f)).await?;
        self.flush().await?;
        self.durable(durable).await?;
        Ok(v)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<Record>> {
        Ok(self.point_read(kind, scope, id, false).await?.map(|(rec, _)| rec))
    }

    async fn get_tagged(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<(Record, Vec<(String, String)>)>> {
        Ok(self.point_read(kind, scope, id, true).await?.map(|(rec, tags)| (rec, tags.unwrap_or_default())))
    }

    async fn get_any(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {RECORD_COLS} FROM resources WHERE id = ? AND kind = ?")).and_then(|mut s| s.query_row(params![id, kind.as_str()], record).optional()).map_err(other)
        })
        .await
    }

    async fn all(&self, kind: Kind) -> Result<Vec<Record>> {
        self.read(move |c| {
            let mut s = c.prepare_cached(&format!("SELECT {RECORD_COLS} FROM resources WHERE kind = ? ORDER BY seq")).map_err(other)?;
            let rows = s.query_map(params![kind.as_str()], record).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn list(&self, kind: Kind, scope: &Scope, q: &ListQuery) -> Result<Page> {
        let (scope, q) = (scope.clone(), q.clone());
        self.read(move |c| {
            // With ids given, `+` keeps SQLite from walking the scope index in `seq` order (to
            // save a sort) over every resource of the scope: it looks the ids up instead.
            let mut filter =
                String::from(if q.ids.is_empty() { " FROM resources WHERE kind = ? AND account_id = ? AND region = ?" } else { " FROM resources WHERE +kind = ? AND +account_id = ? AND +region = ?" });
            let mut args: Vec<rusqlite::types::Value> = vec![kind.as_str().to_string().into(), scope.account.into(), scope.region.clone().into()];
            in_list(&mut filter, &mut args, "id", &q.ids);
            if let Some(p) = &q.parent {
                filter.push_str(" AND parent_id = ?");
                args.push(p.clone().into());
            }
            if let Some(s) = &q.status {
                filter.push_str(" AND status = ?");
                args.push(s.clone().into());
            }
            for (f, v) in &q.fields {
                let (name, contains) = ListQuery::field(f)?;
                if contains {
                    filter.push_str(&format!(" AND EXISTS (SELECT 1 FROM json_each(doc, '$.{name}') WHERE value = ?)"));
                } else {
                    filter.push_str(&format!(" AND json_extract(doc, '$.{name}') = ?"));
                }
                args.push(v.clone().into());
            }
            tag_clauses(&mut filter, &mut args, "id", &q.tags);
            let only_parent = q.ids.is_empty() && q.status.is_none() && q.fields.is_empty() && q.tags.is_empty();
            let total: u64 = match (&q.parent, only_parent) {
                (Some(p), true) => parent_count(c, kind, &scope, p).map_err(other)? as u64,
                _ => c.prepare_cached(&format!("SELECT COUNT(*){filter}")).and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get::<_, i64>(0))).map_err(other)? as u64,
            };
            let mut page_args = args.clone();
            page_args.push((q.limit.min(i64::MAX as u64) as i64).into());
            page_args.push((q.offset.min(i64::MAX as u64) as i64).into());
            let mut stmt = c.prepare_cached(&format!("SELECT {RECORD_COLS}{filter} ORDER BY seq DESC LIMIT ? OFFSET ?")).map_err(other)?;
            let items = stmt.query_map(params_from_iter(page_args.iter()), record).map_err(other)?.collect::<rusqlite::Result<Vec<_>>>().map_err(other)?;
            Ok(Page { items, total })
        })
        .await
    }

    async fn family(&self, scope: &Scope, root: &str, kinds: &[Kind]) -> Result<Vec<Record>> {
        let (scope, root) = (scope.clone(), root.to_string());
        let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_string()).collect();
        self.read(move |c| {
            // Each step looks children up by the parent index (kind, scope, parent).
            let marks = vec!["?"; kinds.len()].join(", ");
            let sql = format!(
                "WITH RECURSIVE fam(id) AS (SELECT id FROM resources WHERE id = ?1 AND account_id = ?2 AND region = ?3 \
                 UNION SELECT r.id FROM resources r JOIN fam ON r.parent_id = fam.id WHERE r.kind IN ({marks}) AND r.account_id = ?2 AND r.region = ?3) \
                 SELECT {RECORD_COLS} FROM resources WHERE id IN (SELECT id FROM fam) ORDER BY (id = ?1) DESC, seq"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![root.into(), scope.account.into(), scope.region.into()];
            args.extend(kinds.into_iter().map(Into::into));
            let mut s = c.prepare_cached(&sql).map_err(other)?;
            let rows = s.query_map(params_from_iter(args.iter()), record).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn count(&self, kind: Kind, scope: &Scope, parent: Option<&str>) -> Result<u64> {
        let (scope, parent) = (scope.clone(), parent.map(str::to_string));
        self.read(move |c| {
            let n: i64 = match parent {
                // Children share their parent's scope, and ids are unique: the parent's count is
                // the count inside the scope whenever the parent belongs to it.
                Some(p) => parent_count(c, kind, &scope, &p),
                None => c
                    .query_row("SELECT n FROM counts WHERE kind = ? AND account_id = ? AND region = ?", params![kind.as_str(), scope.account, scope.region], |r| r.get(0))
                    .optional()
                    .map(|n| n.unwrap_or(0)),
            }
            .map_err(other)?;
            Ok(n as u64)
        })
        .await
    }

    async fn tags(&self, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut sql = String::from("SELECT resource_id, key, value FROM tags WHERE 1=1");
            let mut args = Vec::new();
            in_list(&mut sql, &mut args, "resource_id", &ids);
            sql.push_str(" ORDER BY resource_id, key");
            let mut stmt = c.prepare_cached(&sql).map_err(other)?;
            let mut rows = stmt.query(params_from_iter(args.iter())).map_err(other)?;
            let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
            while let Some(r) = rows.next().map_err(other)? {
                out.entry(r.get(0).map_err(other)?).or_default().push((r.get(1).map_err(other)?, r.get(2).map_err(other)?));
            }
            Ok(out)
        })
        .await
    }

    async fn list_tags(&self, kind: Kind, scope: &Scope, ids: &[String], having: &[(String, Option<String>)], offset: u64, limit: u64) -> Result<Vec<TagRow>> {
        let (scope, ids, having) = (scope.clone(), ids.to_vec(), having.to_vec());
        self.read(move |c| {
            let mut sql = String::from("SELECT t.resource_id, t.key, t.value FROM tags t JOIN resources r ON r.id = t.resource_id WHERE t.kind = ? AND t.account_id = ? AND t.region = ?");
            let mut args: Vec<rusqlite::types::Value> = vec![kind.as_str().to_string().into(), scope.account.into(), scope.region.into()];
            in_list(&mut sql, &mut args, "t.resource_id", &ids);
            tag_clauses(&mut sql, &mut args, "t.resource_id", &having);
            sql.push_str(" ORDER BY r.seq, t.key LIMIT ? OFFSET ?");
            args.push((limit as i64).into());
            args.push((offset as i64).into());
            let mut stmt = c.prepare_cached(&sql).map_err(other)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), |r| Ok(TagRow { kind, resource_id: r.get(0)?, key: r.get(1)?, value: r.get(2)? })).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn idem_get(&self, account: i64, action: &str, token: &str) -> Result<Option<IdemEntry>> {
        let (action, token) = (action.to_string(), token.to_string());
        self.read(move |c| {
            c.prepare_cached("SELECT digest, response, created_ms FROM idempotency WHERE account_id = ? AND action = ? AND token = ?")
                .and_then(|mut s| {
                    s.query_row(params![account, action, token], |r| {
                        Ok(IdemEntry { account, action: action.clone(), token: token.clone(), digest: r.get(0)?, response: r.get(1)?, created_ms: r.get(2)? })
                    })
                    .optional()
                })
                .map_err(other)
        })
        .await
    }

    async fn due_tasks(&self, now_ms: i64) -> Result<Vec<Task>> {
        self.read(move |c| {
            let mut s = c.prepare_cached("SELECT id, kind, resource_id, op, due_ms FROM tasks WHERE due_ms <= ? ORDER BY due_ms, id").map_err(other)?;
            let rows = s.query_map(params![now_ms], task).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        self.read(|c| c.query_row("SELECT MIN(due_ms) FROM tasks", [], |r| r.get(0)).map_err(other)).await
    }

    async fn tasks_of(&self, resource_id: &str) -> Result<Vec<Task>> {
        let id = resource_id.to_string();
        self.read(move |c| {
            let mut s = c.prepare_cached("SELECT id, kind, resource_id, op, due_ms FROM tasks WHERE resource_id = ? ORDER BY due_ms").map_err(other)?;
            let rows = s.query_map(params![id], task).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn claimed_addresses(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut s = c.prepare_cached("SELECT ip FROM addresses").map_err(other)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn stage(&self, mutations: Vec<Mutation>) -> Result<Durable> {
        let ((), durable) = self
            .with_writer(move |w| {
                w.stage(|c| {
                    for m in mutations {
                        apply(c, m)?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(durable)
    }

    async fn flush(&self) -> Result<()> {
        let inner = self.inner.clone();
        let flush = move || inner.writer.lock().map_err(other)?.flush();
        // The fsync blocks. With two or more workers, this one waits in it itself: the others
        // go on serving (and take over its queued tasks), only one flush runs at a time (the
        // writer's lock), and the answer needs no thread hop. Handing the wait to another
        // thread (block_in_place, spawn_blocking) cost 100-150 µs of wake-ups per commit on
        // the project machine, a third of a one-connection write (BENCHMARKS.md). With one
        // worker, the blocking pool waits, so that reads go on meanwhile.
        let handle = tokio::runtime::Handle::current();
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread && handle.metrics().num_workers() >= 2 {
            flush()
        } else {
            tokio::task::spawn_blocking(flush).await.map_err(other)?
        }
    }

    async fn staged(&self) -> Result<Durable> {
        self.with_writer(|w| {
            // Whatever this scope read came from a batch that is durable, open, or failed.
            w.check_scope()?;
            Ok(Durable(w.open.then(|| w.outcome.subscribe())))
        })
        .await
    }

    async fn fresh_nonce(&self, key: &str, now_s: i64, horizon_s: i64) -> Result<bool> {
        Ok(self.inner.nonces.fresh(key, now_s, horizon_s))
    }

    async fn set_converged(&self, id: &str, digest: &str) -> Result<()> {
        self.inner.converged.lock().map_err(other)?.insert(id.to_string(), digest.to_string());
        Ok(())
    }

    async fn converged(&self, id: &str) -> Result<Option<String>> {
        Ok(self.inner.converged.lock().map_err(other)?.get(id).cloned())
    }

    async fn create_account(&self, name: &str) -> Result<Account> {
        let name = name.to_string();
        self.write(move |c| {
            c.execute("INSERT INTO accounts (name, created_ms) VALUES (?, ?)", params![name, now_ms()]).map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => StoreError::Conflict(format!("account {name} exists")),
                e => other(e),
            })?;
            Ok(Account { id: c.last_insert_rowid(), name })
        })
        .await
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<Account>> {
        let name = name.to_string();
        self.read(move |c| c.query_row("SELECT id, name FROM accounts WHERE name = ?", params![name], |r| Ok(Account { id: r.get(0)?, name: r.get(1)? })).optional().map_err(other)).await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|c| {
            let mut s = c.prepare("SELECT id, name FROM accounts ORDER BY id").map_err(other)?;
            let rows = s.query_map([], |r| Ok(Account { id: r.get(0)?, name: r.get(1)? })).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn put_key(&self, key: &AccessKey) -> Result<()> {
        let key = key.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO access_keys (access_key_id, secret, account_id, readonly, created_ms) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT(access_key_id) DO UPDATE SET secret = excluded.secret, account_id = excluded.account_id, readonly = excluded.readonly",
                params![key.access_key_id, key.secret, key.account_id, key.readonly, now_ms()],
            )
            .map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn revoke_key(&self, access_key_id: &str, now_ms: i64) -> Result<bool> {
        let ak = access_key_id.to_string();
        self.write(move |c| {
            let n = c.execute("UPDATE access_keys SET revoked_ms = COALESCE(revoked_ms, ?) WHERE access_key_id = ?", params![now_ms, ak]).map_err(other)?;
            Ok(n > 0)
        })
        .await
    }

    async fn all_keys(&self) -> Result<Vec<AccessKey>> {
        self.read(|c| {
            let mut s = c.prepare("SELECT access_key_id, secret, account_id, readonly, revoked_ms FROM access_keys ORDER BY access_key_id").map_err(other)?;
            let rows = s.query_map([], |r| Ok(AccessKey { access_key_id: r.get(0)?, secret: r.get(1)?, account_id: r.get(2)?, readonly: r.get(3)?, revoked_ms: r.get(4)? })).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn all_idem(&self) -> Result<Vec<IdemEntry>> {
        self.read(|c| {
            let mut s = c.prepare("SELECT account_id, action, token, digest, response, created_ms FROM idempotency").map_err(other)?;
            let rows = s.query_map([], |r| Ok(IdemEntry { account: r.get(0)?, action: r.get(1)?, token: r.get(2)?, digest: r.get(3)?, response: r.get(4)?, created_ms: r.get(5)? })).map_err(other)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
        })
        .await
    }

    async fn key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        let ak = access_key_id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT access_key_id, secret, account_id, readonly, revoked_ms FROM access_keys WHERE access_key_id = ?")
                .and_then(|mut s| {
                    s.query_row(params![ak], |r| Ok(AccessKey { access_key_id: r.get(0)?, secret: r.get(1)?, account_id: r.get(2)?, readonly: r.get(3)?, revoked_ms: r.get(4)? })).optional()
                })
                .map_err(other)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(name: &str) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vpngw-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (SqliteStore::open(&dir.join("t.db")).unwrap(), dir)
    }

    fn vpc(id: &str) -> Mutation {
        Mutation::Put(Record { kind: Kind::Vpc, id: id.into(), account: 1, region: "r".into(), parent: None, status: "Available".into(), created_ms: 0, doc: json!({}) })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn staged_writes_are_seen_in_a_write_scope_and_elsewhere_once_durable() {
        let (s, dir) = open("staged");
        let mut d = crate::write_scope(async {
            let d = s.stage(vec![vpc("vpc-1")]).await.unwrap();
            assert!(s.get_any(Kind::Vpc, "vpc-1").await.unwrap().is_some(), "the scope sees what it staged");
            d
        })
        .await;
        assert!(s.get_any(Kind::Vpc, "vpc-1").await.unwrap().is_none(), "others see only what is durable");
        // A second writer stages into the same batch; a failing write leaves the others alone.
        let d2 = crate::write_scope(async {
            assert!(s.stage(vec![vpc("vpc-2"), vpc("vpc-1")]).await.is_ok(), "a Put of an existing id updates it");
            let idem = IdemEntry { account: 1, action: "A".into(), token: "t".into(), digest: "d".into(), response: "{}".into(), created_ms: 0 };
            s.stage(vec![Mutation::PutIdem(idem.clone())]).await.unwrap();
            assert!(s.stage(vec![vpc("vpc-3"), Mutation::PutIdem(idem)]).await.is_err(), "the token exists");
            s.staged().await.unwrap()
        })
        .await;
        s.flush().await.unwrap();
        d.wait().await.unwrap();
        s.durable(d2).await.unwrap();
        for (id, there) in [("vpc-1", true), ("vpc-2", true), ("vpc-3", false)] {
            assert_eq!(s.get_any(Kind::Vpc, id).await.unwrap().is_some(), there, "{id}");
        }
        assert_eq!(s.count(Kind::Vpc, &Scope { account: 1, region: "r".into() }, None).await.unwrap(), 2);
        // Nobody flushes: a waiter commits by itself.
        let d = s.stage(vec![vpc("vpc-4")]).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(2), s.durable(d)).await.unwrap().unwrap();
        assert!(s.get_any(Kind::Vpc, "vpc-4").await.unwrap().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_point_reads_see_every_commit_of_this_and_of_another_process() {
        let (s, dir) = open("cache");
        let scope = Scope { account: 1, region: "r".into() };
        let named = |name: &str| {
            let Mutation::Put(mut r) = vpc("vpc-1") else { unreachable!() };
            r.doc = json!({ "name": name });
            Mutation::Put(r)
        };
        s.commit(vec![named("a")]).await.unwrap();
        // Every reader caches it (reads go round the readers).
        for _ in 0..2 * READERS {
            assert_eq!(s.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["name"], "a");
        }
        s.commit(vec![named("b"), Mutation::SetTags { kind: Kind::Vpc, id: "vpc-1".into(), scope: scope.clone(), tags: vec![("k".into(), "v".into())] }]).await.unwrap();
        for _ in 0..2 * READERS {
            let (rec, tags) = s.get_tagged(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap();
            assert_eq!((rec.doc["name"].as_str(), tags), (Some("b"), vec![("k".to_string(), "v".to_string())]));
        }
        // Another process (here: another store on the same file) commits: seen at once.
        let other = SqliteStore::open(&dir.join("t.db")).unwrap();
        other.commit(vec![named("c")]).await.unwrap();
        for _ in 0..2 * READERS {
            assert_eq!(s.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["name"], "c");
        }
        // The cache keeps the scope: another account or region, or another kind, finds nothing.
        assert!(s.get(Kind::Vpc, &Scope { account: 2, region: "r".into() }, "vpc-1").await.unwrap().is_none());
        assert!(s.get(Kind::Vpc, &Scope { account: 1, region: "q".into() }, "vpc-1").await.unwrap().is_none());
        assert!(s.get(Kind::VSwitch, &scope, "vpc-1").await.unwrap().is_none());
        // Staged but not durable: a write scope sees it, a cached read does not.
        let d = crate::write_scope(async {
            let d = s.stage(vec![named("d")]).await.unwrap();
            assert_eq!(s.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["name"], "d");
            d
        })
        .await;
        assert_eq!(s.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["name"], "c");
        s.flush().await.unwrap();
        s.durable(d).await.unwrap();
        assert_eq!(s.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().unwrap().doc["name"], "d");
        s.commit(vec![Mutation::Delete { kind: Kind::Vpc, id: "vpc-1".into() }]).await.unwrap();
        for _ in 0..2 * READERS {
            assert!(s.get(Kind::Vpc, &scope, "vpc-1").await.unwrap().is_none());
        }
        drop(other);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_its_writers_and_whoever_read_from_it() {
        let (s, dir) = open("failed");
        // A foreign key checked at COMMIT: the batch's commit fails.
        let bad = s
            .with_writer(|w| {
                w.stage(|c| {
                    c.execute_batch("PRAGMA defer_foreign_keys = ON; INSERT INTO access_keys (access_key_id, secret, account_id, readonly, created_ms) VALUES ('AK', 's', 999, 0, 0)").map_err(other)
                })
            })
            .await
            .unwrap()
            .1;
        let (reader_done, d) = crate::write_scope(async {
            let d = s.stage(vec![vpc("vpc-1")]).await.unwrap();
            assert!(s.get_any(Kind::Vpc, "vpc-1").await.unwrap().is_some());
            assert!(s.flush().await.is_err(), "the batch does not commit");
            // This scope read rows that never became durable: it may not build on them.
            (s.stage(vec![vpc("vpc-2")]).await.is_err() && s.staged().await.is_err(), d)
        })
        .await;
        assert!(reader_done);
        assert!(s.durable(d).await.is_err() && s.durable(bad).await.is_err());
        assert!(s.get_any(Kind::Vpc, "vpc-1").await.unwrap().is_none());
        // A fresh scope carries on.
        s.commit(vec![vpc("vpc-3")]).await.unwrap();
        assert!(s.get_any(Kind::Vpc, "vpc-3").await.unwrap().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    #[tokio::test]
    async fn version_5_keeps_every_row_its_order_and_its_counts() {
        let dir = std::env::temp_dir().join(format!("vpngw-store-v5-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        {
            // A database as version 4 left it, with rows whose seq has gaps.
            let c = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS.iter().take(4).enumerate() {
                c.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1)).unwrap();
            }
            for (seq, id, parent) in [(3, "vpc-a", None), (7, "vpn-a", Some("vpc-a")), (9, "vpc-b", None)] {
                let kind = if id.starts_with("vpc") { "vpc" } else { "vpn_gateway" };
                c.execute(
                    "INSERT INTO resources (seq, id, kind, account_id, region, parent_id, status, created_ms, doc) VALUES (?, ?, ?, 1, 'r', ?, 'active', 0, '{}')",
                    params![seq, id, kind, parent],
                )
                .unwrap();
            }
            c.execute_batch("INSERT INTO counts SELECT kind, account_id, region, COUNT(*) FROM resources GROUP BY 1, 2, 3; INSERT INTO parent_counts VALUES ('vpn_gateway', 'vpc-a', 1);").unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let scope = Scope { account: 1, region: "r".into() };
        let ids = |p: Page| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        // Lists are newest first.
        assert_eq!(ids(s.list(Kind::Vpc, &scope, &ListQuery { limit: 10, ..Default::default() }).await.unwrap()), ["vpc-b", "vpc-a"]);
        let q = ListQuery { parent: Some("vpc-a".into()), limit: 10, ..Default::default() };
        assert_eq!(ids(s.list(Kind::VpnGateway, &scope, &q).await.unwrap()), ["vpn-a"]);
        assert_eq!(s.count(Kind::VpnGateway, &scope, Some("vpc-a")).await.unwrap(), 1);
        let rec = Record { kind: Kind::Vpc, id: "vpc-c".into(), account: 1, region: "r".into(), parent: None, status: "active".into(), created_ms: 0, doc: serde_json::json!({}) };
        s.commit(vec![Mutation::Put(rec)]).await.unwrap();
        assert_eq!(ids(s.list(Kind::Vpc, &scope, &ListQuery { limit: 10, ..Default::default() }).await.unwrap()), ["vpc-c", "vpc-b", "vpc-a"], "new rows come after the old");
        let version: i64 = s.inner.writer.lock().unwrap().conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
