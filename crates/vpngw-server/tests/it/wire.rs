//! Requests shaped as the Node SDK sends them: a chunked form body, signed with ACS3.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use vpngw_api::sign::{self, SignedRequest};
use vpngw_server::client::Scheme;

use super::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_form_body_is_read_and_signed() {
    let h = Harness::start("chunked").await;
    let endpoint = h.running.addr.to_string();
    let body = b"Tags.1.Key=team&Tags.1.Value=net%20ops".to_vec();
    let query = vec![("RegionId".to_string(), "cn-hangzhou".to_string()), ("IpAddress".to_string(), "203.0.113.77".to_string())];
    let hash = hex::encode(Sha256::digest(&body));
    let headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/x-www-form-urlencoded".into()),
        ("host".into(), endpoint.clone()),
        ("x-acs-action".into(), "CreateCustomerGateway".into()),
        ("x-acs-content-sha256".into(), hash.clone()),
        ("x-acs-date".into(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("x-acs-signature-nonce".into(), uuid::Uuid::new_v4().simple().to_string()),
        ("x-acs-version".into(), "2016-04-28".into()),
    ];
    let names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let form = vpngw_api::params::decode_form(std::str::from_utf8(&body).unwrap());
    let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sr = SignedRequest { method: "POST", path: "/", query: &query, form: &form, body: &body, headers: &borrowed };
    let sig = sign::acs3_signature("sa", &sign::acs3_string_to_sign(&sign::acs3_canonical_request(&sr, &names, &hash)));
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = body.chunks(7).map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
    let mut b = hyper::Request::post(format!("http://{endpoint}/?RegionId=cn-hangzhou&IpAddress=203.0.113.77"));
    // A bare HTTP/1 connection adds no Host header of its own: send the one that was signed.
    for (k, v) in &headers {
        b = b.header(k, v);
    }
    b = b.header("authorization", format!("ACS3-HMAC-SHA256 Credential=AKA,SignedHeaders={},Signature={sig}", names.join(";")));
    let req = b.body(StreamBody::new(futures_stream(chunks))).unwrap();
    let stream = tokio::net::TcpStream::connect(&endpoint).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let raw = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw));
    let out: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let id = out["CustomerGatewayId"].as_str().unwrap().to_string();
    let c = h.client(Scheme::Acs3);
    let d = c.call("DescribeCustomerGateway", &[("RegionId", "cn-hangzhou"), ("CustomerGatewayId", &id)]).await.unwrap().json();
    assert_eq!(d["Tags"]["Tag"][0]["Value"], "net ops");
    h.stop().await;
}

fn futures_stream(items: Vec<Result<Frame<Bytes>, std::io::Error>>) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    struct Iter(std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Frame<Bytes>, std::io::Error>;
        fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_before_anything_is_read() {
    let h = Harness::start("toolarge").await;
    let endpoint = h.running.addr.to_string();
    let body = vec![b'a'; vpngw_server::http::MAX_BODY + 1];
    let req = hyper::Request::post(format!("http://{endpoint}/?Action=DescribeRegions&Version=2016-04-28"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let client = vpngw_server::client::Client::new(endpoint, "", "", Scheme::Acs3);
    assert_eq!(client.send(req).await.unwrap().status, 413);
}
