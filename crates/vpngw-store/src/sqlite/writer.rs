//! The writer connection: group commit (a batch staged under savepoints, committed with one
//! fsync) and how each [`Mutation`] is applied, counters included.

#[allow(unused_imports)]
use super::*;

/// The writer connection and its open batch.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// A transaction is open (something is staged).
    pub(super) open: bool,
    /// The batch being staged: its number and its outcome's channel.
    pub(super) batch: u64,
    pub(super) outcome: tokio::sync::watch::Sender<Outcome>,
    /// The number of the last batch whose commit failed (0: none).
    pub(super) last_failed: u64,
    /// When the open batch began, and how many writes it holds (for the metrics).
    opened: Option<std::time::Instant>,
    staged: u64,
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Writer {
        Writer { conn, open: false, batch: 1, outcome: tokio::sync::watch::channel(Outcome::Pending).0, last_failed: 0, opened: None, staged: 0 }
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

    /// Runs `f` inside the open batch under a savepoint: all of it or none of it is staged.
    pub(super) fn stage<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<(T, Durable)> {
        self.check_scope()?;
        if !self.open {
            self.conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut st| st.execute([])).map_err(other)?;
            self.open = true;
            self.opened = Some(std::time::Instant::now());
            self.staged = 0;
        }
        self.staged += 1;
        // Statements, not batches: prepared once and kept (a write runs three of these).
        self.conn.prepare_cached("SAVEPOINT staged").and_then(|mut st| st.execute([])).map_err(other)?;
        match f(&self.conn) {
            Ok(v) => {
                self.conn.prepare_cached("RELEASE staged").and_then(|mut st| st.execute([])).map_err(other)?;
                Ok((v, Durable(Some(self.outcome.subscribe()))))
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO staged; RELEASE staged");
                Err(e)
            }
        }
    }

    /// Commits the open batch (one fsync) and tells its writers how it went.
    pub(super) fn flush(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        let r = self.conn.execute_batch("COMMIT");
        let outcome = match &r {
            Ok(()) => {
                crate::committed(self.opened.take(), self.staged);
                Outcome::Durable
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.last_failed = self.batch;
                Outcome::Failed(e.to_string())
            }
        };
        self.open = false;
        self.batch += 1;
        let done = std::mem::replace(&mut self.outcome, tokio::sync::watch::channel(Outcome::Pending).0);
        done.send_replace(outcome);
        r.map_err(other)
    }
}

pub(super) fn bump_count(tx: &Connection, kind: &str, account: i64, region: &str, by: i64) -> Result<()> {
    tx.prepare_cached("INSERT INTO counts (kind, account_id, region, n) VALUES (?, ?, ?, ?) ON CONFLICT(kind, account_id, region) DO UPDATE SET n = n + excluded.n")
        .and_then(|mut s| s.execute(params![kind, account, region, by]))
        .map_err(other)?;
    Ok(())
}

pub(super) fn bump_parent_count(tx: &Connection, kind: &str, parent: &str, by: i64) -> Result<()> {
    tx.prepare_cached("INSERT INTO parent_counts (kind, parent_id, n) VALUES (?, ?, ?) ON CONFLICT(kind, parent_id) DO UPDATE SET n = n + excluded.n")
        .and_then(|mut s| s.execute(params![kind, parent, by]))
        .map_err(other)?;
    Ok(())
}

