//! The metadata-server stand-in: the part of the GCE metadata protocol that
//! Google's auth libraries speak when `GCE_METADATA_HOST=127.0.0.1:PORT`
//! points them here — `google-cloud-auth`'s MDS credentials (token with
//! optional `?scopes=a,b`, and the `email` its access-boundary lookup
//! reads) and `gcp_auth`'s `MetadataServiceAccount` (token, then
//! `project/project-id`; note that `gcp_auth` releases seen so far always
//! dial `metadata.google.internal` and ignore `GCE_METADATA_HOST`).
//!
//! Every response carries `Metadata-Flavor: Google`, the header clients
//! check to know they reached a metadata server. Under `/computeMetadata/`
//! a request must carry `Metadata-Flavor: Google` (else 403) and no
//! `X-Forwarded-For` (else 403, as on GCE); only GET is served (else 405).
//!
//! - `/` and `/computeMetadata/v1/`: 200 (the ping clients use to detect GCE);
//! - `…/v1/instance/service-accounts/default/token[?scopes=a,b]` (also under
//!   the account's email): `{"access_token": "ya29.…", "expires_in": N,
//!   "token_type": "Bearer"}`, a new token every time (see [`AccessTokens`]);
//! - `…/service-accounts/default/email`, `…/default/scopes`,
//!   `…/default/?recursive=true`, `…/v1/project/project-id`,
//!   `…/project/numeric-project-id`, `…/v1/universe/universe-domain`;
//! - `POST /control/fail?count=N`: the next N token requests fail with 500;
//!   `POST /control/lifetime?value=30s`. Loopback peers only.
//! - anything else: 404.
//!
//! The server stops when the [`MetadataServer`] is dropped or shut down.
//! Tokens are never logged.

use super::tokens::AccessTokens;
use crate::http::Listening;
use crate::issuer::rfc3339;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// The header (request and response) and its one value.
pub const METADATA_FLAVOR: &str = "metadata-flavor";
pub const GOOGLE: &str = "Google";

/// The service account's path prefix, and the token path under it.
pub const DEFAULT_ACCOUNT_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default";
pub const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Who the metadata server says the workload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// The project id (`project/project-id`).
    pub project_id: String,
    /// The project number (`project/numeric-project-id`).
    pub project_number: u64,
    /// The service account's email.
    pub email: String,
}

impl ServiceAccount {
    /// `redauth-emulator@<project>.iam.gserviceaccount.com` in `project_id`.
    pub fn in_project(project_id: &str) -> ServiceAccount {
        ServiceAccount {
            project_id: project_id.to_string(),
            project_number: 123_456_789_012,
            email: format!("redauth-emulator@{project_id}.iam.gserviceaccount.com"),
        }
    }
}

/// State shared by the accept loop, every connection and the handle.
struct Shared {
    tokens: Arc<AccessTokens>,
    account: ServiceAccount,
    requests: AtomicU64,
    served: AtomicU64,
    fail_next: AtomicU64,
}

/// A running metadata-server stand-in.
pub struct MetadataServer {
    shared: Arc<Shared>,
    listening: Listening,
}

impl std::fmt::Debug for MetadataServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataServer")
            .field("addr", &self.addr())
            .field("account", &self.shared.account)
            .field("requests", &self.requests())
            .field("served", &self.served())
            .finish_non_exhaustive()
    }
}

impl MetadataServer {
    /// Binds `listen` (port 0 picks a free one) and serves tokens from
    /// `tokens` for `account`.
    pub async fn start(
        tokens: Arc<AccessTokens>,
        account: ServiceAccount,
        listen: SocketAddr,
    ) -> std::io::Result<MetadataServer> {
        let shared = Arc::new(Shared {
            tokens,
            account,
            requests: AtomicU64::new(0),
            served: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
        });
        let listening =
            Listening::start(listen, "metadata", shared.clone(), respond::<Incoming>).await?;
        Ok(MetadataServer { shared, listening })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// The value for `GCE_METADATA_HOST`: `host:port`, no scheme.
    pub fn host(&self) -> String {
        self.addr().to_string()
    }

    /// `GCE_METADATA_HOST`, for the process that runs Google's auth library.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![("GCE_METADATA_HOST".to_string(), self.host())]
    }

