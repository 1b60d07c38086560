//! The writer connection: one batch at a time, open as a transaction that holds the cluster's
//! write lock (`pg_advisory_xact_lock`), staged under savepoints and committed with one WAL
//! flush; and how each [`Mutation`] is applied.

#[allow(unused_imports)]
use super::*;
use tokio_postgres::types::ToSql;

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
    /// What opens a batch: a transaction that commits durably and holds the cluster's write lock.
    begin: String,
    /// What this server's commits notify (its name: it does not wake itself).
    notify: String,
    /// When the open batch began.
    pub(super) opened: std::time::Instant,
    /// Writes staged in the open batch (for the metrics).
    staged: u64,
}

impl Writer {
    pub(super) fn new(origin: &str) -> Writer {
        Writer {
            conn: None,
            open: false,
            batch: 1,
            outcome: tokio::sync::watch::channel(Outcome::Pending).0,
            last_failed: 0,
            begin: format!("BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_advisory_xact_lock({WRITE_LOCK})"),
            notify: format!("NOTIFY vpngw_changes, '{origin}'; COMMIT"),
            opened: std::time::Instant::now(),
            staged: 0,
        }
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

    /// The writer connection, made again if there is none or it broke (its batch with it).
    async fn connect(&mut self, pool: &deadpool_postgres::Pool) -> Result<()> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.conn = Some(pool.get().await.map_err(other)?);
            self.open = false;
        }
        Ok(())
    }

    fn conn(&self) -> Result<&deadpool_postgres::Object> {
        self.conn.as_ref().ok_or_else(|| StoreError::Other("no writer connection".into()))
    }

    /// How the batch's BEGIN went: open from now, or rolled back.
    async fn started(&mut self, began: std::result::Result<(), tokio_postgres::Error>) -> Result<()> {
        match began {
            Ok(()) => {
                self.open = true;
                self.opened = std::time::Instant::now();
                Ok(())
            }
            Err(e) => {
                if let Some(c) = self.conn.as_ref() {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                Err(other(e))
            }
        }
    }

    /// Opens a batch if none is: a transaction that first takes the cluster's write lock, so that
    /// it sees every batch any server committed before and none commits beside it.
    pub(super) async fn begin(&mut self, pool: &deadpool_postgres::Pool) -> Result<&deadpool_postgres::Object> {
        self.connect(pool).await?;
        if !self.open {
            let began = self.conn()?.batch_execute(&self.begin).await;
            self.started(began).await?;
        }
        self.conn()
    }

    /// A read inside the batch, opening it first if none is open (in the same pipeline).
    pub(super) async fn query(&mut self, pool: &deadpool_postgres::Pool, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        self.connect(pool).await?;
        let conn = self.conn()?;
        let st = conn.prepare_cached(sql).await.map_err(other)?;
        if self.open {
            return conn.query(&st, args).await.map_err(other);
        }
        let (began, rows) = tokio::join!(conn.batch_execute(&self.begin), conn.query(&st, args));
        self.started(began).await?;
        rows.map_err(other)
    }

    /// Stages the mutations in the open batch under a savepoint: all of them or none. The
    /// savepoint, every statement and its release go out as one pipeline (one round trip),
    /// in order: statements are prepared first (once per connection).
    pub(super) async fn stage(&mut self, pool: &deadpool_postgres::Pool, mutations: Vec<Mutation>) -> Result<Durable> {
        self.check_scope()?;
        self.staged += 1;
        let conn = self.begin(pool).await?;
        let mut steps = Vec::new();
        for m in mutations {
            steps.extend(statements(m));
        }
        let mut prepared = Vec::with_capacity(steps.len());
        for s in &steps {
            prepared.push(conn.prepare_cached(s.sql).await.map_err(other)?);
        }
        let savepoint = conn.batch_execute("SAVEPOINT staged");
        let executed = futures_util::future::join_all(steps.iter().zip(&prepared).map(|(s, st)| {
            let args: Vec<&(dyn ToSql + Sync)> = s.args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            async move { conn.execute(st, &args).await }
        }));
        let release = conn.batch_execute("RELEASE staged");
        let (saved, executed, released) = tokio::join!(savepoint, executed, release);
        let mut outcome = saved.map_err(other);
        for (s, r) in steps.iter().zip(executed) {
            if outcome.is_err() {
                break;
            }
            outcome = match r {
                Ok(0) if s.must_change => Err(StoreError::Conflict(s.what.clone())),
                Ok(_) => Ok(()),
                Err(e) => Err(conflict(s.what.clone())(e)),
            };
        }
        match outcome.and(released.map_err(other)) {
            Ok(()) => Ok(Durable(Some(self.outcome.subscribe()))),
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
        match conn.batch_execute(&self.notify).await {
            Ok(()) => {
                crate::committed(Some(self.opened), self.staged);
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
        self.staged = 0;
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

/// One statement of a mutation: its SQL, its arguments, and what a failure (or, with
/// `must_change`, touching no row) means.
pub(super) struct Step {
    sql: &'static str,
    args: Vec<Box<dyn ToSql + Sync + Send>>,
    what: String,
    must_change: bool,
}

fn step(sql: &'static str, what: impl Into<String>, args: Vec<Box<dyn ToSql + Sync + Send>>) -> Step {
    Step { sql, args, what: what.into(), must_change: false }
}

/// The statements that apply a mutation, in order.
pub(super) fn statements(m: Mutation) -> Vec<Step> {
    match m {
        Mutation::Put(r) => {
            let what = format!("resource {}", r.id);
            // The id belongs to one kind: an update of another kind's record changes no row.
            vec![Step {
                sql: "INSERT INTO resources (id, kind, account_id, region, parent_id, status, created_ms, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                      ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, status = EXCLUDED.status, doc = EXCLUDED.doc WHERE resources.kind = EXCLUDED.kind",
                args: vec![Box::new(r.id), Box::new(r.kind.as_str()), Box::new(r.account), Box::new(r.region), Box::new(r.parent), Box::new(r.status), Box::new(r.created_ms), Box::new(r.doc)],
                what,
                must_change: true,
            }]
        }
        Mutation::Delete { kind, id } => vec![
            step("DELETE FROM resources WHERE id = $1 AND kind = $2", "delete", vec![Box::new(id.clone()), Box::new(kind.as_str())]),
            step("DELETE FROM tags WHERE resource_id = $1", "delete", vec![Box::new(id.clone())]),
            step("DELETE FROM addresses WHERE owner_id = $1", "delete", vec![Box::new(id)]),
        ],
        Mutation::SetTags { kind, id, scope, tags } => tags
            .into_iter()
            .map(|(k, v)| {
                step(
                    "INSERT INTO tags (resource_id, kind, account_id, region, key, value) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (resource_id, key) DO UPDATE SET value = EXCLUDED.value",
                    "tags",
                    vec![Box::new(id.clone()), Box::new(kind.as_str()), Box::new(scope.account), Box::new(scope.region.clone()), Box::new(k), Box::new(v)],
                )
            })
            .collect(),
        Mutation::RemoveTags { id, keys } => match keys {
            None => vec![step("DELETE FROM tags WHERE resource_id = $1", "tags", vec![Box::new(id)])],
            Some(keys) => vec![step("DELETE FROM tags WHERE resource_id = $1 AND key = ANY($2)", "tags", vec![Box::new(id), Box::new(keys)])],
        },
        Mutation::PutIdem(e) => vec![step(
            "INSERT INTO idempotency (account_id, action, token, digest, response, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            format!("client token {}", e.token),
            vec![Box::new(e.account), Box::new(e.action), Box::new(e.token), Box::new(e.digest), Box::new(e.response), Box::new(e.created_ms)],
        )],
        Mutation::ReplaceIdem(e) => vec![step(
            "UPDATE idempotency SET digest = $1, response = $2, created_ms = $3 WHERE account_id = $4 AND action = $5 AND token = $6",
            "client token",
            vec![Box::new(e.digest), Box::new(e.response), Box::new(e.created_ms), Box::new(e.account), Box::new(e.action), Box::new(e.token)],
        )],
        Mutation::PutTask(t) => vec![step(
            "INSERT INTO tasks (id, kind, resource_id, op, due_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET op = EXCLUDED.op, due_ms = EXCLUDED.due_ms",
            "task",
            vec![Box::new(t.id), Box::new(t.kind.as_str()), Box::new(t.resource_id), Box::new(t.op), Box::new(t.due_ms)],
        )],
        Mutation::DeleteTask { id } => vec![step("DELETE FROM tasks WHERE id = $1", "task", vec![Box::new(id)])],
        Mutation::ClaimAddress { ip, owner } => vec![step("INSERT INTO addresses (ip, owner_id) VALUES ($1, $2)", format!("address {ip}"), vec![Box::new(ip), Box::new(owner)])],
        Mutation::Place { side, on: Some((agent, epoch)) } => vec![step(
            "INSERT INTO placements (side, agent, epoch) VALUES ($1, $2, $3) ON CONFLICT (side) DO UPDATE SET agent = EXCLUDED.agent, epoch = EXCLUDED.epoch",
            "placement",
            vec![Box::new(side), Box::new(agent), Box::new(epoch)],
        )],
        Mutation::Place { side, on: None } => vec![step("DELETE FROM placements WHERE side = $1", "placement", vec![Box::new(side)])],
        Mutation::Fence { side, agent, epoch } => vec![Step {
            // Touches the placement's row only if it is still this agent's at this epoch (and
            // locks it until the commit, so that no placement moves it meanwhile).
            sql: "UPDATE placements SET epoch = epoch WHERE side = $1 AND agent = $2 AND epoch = $3",
            what: format!("{side} is no longer placed on {agent} at epoch {epoch}"),
            args: vec![Box::new(side), Box::new(agent), Box::new(epoch)],
            must_change: true,
        }],
        Mutation::Converged { id, digest } => vec![step(
            "INSERT INTO converged (resource_id, digest) VALUES ($1, $2) ON CONFLICT (resource_id) DO UPDATE SET digest = EXCLUDED.digest",
            "converged",
            vec![Box::new(id), Box::new(digest)],
        )],
    }
}
