//! The emulated container-credentials endpoint: the protocol ECS tasks and
//! EKS Pod Identity serve, which `aws-config`'s `EcsCredentialsProvider`
//! (part of the default chain) speaks when the environment holds
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (a loopback `http://` URL is
//! allowed) and `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
//!
//! Endpoints (HTTP/1.1, plain, meant for loopback):
//! - `GET /creds` with header `Authorization: <token>` → 200 and
//!   `{"AccessKeyId": "ASIA…", "SecretAccessKey", "Token", "Expiration":
//!   "<RFC 3339, UTC>", "RoleArn", "AccountId"}`, a new set every time (see
//!   [`CredentialIssuer`]). No `Authorization` header is 401, a wrong one 403,
//!   another method 405, each with `{"code", "message"}` as the ECS agent
//!   answers errors.
//! - `POST /control/fail?count=N`: the next N credential requests fail with
//!   500 (which `aws-config` retries, as it retries any 5xx);
//!   `POST /control/lifetime?value=30s`. Loopback peers only.
//! - anything else → 404.
//!
//! The server stops when the [`CredentialsEndpoint`] is dropped or shut down.
//! The authorization token and the credentials are never logged.

use super::credentials::CredentialIssuer;
use crate::http::Listening;
use crate::issuer::rfc3339;
use crate::random;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Path of the credentials endpoint; `AWS_CONTAINER_CREDENTIALS_FULL_URI`
/// points here.
pub const CREDENTIALS_PATH: &str = "/creds";

/// The emulated account.
pub const ACCOUNT_ID: &str = "123456789012";

/// The emulated role the credentials belong to.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/redauth-emulator";

/// State shared by the accept loop, every connection and the handle.
struct Shared {
    issuer: Arc<CredentialIssuer>,
    authorization: String,
    requests: AtomicU64,
    served: AtomicU64,
    fail_next: AtomicU64,
}

/// A running container-credentials endpoint.
pub struct CredentialsEndpoint {
    shared: Arc<Shared>,
    listening: Listening,
}

impl std::fmt::Debug for CredentialsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsEndpoint")
            .field("addr", &self.addr())
            .field("requests", &self.requests())
            .field("served", &self.served())
            .finish_non_exhaustive()
    }
}

impl CredentialsEndpoint {
    /// Binds `listen` (port 0 picks a free one) and serves sets from `issuer`.
    pub async fn start(
        issuer: Arc<CredentialIssuer>,
        listen: SocketAddr,
    ) -> std::io::Result<CredentialsEndpoint> {
        let shared = Arc::new(Shared {
            issuer,
            authorization: random::secret(),
            requests: AtomicU64::new(0),
            served: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
        });
        let listening =
            Listening::start(listen, "credentials", shared.clone(), respond::<Incoming>).await?;
        Ok(CredentialsEndpoint { shared, listening })
    }

