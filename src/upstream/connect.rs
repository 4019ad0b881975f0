//! Dialing one authenticated upstream connection.

use super::auth;
use super::health::DialHealth;
use super::{Endpoint, UpstreamStream};
use crate::credentials::{Credential, CredentialFeed, FeedState};
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
    /// The IAM service answered busy or rate-limited to every AUTH until the
    /// connect timeout ([`auth::Refused::transient`]). Not a verdict on the
    /// credential.
    AuthBusy,
    Timeout,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Dial => "upstream unreachable",
            Stage::Tls => "TLS handshake with upstream failed",
            Stage::Auth => "upstream rejected the credential",
            Stage::AuthExchange => "upstream connection failed during AUTH",
            Stage::AuthBusy => "upstream's authentication service stayed busy",
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
        let (upstream, _) = self.connect_with(credential, None).await?;
        Ok(upstream)
    }

    /// [`Connector::connect`] with `credential`, taken from `feed`: while the
    /// IAM service keeps answering busy ([`auth::Refused::transient`]), each
    /// new try authenticates with the feed's newest credential, so a token
    /// that expires during the wait is never the one sent. Returns the
    /// credential the connection authenticated with.
    pub async fn connect_from(
        &self,
        credential: Arc<Credential>,
        feed: &CredentialFeed,
    ) -> Result<(Upstream, Arc<Credential>), ConnectError> {
        let (upstream, newer) = self.connect_with(&credential, Some(feed)).await?;
        Ok((upstream, newer.unwrap_or(credential)))
    }

    async fn connect_with(
        &self,
        credential: &Credential,
        feed: Option<&CredentialFeed>,
    ) -> Result<(Upstream, Option<Arc<Credential>>), ConnectError> {
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let attempt = self.connect_inner(credential, feed, deadline);
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.error(
                Stage::Timeout,
                format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ),
            )),
        };
        self.health.record(result.as_ref().map(|_| ()));
        match &result {
            Ok(_) => metrics::upstream_connected(started.elapsed()),
            Err(e) => metrics::upstream_error(match e.stage {
                Stage::Dial => UpstreamError::Connect,
                Stage::Tls => UpstreamError::Tls,
                Stage::Auth => UpstreamError::Auth,
                Stage::AuthExchange => UpstreamError::Io,
                Stage::AuthBusy => UpstreamError::Auth,
                Stage::Timeout => UpstreamError::Timeout,
            }),
        }
        result
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
        feed: Option<&CredentialFeed>,
        deadline: tokio::time::Instant,
    ) -> Result<(Upstream, Option<Arc<Credential>>), ConnectError> {
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
        let mut newer = None;
        if auth::command(credential).is_some() {
            newer = self
                .authenticate(&mut stream, &mut pending, credential, feed, deadline)
                .await?;
        }
        let upstream = Upstream {
            stream,
            pending,
            authed_at: SystemTime::now(),
        };
        Ok((upstream, newer))
    }
}

impl Connector {
    /// Sends `credential`'s AUTH and judges the reply. A transient refusal
    /// ([`auth::Refused::transient`]: the IAM service busy or rate-limiting)
    /// is tried again on the same connection after a growing pause, while
    /// the pause still ends before `deadline`; then it is the refusal. Each
    /// new try uses `feed`'s newest credential if it has one other than the
    /// last sent, which is then returned.
    async fn authenticate(
        &self,
        stream: &mut UpstreamStream,
        pending: &mut BytesMut,
        credential: &Credential,
        feed: Option<&CredentialFeed>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Arc<Credential>>, ConnectError> {
        let mut newer: Option<Arc<Credential>> = None;
        let mut pause = AUTH_RETRY_FIRST;
        let mut tries = 1u32;
        loop {
            let sending = newer.as_deref().unwrap_or(credential);
            let auth = auth::command(sending).expect("a credential with a secret");
            let sent = match stream.write_all(&auth).await {
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
                Ok(()) => return Ok(newer),
                Err(refused) => refused,
            };
            let jittered = pause.mul_f64(0.5 + 0.5 * rand::random::<f64>());
            if !refused.transient() {
                return Err(self.error(Stage::Auth, refused));
            }
            if tokio::time::Instant::now() + jittered >= deadline {
                let cause = format!("{refused} (after {tries} tries)");
                return Err(self.error(Stage::AuthBusy, cause));
            }
            tracing::debug!(reply = %refused, retry_in = ?jittered, "the upstream is busy authenticating; trying the AUTH again");
            tokio::time::sleep(jittered).await;
            if let Some(FeedState::Ready(latest)) = feed.map(CredentialFeed::snapshot) {
                let last = newer.as_deref().unwrap_or(credential);
                if !std::ptr::eq(&*latest, last) && latest.secret.is_some() {
                    newer = Some(latest);
                }
            }
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
        assert_eq!(e.stage, Stage::AuthBusy, "{e}");
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

    #[tokio::test]
    async fn a_busy_auth_is_tried_again_with_the_feeds_newer_token() {
        use crate::credentials::{CredentialFeed, FeedState, Secret};
        // Busy for every AUTH with the old token: only the new one gets in.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            while tcp.read_buf(&mut buf).await.is_ok_and(|n| n > 0) {
                if memchr::memmem::find(&buf, b"new-token").is_some() {
                    tcp.write_all(b"+OK\r\n").await.unwrap();
                } else if memchr::memmem::find(&buf, b"old-token").is_some() {
                    tcp.write_all(BUSY.as_bytes()).await.unwrap();
                } else {
                    continue;
                }
                buf.clear();
            }
        });
        let token = |t: &str| Arc::new(Credential::password(None, Secret::new(t.into())));
        let old = token("old-token");
        let (tx, rx) = tokio::sync::watch::channel(FeedState::Ready(old.clone()));
        let feed = CredentialFeed::from_channel(rx);
        let connector = connector(port, Duration::from_secs(10));
        let dial = tokio::spawn(async move { connector.connect_from(old, &feed).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(FeedState::Ready(token("new-token"))).unwrap();
        let (_upstream, used) = dial.await.unwrap().expect("the new token is admitted");
        assert_eq!(used.secret.as_ref().unwrap().expose(), "new-token");
    }
}
