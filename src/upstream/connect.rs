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
        match tokio::time::timeout(self.timeout, self.connect_inner(credential)).await {
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

    async fn connect_inner(&self, credential: &Credential) -> Result<Upstream, ConnectError> {
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
            let sent = match stream.write_all(&auth).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            sent.map_err(|e| self.error(Stage::AuthExchange, format!("sending AUTH: {e}")))?;
            let reply = read_reply(&mut stream, &mut pending).await.map_err(|e| {
                self.error(
                    Stage::AuthExchange,
                    format!("waiting for the AUTH reply: {e}"),
                )
            })?;
            auth::judge(&reply).map_err(|refused| self.error(Stage::Auth, refused))?;
        }
        Ok(Upstream {
            stream,
            pending,
            authed_at: SystemTime::now(),
        })
    }
}

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
}
