//! A small signing client, for the benchmark and the Rust tests: it builds requests exactly as
//! the SDKs do (WIRE.md) with either scheme, and can also build the ones SDKs never send (a
//! stale timestamp, a reused nonce).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use vpngw_api::sign::{self, pct, SignedRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RPC v1 (HMAC-SHA1), every parameter in the query of a GET.
    RpcV1,
    /// ACS3-HMAC-SHA256, parameters in the query of a POST, action in headers.
    Acs3,
}

#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret: String,
    pub scheme: Scheme,
}

/// Overrides for building requests the SDKs would not send.
#[derive(Debug, Clone, Default)]
pub struct Tweak {
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub secret: Option<String>,
    pub format_xml: bool,
}

pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The error `Code`, if the body has one.
    pub fn code(&self) -> String {
        self.json()["Code"].as_str().unwrap_or("").to_string()
    }
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Client {
    pub fn new(endpoint: impl Into<String>, access_key_id: impl Into<String>, secret: impl Into<String>, scheme: Scheme) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        Client {
            http: HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build(conn),
            endpoint: endpoint.into(),
            access_key_id: access_key_id.into(),
            secret: secret.into(),
            scheme,
        }
    }

    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<Answer> {
        self.call_with(action, params, &Tweak::default()).await
    }

    pub async fn call_with(&self, action: &str, params: &[(&str, &str)], t: &Tweak) -> anyhow::Result<Answer> {
        let req = self.signed(action, params, t)?;
        self.send(req).await
    }

    /// Builds and signs a request without sending it (the benchmark signs ahead of time).
    pub fn signed(&self, action: &str, params: &[(&str, &str)], t: &Tweak) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let secret = t.secret.clone().unwrap_or_else(|| self.secret.clone());
        let timestamp = t.timestamp.clone().unwrap_or_else(now_iso);
        let nonce = t.nonce.clone().unwrap_or_else(nonce);
        let mut query: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if t.format_xml {
            query.push(("Format".into(), "XML".into()));
        }
        let req = match self.scheme {
            Scheme::RpcV1 => {
                for (k, v) in [
                    ("Action", action),
                    ("Version", vpngw_api::VERSION),
                    ("AccessKeyId", &self.access_key_id),
                    ("SignatureMethod", "HMAC-SHA1"),
                    ("SignatureVersion", "1.0"),
                    ("SignatureNonce", &nonce),
                    ("Timestamp", &timestamp),
                ] {
                    query.push((k.into(), v.into()));
                }
                let sr = SignedRequest { method: "GET", path: "/", query: &query, form: &[], body: b"", headers: &[] };
                let sig = sign::rpc_v1_signature(&secret, &sign::rpc_v1_string_to_sign(&sr));
                query.push(("Signature".into(), sig));
                hyper::Request::get(format!("http://{}/?{}", self.endpoint, encode(&query))).body(Full::new(Bytes::new()))?
            }
            Scheme::Acs3 => {
                let body_hash = sign::hex_lower(&Sha256::digest(b""));
                let mut headers: Vec<(String, String)> = vec![
                    ("host".into(), self.endpoint.clone()),
                    ("x-acs-action".into(), action.into()),
                    ("x-acs-version".into(), vpngw_api::VERSION.into()),
                    ("x-acs-date".into(), timestamp),
                    ("x-acs-signature-nonce".into(), nonce),
                    ("x-acs-content-sha256".into(), body_hash.clone()),
                ];
                let names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
                let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let sr = SignedRequest { method: "POST", path: "/", query: &query, form: &[], body: b"", headers: &borrowed };
                let canonical = sign::acs3_canonical_request(&sr, &names, &body_hash);
                let sig = sign::acs3_signature(&secret, &sign::acs3_string_to_sign(&canonical));
                let mut sorted = names.clone();
                sorted.sort();
                headers.push(("authorization".into(), format!("ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={sig}", self.access_key_id, sorted.join(";"))));
                let mut b = hyper::Request::post(format!("http://{}/?{}", self.endpoint, encode(&query)));
                for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
                    b = b.header(k, v);
                }
                b.body(Full::new(Bytes::new()))?
            }
        };
        Ok(req)
    }

    pub async fn send(&self, req: hyper::Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let resp = self.http.request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned() })
    }

    /// A plain GET of a path, for the bare baseline and health checks.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(hyper::Request::get(format!("http://{}{path}", self.endpoint)).body(Full::new(Bytes::new()))?).await
    }
}

fn encode(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&")
}

/// One plain-HTTP GET (the operator's listener: `/status`, `/metrics`): the status and body.
pub async fn get(url: &str) -> anyhow::Result<(u16, String)> {
    let http: HyperClient<HttpConnector, Full<Bytes>> = HyperClient::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = url.parse()?;
    let res = tokio::time::timeout(std::time::Duration::from_secs(10), http.get(uri)).await??;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
