//! The suite every [`Store`] backend must pass. SQLite runs it in this crate's tests; a new
//! backend calls [`run`] from its own.

use serde_json::json;

use crate::*;

fn rec(kind: Kind, id: &str, scope: &Scope, parent: Option<&str>, status: &str, doc: serde_json::Value) -> Record {
    Record { kind, id: id.into(), account: scope.account, region: scope.region.clone(), parent: parent.map(Into::into), status: status.into(), created_ms: 1, doc }
}

/// Runs every check against a fresh, empty store. Panics on the first failure.
pub async fn run(store: impl Store) {
    let alice = store.create_account("alice").await.expect("create alice");
    let bob = store.create_account("bob").await.expect("create bob");
    assert!(matches!(store.create_account("alice").await, Err(StoreError::Conflict(_))));
    assert_eq!(store.account_by_name("bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(store.accounts().await.unwrap().len(), 2);

    let key = AccessKey { access_key_id: "AK1".into(), secret: "s1".into(), account_id: alice.id, readonly: false, revoked_ms: None };
    store.put_key(&key).await.unwrap();
    assert_eq!(store.key("AK1").await.unwrap(), Some(key.clone()));
    store.put_key(&AccessKey { readonly: true, ..key.clone() }).await.unwrap();
    assert!(store.key("AK1").await.unwrap().unwrap().readonly);
    assert_eq!(store.key("nope").await.unwrap(), None);
    // Revocation holds: a later put (a configuration that still names the key) keeps it.
    assert!(store.revoke_key("AK1", 1_000).await.unwrap());
    assert!(!store.revoke_key("nope", 1_000).await.unwrap());
    assert_eq!(store.key("AK1").await.unwrap().unwrap().revoked_ms, Some(1_000));
    store.put_key(&AccessKey { readonly: false, ..key.clone() }).await.unwrap();
    assert_eq!(store.key("AK1").await.unwrap().unwrap().revoked_ms, Some(1_000));
    assert!(store.revoke_key("AK1", 2_000).await.unwrap());
    assert_eq!(store.key("AK1").await.unwrap().unwrap().revoked_ms, Some(1_000), "the first revocation's time stays");
    assert_eq!(store.all_keys().await.unwrap().iter().filter(|k| k.revoked_ms.is_some()).count(), 1);

    let a = Scope { account: alice.id, region: "r1".into() };
    let b = Scope { account: bob.id, region: "r1".into() };
    let a2 = Scope { account: alice.id, region: "r2".into() };

    // Isolation: another account or region never sees a resource.
    store.commit(vec![Mutation::Put(rec(Kind::Vpc, "vpc-1", &a, None, "Available", json!({"name": "one"})))]).await.unwrap();
    assert!(store.get(Kind::Vpc, &a, "vpc-1").await.unwrap().is_some());
    assert!(store.get(Kind::Vpc, &b, "vpc-1").await.unwrap().is_none());
    assert!(store.get(Kind::Vpc, &a2, "vpc-1").await.unwrap().is_none());
    assert!(store.get(Kind::VSwitch, &a, "vpc-1").await.unwrap().is_none());
    assert!(store.get_any(Kind::Vpc, "vpc-1").await.unwrap().is_some());

    // Listing: newest first, filters, paging, totals.
    for i in 0..5 {
        let status = if i % 2 == 0 { "active" } else { "init" };
        let r = rec(Kind::VpnGateway, &format!("vpn-{i}"), &a, Some("vpc-1"), status, json!({"business_status": if i == 4 { "FinancialLocked" } else { "Normal" }}));
        store.commit(vec![Mutation::Put(r)]).await.unwrap();
    }
    store.commit(vec![Mutation::Put(rec(Kind::VpnGateway, "vpn-b", &b, Some("vpc-b"), "active", json!({})))]).await.unwrap();
    // Reconcilers read every account's and region's records, oldest first.
    let every: Vec<String> = store.all(Kind::VpnGateway).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(every, ["vpn-0", "vpn-1", "vpn-2", "vpn-3", "vpn-4", "vpn-b"]);
    let all = store.list(Kind::VpnGateway, &a, &ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(all.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["vpn-4", "vpn-3", "vpn-2", "vpn-1", "vpn-0"]);
    let page = store.list(Kind::VpnGateway, &a, &ListQuery { limit: 2, offset: 2, ..Default::default() }).await.unwrap();
    assert_eq!((page.total, page.items.len(), page.items[0].id.as_str()), (5, 2, "vpn-2"));
    let active = store.list(Kind::VpnGateway, &a, &ListQuery { status: Some("active".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(active.total, 3);
    let locked = store.list(Kind::VpnGateway, &a, &ListQuery { fields: vec![("business_status".into(), "FinancialLocked".into())], limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(locked.items.len(), 1);
    store.commit(vec![Mutation::Put(rec(Kind::VpnConnection, "vco-1", &a, Some("vpn-0"), "active", json!({"cgw_ids": ["cgw-1", "cgw-2"]})))]).await.unwrap();
    for (cgw, n) in [("cgw-2", 1), ("cgw-3", 0)] {
        let q = ListQuery { fields: vec![("cgw_ids[]".into(), cgw.into())], limit: 10, ..Default::default() };
        assert_eq!(store.list(Kind::VpnConnection, &a, &q).await.unwrap().total, n, "array membership filter");
    }
    // A family: the root, then its descendants of the kinds asked for, oldest first.
    store.commit(vec![Mutation::Put(rec(Kind::VpnRoute, "vrt-1", &a, Some("vpn-0"), "normal", json!({})))]).await.unwrap();
    store.commit(vec![Mutation::Put(rec(Kind::VpnRoute, "vrt-b", &b, Some("vpn-0"), "normal", json!({})))]).await.unwrap();
    let family = |kinds: &'static [Kind]| {
        let (store, a) = (&store, &a);
        async move { store.family(a, "vpc-1", kinds).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(family(&[Kind::VpnGateway, Kind::VpnRoute]).await, ["vpc-1", "vpn-0", "vpn-1", "vpn-2", "vpn-3", "vpn-4", "vrt-1"], "another account's child is not family");
    assert_eq!(family(&[Kind::VpnGateway, Kind::VpnConnection]).await, ["vpc-1", "vpn-0", "vpn-1", "vpn-2", "vpn-3", "vpn-4", "vco-1"]);
    assert_eq!(family(&[Kind::VpnRoute]).await, ["vpc-1"], "only through the kinds asked for");
    assert!(store.family(&b, "vpc-1", &[Kind::VpnGateway]).await.unwrap().is_empty(), "another account's root");
    store.commit(vec![Mutation::Delete { kind: Kind::VpnRoute, id: "vrt-1".into() }, Mutation::Delete { kind: Kind::VpnRoute, id: "vrt-b".into() }]).await.unwrap();
    let by_id = store.list(Kind::VpnGateway, &a, &ListQuery { ids: vec!["vpn-1".into(), "vpn-b".into()], limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(by_id.total, 1, "another account's id is never listed");
    assert_eq!(store.count(Kind::VpnGateway, &a, Some("vpc-1")).await.unwrap(), 5);
    assert_eq!(store.count(Kind::VpnGateway, &a, Some("vpc-x")).await.unwrap(), 0);
    assert_eq!(store.count(Kind::VpnGateway, &b, Some("vpc-1")).await.unwrap(), 0, "another account's parent has no children for us");
    // Moving a record to another parent moves its count.
    store.commit(vec![Mutation::Put(rec(Kind::VpnGateway, "vpn-3", &a, Some("vpc-9"), "active", json!({})))]).await.unwrap();
    store.commit(vec![Mutation::Put(rec(Kind::Vpc, "vpc-9", &a, None, "Available", json!({})))]).await.unwrap();
    assert_eq!((store.count(Kind::VpnGateway, &a, Some("vpc-1")).await.unwrap(), store.count(Kind::VpnGateway, &a, Some("vpc-9")).await.unwrap()), (4, 1));
    let by_parent = store.list(Kind::VpnGateway, &a, &ListQuery { parent: Some("vpc-9".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!((by_parent.total, by_parent.items.len()), (1, 1));
    store.commit(vec![Mutation::Put(rec(Kind::VpnGateway, "vpn-3", &a, Some("vpc-1"), "active", json!({"business_status": "Normal"})))]).await.unwrap();
    assert_eq!(store.count(Kind::VpnGateway, &a, Some("vpc-1")).await.unwrap(), 5);

    // Replacing a record keeps its place in the creation order.
    store.commit(vec![Mutation::Put(rec(Kind::VpnGateway, "vpn-0", &a, Some("vpc-1"), "updating", json!({"v": 2})))]).await.unwrap();
    // Reconcilers read every account's and region's records, oldest first.
    let every: Vec<String> = store.all(Kind::VpnGateway).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(every, ["vpn-0", "vpn-1", "vpn-2", "vpn-3", "vpn-4", "vpn-b"]);
    let all = store.list(Kind::VpnGateway, &a, &ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.items.last().unwrap().id, "vpn-0");
    assert_eq!(all.items.last().unwrap().doc, json!({"v": 2}));
    assert_eq!(store.count(Kind::VpnGateway, &a, None).await.unwrap(), 5, "a replacement is not counted twice");
    assert_eq!(store.count(Kind::VpnGateway, &b, None).await.unwrap(), 1);
    assert_eq!(store.count(Kind::VpnGateway, &a2, None).await.unwrap(), 0);

    // Tags: set, overwrite, filter (AND), remove.
    store
        .commit(vec![
            Mutation::SetTags { kind: Kind::VpnGateway, id: "vpn-1".into(), scope: a.clone(), tags: vec![("env".into(), "prod".into()), ("team".into(), "net".into())] },
            Mutation::SetTags { kind: Kind::VpnGateway, id: "vpn-2".into(), scope: a.clone(), tags: vec![("env".into(), "dev".into())] },
        ])
        .await
        .unwrap();
    store.commit(vec![Mutation::SetTags { kind: Kind::VpnGateway, id: "vpn-2".into(), scope: a.clone(), tags: vec![("env".into(), "prod".into())] }]).await.unwrap();
    let tags = store.tags(&["vpn-1".into(), "vpn-2".into(), "vpn-3".into()]).await.unwrap();
    assert_eq!(tags["vpn-1"], vec![("env".to_string(), "prod".to_string()), ("team".to_string(), "net".to_string())]);
    assert_eq!(tags["vpn-2"], vec![("env".to_string(), "prod".to_string())]);
    let (r, t) = store.get_tagged(Kind::VpnGateway, &a, "vpn-1").await.unwrap().unwrap();
    assert_eq!((r.id.as_str(), t), ("vpn-1", tags["vpn-1"].clone()));
    assert_eq!(store.get_tagged(Kind::VpnGateway, &a, "vpn-3").await.unwrap().unwrap().1, vec![]);
    assert!(store.get_tagged(Kind::VpnGateway, &b, "vpn-1").await.unwrap().is_none());
    assert!(!tags.contains_key("vpn-3"));
    let q = ListQuery { tags: vec![("env".into(), Some("prod".into())), ("team".into(), None)], limit: 10, ..Default::default() };
    assert_eq!(store.list(Kind::VpnGateway, &a, &q).await.unwrap().items.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), ["vpn-1"]);
    let rows = store.list_tags(Kind::VpnGateway, &a, &[], &[("env".into(), Some("prod".into()))], 0, 10).await.unwrap();
    assert_eq!(rows.len(), 3, "every tag of the matching resources");
    assert_eq!(store.list_tags(Kind::VpnGateway, &a, &[], &[], 1, 1).await.unwrap().len(), 1);
    assert!(store.list_tags(Kind::VpnGateway, &b, &["vpn-1".into()], &[], 0, 10).await.unwrap().is_empty());
    store.commit(vec![Mutation::RemoveTags { id: "vpn-1".into(), keys: Some(vec!["team".into()]) }]).await.unwrap();
    assert_eq!(store.tags(&["vpn-1".into()]).await.unwrap()["vpn-1"].len(), 1);

    // Atomicity: a commit that fails half-way leaves nothing behind.
    let taken = Mutation::ClaimAddress { ip: "198.51.100.1".into(), owner: "vpn-1".into() };
    store.commit(vec![taken.clone()]).await.unwrap();
    let r = store.commit(vec![Mutation::Put(rec(Kind::Vpc, "vpc-half", &a, None, "Available", json!({}))), taken]).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    assert!(store.get(Kind::Vpc, &a, "vpc-half").await.unwrap().is_none());
    assert_eq!(store.claimed_addresses().await.unwrap(), vec!["198.51.100.1".to_string()]);

    // Delete takes tags and addresses with it.
    store.commit(vec![Mutation::Delete { kind: Kind::VpnGateway, id: "vpn-1".into() }]).await.unwrap();
    assert!(store.get(Kind::VpnGateway, &a, "vpn-1").await.unwrap().is_none());
    assert!(store.tags(&["vpn-1".into()]).await.unwrap().is_empty());
    assert!(store.claimed_addresses().await.unwrap().is_empty());
    assert_eq!(store.count(Kind::VpnGateway, &a, None).await.unwrap(), 4);
    store.commit(vec![Mutation::Delete { kind: Kind::VpnGateway, id: "vpn-1".into() }]).await.unwrap();
    assert_eq!(store.count(Kind::VpnGateway, &a, None).await.unwrap(), 4, "deleting what is gone counts nothing");

    // ClientTokens: first write wins, a second insert conflicts.
    let e = IdemEntry { account: alice.id, action: "CreateVpc".into(), token: "t".into(), digest: "d".into(), response: "{}".into(), created_ms: 5 };
    store.commit(vec![Mutation::PutIdem(e.clone())]).await.unwrap();
    assert_eq!(store.idem_get(alice.id, "CreateVpc", "t").await.unwrap(), Some(e.clone()));
    assert_eq!(store.idem_get(bob.id, "CreateVpc", "t").await.unwrap(), None);
    assert!(matches!(store.commit(vec![Mutation::PutIdem(e)]).await, Err(StoreError::Conflict(_))));

    // Tasks: due order, replacement, removal.
    let t = |id: &str, due| Task { id: id.into(), kind: Kind::VpnGateway, resource_id: "vpn-2".into(), op: "status:active".into(), due_ms: due };
    store.commit(vec![Mutation::PutTask(t("t2", 20)), Mutation::PutTask(t("t1", 10))]).await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(10));
    assert_eq!(store.due_tasks(15).await.unwrap().iter().map(|t| t.id.clone()).collect::<Vec<_>>(), ["t1"]);
    store.commit(vec![Mutation::PutTask(t("t1", 30))]).await.unwrap();
    assert_eq!(store.due_tasks(25).await.unwrap().iter().map(|t| t.id.clone()).collect::<Vec<_>>(), ["t2"]);
    assert_eq!(store.tasks_of("vpn-2").await.unwrap().len(), 2);
    store.commit(vec![Mutation::DeleteTask { id: "t1".into() }, Mutation::DeleteTask { id: "t2".into() }]).await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), None);

    // A record's id is its own: a record of another kind cannot take it.
    assert!(matches!(store.commit(vec![Mutation::Put(rec(Kind::VSwitch, "vpc-1", &a, None, "Available", json!({})))]).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get(Kind::Vpc, &a, "vpc-1").await.unwrap().unwrap().doc, json!({"name": "one"}));

    // The nonce window: a key is fresh once until it falls out of the window.
    assert!(store.fresh_nonce("AK1\nn1", 100, 70).await.unwrap());
    assert!(!store.fresh_nonce("AK1\nn1", 101, 71).await.unwrap(), "a replay");
    assert!(store.fresh_nonce("AK2\nn1", 101, 71).await.unwrap(), "another key's nonce");
    assert!(store.fresh_nonce("AK1\nn1", 200, 170).await.unwrap(), "outside the window");

    // The key and its nonce in one step: an unknown key spends nothing.
    assert_eq!(store.key_and_nonce("nope", "nope\nz", 100, 70).await.unwrap(), None);
    assert!(store.fresh_nonce("nope\nz", 100, 70).await.unwrap(), "an unknown key's nonce stays unspent");
    let (k, fresh) = store.key_and_nonce("AK1", "AK1\nz", 100, 70).await.unwrap().unwrap();
    assert_eq!((k.access_key_id.as_str(), fresh), ("AK1", true));
    assert!(!store.key_and_nonce("AK1", "AK1\nz", 101, 71).await.unwrap().unwrap().1, "a replay");

    // What the data plane runs.
    assert_eq!(store.converged("vco-1").await.unwrap(), None);
    store.set_converged("vco-1", "d1").await.unwrap();
    store.set_converged("vco-1", "d2").await.unwrap();
    assert_eq!(store.converged("vco-1").await.unwrap(), Some("d2".into()));

    // A write scope reads what it and earlier writers staged before it is durable.
    crate::write_scope(async {
        store.stage(vec![Mutation::Put(rec(Kind::Vpc, "vpc-staged", &a, None, "Available", json!({})))]).await.unwrap();
        assert!(store.get(Kind::Vpc, &a, "vpc-staged").await.unwrap().is_some(), "a scope sees what is staged");
        let d = store.staged().await.unwrap();
        store.end_scope().await;
        store.durable(d).await.unwrap();
    })
    .await;
    assert!(store.get(Kind::Vpc, &a, "vpc-staged").await.unwrap().is_some(), "durable, then seen by every reader");
}

/// The PostgreSQL the tests use (`VPNGW_TEST_PG`, a URL; `scripts/test` starts a throwaway
/// cluster and sets it). Without one the PostgreSQL tests are skipped, unless
/// `VPNGW_REQUIRE_PG` is set (CI), where they fail.
pub(crate) fn test_pg_url() -> Option<String> {
    match std::env::var("VPNGW_TEST_PG") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("VPNGW_REQUIRE_PG").is_some() => panic!("VPNGW_REQUIRE_PG is set but VPNGW_TEST_PG names no PostgreSQL"),
        _ => {
            eprintln!("VPNGW_TEST_PG is not set: skipping a PostgreSQL test");
            None
        }
    }
}

/// A fresh, empty database named `name` on the test cluster, as a URL.
pub(crate) async fn fresh_pg_database(url: &str, name: &str) -> String {
    crate::postgres::fresh_database(url, &format!("vpngw_test_{name}_{}", std::process::id())).await.unwrap()
}

#[cfg(test)]
mod tests {
    use crate::sqlite::SqliteStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_conforms() {
        let Some(url) = super::test_pg_url() else { return };
        let url = super::fresh_pg_database(&url, "conformance").await;
        super::run(crate::postgres::PgStore::connect(&url).await.unwrap()).await;
        // Connecting again migrates nothing twice and sees every committed write.
        let again = crate::postgres::PgStore::connect(&url).await.unwrap();
        use crate::Store;
        assert_eq!(again.accounts().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn sqlite_memory_conforms() {
        super::run(SqliteStore::memory().unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_file_conforms_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("vpngw-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vpngw.db");
        super::run(SqliteStore::open(&path).unwrap()).await;
        // Reopening runs no migration twice and sees every committed write.
        let again = SqliteStore::open(&path).unwrap();
        use crate::Store;
        assert_eq!(again.accounts().await.unwrap().len(), 2);
        assert!(again.key("AK1").await.unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