pub(super) fn apply(tx: &Connection, m: Mutation) -> Result<()> {
    let conflict = |what: String| {
        move |e: rusqlite::Error| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => StoreError::Conflict(what.clone()),
            e => other(e),
        }
    };
    match m {
        Mutation::Put(r) => {
            let doc = serde_json::to_string(&r.doc).map_err(other)?;
            let old_parent: Option<Option<String>> = tx
                .prepare_cached("SELECT parent_id FROM resources WHERE id = ? AND kind = ?")
                .and_then(|mut s| s.query_row(params![r.id, r.kind.as_str()], |row| row.get(0)).optional())
                .map_err(other)?;
            match old_parent {
                Some(old) => {
                    tx.prepare_cached("UPDATE resources SET parent_id = ?, status = ?, doc = ? WHERE id = ? AND kind = ?")
                        .and_then(|mut s| s.execute(params![r.parent, r.status, doc, r.id, r.kind.as_str()]))
                        .map_err(other)?;
                    if old != r.parent {
                        if let Some(o) = &old {
                            bump_parent_count(tx, r.kind.as_str(), o, -1)?;
                        }
                        if let Some(n) = &r.parent {
                            bump_parent_count(tx, r.kind.as_str(), n, 1)?;
                        }
                    }
                }
                None => {
                    tx.prepare_cached("INSERT INTO resources (id, kind, account_id, region, parent_id, status, created_ms, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                        .and_then(|mut s| s.execute(params![r.id, r.kind.as_str(), r.account, r.region, r.parent, r.status, r.created_ms, doc]))
                        .map_err(conflict(format!("resource {}", r.id)))?;
                    bump_count(tx, r.kind.as_str(), r.account, &r.region, 1)?;
                    if let Some(n) = &r.parent {
                        bump_parent_count(tx, r.kind.as_str(), n, 1)?;
                    }
                }
            }
        }
        Mutation::Delete { kind, id } => {
            let gone: Option<(i64, String, Option<String>)> = tx
                .prepare_cached("DELETE FROM resources WHERE id = ? AND kind = ? RETURNING account_id, region, parent_id")
                .and_then(|mut s| s.query_row(params![id, kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional())
                .map_err(other)?;
            if let Some((account, region, parent)) = gone {
                bump_count(tx, kind.as_str(), account, &region, -1)?;
                if let Some(p) = parent {
                    bump_parent_count(tx, kind.as_str(), &p, -1)?;
                }
            }
            tx.execute("DELETE FROM tags WHERE resource_id = ?", params![id]).map_err(other)?;
            tx.execute("DELETE FROM addresses WHERE owner_id = ?", params![id]).map_err(other)?;
        }
        Mutation::SetTags { kind, id, scope, tags } => {
            let mut s = tx
                .prepare_cached(
                    "INSERT INTO tags (resource_id, kind, account_id, region, key, value) VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT(resource_id, key) DO UPDATE SET value = excluded.value",
                )
                .map_err(other)?;
            for (k, v) in tags {
                s.execute(params![id, kind.as_str(), scope.account, scope.region, k, v]).map_err(other)?;
            }
        }
        Mutation::RemoveTags { id, keys } => match keys {
            None => {
                tx.execute("DELETE FROM tags WHERE resource_id = ?", params![id]).map_err(other)?;
            }
            Some(keys) => {
                for k in keys {
                    tx.execute("DELETE FROM tags WHERE resource_id = ? AND key = ?", params![id, k]).map_err(other)?;
                }
            }
        },
        Mutation::PutIdem(e) => {
            tx.prepare_cached("INSERT INTO idempotency (account_id, action, token, digest, response, created_ms) VALUES (?, ?, ?, ?, ?, ?)")
                .and_then(|mut s| s.execute(params![e.account, e.action, e.token, e.digest, e.response, e.created_ms]))
                .map_err(conflict(format!("client token {}", e.token)))?;
        }
        Mutation::ReplaceIdem(e) => {
            tx.prepare_cached("UPDATE idempotency SET digest = ?, response = ?, created_ms = ? WHERE account_id = ? AND action = ? AND token = ?")
                .and_then(|mut s| s.execute(params![e.digest, e.response, e.created_ms, e.account, e.action, e.token]))
                .map_err(other)?;
        }
        Mutation::PutTask(t) => {
            tx.prepare_cached(
                "INSERT INTO tasks (id, kind, resource_id, op, due_ms) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT(id) DO UPDATE SET op = excluded.op, due_ms = excluded.due_ms",
            )
            .and_then(|mut s| s.execute(params![t.id, t.kind.as_str(), t.resource_id, t.op, t.due_ms]))
            .map_err(other)?;
        }
        Mutation::DeleteTask { id } => {
            tx.execute("DELETE FROM tasks WHERE id = ?", params![id]).map_err(other)?;
        }
        Mutation::ClaimAddress { ip, owner } => {
            tx.prepare_cached("INSERT INTO addresses (ip, owner_id) VALUES (?, ?)").and_then(|mut s| s.execute(params![ip, owner])).map_err(conflict(format!("address {ip}")))?;
        }
        Mutation::Place { .. } | Mutation::Fence { .. } | Mutation::Converged { .. } => {
            return Err(StoreError::Other("an SQLite store holds no fleet of agents".into()));
        }
    }
    Ok(())
}
