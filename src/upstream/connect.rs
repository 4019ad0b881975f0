//! Dialing one authenticated upstream connection.

use super::auth;
use super::health::DialHealth;
use super::{Endpoint, UpstreamStream};
use crate::credentials::Credential;
use crate::metrics::{self, UpstreamError};
use crate::resp::ReplyScanner;
use bytes::BytesMut;
use rustls::pki_types::ServerName;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The step of connecting that failed; its text leads the client's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Dial,
    Tls,
    /// The server refused the credential (an error reply to AUTH).
    Auth,
    /// AUTH could not be exchanged: the connection was reset or closed, or
    /// the reply was unreadable. Not a verdict on the credential.
    AuthExchange,
    Timeout,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Dial => "upstream unreachable",
            Stage::Tls => "TLS handshake with upstream failed",
            Stage::Auth => "upstream rejected the credential",
            Stage::AuthExchange => "upstream connection failed during AUTH",
            Stage::Timeout => "upstream connection timed out",
        })
    }
}

/// A failed connection attempt: which step, to whom, and why. Never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage} ({addr}): {cause}")]
pub struct ConnectError {
    pub stage: Stage,
    pub addr: String,
    pub cause: String,
}

/// An authenticated upstream connection, with any bytes read past the AUTH reply.
#[derive(Debug)]
pub struct Upstream {
    pub stream: UpstreamStream,
    pub pending: BytesMut,
    /// When it last authenticated (dial or reset), for a connection-age
    /// limit ([`crate::credentials::ConnectionLimit::AfterAuth`]).
    pub authed_at: SystemTime,
}

/// Everything needed to open upstream connections; cheap to clone.
#[derive(Clone)]
pub struct Connector {
    endpoint: Arc<Endpoint>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    /// Every dial's outcome, shared by all clones (see [`super::health`]).
    health: Arc<DialHealth>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Connector {
    /// `tls` is the client configuration and the name to verify (SNI) when the
    /// endpoint speaks TLS.
    pub fn new(
        endpoint: Endpoint,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        timeout: Duration,
    ) -> Connector {
        Connector {
            endpoint: Arc::new(endpoint),
            tls: tls.map(|(config, name)| (TlsConnector::from(config), name)),
            timeout,
            health: DialHealth::new(),
        }
    }

    /// The same connector with a health record of its own: for dials that
    /// try something out (a new password) and must not sway readiness.
    pub fn detached(&self) -> Connector {
        Connector {
            health: DialHealth::new(),
            ..self.clone()
        }
    }

    /// Where this connector dials.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The bound on one dial, TLS handshake and AUTH (`--connect-timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The outcome of this connector's recent dials, for readiness.
    pub fn health(&self) -> &Arc<DialHealth> {
        &self.health
    }

    /// Dials, handshakes and authenticates, all within the connect timeout;
    /// counted in the connect-time and upstream-error metrics and recorded in
    /// [`Connector::health`].
    pub async fn connect(&self, credential: &Credential) -> Result<Upstream, ConnectError> {
        let started = std::time::Instant::now();
        let result = self.connect_timed(credential).await;
        self.health.record(result.as_ref().map(|_| ()));
        match &result {
            Ok(_) => metrics::upstream_connected(started.elapsed()),
            Err(e) => metrics::upstream_error(match e.stage {
                Stage::Dial => UpstreamError::Connect,
                Stage::Tls => UpstreamError::Tls,
                Stage::Auth => UpstreamError::Auth,
                Stage::AuthExchange => UpstreamError::Io,
                Stage::Timeout => UpstreamError::Timeout,
            }),
        }
        result
    }

    async fn connect_timed(&self, credential: &Credential) -> Result<Upstream, ConnectError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        match tokio::time::timeout(self.timeout, self.connect_inner(credential, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(self.error(
                Stage::Timeout,
                format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ),
            )),
        }
    }

    fn error(&self, stage: Stage, cause: impl ToString) -> ConnectError {
        ConnectError {
            stage,
            addr: self.endpoint.to_string(),
            cause: cause.to_string(),
        }
    }

    async fn connect_inner(
        &self,
        credential: &Credential,
        deadline: tokio::time::Instant,
    ) -> Result<Upstream, ConnectError> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|e| self.error(Stage::Dial, e))?;
        tcp.set_nodelay(true)
            .map_err(|e| self.error(Stage::Dial, e))?;
        let mut stream = match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| self.error(Stage::Tls, e))?;
                let kind = tls.get_ref().1.handshake_kind();
                tracing::trace!(handshake = ?kind, "upstream TLS established");
                UpstreamStream::Tls(Box::new(tls))
            }
            None => UpstreamStream::Plain(tcp),
        };
        let mut pending = BytesMut::with_capacity(1024);
        if let Some(auth) = auth::command(credential) {
            self.authenticate(&mut stream, &mut pending, &auth, deadline)
                .await?;
        }
        Ok(Upstream {
            stream,
            pending,
            authed_at: SystemTime::now(),
        })
    }
}

