//! The PostgreSQL schema: numbered migrations (never edit one that has shipped), applied at
//! start under an advisory lock, so that of several servers starting together one migrates and
//! the others wait and find the work done.

#[allow(unused_imports)]
use super::*;

/// Each entry moves the schema one version up; never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    readonly BOOLEAN NOT NULL DEFAULT false,
    created_ms BIGINT NOT NULL
);
CREATE TABLE resources (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    region TEXT NOT NULL,
    parent_id TEXT,
    status TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    doc JSONB NOT NULL
);
CREATE INDEX resources_scope ON resources (kind, account_id, region, seq);
CREATE INDEX resources_parent ON resources (kind, account_id, region, parent_id, seq) WHERE parent_id IS NOT NULL;
CREATE INDEX resources_ip ON resources (kind, account_id, region, (doc->>'ip_address'));
CREATE TABLE tags (
    resource_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    region TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_id, key)
);
CREATE INDEX tags_kv ON tags (account_id, region, kind, key, value);
CREATE TABLE idempotency (
    account_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    token TEXT NOT NULL,
    digest TEXT NOT NULL,
    response TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, action, token)
);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    op TEXT NOT NULL,
    due_ms BIGINT NOT NULL
);
CREATE INDEX tasks_due ON tasks (due_ms);
CREATE INDEX tasks_resource ON tasks (resource_id);
CREATE TABLE addresses (
    ip TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL
);
CREATE INDEX addresses_owner ON addresses (owner_id);
-- The SignatureNonce window of every server: "AccessKeyId\nnonce" -> when it was used.
CREATE TABLE nonces (
    key TEXT PRIMARY KEY,
    seen_s BIGINT NOT NULL
);
CREATE INDEX nonces_seen ON nonces (seen_s);
-- What the data plane reports it runs (observed state, rebuilt by the reconcilers).
CREATE TABLE converged (
    resource_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL
);
"#];

/// Brings the schema up to date. The advisory lock serializes servers that start together; each
/// migration commits with its version.
pub(super) async fn migrate(c: &mut tokio_postgres::Client) -> Result<()> {
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK]).await.map_err(other)?;
    let result = async {
        c.batch_execute("CREATE TABLE IF NOT EXISTS vpngw_schema (version INTEGER NOT NULL)").await.map_err(other)?;
        let version: i32 = c.query_opt("SELECT version FROM vpngw_schema", &[]).await.map_err(other)?.map(|r| r.get(0)).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = c.transaction().await.map_err(other)?;
            tx.batch_execute(sql).await.map_err(other)?;
            tx.execute("DELETE FROM vpngw_schema", &[]).await.map_err(other)?;
            tx.execute("INSERT INTO vpngw_schema (version) VALUES ($1)", &[&(i as i32 + 1)]).await.map_err(other)?;
            tx.commit().await.map_err(other)?;
            tracing::info!(version = i + 1, "Migrated the PostgreSQL schema.");
        }
        Ok(())
    }
    .await;
    c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]).await.map_err(other)?;
    result
}