    /// The service account it speaks for.
    pub fn account(&self) -> &ServiceAccount {
        &self.shared.account
    }

    /// Token requests answered or failed on purpose (not those refused for
    /// their headers or method).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Tokens handed out.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// The token issuer behind the server.
    pub fn tokens(&self) -> &Arc<AccessTokens> {
        &self.shared.tokens
    }

    /// Makes the next `n` token requests fail with 500.
    pub fn fail_next(&self, n: u64) {
        self.shared.fail_next.store(n, Ordering::Relaxed);
    }

    /// Stops serving: the listener and every open connection close.
    pub fn shutdown(&self) {
        self.listening.stop();
    }
}

/// Answers one request. Only the method, path, query and headers matter.
fn respond<B>(shared: &Shared, request: &Request<B>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let query = query(request);
    if let Some(action) = path.strip_prefix("/control/") {
        if !peer.ip().is_loopback() {
            return text(StatusCode::FORBIDDEN, "control is for loopback peers only");
        }
        return control(shared, request.method(), action, &query);
    }
    if path == "/" {
        return text(StatusCode::OK, "computeMetadata/\n");
    }
    let Some(key) = path.strip_prefix("/computeMetadata/v1") else {
        return not_found();
    };
    let headers = request.headers();
    if headers.get(METADATA_FLAVOR).map(HeaderValue::as_bytes) != Some(GOOGLE.as_bytes()) {
        tracing::info!(%peer, path, "metadata: refused a request without Metadata-Flavor: Google");
        return text(
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"\n",
        );
    }
    if headers.contains_key("x-forwarded-for") {
        return text(
            StatusCode::FORBIDDEN,
            "Request had an X-Forwarded-For header\n",
        );
    }
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    metadata(shared, key, &query)
}

/// One `/computeMetadata/v1` key.
fn metadata(shared: &Shared, key: &str, query: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let account = &shared.account;
    let accounts = "/instance/service-accounts/";
    let (name, rest) = match key.strip_prefix(accounts) {
        Some(tail) => tail.split_once('/').unwrap_or((tail, "")),
        None => ("", ""),
    };
    let ours = name == "default" || name == account.email;
    match key {
        "" | "/" => text(StatusCode::OK, "instance/\nproject/\nuniverse/\n"),
        "/project/project-id" => text(StatusCode::OK, &account.project_id),
        "/project/numeric-project-id" => text(StatusCode::OK, &account.project_number.to_string()),
        "/universe/universe-domain" => text(StatusCode::OK, "googleapis.com"),
        _ if key.starts_with(accounts) && ours => match rest {
            "token" => token_request(shared, query),
            "email" => text(StatusCode::OK, &account.email),
            "scopes" => text(
                StatusCode::OK,
                &format!("{}\n", super::CLOUD_PLATFORM_SCOPE),
            ),
            "" if query.get("recursive").is_some_and(|v| v == "true") => json_response(
                StatusCode::OK,
                &json!({
                    "aliases": ["default"],
                    "email": account.email,
                    "scopes": [super::CLOUD_PLATFORM_SCOPE],
                }),
            ),
            "" => text(StatusCode::OK, "aliases\nemail\nidentity\nscopes\ntoken\n"),
            _ => not_found(),
        },
        _ => not_found(),
    }
}

