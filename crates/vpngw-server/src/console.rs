//! The web console at `/console/`: a static page (HTML, CSS and a script built into the binary,
//! no CDN) that signs every API call in the browser with the AccessKey it was given, so that it
//! can do what that key may do and nothing else. `vpngw console login ACCOUNT` makes a one-time
//! link instead of a key to type: `/console/login?key=…&token=…` checks the link's console key,
//! gives it a new secret at once (the link works once), and hands that secret to the page.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;

const INDEX: &str = include_str!("console/index.html");
const APP: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

/// What a console login key's id starts with: only those are taken by `/console/login`.
pub const LOGIN_KEY_PREFIX: &str = "LTAICON";

pub fn routes() -> axum::Router<Arc<AppState>> {
    let page = |body: &'static str, kind: &'static str| move || async move { ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body) };
    axum::Router::new()
        .route("/console", axum::routing::get(|| async { axum::response::Redirect::permanent("/console/") }))
        .route("/console/", axum::routing::get(page(INDEX, "text/html; charset=utf-8")))
        .route("/console/app.js", axum::routing::get(page(APP, "text/javascript; charset=utf-8")))
        .route("/console/style.css", axum::routing::get(page(STYLE, "text/css; charset=utf-8")))
        .route("/console/login", axum::routing::get(login))
}

#[derive(serde::Deserialize)]
struct Link {
    key: String,
    token: String,
    #[serde(default)]
    region: Option<String>,
}

async fn login(State(st): State<Arc<AppState>>, Query(link): Query<Link>) -> Response {
    let refused = || {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><p>This sign-in link was used already or is not valid: run <code>vpngw console login ACCOUNT</code> for a new one.</p>",
        )
            .into_response()
    };
    if !link.key.starts_with(LOGIN_KEY_PREFIX) {
        return refused();
    }
    let Ok(Some(key)) = st.svc.store.key(&link.key).await else { return refused() };
    if key.revoked_ms.is_some() || !constant_time_eq(key.secret.as_bytes(), link.token.as_bytes()) {
        return refused();
    }
    // The link works once: the key gets a secret only this answer carries.
    let secret = vpngw_service::ids::secret(30);
    if st.svc.store.put_key(&vpngw_store::AccessKey { secret: secret.clone(), ..key.clone() }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the store could not be written").into_response();
    }
    st.forget_keys();
    let session = serde_json::json!({"ak": key.access_key_id, "secret": secret, "region": link.region.unwrap_or_else(|| "cn-hangzhou".into())});
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>vpngw console</title><script>sessionStorage.setItem('vpngw', {}); location.replace('/console/#gateways');</script>",
        serde_json::to_string(&session.to_string()).unwrap_or_default()
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store"), (header::REFERRER_POLICY, "no-referrer")], body).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
