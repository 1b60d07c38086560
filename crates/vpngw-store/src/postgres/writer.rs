//! The writer connection: one batch at a time, open as a transaction that holds the cluster's
//! write lock (`pg_advisory_xact_lock`), staged under savepoints and committed with one WAL
//! flush; and how each [`Mutation`] is applied.

#[allow(unused_imports)]
use super::*;

/// The writer connection and its open batch.
pub(super) struct Writer {
    /// None until first used, and again after the connection broke.
    pub(super) conn: Option<deadpool_postgres::Object>,
    /// A transaction is open: this server holds the cluster's write lock.
    pub(super) open: bool,
    pub(super) batch: u64,
    pub(super) outcome: tokio::sync::watch::Sender<Outcome>,
    /// The number of the last batch whose commit failed (0: none).
    pub(super) last_failed: u64,
}

impl Writer {
    pub(super) fn new() -> Writer {
        Writer { conn: None, open: false, batch: 1, outcome: tokio::sync::watch::channel(Outcome::Pending).0, last_failed: 0 }
    }

    /// A write scope remembers the first batch it read from; it may stage only if no batch
    /// since has failed.
    pub(super) fn check_scope(&self) -> Result<()> {
        let first = crate::scope_batch(self.batch);
        if first != 0 && self.last_failed >= first {
            return Err(StoreError::Conflict("a write this request read from failed to commit; retry".into()));
        }
        Ok(())
    }

    /// Opens a batch if none is: a transaction that first takes the cluster's write lock, so that
    /// it sees every batch any server committed before and none commits beside it.
    pub(super) async fn begin(&mut self, pool: &deadpool_postgres::Pool) -> Result<&deadpool_postgres::Object> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.conn = Some(pool.get().await.map_err(other)?);
            self.open = false;
        }
        let conn = self.conn.as_ref().ok_or_else(|| StoreError::Other("no writer connection".into()))?;
        if !self.open {
            if let Err(e) = conn.batch_execute(&format!("BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_advisory_xact_lock({WRITE_LOCK})")).await {
                let _ = conn.batch_execute("ROLLBACK").await;
                return Err(other(e));
            }
            self.open = true;
        }
        Ok(conn)
    }

    /// Stages the mutations in the open batch under a savepoint: all of them or none.
    pub(super) async fn stage(&mut self, pool: &deadpool_postgres::Pool, mutations: Vec<Mutation>) -> Result<Durable> {
        self.check_scope()?;
        let conn = self.begin(pool).await?;
        conn.batch_execute("SAVEPOINT staged").await.map_err(other)?;
        let mut result = Ok(());
        for m in mutations {
            result = apply(conn, m).await;
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                conn.batch_execute("RELEASE staged").await.map_err(other)?;
                Ok(Durable(Some(self.outcome.subscribe())))
            }
            Err(e) => {
                if conn.batch_execute("ROLLBACK TO staged; RELEASE staged").await.is_err() {
                    // The batch cannot go on: fail it, so that nobody who read from it answers.
                    self.fail("the connection broke while staging".into()).await;
                }
                Err(e)
            }
        }
    }

    /// Commits the open batch (one WAL flush), tells the other servers (NOTIFY, delivered at
    /// commit) and its writers how it went.
    pub(super) async fn flush(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        let Some(conn) = self.conn.as_ref() else { return Ok(()) };
        match conn.batch_execute("NOTIFY vpngw_changes; COMMIT").await {
            Ok(()) => {
                self.finish(Outcome::Durable);
                Ok(())
            }
            Err(e) => {
                self.fail(e.to_string()).await;
                Err(other(e))
            }
        }
    }

    async fn fail(&mut self, why: String) {
        if let Some(c) = self.conn.as_ref() {
            if c.batch_execute("ROLLBACK").await.is_err() {
                self.conn = None;
            }
        }
        self.last_failed = self.batch;
        self.finish(Outcome::Failed(why));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.open = false;
        self.batch += 1;
        let done = std::mem::replace(&mut self.outcome, tokio::sync::watch::channel(Outcome::Pending).0);
        done.send_replace(outcome);
    }
}