    /// The address the endpoint listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// The value for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn url(&self) -> String {
        format!("http://{}{CREDENTIALS_PATH}", self.addr())
    }

    /// The value for `AWS_CONTAINER_AUTHORIZATION_TOKEN`: a random secret
    /// every request must present as its `Authorization` header.
    pub fn authorization_token(&self) -> &str {
        &self.shared.authorization
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`, for the process that runs the
    /// AWS credential chain.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(), self.url()),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_string(),
                self.authorization_token().to_string(),
            ),
        ]
    }

    /// Credential requests received (answered, refused or failed).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Credential sets handed out.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// The issuer behind the endpoint.
    pub fn issuer(&self) -> &Arc<CredentialIssuer> {
        &self.shared.issuer
    }

    /// Makes the next `n` credential requests fail with 500.
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
    if path == CREDENTIALS_PATH {
        if request.method() != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "use GET",
            );
        }
        let authorization = request.headers().get(AUTHORIZATION);
        return credentials_request(shared, authorization);
    }
    if let Some(action) = path.strip_prefix("/control/") {
        if !peer.ip().is_loopback() {
            return error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "control is for loopback peers only",
            );
        }
        let query: HashMap<String, String> = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        return control(shared, request.method(), action, &query);
    }
    error(StatusCode::NOT_FOUND, "NotFound", "no such endpoint")
}

fn credentials_request(
    shared: &Shared,
    authorization: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match authorization {
        None => {
            tracing::info!("credentials: refused a request without an Authorization header");
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "no Authorization header",
            );
        }
        Some(value) if value.as_bytes() != shared.authorization.as_bytes() => {
            tracing::info!("credentials: refused a request with a wrong Authorization header");
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "the Authorization header is not the container's token",
            );
        }
        Some(_) => {}
    }
    if take_one(&shared.fail_next) {
        tracing::info!("credentials: failing a request on purpose");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the emulated credentials endpoint is failing on purpose",
        );
    }
    let credentials = shared.issuer.issue();
    shared.served.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        access_key_id = %credentials.access_key_id,
        expires_at = %rfc3339(credentials.expires_at),
        "credentials: issued a set"
    );
    json_response(
        StatusCode::OK,
        &json!({
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token,
            "Expiration": rfc3339(credentials.expires_at).to_string(),
            "RoleArn": ROLE_ARN,
            "AccountId": ACCOUNT_ID,
            "LastUpdated": rfc3339(SystemTime::now()).to_string(),
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
    let bad = |description: &str| error(StatusCode::BAD_REQUEST, "InvalidRequest", description);
    match (method, action) {
        (&Method::POST, "fail") => {
            let Some(count) = param("count").and_then(|c| c.parse::<u64>().ok()) else {
                return bad("count must be a number");
            };
            shared.fail_next.store(count, Ordering::Relaxed);
            tracing::info!(count, "credentials: the next requests will fail");
        }
        (&Method::POST, "lifetime") => {
            let lifetime = param("value").and_then(|v| humantime::parse_duration(v).ok());
            let Some(lifetime) = lifetime.filter(|d| !d.is_zero()) else {
                return bad("value must be a duration such as 30s");
            };
            shared.issuer.set_lifetime(lifetime);
            tracing::info!(lifetime = %humantime::format_duration(lifetime), "credentials: lifetime changed");
        }
        _ => return error(StatusCode::NOT_FOUND, "NotFound", "no such control"),
    }
    json_response(
        StatusCode::OK,
        &json!({
            "fail_next": shared.fail_next.load(Ordering::Relaxed),
            "lifetime": humantime::format_duration(shared.issuer.lifetime()).to_string(),
        }),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "code": code, "message": message }))
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
    use std::time::Duration;

    fn shared() -> Shared {
        Shared {
            issuer: Arc::new(CredentialIssuer::new(Duration::from_secs(30))),
            authorization: "container-token".into(),
            requests: AtomicU64::new(0),
            served: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
        }
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn get(authorization: Option<&str>) -> Request<()> {
        let mut builder = Request::get(CREDENTIALS_PATH).header("accept", "application/json");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).unwrap()
    }

    async fn body(response: Response<Full<Bytes>>) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn each_request_gets_a_new_set_the_verifier_knows() {
        let shared = shared();
        let (status, first) =
            body(respond(&shared, &get(Some("container-token")), loopback())).await;
        assert_eq!(status, StatusCode::OK);
        let (_, second) = body(respond(&shared, &get(Some("container-token")), loopback())).await;
        for field in ["AccessKeyId", "SecretAccessKey", "Token"] {
            assert_ne!(first[field], second[field], "{field} did not rotate");
        }
        let key = first["AccessKeyId"].as_str().unwrap();
        assert!(key.starts_with("ASIA"));
        let known = shared.issuer.lookup(key).unwrap();
        assert_eq!(first["SecretAccessKey"], known.secret_access_key);
        assert_eq!(first["Token"], known.session_token);
        let expiration = first["Expiration"].as_str().unwrap();
        assert!(
            expiration.ends_with('Z') && expiration.len() == 20,
            "{expiration}"
        );
        assert_eq!(
            humantime::parse_rfc3339(expiration).unwrap(),
            known.expires_at
        );
        assert_eq!(shared.served.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn the_authorization_token_is_checked() {
        let shared = shared();
        let (status, json) = body(respond(&shared, &get(None), loopback())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["code"], "Unauthorized");
        let (status, _) = body(respond(&shared, &get(Some("guess")), loopback())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let post = Request::post(CREDENTIALS_PATH).body(()).unwrap();
        assert_eq!(
            respond(&shared, &post, loopback()).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(shared.served.load(Ordering::Relaxed), 0);
        assert_eq!(shared.requests.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn failures_can_be_injected_from_loopback() {
        let shared = shared();
        let post = |uri: &str| Request::post(uri).body(()).unwrap();
        let (status, json) =
            body(respond(&shared, &post("/control/fail?count=2"), loopback())).await;
        assert_eq!(
            (status, json["fail_next"].as_u64()),
            (StatusCode::OK, Some(2))
        );
        for _ in 0..2 {
            let response = respond(&shared, &get(Some("container-token")), loopback());
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        let response = respond(&shared, &get(Some("container-token")), loopback());
        assert_eq!(response.status(), StatusCode::OK);
        let (_, json) = body(respond(
            &shared,
            &post("/control/lifetime?value=5s"),
            loopback(),
        ))
        .await;
        assert_eq!(json["lifetime"], "5s");
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(
            respond(&shared, &post("/control/fail?count=1"), remote).status(),
            StatusCode::FORBIDDEN
        );
    }
}
