//! The emulated managed-identity endpoint: the App Service protocol that
//! `azure_identity`'s `ManagedIdentityCredential` speaks when the environment
//! holds `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
//!
//! Endpoints (HTTP/1.1, plain, meant for loopback):
//! - `GET /msi/token?api-version=2019-08-01&resource=https://redis.azure.com`
//!   with header `X-IDENTITY-HEADER: <secret>` → 200 and
//!   `{"access_token", "expires_on" (unix seconds, a string), "resource",
//!   "token_type": "Bearer", "client_id"}`. An optional `client_id` or
//!   `object_id` must name this identity (else 400, which `azure_identity`
//!   reports as "identity has not been assigned"). A missing or wrong header
//!   is 401; another `api-version` or `resource` is 400.
//! - `POST /control/fail?count=N[&status=S]`: the next N token requests fail;
//!   `POST /control/failing?on=true|false`: every token request fails, or not;
//!   `POST /control/lifetime?value=30s`, `POST /control/reuse?value=5m`;
//!   `GET /control/state`. Loopback peers only.
//! - anything else → 404.
//!
//! Injected failures are HTTP 500 with a JSON error body by default. Note that
//! `azure_core` retries 500 (and 408, 429, 502, 503, 504) with exponential
//! backoff, up to 8 times within 60 s, before the credential sees an error;
//! a 4xx status (see [`IdentityEndpoint::set_failure_status`]) is not retried.
//!
//! Like real IMDS, the endpoint can hand back the token it minted last while
//! that token has more than [`IdentityEndpoint::set_reuse_while_remaining`]
//! left (off by default: every request mints a fresh token).
//!
//! The server stops when the [`IdentityEndpoint`] is dropped or shut down.

use super::issuer::{rfc3339, Issuer, Minted, AUDIENCE};
use super::random;
use crate::http::Listening;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Path of the token endpoint; `IDENTITY_ENDPOINT` points here.
pub const TOKEN_PATH: &str = "/msi/token";

/// The only API version App Service's `IDENTITY_ENDPOINT` protocol uses.
pub const API_VERSION: &str = "2019-08-01";

/// The header carrying the `IDENTITY_HEADER` secret.
pub const SECRET_HEADER: &str = "x-identity-header";

/// The emulated identity's client (application) id.
pub const CLIENT_ID: &str = "00000000-0000-4000-8000-00000000c11d";

/// State shared by the accept loop, every connection and the handle.
struct Shared {
    issuer: Arc<Issuer>,
    header_secret: String,
    requests: AtomicU64,
    issued: AtomicU64,
    fail_next: AtomicU64,
    failing: AtomicBool,
    failure_status: AtomicU16,
    reuse_ms: AtomicU64,
    last: Mutex<Option<Minted>>,
}

/// A running identity endpoint.
pub struct IdentityEndpoint {
    shared: Arc<Shared>,
    listening: Listening,
}

impl std::fmt::Debug for IdentityEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityEndpoint")
            .field("addr", &self.addr())
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl IdentityEndpoint {
    /// Binds `listen` (port 0 picks a free one) and serves tokens from `issuer`.
    pub async fn start(
        issuer: Arc<Issuer>,
        listen: SocketAddr,
    ) -> std::io::Result<IdentityEndpoint> {
        let shared = Arc::new(Shared {
            issuer,
            header_secret: random::secret(),
            requests: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            failure_status: AtomicU16::new(StatusCode::INTERNAL_SERVER_ERROR.as_u16()),
            reuse_ms: AtomicU64::new(0),
            last: Mutex::new(None),
        });
        let listening =
            Listening::start(listen, "identity", shared.clone(), respond::<Incoming>).await?;
        Ok(IdentityEndpoint { shared, listening })
    }

    /// The address the endpoint listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// The value for `IDENTITY_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.addr())
    }

    /// The value for `IDENTITY_HEADER`: a random secret every token request
    /// must present.
    pub fn header_secret(&self) -> &str {
        &self.shared.header_secret
    }

    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, for the process (or child
    /// process) that runs `ManagedIdentityCredential`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("IDENTITY_ENDPOINT".to_string(), self.url()),
            (
                "IDENTITY_HEADER".to_string(),
                self.header_secret().to_string(),
            ),
        ]
    }

    /// Token requests received (answered or failed).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Tokens handed out (a reused token counts again).
    pub fn issued(&self) -> u64 {
        self.shared.issued.load(Ordering::Relaxed)
    }

    /// Makes the next `n` token requests fail.
    pub fn fail_next(&self, n: u64) {
        self.shared.fail_next.store(n, Ordering::Relaxed);
    }

    /// Makes every token request fail until turned off again.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::Relaxed);
    }

    /// The HTTP status injected failures use (default 500). `azure_core`
    /// retries 5xx for up to a minute; a 4xx fails the credential at once.
    pub fn set_failure_status(&self, status: StatusCode) {
        self.shared
            .failure_status
            .store(status.as_u16(), Ordering::Relaxed);
    }

    /// Server-side caching like real IMDS: while the last token handed out has
    /// more than `remaining` left, hand it out again. Zero (the default) mints
    /// a fresh token for every request.
    pub fn set_reuse_while_remaining(&self, remaining: Duration) {
        let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
        self.shared.reuse_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops serving: the listener and every open connection close.
    pub fn shutdown(&self) {
        self.listening.stop();
    }
}

