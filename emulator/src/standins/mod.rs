//! Minimal stand-ins for the AWS endpoints the credential chain talks to, for
//! redauth's credential-provider tests (tests/aws_providers.rs): the EC2
//! instance metadata service, IMDSv2 ([`imds`]), STS's
//! `AssumeRoleWithWebIdentity` ([`sts`]) and the SSO portal's
//! `GetRoleCredentials` ([`sso`]); and, for `--auth gcp-iam`'s tests
//! (tests/gcp_providers.rs), Google's OAuth2 token endpoint and STS
//! ([`google_oauth`]), which issue the emulated GCP's own tokens. Each AWS one
//! hands out one fixed set of
//! temporary credentials ([`Issued`]), so a test can check that the token
//! redauth signed carries that endpoint's access key id, and records the
//! requests it saw.
//!
//! They are not emulations of AWS's behaviour (no rotation, no failure
//! injection); the emulated AWS cloud the end-to-end tests run against lives
//! elsewhere in this crate. Plain HTTP on loopback only.

pub mod google_oauth;
pub mod imds;
pub mod sso;
pub mod sts;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Temporary credentials a stand-in hands out.
#[derive(Clone)]
pub struct Issued {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: SystemTime,
}

impl Issued {
    /// Credentials whose key id starts with `prefix` (upper-case letters and
    /// digits), valid for `lifetime`.
    pub fn new(prefix: &str, lifetime: Duration) -> Issued {
        let id = format!("ASIA{prefix}{}", crate::random::secret().to_uppercase());
        Issued {
            access_key_id: id.chars().take(20).collect(),
            secret_access_key: crate::random::secret(),
            session_token: format!("{}+/{}=", crate::random::secret(), crate::random::secret()),
            expiration: SystemTime::now() + lifetime,
        }
    }

    /// The expiration as AWS writes it: `2024-05-06T07:08:09Z`.
    pub fn expiration_text(&self) -> String {
        humantime::format_rfc3339_seconds(self.expiration).to_string()
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration_text())
            .finish_non_exhaustive()
    }
}

/// What a stand-in answers a request with: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    /// `status` with `body` and no headers of its own.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// A request as a handler sees it.
pub struct Asked<'a> {
    pub method: &'a Method,
    /// Path and query.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

type Handler = Arc<dyn Fn(Asked<'_>) -> Answer + Send + Sync>;

/// One HTTP server on loopback; stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn").field("addr", &self.addr).finish()
    }
}

impl StandIn {
    async fn start(what: &'static str, handler: Handler) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(crate::serve_each(listener, what, move |stream, _| {
            let (handler, log) = (handler.clone(), log.clone());
            async move {
                let service =
                    service_fn(move |request| answer(request, handler.clone(), log.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }));
        Ok(StandIn { addr, seen, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    handler: Handler,
    log: Arc<Mutex<Vec<String>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{} {target}", parts.method));
    let answer = handler(Asked {
        method: &parts.method,
        target: &target,
        headers: &parts.headers,
        body: &body,
    });
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    for (name, value) in answer.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
