//! The VICI client against a byte-for-byte recording of a session with charon 5.9.8
//! (`tests/fixtures/charon-5.9.8-exchange.json`: each request as sent, each packet as received).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpngw_dataplane::vici::{Client, Message, ViciError};

fn exchange() -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let text = include_str!("fixtures/charon-5.9.8-exchange.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let send = hex::decode(e["send"].as_str().unwrap()).unwrap();
            let recv = e["recv"].as_array().unwrap().iter().map(|r| hex::decode(r.as_str().unwrap()).unwrap()).collect();
            (send, recv)
        })
        .collect()
}

#[tokio::test]
async fn the_client_reproduces_a_recorded_charon_session() {
    let script = exchange();
    let (a, mut peer) = tokio::net::UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        for (expect, answers) in script {
            let mut got = vec![0u8; expect.len()];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(hex::encode(&got), hex::encode(&expect), "the client sends what was recorded");
            for p in answers {
                peer.write_all(&p).await.unwrap();
            }
        }
    });
    let mut c = Client::over(a);
    let v = c.call("version", Message::new()).await.unwrap();
    assert_eq!(v.str("daemon"), "charon-systemd");
    assert_eq!(v.str("version"), "5.9.8");
    c.register("list-conn").await.unwrap();

    let conn = Message::new().section(
        "test",
        Message::new()
            .kv("version", "2")
            .list("local_addrs", ["203.0.113.77"])
            .list("remote_addrs", ["198.51.100.9"])
            .section("local", Message::new().kv("auth", "psk"))
            .section("remote", Message::new().kv("auth", "psk"))
            .section("children", Message::new().section("child", Message::new().list("local_ts", ["10.77.0.0/24"]))),
    );
    c.call("load-conn", conn).await.unwrap();

    let (events, _) = c.stream("list-conns", Some("list-conn"), Message::new()).await.unwrap();
    let (name, test) = events[0].sections().next().unwrap();
    assert_eq!(name, "test");
    assert_eq!(test.str("version"), "IKEv2");
    assert_eq!(test.strs("local_addrs"), ["203.0.113.77"]);
    assert_eq!(test.sec("children").unwrap().sec("child").unwrap().str("mode"), "TUNNEL");

    let err = c.call("unload-conn", Message::new().kv("name", "nope")).await.unwrap_err();
    assert!(err.to_string().contains("unload-conn failed"), "{err}");
    assert!(matches!(c.call("no-such-cmd", Message::new()).await, Err(ViciError::UnknownCommand(_))));
    server.await.unwrap();
}