/// Answers one request. Only the method, path, query and headers matter.
fn respond<B>(shared: &Shared, request: &Request<B>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let path = request.uri().path();
    if path == TOKEN_PATH {
        if request.method() != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
            );
        }
        let secret = request
            .headers()
            .get(SECRET_HEADER)
            .map(HeaderValue::as_bytes);
        return token_request(shared, secret, &query);
    }
    if let Some(action) = path.strip_prefix("/control/") {
        if !peer.ip().is_loopback() {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "control is for loopback peers only",
            );
        }
        return control(shared, request.method(), action, &query);
    }
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn token_request(
    shared: &Shared,
    secret: Option<&[u8]>,
    query: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if secret != Some(shared.header_secret.as_bytes()) {
        tracing::info!("identity: refused a token request with a missing or wrong {SECRET_HEADER}");
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong X-IDENTITY-HEADER",
        );
    }
    if shared.failing.load(Ordering::Relaxed) || take_one(&shared.fail_next) {
        let status = StatusCode::from_u16(shared.failure_status.load(Ordering::Relaxed))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::info!(
            status = status.as_u16(),
            "identity: failing a token request on purpose"
        );
        return error(
            status,
            "injected_failure",
            "the emulated identity endpoint is failing on purpose",
        );
    }
    if let Some(refusal) = check_parameters(shared, query) {
        return refusal;
    }
    let minted = current_token(shared);
    shared.issued.fetch_add(1, Ordering::Relaxed);
    let expires_on = minted
        .expires_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    tracing::info!(
        jti = %minted.jti,
        expires_at = %rfc3339(minted.expires_at),
        "identity: issued a token"
    );
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": minted.token,
            "expires_on": expires_on.to_string(),
            "resource": AUDIENCE,
            "token_type": "Bearer",
            "client_id": CLIENT_ID,
        }),
    )
}

/// Refuses a request for another API version, resource or identity.
fn check_parameters(
    shared: &Shared,
    query: &HashMap<String, String>,
) -> Option<Response<Full<Bytes>>> {
    let bad = |description: String| {
        Some(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &description,
        ))
    };
    match query.get("api-version").map(String::as_str) {
        Some(API_VERSION) => {}
        other => return bad(format!("api-version must be {API_VERSION}, got {other:?}")),
    }
    match query.get("resource").map(|r| r.trim_end_matches('/')) {
        Some(AUDIENCE) => {}
        other => {
            return bad(format!(
                "this emulator only issues tokens for {AUDIENCE}, not {other:?}"
            ))
        }
    }
    if query.get("client_id").is_some_and(|id| id != CLIENT_ID) {
        return bad("no identity with this client_id is assigned".into());
    }
    if query
        .get("object_id")
        .is_some_and(|id| id != shared.issuer.oid())
    {
        return bad("no identity with this object_id is assigned".into());
    }
    if query.contains_key("msi_res_id") || query.contains_key("mi_res_id") {
        return bad("resource ids are not supported by this emulator".into());
    }
    None
}

