//! The PostgreSQL schema: numbered migrations (never edit one that has shipped), applied at
//! start under an advisory lock, so that of several servers starting together one migrates and
//! the others wait and find the work done.

#[allow(unused_imports)]
use super::*;

/// Each entry moves the schema one version up; never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
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
-- How many resources of a kind a scope has, and a parent has, kept in step by triggers in the
-- transaction of each write: a quota check reads one row instead of counting.
CREATE TABLE counts (
    kind TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    region TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (kind, account_id, region)
);
CREATE TABLE parent_counts (
    kind TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (kind, parent_id)
);
CREATE FUNCTION vpngw_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO counts VALUES (NEW.kind, NEW.account_id, NEW.region, 1)
            ON CONFLICT (kind, account_id, region) DO UPDATE SET n = counts.n + 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE counts SET n = n - 1 WHERE kind = OLD.kind AND account_id = OLD.account_id AND region = OLD.region;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.parent_id IS NOT NULL THEN
        UPDATE parent_counts SET n = n - 1 WHERE kind = OLD.kind AND parent_id = OLD.parent_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.parent_id IS NOT NULL THEN
        INSERT INTO parent_counts VALUES (NEW.kind, NEW.parent_id, 1)
            ON CONFLICT (kind, parent_id) DO UPDATE SET n = parent_counts.n + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER resources_counted AFTER INSERT OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION vpngw_count();
CREATE TRIGGER resources_moved AFTER UPDATE OF parent_id ON resources FOR EACH ROW WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id) EXECUTE FUNCTION vpngw_count();
"#,
    r#"
-- The fleet: gateway agents with their leases (by the database's clock), and where each
-- gateway side runs. A placement names the epoch of the agent's registration it was made for:
-- an agent that registers again (after its lease expired) holds none of its old sides.
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    zone TEXT NOT NULL,
    addresses TEXT[] NOT NULL,
    live_url TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    registered_ms BIGINT NOT NULL
);
CREATE TABLE placements (
    side TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    epoch BIGINT NOT NULL
);
"#,
    // Revoked AccessKeys (`vpngw key revoke`).
    "ALTER TABLE access_keys ADD COLUMN revoked_ms BIGINT",
];

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
