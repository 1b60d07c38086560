//! The HTTP front: the only place that knows HTTP. Each request goes
//! decode → authenticate → authorize → handle → render, and every error is rendered in one place.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use vpngw_api::params::decode_form;
use vpngw_api::render::{render_error, render_ok, Format};
use vpngw_api::sign::{self, SignedRequest};
use vpngw_api::{actions, ApiError, Code, Params, COMMON_PARAMS, VERSION};
use vpngw_service::{ids, store_error, Principal, Service};
use vpngw_store::AccessKey;

/// Largest request body accepted (read by `api`; a larger one is answered 413).
pub const MAX_BODY: usize = 1 << 20;

pub struct AppState {
    pub svc: Arc<Service>,
    pub host_id: String,
    pub max_clock_skew_secs: i64,
    /// AccessKeys read so far; only when no other server shares the store (another could
    /// change a key under us, and reads must stay exact).
    keys: Option<RwLock<HashMap<String, AccessKey>>>,
}

impl AppState {
    pub fn new(svc: Arc<Service>, host_id: String, max_clock_skew_secs: i64) -> Arc<Self> {
        let keys = (!svc.store.shared()).then(|| RwLock::new(HashMap::new()));
        Arc::new(AppState { svc, host_id, max_clock_skew_secs, keys })
    }

    async fn key(&self, ak: &str) -> Result<Option<AccessKey>, ApiError> {
        if let Some(k) = self.keys.as_ref().and_then(|m| m.read().ok().and_then(|m| m.get(ak).cloned())) {
            return Ok(Some(k));
        }
        // Keys added by `vpngw key create` while we run are found here on first use.
        let found = self.svc.store.key(ak).await.map_err(store_error)?;
        if let (Some(k), Some(Ok(mut m))) = (&found, self.keys.as_ref().map(|m| m.write())) {
            m.insert(ak.to_string(), k.clone());
        }
        Ok(found)
    }

    /// Forgets the AccessKeys read so far (`vpngw key revoke` signals a running server so):
    /// the next request of each key reads it again from the store.
    pub fn forget_keys(&self) {
        if let Some(Ok(mut m)) = self.keys.as_ref().map(|m| m.write()) {
            m.clear();
        }
    }

    /// Records a nonce; false if the key used it within the replay window already, on this
    /// server or (PostgreSQL) any other of the cluster.
    async fn fresh_nonce(&self, ak: &str, nonce: &str, now: i64) -> Result<bool, ApiError> {
        // A nonce older than twice the window can be forgotten: its request's timestamp is
        // outside the window now, so a replay fails the clock check instead.
        let horizon = now - 2 * self.max_clock_skew_secs;
        self.svc.store.fresh_nonce(&format!("{ak}\n{nonce}"), now, horizon).await.map_err(store_error)
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/bare", get(bare)).route("/", any(api)).merge(crate::console::routes()).with_state(state)
}

/// A bare JSON endpoint with no signature and no store: the benchmark's baseline.
async fn bare() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"RequestId":"bare"}"#).into_response()
}