/// The last token if it may be reused, else a fresh one.
fn current_token(shared: &Shared) -> Minted {
    let reuse = Duration::from_millis(shared.reuse_ms.load(Ordering::Relaxed));
    let mut last = shared
        .last
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(previous) = last.as_ref() {
        let left = previous
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if !reuse.is_zero() && left > reuse {
            return previous.clone();
        }
    }
    let minted = shared.issuer.mint();
    *last = Some(minted.clone());
    minted
}

/// Decrements `counter` if it is above zero; says whether it did.
fn take_one(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn control(
    shared: &Shared,
    method: &Method,
    action: &str,
    query: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let param = |name: &str| query.get(name).map(String::as_str);
    let bad = |description: &str| error(StatusCode::BAD_REQUEST, "invalid_request", description);
    let duration = || param("value").and_then(|v| humantime::parse_duration(v).ok());
    match (method, action) {
        (&Method::POST, "fail") => {
            let Some(count) = param("count").and_then(|c| c.parse::<u64>().ok()) else {
                return bad("count must be a number");
            };
            if let Some(status) = param("status") {
                match status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                {
                    Some(status) if status.as_u16() >= 400 => shared
                        .failure_status
                        .store(status.as_u16(), Ordering::Relaxed),
                    _ => return bad("status must be an HTTP error status (400-599)"),
                }
            }
            shared.fail_next.store(count, Ordering::Relaxed);
            tracing::info!(count, "identity: the next token requests will fail");
        }
        (&Method::POST, "failing") => {
            let on = match param("on") {
                Some("true") => true,
                Some("false") => false,
                _ => return bad("on must be true or false"),
            };
            shared.failing.store(on, Ordering::Relaxed);
            tracing::info!(failing = on, "identity: token requests failing");
        }
        (&Method::POST, "lifetime") => {
            let Some(lifetime) = duration().filter(|d| !d.is_zero()) else {
                return bad("value must be a duration such as 30s");
            };
            shared.issuer.set_lifetime(lifetime);
            tracing::info!(lifetime = %humantime::format_duration(lifetime), "identity: token lifetime changed");
        }
        (&Method::POST, "reuse") => {
            let Some(remaining) = duration() else {
                return bad("value must be a duration such as 5m (0s turns reuse off)");
            };
            let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
            shared.reuse_ms.store(ms, Ordering::Relaxed);
        }
        (&Method::GET, "state") => {}
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such control endpoint",
            )
        }
    }
    json_response(StatusCode::OK, &state(shared))
}

fn state(shared: &Shared) -> Value {
    json!({
        "requests": shared.requests.load(Ordering::Relaxed),
        "issued": shared.issued.load(Ordering::Relaxed),
        "fail_next": shared.fail_next.load(Ordering::Relaxed),
        "failing": shared.failing.load(Ordering::Relaxed),
        "failure_status": shared.failure_status.load(Ordering::Relaxed),
        "lifetime": humantime::format_duration(shared.issuer.lifetime()).to_string(),
        "reuse_while_remaining":
            humantime::format_duration(Duration::from_millis(shared.reuse_ms.load(Ordering::Relaxed))).to_string(),
    })
}

