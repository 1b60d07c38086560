//! The schema: migrations numbered by `PRAGMA user_version` (never edit one that has shipped),
//! and the connection settings (WAL, `synchronous=FULL`).

#[allow(unused_imports)]
use super::*;

/// Each entry moves the schema one version up; never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    readonly INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    region TEXT NOT NULL,
    parent_id TEXT,
    status TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX resources_scope ON resources(kind, account_id, region, seq);
CREATE INDEX resources_parent ON resources(kind, account_id, region, parent_id, seq);
CREATE TABLE tags (
    resource_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    region TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_id, key)
);
CREATE INDEX tags_kv ON tags(account_id, region, kind, key, value);
CREATE TABLE idempotency (
    account_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    token TEXT NOT NULL,
    digest TEXT NOT NULL,
    response TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, action, token)
);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    op TEXT NOT NULL,
    due_ms INTEGER NOT NULL
);
CREATE INDEX tasks_due ON tasks(due_ms);
CREATE INDEX tasks_resource ON tasks(resource_id);
CREATE TABLE addresses (
    ip TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL
);
CREATE INDEX addresses_owner ON addresses(owner_id);
"#,
    r#"
-- Uniqueness checks (a customer gateway's address) use the index, not a scan of every row.
CREATE INDEX resources_ip ON resources(kind, account_id, region, json_extract(doc, '$.ip_address'));
"#,
    r#"
-- How many resources of a kind a scope has, kept in step by every commit: quota checks read
-- one row instead of counting the table.
CREATE TABLE counts (
    kind TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    region TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (kind, account_id, region)
);
INSERT INTO counts (kind, account_id, region, n) SELECT kind, account_id, region, COUNT(*) FROM resources GROUP BY kind, account_id, region;
"#,
    r#"
-- The same per parent (the connections of a gateway, ...): listing a parent's children and
-- checking its quota read one row instead of counting them.
CREATE TABLE parent_counts (
    kind TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (kind, parent_id)
);
INSERT INTO parent_counts (kind, parent_id, n) SELECT kind, parent_id, COUNT(*) FROM resources WHERE parent_id IS NOT NULL GROUP BY kind, parent_id;
"#,
    r#"
-- Fewer pages per commit (every page a commit touches is written to the WAL before its fsync):
-- no AUTOINCREMENT (its sqlite_sequence row was one more page per insert; `seq` stays
-- increasing: a new row gets one more than the largest), and the parent index holds only
-- resources that have a parent.
CREATE TABLE resources_v5 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    region TEXT NOT NULL,
    parent_id TEXT,
    status TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
INSERT INTO resources_v5 (seq, id, kind, account_id, region, parent_id, status, created_ms, doc)
    SELECT seq, id, kind, account_id, region, parent_id, status, created_ms, doc FROM resources;
DROP TABLE resources;
ALTER TABLE resources_v5 RENAME TO resources;
CREATE INDEX resources_scope ON resources(kind, account_id, region, seq);
CREATE INDEX resources_parent ON resources(kind, account_id, region, parent_id, seq) WHERE parent_id IS NOT NULL;
CREATE INDEX resources_ip ON resources(kind, account_id, region, json_extract(doc, '$.ip_address'));
"#,
    // Revoked AccessKeys (`vpngw key revoke`).
    "ALTER TABLE access_keys ADD COLUMN revoked_ms INTEGER",
];

pub(super) fn configure(c: &Connection) -> Result<()> {
    c.busy_timeout(std::time::Duration::from_secs(10)).map_err(other)?;
    if let Ok(ps) = std::env::var("VPNGW_PAGE_SIZE") {
        c.pragma_update(None, "page_size", ps.parse::<i64>().unwrap_or(4096)).map_err(other)?;
    }
    c.pragma_update(None, "journal_mode", "WAL").map_err(other)?;
    c.pragma_update(None, "synchronous", "FULL").map_err(other)?;
    c.pragma_update(None, "foreign_keys", "ON").map_err(other)?;
    Ok(())
}

pub(super) fn migrate(c: &Connection) -> Result<()> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(other)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        c.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1)).map_err(other)?;
    }
    Ok(())
}
