//! All Rust integration tests of the binary crate, in one test binary: a real server on an
//! ephemeral port over a temporary data directory, driven with hand-built requests, including
//! the ones the SDKs never send (stale timestamps, reused nonces, chunked bodies).

use std::sync::Arc;

use vpngw_server::client::{Client, Scheme, Tweak};
use vpngw_server::config::{AccountConfig, Config};
use vpngw_server::server;

mod wire;

struct Harness {
    running: server::Running,
    dir: std::path::PathBuf,
}

impl Harness {
    async fn start(name: &str) -> Harness {
        let dir = std::env::temp_dir().join(format!("vpngw-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            transition_ms: 50,
            accounts: vec![
                AccountConfig { name: "alice".into(), access_key_id: "AKA".into(), access_key_secret: "sa".into(), readonly: false },
                AccountConfig { name: "alice".into(), access_key_id: "AKRO".into(), access_key_secret: "sro".into(), readonly: true },
            ],
            ..Config::default()
        };
        let store: Arc<dyn vpngw_store::Store> = server::open_store(&cfg).await.unwrap();
        let running = server::start(&cfg, store).await.unwrap();
        Harness { running, dir }
    }

    fn client(&self, scheme: Scheme) -> Client {
        Client::new(self.running.addr.to_string(), "AKA", "sa", scheme)
    }

    async fn stop(self) {
        let _ = self.running.shutdown.send(true);
        let _ = self.running.done.await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn generated_docs_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (file, text) in [("docs/error-codes.md", vpngw_api::error::error_table_markdown()), ("docs/actions.md", vpngw_api::actions::actions_markdown())] {
        let committed = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert_eq!(committed, text, "{file} is stale: run `cargo run -p vpngw -- docs {}` > {file}", if file.contains("error") { "error-codes" } else { "actions" });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_schemes_answer_json_and_xml() {
    let h = Harness::start("schemes").await;
    for scheme in [Scheme::RpcV1, Scheme::Acs3] {
        let c = h.client(scheme);
        let a = c.call("DescribeRegions", &[]).await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["Regions"]["Region"][0]["RegionId"], "cn-hangzhou");
        let x = c.call_with("DescribeRegions", &[], &Tweak { format_xml: true, ..Default::default() }).await.unwrap();
        assert!(x.body.contains("<DescribeRegionsResponse><RequestId>"), "{}", x.body);
        assert!(x.body.contains("<Regions><Region><RegionId>cn-hangzhou</RegionId>"), "{}", x.body);
        let e = c.call_with("DescribeVpnGateway", &[("RegionId", "cn-hangzhou"), ("VpnGatewayId", "vpn-x")], &Tweak { format_xml: true, ..Default::default() }).await.unwrap();
        assert_eq!(e.status, 404);
        assert!(e.body.contains("<Error><RequestId>") && e.body.contains("<Code>InvalidVpnGatewayInstanceId.NotFound</Code>"), "{}", e.body);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_have_their_codes() {
    let h = Harness::start("auth").await;
    for scheme in [Scheme::RpcV1, Scheme::Acs3] {
        let c = h.client(scheme);
        let stale = Tweak { timestamp: Some("2020-01-01T00:00:00Z".into()), ..Default::default() };
        let a = c.call_with("DescribeRegions", &[], &stale).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (400, "InvalidTimeStamp.Expired"));
        let future = (chrono::Utc::now() + chrono::Duration::minutes(20)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let a = c.call_with("DescribeRegions", &[], &Tweak { timestamp: Some(future), ..Default::default() }).await.unwrap();
        assert_eq!(a.code(), "InvalidTimeStamp.Expired");
        let a = c.call_with("DescribeRegions", &[], &Tweak { timestamp: Some("yesterday".into()), ..Default::default() }).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (400, "InvalidTimeStamp.Format"));
        let once = Tweak { nonce: Some(format!("nonce-{scheme:?}")), ..Default::default() };
        assert_eq!(c.call_with("DescribeRegions", &[], &once).await.unwrap().status, 200);
        let a = c.call_with("DescribeRegions", &[], &once).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (400, "SignatureNonceUsed"));
        let a = c.call_with("DescribeRegions", &[], &Tweak { secret: Some("wrong".into()), ..Default::default() }).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (400, "SignatureDoesNotMatch"));
        assert!(a.json()["Message"].as_str().unwrap().contains(":"));
        let nobody = Client::new(h.running.addr.to_string(), "AKNOBODY", "x", scheme);
        let a = nobody.call("DescribeRegions", &[]).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (404, "InvalidAccessKeyId.NotFound"));
        let a = c.call("FlyToTheMoon", &[]).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (404, "InvalidAction.NotFound"));
        let ro = Client::new(h.running.addr.to_string(), "AKRO", "sro", scheme);
        assert_eq!(ro.call("DescribeVpcs", &[("RegionId", "cn-hangzhou")]).await.unwrap().status, 200);
        let a = ro.call("CreateVpc", &[("RegionId", "cn-hangzhou")]).await.unwrap();
        assert_eq!((a.status, a.code().as_str()), (403, "Forbidden"));
    }
    // No signature at all, and a wrong version.
    let plain = h.client(Scheme::RpcV1);
    let a = plain.get("/?Action=DescribeRegions&Version=2016-04-28").await.unwrap();
    assert_eq!((a.status, a.code().as_str()), (400, "IncompleteSignature"));
    let a = plain.get("/?Action=DescribeRegions&Version=2014-05-26").await.unwrap();
    assert_eq!((a.status, a.code().as_str()), (400, "InvalidVersion"));
    let a = plain.get("/?Version=2016-04-28").await.unwrap();
    assert_eq!((a.status, a.code().as_str()), (400, "MissingParameter"));
    assert_eq!(plain.get("/healthz").await.unwrap().status, 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_everything() {
    let h = Harness::start("restart").await;
    let c = h.client(Scheme::Acs3);
    let vpc = c.call("CreateVpc", &[("RegionId", "cn-hangzhou"), ("ClientToken", "t1")]).await.unwrap().json()["VpcId"].as_str().unwrap().to_string();
    let dir = h.dir.clone();
    let _ = h.running.shutdown.send(true);
    let _ = h.running.done.await;
    let cfg = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        accounts: vec![AccountConfig { name: "alice".into(), access_key_id: "AKA".into(), access_key_secret: "sa".into(), readonly: false }],
        ..Config::default()
    };
    let running = server::start(&cfg, server::open_store(&cfg).await.unwrap()).await.unwrap();
    let c = Client::new(running.addr.to_string(), "AKA", "sa", Scheme::RpcV1);
    let list = c.call("DescribeVpcs", &[("RegionId", "cn-hangzhou")]).await.unwrap().json();
    assert_eq!(list["Vpcs"]["Vpc"][0]["VpcId"], vpc.as_str());
    let again = c.call("CreateVpc", &[("RegionId", "cn-hangzhou"), ("ClientToken", "t1")]).await.unwrap().json();
    assert_eq!(again["VpcId"], vpc.as_str(), "the ClientToken's result survives a restart");
    let _ = running.shutdown.send(true);
    let _ = running.done.await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Group commit: concurrent writers share fsyncs, yet each one's checks see the writes staged
/// before it, and each answer comes only once its write is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_see_each_other_and_answer_only_when_durable() {
    let h = Harness::start("group").await;
    let call = |ip: String, token: Option<String>| {
        let c = h.client(Scheme::Acs3);
        async move {
            let mut p = vec![("RegionId", "cn-hangzhou".to_string()), ("IpAddress", ip)];
            if let Some(t) = token {
                p.push(("ClientToken", t));
            }
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.call("CreateCustomerGateway", &p).await.unwrap()
        }
    };
    // Sixteen at once for one address: exactly one wins, the others see its staged row.
    let same: Vec<_> = (0..16).map(|_| tokio::spawn(call("203.0.113.7".into(), None))).collect();
    let mut codes = Vec::new();
    for t in same {
        let a = t.await.unwrap();
        codes.push(if a.status == 200 { "ok".to_string() } else { a.json()["Code"].as_str().unwrap_or_default().to_string() });
    }
    assert_eq!(codes.iter().filter(|c| *c == "ok").count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| c == "ok" || c == "InvalidIpAddress.AlreadyExist"), "{codes:?}");
    // Sixteen different ones, and the same ClientToken sent twice at once: every answer is
    // readable as soon as it arrives (durable, not merely staged), and the token gives one id.
    let reader = h.client(Scheme::Acs3);
    let many: Vec<_> = (0..16).map(|i| tokio::spawn(call(format!("203.0.114.{i}"), None))).chain((0..2).map(|_| tokio::spawn(call("203.0.115.1".into(), Some("tok-1".into()))))).collect();
    let mut ids = Vec::new();
    for t in many {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        let id = a.json()["CustomerGatewayId"].as_str().unwrap().to_string();
        let seen = reader.call("DescribeCustomerGateway", &[("RegionId", "cn-hangzhou"), ("CustomerGatewayId", &id)]).await.unwrap();
        assert_eq!(seen.status, 200, "{id} answered but not yet visible: {}", seen.body);
        ids.push(id);
    }
    assert_eq!(ids[16], ids[17], "one ClientToken, one customer gateway");
    let total = reader.call("DescribeCustomerGateways", &[("RegionId", "cn-hangzhou")]).await.unwrap().json()["TotalCount"].as_u64();
    assert_eq!(total, Some(18));
    h.stop().await;
}
