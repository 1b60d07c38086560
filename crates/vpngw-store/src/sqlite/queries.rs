//! Row mapping and the pieces of SQL the queries share.

#[allow(unused_imports)]
use super::*;

pub(super) const RECORD_COLS: &str = record_cols!();

/// Whether a record is of this kind and scope: the WHERE of a scoped point read.
pub(super) fn in_scope(r: &Record, kind: Kind, scope: &Scope) -> bool {
    r.kind == kind && r.account == scope.account && r.region == scope.region
}

pub(super) fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let kind: String = r.get(0)?;
    let doc: String = r.get(7)?;
    Ok(Record {
        kind: Kind::parse(&kind).unwrap_or(Kind::Vpc),
        id: r.get(1)?,
        account: r.get(2)?,
        region: r.get(3)?,
        parent: r.get(4)?,
        status: r.get(5)?,
        created_ms: r.get(6)?,
        doc: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
    })
}

/// How many children of `kind` the parent has, if the parent belongs to the scope.
pub(super) fn parent_count(c: &Connection, kind: Kind, scope: &Scope, parent: &str) -> rusqlite::Result<i64> {
    let owned: bool =
        c.prepare_cached("SELECT 1 FROM resources WHERE id = ? AND account_id = ? AND region = ?")?.query_row(params![parent, scope.account, scope.region], |_| Ok(())).optional()?.is_some();
    if !owned {
        // A parent outside the scope (or gone) has no children the caller may see.
        return c
            .prepare_cached("SELECT COUNT(*) FROM resources WHERE kind = ? AND account_id = ? AND region = ? AND parent_id = ?")?
            .query_row(params![kind.as_str(), scope.account, scope.region, parent], |r| r.get(0));
    }
    c.prepare_cached("SELECT n FROM parent_counts WHERE kind = ? AND parent_id = ?")?.query_row(params![kind.as_str(), parent], |r| r.get(0)).optional().map(|n| n.unwrap_or(0))
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Appends `AND resource has every tag` clauses for `column` (the resource id column).
pub(super) fn tag_clauses(sql: &mut String, args: &mut Vec<rusqlite::types::Value>, column: &str, tags: &[(String, Option<String>)]) {
    for (k, v) in tags {
        match v {
            Some(v) => {
                sql.push_str(&format!(" AND {column} IN (SELECT resource_id FROM tags WHERE key = ? AND value = ?)"));
                args.push(k.clone().into());
                args.push(v.clone().into());
            }
            None => {
                sql.push_str(&format!(" AND {column} IN (SELECT resource_id FROM tags WHERE key = ?)"));
                args.push(k.clone().into());
            }
        }
    }
}

pub(super) fn in_list(sql: &mut String, args: &mut Vec<rusqlite::types::Value>, column: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    sql.push_str(&format!(" AND {column} IN ({})", vec!["?"; ids.len()].join(",")));
    args.extend(ids.iter().map(|i| rusqlite::types::Value::from(i.clone())));
}

pub(super) fn task(r: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    let kind: String = r.get(1)?;
    Ok(Task { id: r.get(0)?, kind: Kind::parse(&kind).unwrap_or(Kind::Vpc), resource_id: r.get(2)?, op: r.get(3)?, due_ms: r.get(4)? })
}
