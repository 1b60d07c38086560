//! The reader connections' record cache (see the module docs of `sqlite`).

#[allow(unused_imports)]
use super::*;

/// Most records a reader's cache holds; it starts over when full.
pub(super) const CACHE_ENTRIES: usize = 2048;

/// A record and, once a point read asked for them, its tags.
pub(super) type Cached = (Record, Option<Vec<(String, String)>>);

/// A reader connection and the records its point reads returned (see the module docs).
pub(super) struct Reader {
    pub(super) conn: Connection,
    /// `PRAGMA data_version` when `records` was last known to be current.
    pub(super) version: i64,
    pub(super) records: HashMap<String, Cached>,
}

impl Reader {
    pub(super) fn new(conn: Connection) -> Reader {
        Reader { conn, version: -1, records: HashMap::new() }
    }

    /// A record of the scope, with its tags if `tagged`, through the cache.
    pub(super) fn get(&mut self, kind: Kind, scope: &Scope, id: &str, tagged: bool) -> Result<Option<Cached>> {
        let version: i64 = self.conn.prepare_cached("PRAGMA data_version").and_then(|mut s| s.query_row([], |r| r.get(0))).map_err(other)?;
        if version != self.version {
            self.records.clear();
            self.version = version;
        }
        let found = match self.records.get_mut(id) {
            Some((rec, tags)) => {
                if tagged && tags.is_none() {
                    *tags = Some(tags_of(&self.conn, id)?);
                }
                (rec.clone(), tags.clone())
            }
            None => {
                let Some(rec) = get_record(&self.conn, id)? else { return Ok(None) };
                let tags = if tagged { Some(tags_of(&self.conn, id)?) } else { None };
                if self.records.len() >= CACHE_ENTRIES {
                    self.records.clear();
                }
                self.records.insert(id.to_string(), (rec.clone(), tags.clone()));
                (rec, tags)
            }
        };
        // The cache is keyed by id alone; the scope is checked as the query's WHERE would.
        Ok(Some(found).filter(|(r, _)| in_scope(r, kind, scope)))
    }
}

/// The record with this id, of any kind and scope.
pub(super) fn get_record(c: &Connection, id: &str) -> Result<Option<Record>> {
    c.prepare_cached(concat!("SELECT ", record_cols!(), " FROM resources WHERE id = ?")).and_then(|mut s| s.query_row(params![id], record).optional()).map_err(other)
}

pub(super) fn tags_of(c: &Connection, id: &str) -> Result<Vec<(String, String)>> {
    let mut s = c.prepare_cached("SELECT key, value FROM tags WHERE resource_id = ? ORDER BY key").map_err(other)?;
    let rows = s.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?))).map_err(other)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(other)
}