/// A unique violation is a conflict (an address or a ClientToken taken); anything else fails.
fn conflict(what: String) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => StoreError::Conflict(what.clone()),
        _ => other(e),
    }
}

pub(super) async fn apply(c: &deadpool_postgres::Object, m: Mutation) -> Result<()> {
    match m {
        Mutation::Put(r) => {
            let st = c
                .prepare_cached(
                    "INSERT INTO resources (id, kind, account_id, region, parent_id, status, created_ms, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, status = EXCLUDED.status, doc = EXCLUDED.doc WHERE resources.kind = EXCLUDED.kind",
                )
                .await
                .map_err(other)?;
            let n = c.execute(&st, &[&r.id, &r.kind.as_str(), &r.account, &r.region, &r.parent, &r.status, &r.created_ms, &r.doc]).await.map_err(conflict(format!("resource {}", r.id)))?;
            if n == 0 {
                // The id belongs to a record of another kind.
                return Err(StoreError::Conflict(format!("resource {}", r.id)));
            }
        }
        Mutation::Delete { kind, id } => {
            let st = c.prepare_cached("DELETE FROM resources WHERE id = $1 AND kind = $2").await.map_err(other)?;
            c.execute(&st, &[&id, &kind.as_str()]).await.map_err(other)?;
            let st = c.prepare_cached("DELETE FROM tags WHERE resource_id = $1").await.map_err(other)?;
            c.execute(&st, &[&id]).await.map_err(other)?;
            let st = c.prepare_cached("DELETE FROM addresses WHERE owner_id = $1").await.map_err(other)?;
            c.execute(&st, &[&id]).await.map_err(other)?;
        }
        Mutation::SetTags { kind, id, scope, tags } => {
            let st = c
                .prepare_cached(
                    "INSERT INTO tags (resource_id, kind, account_id, region, key, value) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (resource_id, key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await
                .map_err(other)?;
            for (k, v) in tags {
                c.execute(&st, &[&id, &kind.as_str(), &scope.account, &scope.region, &k, &v]).await.map_err(other)?;
            }
        }
        Mutation::RemoveTags { id, keys } => match keys {
            None => {
                c.execute("DELETE FROM tags WHERE resource_id = $1", &[&id]).await.map_err(other)?;
            }
            Some(keys) => {
                c.execute("DELETE FROM tags WHERE resource_id = $1 AND key = ANY($2)", &[&id, &keys]).await.map_err(other)?;
            }
        },
        Mutation::PutIdem(e) => {
            let st = c.prepare_cached("INSERT INTO idempotency (account_id, action, token, digest, response, created_ms) VALUES ($1, $2, $3, $4, $5, $6)").await.map_err(other)?;
            c.execute(&st, &[&e.account, &e.action, &e.token, &e.digest, &e.response, &e.created_ms]).await.map_err(conflict(format!("client token {}", e.token)))?;
        }
        Mutation::ReplaceIdem(e) => {
            c.execute(
                "UPDATE idempotency SET digest = $1, response = $2, created_ms = $3 WHERE account_id = $4 AND action = $5 AND token = $6",
                &[&e.digest, &e.response, &e.created_ms, &e.account, &e.action, &e.token],
            )
            .await
            .map_err(other)?;
        }
        Mutation::PutTask(t) => {
            let st = c
                .prepare_cached(
                    "INSERT INTO tasks (id, kind, resource_id, op, due_ms) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (id) DO UPDATE SET op = EXCLUDED.op, due_ms = EXCLUDED.due_ms",
                )
                .await
                .map_err(other)?;
            c.execute(&st, &[&t.id, &t.kind.as_str(), &t.resource_id, &t.op, &t.due_ms]).await.map_err(other)?;
        }
        Mutation::DeleteTask { id } => {
            let st = c.prepare_cached("DELETE FROM tasks WHERE id = $1").await.map_err(other)?;
            c.execute(&st, &[&id]).await.map_err(other)?;
        }
        Mutation::ClaimAddress { ip, owner } => {
            let st = c.prepare_cached("INSERT INTO addresses (ip, owner_id) VALUES ($1, $2)").await.map_err(other)?;
            c.execute(&st, &[&ip, &owner]).await.map_err(conflict(format!("address {ip}")))?;
        }
    }
    Ok(())
}
