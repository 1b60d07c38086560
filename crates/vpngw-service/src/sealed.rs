//! Secrets at rest, in every backend: a [`Store`] that seals secrets before they reach the one
//! it wraps and opens them when they come back.
//!
//! Sealed on the way in, opened on the way out (the service and the data plane see them in the
//! clear): pre-shared keys (a connection's, each tunnel's, an IPsec server's), customer
//! gateways' BGP AuthKeys, AccessKey secrets and ClientToken answers (which may repeat a PSK).
//! Private keys (SSL-VPN CAs, servers and clients, imported certificates) are sealed by the
//! handler that makes them and opened only where one is used; this layer leaves them as they
//! are, and [`reseal`] re-seals both kinds under a new master key.
//!
//! Each value is bound to where it belongs (`{record}/{field}`, see
//! [`crate::secrets::key_context`]): a sealed value copied elsewhere does not open. A value
//! found in the clear (written before sealing existed) reads as it is; the start-up sweep
//! ([`reseal`] with one key) seals it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use vpngw_store::{AccessKey, Account, AgentInfo, AgentRow, Durable, IdemEntry, Kind, Leadership, ListQuery, Mutation, Page, Placement, Record, Result, Scope, Store, StoreError, TagRow, Task};

use crate::secrets::{key_context, Sealer, SEALED_PREFIX};

/// Where a kind's secrets lie in its document: `(path, context field, sealed by this layer)`.
/// A path may go through the array `tunnels`, whose items are named by their `tunnel_id`.
const FIELDS: &[(Kind, &[&str], bool)] = &[
    (Kind::VpnConnection, &["ike", "psk"], true),
    (Kind::VpnConnection, &["tunnels", "*", "ike", "psk"], true),
    (Kind::IpsecServer, &["ike", "psk"], true),
    (Kind::CustomerGateway, &["auth_key"], true),
    (Kind::SslVpnServer, &["ca_key"], false),
    (Kind::SslVpnServer, &["server_key"], false),
    (Kind::SslVpnClientCert, &["key"], false),
    (Kind::Certificate, &["key_pem"], false),
];

/// The store, with secrets sealed under `sealer`.
pub struct SealedStore {
    inner: Arc<dyn Store>,
    sealer: Arc<Sealer>,
}

impl SealedStore {
    pub fn wrap(inner: Arc<dyn Store>, sealer: Arc<Sealer>) -> Arc<dyn Store> {
        Arc::new(SealedStore { inner, sealer })
    }
}

/// Calls `f(field, value)` for every non-empty secret string of `doc` at `path`. The field
/// names the value within its record: `ike.psk`, or `tun-…/ike.psk` inside the `tunnels`
/// array (an array's items are named by their `tunnel_id`, the array itself not at all).
fn visit(doc: &mut Value, path: &[&str], at: String, f: &mut dyn FnMut(&str, &mut Value)) {
    match path {
        [] => {
            if doc.as_str().is_some_and(|s| !s.is_empty()) {
                f(&at, doc);
            }
        }
        ["*", rest @ ..] => {
            for item in doc.as_array_mut().into_iter().flatten() {
                let name = item.get("tunnel_id").and_then(Value::as_str).unwrap_or("").to_string();
                visit(item, rest, format!("{at}{name}/"), f);
            }
        }
        [key, rest @ ..] => {
            let Some(v) = doc.get_mut(*key) else { return };
            let next = if rest.first() == Some(&"*") {
                at
            } else if at.is_empty() || at.ends_with('/') {
                format!("{at}{key}")
            } else {
                format!("{at}.{key}")
            };
            visit(v, rest, next, f);
        }
    }
}

/// Every secret of a record: `(context, value)` by the record's kind, either all of them or
/// only those this layer seals.
fn secrets_of(rec: &mut Record, only_ours: bool, f: &mut dyn FnMut(String, &mut Value)) {
    let id = rec.id.clone();
    for (kind, path, ours) in FIELDS {
        if *kind == rec.kind && (*ours || !only_ours) {
            visit(&mut rec.doc, path, String::new(), &mut |field, v| f(key_context(&id, field), v));
        }
    }
}