fn token_request(shared: &Shared, query: &HashMap<String, String>) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if take_one(&shared.fail_next) {
        tracing::info!("metadata: failing a token request on purpose");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the emulated metadata server is failing on purpose\n",
        );
    }
    let scopes = query.get("scopes").map(|s| {
        s.split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let token = shared.tokens.issue(scopes);
    shared.served.fetch_add(1, Ordering::Relaxed);
    let expires_in = token
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    tracing::info!(
        expires_at = %rfc3339(token.expires_at),
        scopes = ?token.scopes,
        "metadata: issued an access token"
    );
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token.token,
            "expires_in": expires_in,
            "token_type": "Bearer",
        }),
    )
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
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    match action {
        "fail" => {
            let Some(count) = param("count").and_then(|c| c.parse::<u64>().ok()) else {
                return text(StatusCode::BAD_REQUEST, "count must be a number\n");
            };
            shared.fail_next.store(count, Ordering::Relaxed);
            tracing::info!(count, "metadata: the next token requests will fail");
        }
        "lifetime" => {
            let lifetime = param("value").and_then(|v| humantime::parse_duration(v).ok());
            let Some(lifetime) = lifetime.filter(|d| !d.is_zero()) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "value must be a duration such as 30s\n",
                );
            };
            shared.tokens.set_lifetime(lifetime);
            tracing::info!(lifetime = %humantime::format_duration(lifetime), "metadata: token lifetime changed");
        }
        _ => return not_found(),
    }
    json_response(
        StatusCode::OK,
        &json!({
            "fail_next": shared.fail_next.load(Ordering::Relaxed),
            "lifetime": humantime::format_duration(shared.tokens.lifetime()).to_string(),
        }),
    )
}

fn query<B>(request: &Request<B>) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "Not Found\n")
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond_with(status, "application/text", Bytes::from(body.to_string()))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    respond_with(status, "application/json", Bytes::from(body.to_string()))
}