fn error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "error": code, "error_description": description }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const OID: &str = "00000000-0000-4000-8000-00000000d3e0";

    fn shared() -> Shared {
        Shared {
            issuer: Arc::new(Issuer::new(OID.into(), Duration::from_secs(60))),
            header_secret: "s3cret".into(),
            requests: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            failure_status: AtomicU16::new(500),
            reuse_ms: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn get(uri: &str, secret: Option<&str>) -> Request<()> {
        let mut builder = Request::get(uri).header("metadata", "true");
        if let Some(secret) = secret {
            builder = builder.header(SECRET_HEADER, secret);
        }
        builder.body(()).unwrap()
    }

    const TOKEN_URI: &str =
        "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fredis.azure.com";

    async fn body(response: Response<Full<Bytes>>) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn issues_a_token_in_the_app_service_shape() {
        let shared = shared();
        let (status, json) = body(respond(
            &shared,
            &get(TOKEN_URI, Some("s3cret")),
            loopback(),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let token = json["access_token"].as_str().unwrap();
        let claims = shared.issuer.verify(token, SystemTime::now()).unwrap();
        assert_eq!(json["expires_on"], Value::String(claims.exp.to_string()));
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["resource"], AUDIENCE);
        assert_eq!(json["client_id"], CLIENT_ID);
        assert_eq!(shared.requests.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn refuses_a_wrong_or_missing_secret_and_unknown_paths() {
        let shared = shared();
        for secret in [None, Some("nope")] {
            let (status, json) = body(respond(&shared, &get(TOKEN_URI, secret), loopback())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(json["error"], "unauthorized");
        }
        let (status, _) = body(respond(&shared, &get("/other", Some("s3cret")), loopback())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(shared.issued.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn checks_version_resource_and_identity() {
        let shared = shared();
        for uri in [
            "/msi/token?api-version=2018-02-01&resource=https://redis.azure.com",
            "/msi/token?api-version=2019-08-01&resource=https://vault.azure.net",
            "/msi/token?api-version=2019-08-01",
            "/msi/token?api-version=2019-08-01&resource=https://redis.azure.com&client_id=x",
            "/msi/token?api-version=2019-08-01&resource=https://redis.azure.com&object_id=x",
        ] {
            let (status, _) = body(respond(&shared, &get(uri, Some("s3cret")), loopback())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        }
        let ours = format!("{TOKEN_URI}&object_id={OID}&client_id={CLIENT_ID}");
        let (status, _) = body(respond(&shared, &get(&ours, Some("s3cret")), loopback())).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn injected_failures_then_recovery() {
        let shared = shared();
        shared.fail_next.store(2, Ordering::Relaxed);
        let request = get(TOKEN_URI, Some("s3cret"));
        for _ in 0..2 {
            let (status, json) = body(respond(&shared, &request, loopback())).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(json["error"], "injected_failure");
        }
        assert_eq!(
            respond(&shared, &request, loopback()).status(),
            StatusCode::OK
        );
        shared.failing.store(true, Ordering::Relaxed);
        assert_eq!(
            respond(&shared, &request, loopback()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(shared.requests.load(Ordering::Relaxed), 4);
        assert_eq!(shared.issued.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn reuses_the_last_token_while_enough_is_left() {
        let shared = shared();
        let request = get(TOKEN_URI, Some("s3cret"));
        let token = |shared: &Shared| {
            let response = respond(shared, &request, loopback());
            async move { body(response).await.1["access_token"].clone() }
        };
        let (a, b) = (token(&shared).await, token(&shared).await);
        assert_ne!(a, b, "fresh token per request by default");
        shared.reuse_ms.store(30_000, Ordering::Relaxed);
        let (c, d) = (token(&shared).await, token(&shared).await);
        assert_eq!(b, c);
        assert_eq!(c, d);
        shared.reuse_ms.store(120_000, Ordering::Relaxed);
        assert_ne!(token(&shared).await, d, "less than 120s left: mint anew");
    }

    #[tokio::test]
    async fn control_endpoints_are_loopback_only() {
        let shared = shared();
        let post = |uri: &str| Request::post(uri).body(()).unwrap();
        let (status, json) = body(respond(
            &shared,
            &post("/control/fail?count=3&status=400"),
            loopback(),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["fail_next"], 3);
        assert_eq!(json["failure_status"], 400);
        let (_, json) = body(respond(
            &shared,
            &post("/control/failing?on=true"),
            loopback(),
        ))
        .await;
        assert_eq!(json["failing"], true);
        let (_, json) = body(respond(
            &shared,
            &post("/control/lifetime?value=5s"),
            loopback(),
        ))
        .await;
        assert_eq!(json["lifetime"], "5s");
        assert_eq!(
            respond(&shared, &post("/control/failing?on=maybe"), loopback()).status(),
            StatusCode::BAD_REQUEST
        );
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(
            respond(&shared, &post("/control/failing?on=false"), remote).status(),
            StatusCode::FORBIDDEN
        );
        assert!(shared.failing.load(Ordering::Relaxed));
    }
}