fn idem_context(e: &IdemEntry) -> String {
    format!("idem/{}/{}/{}", e.account, e.action, e.token)
}

fn key_context_of(access_key_id: &str) -> String {
    format!("access_key/{access_key_id}")
}

impl SealedStore {
    fn seal_value(&self, context: &str, v: &mut Value) {
        if let Some(s) = v.as_str().filter(|s| !s.starts_with(SEALED_PREFIX)) {
            *v = Value::String(self.sealer.seal(context, s));
        }
    }

    fn open_str(&self, context: &str, s: &str) -> Result<String> {
        if !s.starts_with(SEALED_PREFIX) {
            return Ok(s.to_string());
        }
        self.sealer.open(context, s).map_err(|e| StoreError::Other(format!("a secret ({context}) does not open: {e}")))
    }

    fn seal(&self, mut rec: Record) -> Record {
        secrets_of(&mut rec, true, &mut |ctx, v| self.seal_value(&ctx, v));
        rec
    }

    fn open(&self, mut rec: Record) -> Result<Record> {
        let mut failed = None;
        secrets_of(&mut rec, true, &mut |ctx, v| {
            if let Some(s) = v.as_str() {
                match self.open_str(&ctx, s) {
                    Ok(plain) => *v = Value::String(plain),
                    Err(e) => failed = Some(e),
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(rec),
        }
    }

    fn open_all(&self, recs: Vec<Record>) -> Result<Vec<Record>> {
        recs.into_iter().map(|r| self.open(r)).collect()
    }

    fn seal_mutation(&self, m: Mutation) -> Mutation {
        match m {
            Mutation::Put(r) => Mutation::Put(self.seal(r)),
            Mutation::PutIdem(mut e) => {
                e.response = self.sealer.seal(&idem_context(&e), &e.response);
                Mutation::PutIdem(e)
            }
            other => other,
        }
    }
}

#[async_trait]
impl Store for SealedStore {
    async fn get(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<Record>> {
        self.inner.get(kind, scope, id).await?.map(|r| self.open(r)).transpose()
    }
    async fn get_tagged(&self, kind: Kind, scope: &Scope, id: &str) -> Result<Option<(Record, Vec<(String, String)>)>> {
        self.inner.get_tagged(kind, scope, id).await?.map(|(r, t)| Ok((self.open(r)?, t))).transpose()
    }
    async fn get_any(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        self.inner.get_any(kind, id).await?.map(|r| self.open(r)).transpose()
    }
    async fn all(&self, kind: Kind) -> Result<Vec<Record>> {
        self.open_all(self.inner.all(kind).await?)
    }
    async fn family(&self, scope: &Scope, root: &str, kinds: &[Kind]) -> Result<Vec<Record>> {
        self.open_all(self.inner.family(scope, root, kinds).await?)
    }
    async fn list(&self, kind: Kind, scope: &Scope, q: &ListQuery) -> Result<Page> {
        let page = self.inner.list(kind, scope, q).await?;
        Ok(Page { items: self.open_all(page.items)?, total: page.total })
    }
    async fn count(&self, kind: Kind, scope: &Scope, parent: Option<&str>) -> Result<u64> {
        self.inner.count(kind, scope, parent).await
    }
    async fn tags(&self, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>> {
        self.inner.tags(ids).await
    }
    async fn list_tags(&self, kind: Kind, scope: &Scope, ids: &[String], having: &[(String, Option<String>)], offset: u64, limit: u64) -> Result<Vec<TagRow>> {
        self.inner.list_tags(kind, scope, ids, having, offset, limit).await
    }
    async fn idem_get(&self, account: i64, action: &str, token: &str) -> Result<Option<IdemEntry>> {
        match self.inner.idem_get(account, action, token).await? {
            Some(mut e) => {
                e.response = self.open_str(&idem_context(&e), &e.response)?;
                Ok(Some(e))
            }
            None => Ok(None),
        }
    }
    async fn due_tasks(&self, now_ms: i64) -> Result<Vec<Task>> {
        self.inner.due_tasks(now_ms).await
    }
    async fn next_due(&self) -> Result<Option<i64>> {
        self.inner.next_due().await
    }
    async fn tasks_of(&self, resource_id: &str) -> Result<Vec<Task>> {
        self.inner.tasks_of(resource_id).await
    }
    async fn claimed_addresses(&self) -> Result<Vec<String>> {
        self.inner.claimed_addresses().await
    }
    async fn commit(&self, mutations: Vec<Mutation>) -> Result<()> {
        self.inner.commit(mutations.into_iter().map(|m| self.seal_mutation(m)).collect()).await
    }
    async fn stage(&self, mutations: Vec<Mutation>) -> Result<Durable> {
        self.inner.stage(mutations.into_iter().map(|m| self.seal_mutation(m)).collect()).await
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    async fn staged(&self) -> Result<Durable> {
        self.inner.staged().await
    }
    async fn durable(&self, d: Durable) -> Result<()> {
        self.inner.durable(d).await
    }
    async fn end_scope(&self) {
        self.inner.end_scope().await
    }
    async fn fresh_nonce(&self, key: &str, now_s: i64, horizon_s: i64) -> Result<bool> {
        self.inner.fresh_nonce(key, now_s, horizon_s).await
    }
    async fn set_converged(&self, id: &str, digest: &str) -> Result<()> {
        self.inner.set_converged(id, digest).await
    }
    async fn converged(&self, id: &str) -> Result<Option<String>> {
        self.inner.converged(id).await
    }
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.changes()
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    async fn lead(&self) -> Result<Leadership> {
        self.inner.lead().await
    }
    async fn create_account(&self, name: &str) -> Result<Account> {
        self.inner.create_account(name).await
    }
    async fn account_by_name(&self, name: &str) -> Result<Option<Account>> {
        self.inner.account_by_name(name).await
    }
    async fn accounts(&self) -> Result<Vec<Account>> {
        self.inner.accounts().await
    }
    async fn revoke_key(&self, access_key_id: &str, now_ms: i64) -> Result<bool> {
        self.inner.revoke_key(access_key_id, now_ms).await
    }

    async fn put_key(&self, key: &AccessKey) -> Result<()> {
        let mut sealed = key.clone();
        if !sealed.secret.starts_with(SEALED_PREFIX) {
            sealed.secret = self.sealer.seal(&key_context_of(&key.access_key_id), &key.secret);
        }
        self.inner.put_key(&sealed).await
    }
    async fn key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        match self.inner.key(access_key_id).await? {
            Some(mut k) => {
                k.secret = self.open_str(&key_context_of(&k.access_key_id), &k.secret)?;
                Ok(Some(k))
            }
            None => Ok(None),
        }
    }
    async fn key_and_nonce(&self, access_key_id: &str, nonce_key: &str, now_s: i64, horizon_s: i64) -> Result<Option<(AccessKey, bool)>> {
        match self.inner.key_and_nonce(access_key_id, nonce_key, now_s, horizon_s).await? {
            Some((mut k, fresh)) => {
                k.secret = self.open_str(&key_context_of(&k.access_key_id), &k.secret)?;
                Ok(Some((k, fresh)))
            }
            None => Ok(None),
        }
    }
    async fn all_keys(&self) -> Result<Vec<AccessKey>> {
        self.inner
            .all_keys()
            .await?
            .into_iter()
            .map(|mut k| {
                k.secret = self.open_str(&key_context_of(&k.access_key_id), &k.secret)?;
                Ok(k)
            })
            .collect()
    }
    async fn all_idem(&self) -> Result<Vec<IdemEntry>> {
        self.inner
            .all_idem()
            .await?
            .into_iter()
            .map(|mut e| {
                e.response = self.open_str(&idem_context(&e), &e.response)?;
                Ok(e)
            })
            .collect()
    }

    async fn register_agent(&self, info: &AgentInfo, lease_ms: i64) -> Result<i64> {
        self.inner.register_agent(info, lease_ms).await
    }
    async fn renew_agent(&self, name: &str, epoch: i64, lease_ms: i64) -> Result<bool> {
        self.inner.renew_agent(name, epoch, lease_ms).await
    }
    async fn release_agent(&self, name: &str, epoch: i64) -> Result<()> {
        self.inner.release_agent(name, epoch).await
    }
    async fn agents(&self) -> Result<Vec<AgentRow>> {
        self.inner.agents().await
    }
    async fn placements(&self) -> Result<Vec<Placement>> {
        self.inner.placements().await
    }
}

/// Whether `sealer` opens what the store holds sealed: the first sealed AccessKey secret must
/// open (a server started with another cluster's key, or an old one, stops here instead of
/// failing every request that needs a secret).
pub async fn check_key(raw: &dyn Store, sealer: &Sealer) -> Result<()> {
    for k in raw.all_keys().await? {
        if k.secret.starts_with(SEALED_PREFIX) {
            return sealer
                .open(&key_context_of(&k.access_key_id), &k.secret)
                .map(drop)
                .map_err(|e| StoreError::Other(format!("the master key does not open the secrets this store holds (another cluster's key, or one rotated away?): {e}")));
        }
    }
    Ok(())
}

/// What [`reseal`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    pub secrets: usize,
    pub keys: usize,
    pub answers: usize,
}

/// Re-seals every secret of the unwrapped store `raw` from key `from` to key `to`: values in
/// the clear are sealed; sealed ones are opened with `from` and sealed with `to` (those that
/// open with `to` already are left, so a rotation that stopped half-way can be run again).
/// With `only_clear`, sealed values are left alone (the start-up sweep, `from` = `to`).
/// Resources and ClientToken answers change in one commit, AccessKeys after it.
pub async fn reseal(raw: &dyn Store, from: &Sealer, to: &Sealer, only_clear: bool) -> Result<Resealed> {
    let mut done = Resealed::default();
    let mut muts = Vec::new();
    let mut kinds: Vec<Kind> = FIELDS.iter().map(|(k, _, _)| *k).collect();
    kinds.dedup();
    for kind in kinds {
        for mut rec in raw.all(kind).await? {
            let mut changed = 0;
            let mut failed = None;
            secrets_of(&mut rec, false, &mut |ctx, v| {
                let Some(s) = v.as_str() else { return };
                let plain = if let Some(_sealed) = s.strip_prefix(SEALED_PREFIX) {
                    if only_clear {
                        return;
                    }
                    match from.open(&ctx, s) {
                        Ok(p) => p,
                        // Sealed under `to` already (a rotation that stopped half-way, resumed).
                        Err(_) if to.open(&ctx, s).is_ok() => return,
                        Err(e) => {
                            failed = Some(StoreError::Other(format!("{ctx} does not open: {e}")));
                            return;
                        }
                    }
                } else {
                    s.to_string()
                };
                *v = Value::String(to.seal(&ctx, &plain));
                changed += 1;
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if changed > 0 {
                done.secrets += changed;
                muts.push(Mutation::Put(rec));
            }
        }
    }
    let reseal_str = |ctx: &str, s: &str| -> Result<Option<String>> {
        match s.starts_with(SEALED_PREFIX) {
            true if only_clear => Ok(None),
            true => match from.open(ctx, s) {
                Ok(plain) => Ok(Some(to.seal(ctx, &plain))),
                Err(_) if to.open(ctx, s).is_ok() => Ok(None),
                Err(e) => Err(StoreError::Other(format!("{ctx} does not open: {e}"))),
            },
            false => Ok(Some(to.seal(ctx, s))),
        }
    };
    let mut keys = Vec::new();
    for mut k in raw.all_keys().await? {
        if let Some(s) = reseal_str(&key_context_of(&k.access_key_id), &k.secret)? {
            k.secret = s;
            keys.push(k);
        }
    }
    for mut e in raw.all_idem().await? {
        if let Some(s) = reseal_str(&idem_context(&e), &e.response)? {
            e.response = s;
            muts.push(Mutation::ReplaceIdem(e));
            done.answers += 1;
        }
    }
    if !muts.is_empty() {
        raw.commit(muts).await?;
    }
    for k in &keys {
        raw.put_key(k).await?;
    }
    done.keys = keys.len();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vpngw_store::sqlite::SqliteStore;

    fn conn(id: &str, psk: &str) -> Record {
        Record {
            kind: Kind::VpnConnection,
            id: id.into(),
            account: 1,
            region: "r".into(),
            parent: None,
            status: "active".into(),
            created_ms: 0,
            doc: json!({"ike": {"psk": psk}, "tunnels": [{"tunnel_id": "tun-1", "ike": {"psk": "tunnel-psk"}}]}),
        }
    }

    #[tokio::test]
    async fn secrets_reach_the_backend_sealed_and_come_back_open() {
        let raw: Arc<dyn Store> = Arc::new(SqliteStore::memory().unwrap());
        let sealer = Arc::new(Sealer::ephemeral());
        let s = SealedStore::wrap(raw.clone(), sealer.clone());
        s.commit(vec![Mutation::Put(conn("vco-1", "KnownPsk"))]).await.unwrap();
        let stored = raw.get_any(Kind::VpnConnection, "vco-1").await.unwrap().unwrap();
        let text = stored.doc.to_string();
        assert!(!text.contains("KnownPsk") && !text.contains("tunnel-psk"), "{text}");
        assert_eq!(sealer.open("vco-1/tun-1/ike.psk", stored.doc["tunnels"][0]["ike"]["psk"].as_str().unwrap()).unwrap(), "tunnel-psk");
        let back = s.get_any(Kind::VpnConnection, "vco-1").await.unwrap().unwrap();
        assert_eq!(back.doc, conn("vco-1", "KnownPsk").doc);

        let acc = s.create_account("a").await.unwrap();
        s.put_key(&AccessKey { access_key_id: "AK".into(), secret: "KnownSecret".into(), account_id: acc.id, readonly: false, revoked_ms: None }).await.unwrap();
        assert!(!raw.key("AK").await.unwrap().unwrap().secret.contains("KnownSecret"));
        assert_eq!(s.key("AK").await.unwrap().unwrap().secret, "KnownSecret");
    }

    #[tokio::test]
    async fn reseal_moves_every_secret_to_the_new_key_and_seals_the_clear_ones() {
        let raw: Arc<dyn Store> = Arc::new(SqliteStore::memory().unwrap());
        let old = Arc::new(Sealer::ephemeral());
        // One written before sealing existed, one sealed under the old key, a private key.
        raw.commit(vec![Mutation::Put(conn("vco-clear", "ClearPsk"))]).await.unwrap();
        SealedStore::wrap(raw.clone(), old.clone()).commit(vec![Mutation::Put(conn("vco-old", "OldPsk"))]).await.unwrap();
        let mut cert = conn("vsc-1", "");
        cert.kind = Kind::SslVpnClientCert;
        cert.doc = json!({"key": old.seal("vsc-1/key", "PRIVATE")});
        raw.commit(vec![Mutation::Put(cert)]).await.unwrap();

        let sweep = reseal(raw.as_ref(), &old, &old, true).await.unwrap();
        assert_eq!(sweep.secrets, 2, "the start-up sweep seals the clear PSKs only");
        let new = Sealer::ephemeral();
        let moved = reseal(raw.as_ref(), &old, &new, false).await.unwrap();
        assert_eq!(moved.secrets, 5);
        let s = SealedStore::wrap(raw.clone(), Arc::new(new));
        assert_eq!(s.get_any(Kind::VpnConnection, "vco-clear").await.unwrap().unwrap().doc["ike"]["psk"], "ClearPsk");
        assert_eq!(s.get_any(Kind::VpnConnection, "vco-old").await.unwrap().unwrap().doc["ike"]["psk"], "OldPsk");
        assert!(SealedStore::wrap(raw.clone(), old).get_any(Kind::VpnConnection, "vco-old").await.is_err(), "the old key no longer opens it");
    }
}