impl Connector {
    /// Sends `auth` and judges the reply. A transient refusal
    /// ([`auth::Refused::transient`]: the IAM service busy or rate-limiting)
    /// is tried again on the same connection after a growing pause, while
    /// the pause still ends before `deadline`; then it is the refusal.
    async fn authenticate(
        &self,
        stream: &mut UpstreamStream,
        pending: &mut BytesMut,
        auth: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<(), ConnectError> {
        let mut pause = AUTH_RETRY_FIRST;
        let mut tries = 1u32;
        loop {
            let sent = match stream.write_all(auth).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            sent.map_err(|e| self.error(Stage::AuthExchange, format!("sending AUTH: {e}")))?;
            let reply = read_reply(stream, pending).await.map_err(|e| {
                self.error(
                    Stage::AuthExchange,
                    format!("waiting for the AUTH reply: {e}"),
                )
            })?;
            let refused = match auth::judge(&reply) {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            };
            let jittered = pause.mul_f64(0.5 + 0.5 * rand::random::<f64>());
            if !refused.transient() || tokio::time::Instant::now() + jittered >= deadline {
                let cause = match tries {
                    1 => refused.to_string(),
                    n => format!("{refused} (after {n} tries)"),
                };
                return Err(self.error(Stage::Auth, cause));
            }
            tracing::debug!(reply = %refused, retry_in = ?jittered, "the upstream is busy authenticating; trying the AUTH again");
            tokio::time::sleep(jittered).await;
            pause = (pause * 2).min(AUTH_RETRY_CAP);
            tries += 1;
        }
    }
}

/// The first pause before an AUTH refused as transient is tried again on a
/// new connection; it doubles up to [`AUTH_RETRY_CAP`].
const AUTH_RETRY_FIRST: Duration = Duration::from_millis(200);
const AUTH_RETRY_CAP: Duration = Duration::from_secs(2);

/// Reads one whole reply frame, leaving any later bytes in `buf`.
pub(crate) async fn read_reply(
    stream: &mut UpstreamStream,
    buf: &mut BytesMut,
) -> Result<BytesMut, String> {
    read_reply_within(stream, buf, 64 * 1024).await
}

/// [`read_reply`] for replies of up to `limit` bytes (a large cluster's
/// topology runs to hundreds of KiB).
pub async fn read_reply_within(
    stream: &mut UpstreamStream,
    buf: &mut BytesMut,
    limit: usize,
) -> Result<BytesMut, String> {
    let mut scanner = ReplyScanner::default();
    let mut scanned = 0;
    loop {
        let progress = scanner
            .advance(&buf[scanned..])
            .map_err(|e| format!("bad reply: {e}"))?;
        scanned += progress.consumed;
        if progress.done {
            return Ok(buf.split_to(scanned));
        }
        if buf.len() > limit {
            return Err(format!("reply longer than {limit} bytes"));
        }
        match stream.read_buf(buf).await {
            Ok(0) => return Err("connection closed before a reply".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading reply: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_during_auth_is_not_called_a_rejection() {
        let lost = ConnectError {
            stage: Stage::AuthExchange,
            addr: "cache.example:6380".into(),
            cause: "waiting for the AUTH reply: reading reply: Connection reset by peer".into(),
        };
        let text = lost.to_string();
        assert!(text.starts_with("upstream connection failed during AUTH (cache.example:6380)"));
        assert!(!text.contains("rejected"), "{text}");
        let refused = ConnectError {
            stage: Stage::Auth,
            ..lost
        };
        assert!(refused
            .to_string()
            .starts_with("upstream rejected the credential"));
    }

    /// A server that answers each AUTH with the next of `replies` (the last
    /// repeats) and counts them.
    async fn answering(replies: Vec<&'static str>) -> (u16, Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicU32::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (replies, seen) = (replies.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    loop {
                        match tcp.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        // One AUTH per read is enough for this test's client.
                        while let Some(end) = memchr::memmem::find(&buf, b"AUTH") {
                            let _ = buf.split_to(end + 4);
                            let n = seen.fetch_add(1, Ordering::SeqCst) as usize;
                            let reply = replies[n.min(replies.len() - 1)];
                            if tcp.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, count)
    }

    fn connector(port: u16, timeout: Duration) -> Connector {
        let endpoint = Endpoint::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
        Connector::new(endpoint, None, timeout)
    }

    fn token() -> Credential {
        Credential::password(
            Some("u".into()),
            crate::credentials::Secret::new("t".into()),
        )
    }

    const BUSY: &str = "-ERR Exceeded limit of IAM Authentication requests\r\n";

    #[tokio::test]
    async fn an_auth_refused_as_transient_is_tried_again_on_the_same_connection() {
        let (port, auths) = answering(vec![BUSY, BUSY, "+OK\r\n"]).await;
        let upstream = connector(port, Duration::from_secs(10))
            .connect(&token())
            .await
            .expect("the third AUTH is accepted");
        drop(upstream);
        assert_eq!(auths.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_transient_refusal_that_outlasts_the_timeout_is_the_refusal() {
        let (port, auths) = answering(vec![BUSY]).await;
        let started = std::time::Instant::now();
        let e = connector(port, Duration::from_secs(1))
            .connect(&token())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(1100));
        assert_eq!(e.stage, Stage::Auth, "{e}");
        assert!(e.cause.contains("Exceeded limit"), "{e}");
        assert!(e.cause.contains("tries)"), "{e}");
        assert!(auths.load(std::sync::atomic::Ordering::SeqCst) >= 2);
        assert!(
            !super::super::health::credential_refused(&e),
            "not a verdict on the credential"
        );
    }

    #[tokio::test]
    async fn a_wrong_credential_is_not_tried_again() {
        let (port, auths) = answering(vec!["-WRONGPASS invalid username-password pair\r\n"]).await;
        let e = connector(port, Duration::from_secs(5))
            .connect(&token())
            .await
            .unwrap_err();
        assert_eq!(e.stage, Stage::Auth);
        assert_eq!(auths.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
