//! Which endpoint answers what: method and path in, response out. No I/O
//! here beyond what the handlers read, so every route is testable without a
//! socket.

use super::Health;
use crate::metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use std::net::SocketAddr;
use std::time::SystemTime;

/// Answers one request.
pub(super) fn respond(
    health: &Health,
    method: &Method,
    path: &str,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    match path {
        "/quitquitquit" => quit(health, method, peer),
        _ if method != Method::GET && method != Method::HEAD => {
            text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into()).with_allow("GET, HEAD")
        }
        "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/startupz" => probe(health.startup()),
        "/readyz" => match health.readiness(SystemTime::now()) {
            // Ready, with what an operator should know (a refused new password).
            Ok(()) => match health.notice() {
                Some(notice) => text(StatusCode::OK, format!("ok, but {notice}\n")),
                None => probe(Ok(())),
            },
            failing => probe(failing),
        },
        "/metrics" => {
            let mut response = text(
                StatusCode::OK,
                metrics::render(health.credentials().snapshot().expires_at()),
            );
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// `POST /quitquitquit`: begins the shutdown SIGTERM would. Loopback peers
/// only, so a probe port opened to the cluster cannot stop the sidecar.
fn quit(health: &Health, method: &Method, peer: SocketAddr) -> Response<Full<Bytes>> {
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into()).with_allow("POST");
    }
    if !peer.ip().is_loopback() {
        tracing::warn!(%peer, "refused /quitquitquit from a peer that is not on loopback");
        return text(
            StatusCode::FORBIDDEN,
            "only from loopback addresses\n".into(),
        );
    }
    tracing::info!(%peer, "shutdown requested through /quitquitquit");
    health.request_quit();
    text(StatusCode::OK, "shutting down\n".into())
}

fn probe(state: Result<(), String>) -> Response<Full<Bytes>> {
    match state {
        Ok(()) => text(StatusCode::OK, "ok\n".into()),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

trait WithAllow {
    fn with_allow(self, methods: &'static str) -> Self;
}

impl WithAllow for Response<Full<Bytes>> {
    fn with_allow(mut self, methods: &'static str) -> Self {
        self.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(methods));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{Credential, CredentialFeed};
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::time::Duration;

    fn loopback() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    async fn call(health: &Health, method: Method, path: &str) -> (StatusCode, String) {
        call_from(health, method, path, loopback()).await
    }

    async fn call_from(
        health: &Health,
        method: Method,
        path: &str,
        peer: SocketAddr,
    ) -> (StatusCode, String) {
        let response = respond(health, &method, path, peer);
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn started() -> Arc<Health> {
        let health = Health::new(CredentialFeed::fixed(Credential::none()));
        health.set_listening();
        health
    }

    #[tokio::test]
    async fn probes_metrics_and_unknown_paths() {
        let health = started();
        assert_eq!(
            call(&health, Method::GET, "/livez").await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(
            call(&health, Method::GET, "/startupz").await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&health, Method::GET, "/readyz").await.0,
            StatusCode::OK
        );
        let (status, body) = call(&health, Method::GET, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("redauth_commands_total"), "{body}");
        assert_eq!(
            call(&health, Method::GET, "/nope").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&health, Method::POST, "/readyz").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        health.begin_draining();
        assert_eq!(
            call(&health, Method::GET, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
        );
        assert_eq!(call(&health, Method::GET, "/livez").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn quitquitquit_is_a_loopback_post() {
        let health = started();
        let response = respond(&health, &Method::GET, "/quitquitquit", loopback());
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "POST");
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert_eq!(
            call_from(&health, Method::POST, "/quitquitquit", remote)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        let not_yet = tokio::time::timeout(Duration::from_millis(20), health.quit_requested());
        assert!(not_yet.await.is_err(), "refused requests stop nothing");
        assert_eq!(
            call(&health, Method::POST, "/quitquitquit").await.0,
            StatusCode::OK
        );
        tokio::time::timeout(Duration::from_secs(5), health.quit_requested())
            .await
            .expect("a shutdown was requested");
    }
}