async fn api(State(st): State<Arc<AppState>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let request_id = ids::request_id();
    // The caller's account, once the signature is checked (for the request's log line).
    let account = std::sync::atomic::AtomicI64::new(-1);
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let query = decode_form(parts.uri.query().unwrap_or(""));
    let is_form = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.get(..33).is_some_and(|p| p.eq_ignore_ascii_case("application/x-www-form-urlencoded")));
    let form = if is_form { decode_form(&String::from_utf8_lossy(&body)) } else { Vec::new() };
    // One map of parameters, the query with the form body over it: the map the RPC clients sign
    // and the one the handlers read.
    let lookup = |k: &str| form.iter().rev().chain(query.iter().rev()).find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let format = Format::from_param(lookup("Format"));
    // Header names arrive lower-cased from `http`. A value that is not UTF-8 cannot be part of
    // a signature an SDK computed; it reads as empty.
    let hdrs: Vec<(&str, &str)> = parts.headers.iter().map(|(k, v)| (k.as_str(), std::str::from_utf8(v.as_bytes()).unwrap_or(""))).collect();
    let header_val = |k: &str| hdrs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    // ACS3 names its action in `x-acs-action` (signed, see `sign::claims`); RPC v1 in `Action`.
    let action_name = header_val("x-acs-action").or_else(|| lookup("Action")).unwrap_or("");
    let version = header_val("x-acs-version").or_else(|| lookup("Version"));
    // Looked up once: for dispatch and for the request's metrics.
    let spec = actions::find(action_name);

    let result = async {
        let action = decode(spec, action_name, version)?;
        if header_val("authorization").is_some() && [("Action", action_name), ("Version", version.unwrap_or(""))].iter().any(|(k, v)| lookup(k).is_some_and(|q| q != *v)) {
            // An `Action` or `Version` parameter that says otherwise than the signed header.
            return Err(ApiError::msg(Code::IncompleteSignature, "The request signature does not conform to Aliyun standards: Action and x-acs-action disagree.".to_string()));
        }
        let signed = SignedRequest { method: parts.method.as_str(), path: parts.uri.path(), query: &query, form: &form, body: &body, headers: &hdrs };
        let (principal, nonce) = authenticate(&st, &signed).await?;
        account.store(principal.account, std::sync::atomic::Ordering::Relaxed);
        let params = Params::from_pairs(query.iter().chain(form.iter()).filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str())).cloned());
        tracing::debug!(action = %action.name, account = principal.account, "Dispatching.");
        // Spent already (with the key, on a shared store), or to spend now.
        let Some((nonce, now)) = nonce else { return st.svc.dispatch(action, &principal, params, &request_id).await.map(|body| (action, body)) };
        let fresh = st.fresh_nonce(&principal.access_key_id, &nonce, now);
        if action.access == vpngw_api::Access::Read {
            // A read changes nothing: it runs beside the nonce's check, and its answer is
            // dropped if the nonce was spent.
            let (fresh, answer) = tokio::join!(fresh, st.svc.dispatch(action, &principal, params, &request_id));
            if !fresh? {
                return Err(ApiError::new(Code::SignatureNonceUsed));
            }
            return answer.map(|body| (action, body));
        }
        if !fresh.await? {
            return Err(ApiError::new(Code::SignatureNonceUsed));
        }
        st.svc.dispatch(action, &principal, params, &request_id).await.map(|body| (action, body))
    }
    .await;

    let account = account.load(std::sync::atomic::Ordering::Relaxed);
    let response = match result {
        Ok((action, body)) => {
            let text = render_ok(format, action.name, &request_id, body);
            ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
        }
        Err(e) => {
            if e.code.status() >= 500 {
                tracing::warn!(request_id = %request_id, action = %action_name, code = e.code.wire(), message = %e.message, "Request failed.");
            }
            let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut r = (status, [(header::CONTENT_TYPE, format.content_type())], render_error(format, &request_id, &st.host_id, &e)).into_response();
            r.extensions_mut().insert(e.code);
            r
        }
    };
    // One line per request: who asked what, and how it ended; and its metrics (an action
    // that does not exist is `unknown`: the label's values stay bounded).
    let code = response.extensions().get::<Code>().map(|c| c.wire()).unwrap_or("OK");
    let known = spec.map(|a| a.name).unwrap_or("unknown");
    vpngw_metrics::get().request(known, (account >= 0).then_some(account), code, started.elapsed().as_secs_f64());
    tracing::info!(
        target: "vpngw::request",
        request_id = %request_id,
        action = %action_name,
        account = (account >= 0).then_some(account),
        code,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "Request."
    );
    response
}

/// The action and the version: known before anything else is checked.
fn decode(spec: Option<&'static vpngw_api::ActionSpec>, action: &str, version: Option<&str>) -> Result<&'static vpngw_api::ActionSpec, ApiError> {
    if action.is_empty() {
        return Err(ApiError::missing("Action"));
    }
    match version {
        None | Some("") => return Err(ApiError::missing("Version")),
        Some(v) if v != VERSION => return Err(ApiError::new(Code::InvalidVersion)),
        _ => {}
    }
    spec.ok_or_else(|| ApiError::new(Code::InvalidAction))
}

/// The caller, once the signature and the clock check out, and the nonce to spend
/// (`SignatureNonce` and now, in Unix seconds), which the caller checks before a write and beside
/// a read; `None` when it was spent with the key's lookup (a store shared by servers: one round
/// trip for both) and found fresh.
async fn authenticate(st: &AppState, req: &SignedRequest<'_>) -> Result<(Principal, Option<(String, i64)>), ApiError> {
    let claims = sign::claims(req)?;
    let now = chrono::Utc::now().timestamp();
    let (key, spent) = if st.keys.is_some() {
        (st.key(claims.access_key_id).await?.ok_or_else(|| ApiError::new(Code::InvalidAccessKeyId))?, None)
    } else {
        let nonce_key = format!("{}\n{}", claims.access_key_id, claims.nonce);
        let (key, fresh) =
            st.svc.store.key_and_nonce(claims.access_key_id, &nonce_key, now, now - 2 * st.max_clock_skew_secs).await.map_err(store_error)?.ok_or_else(|| ApiError::new(Code::InvalidAccessKeyId))?;
        (key, Some(fresh))
    };
    sign::verify(req, &claims, &key.secret)?;
    // Revoked (`vpngw key revoke`): refused, whoever signed with it.
    if key.revoked_ms.is_some() {
        return Err(ApiError::new(Code::AccessKeyInactive));
    }
    let ts = sign::parse_timestamp(claims.timestamp)?;
    if (now - ts).abs() > st.max_clock_skew_secs {
        return Err(ApiError::new(Code::InvalidTimeStampExpired));
    }
    let principal = Principal { account: key.account_id, access_key_id: key.access_key_id, readonly: key.readonly };
    match spent {
        Some(true) => Ok((principal, None)),
        Some(false) => Err(ApiError::new(Code::SignatureNonceUsed)),
        None => Ok((principal, Some((claims.nonce.to_string(), now)))),
    }
}