/// Every response says it comes from a metadata server.
fn respond_with(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        HeaderName::from_static(METADATA_FLAVOR),
        HeaderValue::from_static(GOOGLE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;

    fn shared() -> Shared {
        Shared {
            tokens: Arc::new(AccessTokens::new(Duration::from_secs(30))),
            account: ServiceAccount::in_project("proj"),
            requests: AtomicU64::new(0),
            served: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
        }
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn get(uri: &str, flavor: Option<&str>) -> Request<()> {
        let mut builder = Request::get(uri);
        if let Some(value) = flavor {
            builder = builder.header("Metadata-Flavor", value);
        }
        builder.body(()).unwrap()
    }

    async fn body(response: Response<Full<Bytes>>) -> (StatusCode, String) {
        let status = response.status();
        assert_eq!(
            response.headers().get("metadata-flavor").unwrap(),
            "Google",
            "every response carries Metadata-Flavor: Google"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn tokens_in_the_mds_shape_rotating() {
        let shared = shared();
        let (status, first) = body(respond(
            &shared,
            &get(TOKEN_PATH, Some("Google")),
            loopback(),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let first: serde_json::Value = serde_json::from_str(&first).unwrap();
        let (_, second) = body(respond(
            &shared,
            &get(TOKEN_PATH, Some("Google")),
            loopback(),
        ))
        .await;
        let second: serde_json::Value = serde_json::from_str(&second).unwrap();
        let token = first["access_token"].as_str().unwrap();
        assert!(token.starts_with("ya29."));
        assert_ne!(first["access_token"], second["access_token"]);
        assert_eq!(first["token_type"], "Bearer");
        let expires_in = first["expires_in"].as_u64().unwrap();
        assert!((29..=30).contains(&expires_in), "{expires_in}");
        assert_eq!(first.as_object().unwrap().len(), 3);
        assert!(shared.tokens.verify(token, SystemTime::now()).is_ok());
        assert_eq!(shared.served.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn scopes_are_remembered() {
        let shared = shared();
        let uri = format!(
            "{TOKEN_PATH}?scopes={}%2Chttps%3A%2F%2Fwww.googleapis.com%2Fauth%2Fuserinfo.email",
            super::super::CLOUD_PLATFORM_SCOPE
        );
        let (_, json) = body(respond(&shared, &get(&uri, Some("Google")), loopback())).await;
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let token = shared
            .tokens
            .lookup(json["access_token"].as_str().unwrap())
            .unwrap();
        assert_eq!(token.scopes.len(), 2);
        assert_eq!(
            token.scopes[1],
            "https://www.googleapis.com/auth/userinfo.email"
        );
    }

    #[tokio::test]
    async fn the_flavor_header_is_required_under_compute_metadata() {
        let shared = shared();
        for uri in [TOKEN_PATH, "/computeMetadata/v1/project/project-id"] {
            let (status, _) = body(respond(&shared, &get(uri, None), loopback())).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
            let (status, _) = body(respond(&shared, &get(uri, Some("google")), loopback())).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        }
        let forwarded = Request::get(TOKEN_PATH)
            .header("Metadata-Flavor", "Google")
            .header("X-Forwarded-For", "10.0.0.1")
            .body(())
            .unwrap();
        assert_eq!(
            respond(&shared, &forwarded, loopback()).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(shared.served.load(Ordering::Relaxed), 0);
        // The ping needs no header, and says where it came from.
        assert_eq!(
            body(respond(&shared, &get("/", None), loopback())).await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn the_other_keys_clients_read() {
        let shared = shared();
        let account = ServiceAccount::in_project("proj");
        let cases = [
            ("/computeMetadata/v1/", "instance/"),
            ("/computeMetadata/v1/project/project-id", "proj"),
            (
                "/computeMetadata/v1/project/numeric-project-id",
                "123456789012",
            ),
            (
                "/computeMetadata/v1/universe/universe-domain",
                "googleapis.com",
            ),
            (&format!("{DEFAULT_ACCOUNT_PATH}/email"), &account.email),
            (&format!("{DEFAULT_ACCOUNT_PATH}/scopes"), "cloud-platform"),
            (
                &format!("{DEFAULT_ACCOUNT_PATH}/?recursive=true"),
                "\"aliases\"",
            ),
        ];
        for (uri, expected) in cases {
            let (status, text) =
                body(respond(&shared, &get(uri, Some("Google")), loopback())).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(text.contains(expected), "{uri}: {text}");
        }
        let by_email = format!(
            "/computeMetadata/v1/instance/service-accounts/{}/token",
            account.email
        );
        assert_eq!(
            respond(&shared, &get(&by_email, Some("Google")), loopback()).status(),
            StatusCode::OK
        );
        for uri in [
            "/computeMetadata/v1/instance/service-accounts/other/token",
            &format!("{DEFAULT_ACCOUNT_PATH}/identity?audience=x"),
            "/computeMetadata/v2/",
        ] {
            let status = respond(&shared, &get(uri, Some("Google")), loopback()).status();
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        }
        let post = Request::post(TOKEN_PATH)
            .header("Metadata-Flavor", "Google")
            .body(())
            .unwrap();
        assert_eq!(
            respond(&shared, &post, loopback()).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn failures_can_be_injected_from_loopback() {
        let shared = shared();
        let post = |uri: &str| Request::post(uri).body(()).unwrap();
        let (status, json) =
            body(respond(&shared, &post("/control/fail?count=2"), loopback())).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        for _ in 0..2 {
            let response = respond(&shared, &get(TOKEN_PATH, Some("Google")), loopback());
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        let response = respond(&shared, &get(TOKEN_PATH, Some("Google")), loopback());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(shared.requests.load(Ordering::Relaxed), 3);
        let (_, json) = body(respond(
            &shared,
            &post("/control/lifetime?value=5s"),
            loopback(),
        ))
        .await;
        assert!(json.contains("\"5s\""), "{json}");
        assert_eq!(shared.tokens.lifetime(), Duration::from_secs(5));
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(
            respond(&shared, &post("/control/fail?count=1"), remote).status(),
            StatusCode::FORBIDDEN
        );
    }
}
