//! The emulated cache endpoint: what Azure or AWS puts in front of Redis.
//!
//! [`Front`] is a TLS listener (TLS 1.2+, rustls with ring) before the plain
//! [`Backend`](super::backend::Backend). Each accepted connection gets its own
//! backend connection and one task relaying both ways; bytes pass untouched
//! except the tokens in `AUTH <user> <token>` and `HELLO <ver> AUTH <user>
//! <token>`: a token that verifies, has not expired and whose `oid` is
//! `<user>` becomes the backend user's password; any other token (and the
//! one-argument `AUTH <token>`) becomes a password that cannot work, so the
//! backend answers `WRONGPASS` itself, in order. Tokens are never forwarded
//! or logged. Which tokens are good is the [`Checker`]'s call: Entra ID
//! tokens from an [`Issuer`](crate::Issuer) (Azure) or SigV4-presigned IAM auth tokens
//! checked by an [`AwsVerifier`](crate::aws::AwsVerifier) (AWS).
//!
//! # Expiry
//!
//! Like Azure, the front closes a connection when the token of its last
//! *successful* AUTH expires with no newer successful AUTH ("front: closing
//! connection …: its token expired at … with no fresh AUTH"). Before the first
//! successful AUTH there is no deadline. Success means the backend answered
//! the AUTH with `+OK` (a HELLO with a map or array), not merely that the
//! token verified: RESP2 subscribed mode refuses AUTH, and MULTI queues it
//! (`+QUEUED`), and neither moves the deadline — not even when EXEC later
//! runs the queued AUTH. To know which reply answers which AUTH, the request
//! side ([`requests`]) records what each forwarded command expects and the
//! reply side ([`replies`]) matches backend frames to those records: pushes
//! and pub/sub messages are out of band, SUBSCRIBE-family commands are
//! answered by confirmations (or one error), every other command by one reply.
//!
//! # Limits
//!
//! Where replies cannot be counted — after `CLIENT REPLY …`, `MONITOR`,
//! `SYNC`/`PSYNC`, a SUBSCRIBE-family command inside MULTI, or a client
//! protocol error — the connection turns *untracked* for good: from then on
//! an AUTH whose token verifies moves the deadline at once (lenient; logged at
//! debug). RESET keeps the deadline (Azure's behaviour there is not known;
//! redauth re-authenticates after RESET anyway). An AUTH or HELLO over 1 MiB
//! ends the connection. This is a test double, not a proxy to put in front of
//! anything real.
//!
//! # AWS
//!
//! With [`Checker::Aws`] the deadline a successful AUTH sets is not the
//! token's expiry but the AUTH's time plus the cache's connection limit
//! (AWS's 12 hours, shortened for tests), and the close is reported as the
//! connection limit running out. An AUTH, or a HELLO with an AUTH option,
//! between MULTI and EXEC/DISCARD/RESET is answered by the front itself with
//! [`AUTH_IN_MULTI`] (`-ERR IAM authentication is not allowed inside
//! MULTI`), in its place among the replies, and never reaches the backend:
//! the transaction goes on without it, and EXEC runs what was queued. A
//! MULTI counts as entered when it is sent, even if the backend refuses it
//! (`-NOAUTH` before any AUTH), and once a connection is untracked such an
//! AUTH is forwarded as usual (the backend queues it).
//!
//! # GCP
//!
//! With [`Checker::Gcp`] the one-argument `AUTH <token>` is accepted too
//! (as the user `default`, the only one Memorystore IAM authentication
//! takes), and a successful AUTH sets no deadline: as on Memorystore, an
//! authenticated connection outlives its token. Each front admits at most
//! the verifier's rate of verified AUTHs a second; an AUTH over it is
//! answered by the front with [`IAM_RATE_LIMITED`], in its place, and never
//! reaches the backend (not inside MULTI, nor once untracked: there the
//! limit is not applied).

mod gate;
mod relay;
mod replies;
mod requests;

use super::random;
use bytes::Bytes;
use gate::Gate;
pub use gate::{Checker, DeadlineKind, AUTH_IN_MULTI, IAM_RATE_LIMITED};
use redauth::resp::command::SubscribeKind;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What the reply to one forwarded command means, in command order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// One in-band reply; nothing to learn from it.
    Reply,
    /// `AUTH` with a good token: `+OK` moves the deadline to `expires_at`.
    Auth { expires_at: SystemTime },
    /// `HELLO`: a map (RESP3) or array (RESP2) reply is success, sets the
    /// protocol, and moves the deadline if it carried a good token.
    Hello { auth: Option<SystemTime> },
    /// `RESET`: `+RESET` means RESP2 and no subscriptions.
    Reset,
    /// A SUBSCRIBE-family command naming `channels` channels (0: "all").
    Subscribe { kind: SubscribeKind, channels: u32 },
    /// Replies can no longer be matched from here on.
    Untracked,
    /// No command was forwarded: the front answers with these bytes once
    /// every reply before it has been relayed.
    Local(Bytes),
}

/// What [`Front::start`] needs.
#[derive(Clone)]
pub struct FrontConfig {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Server certificate chain, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The plain backend's address.
    pub backend: SocketAddr,
    /// The backend password of the user named after the identity (the
    /// Entra oid, the AWS user id).
    pub backend_password: String,
    /// Verifies the tokens clients present.
    pub checker: Checker,
}

impl std::fmt::Debug for FrontConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontConfig")
            .field("listen", &self.listen)
            .field("backend", &self.backend)
            .field("checker", &self.checker)
            .finish_non_exhaustive()
    }
}

/// Counts kept by the front, all connections together.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    auth_ok: AtomicU64,
    auth_rejected: AtomicU64,
    tokens_verified: AtomicU64,
    auth_refused_in_multi: AtomicU64,
    auth_rate_limited: AtomicU64,
    expired_closes: AtomicU64,
    /// The first [`REPORTS_KEPT`] expiry closes.
    expired_reports: std::sync::Mutex<Vec<ExpiredClose>>,
}

/// A connection the front closed because its deadline passed (its token
/// expired, or AWS's connection limit ran out): when, and what the
/// connection had done (command names and times, never an argument).
#[derive(Debug, Clone)]
pub struct ExpiredClose {
    pub peer: SocketAddr,
    /// When the token of its last confirmed AUTH expired (for AWS: when the
    /// connection limit counted from that AUTH ran out).
    pub expired_at: SystemTime,
    /// Which of the two `expired_at` is.
    pub kind: DeadlineKind,
    /// When it last sent an AUTH (or HELLO … AUTH) with a token that verified.
    pub auth_sent_at: Option<SystemTime>,
    /// Replies owed ahead of that AUTH if it was still unanswered.
    pub owed_before_auth: Option<usize>,
    /// The rest, in words.
    pub report: String,
}

impl ExpiredClose {
    /// Whether the client did its part: it sent a verified AUTH at least
    /// `ahead` before the expiry, and the server had not yet answered the
    /// commands in front of it (a server that paused the connection, as a
    /// manual failover pauses a primary's writers for up to 10 s).
    pub fn stalled_behind_server(&self, ahead: Duration) -> bool {
        let in_time = self
            .auth_sent_at
            .is_some_and(|sent| sent + ahead <= self.expired_at);
        in_time && self.owed_before_auth.is_some_and(|owed| owed > 0)
    }
}

impl std::fmt::Display for ExpiredClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            DeadlineKind::TokenExpiry => "its token expired",
            DeadlineKind::ConnectionLimit => "its connection limit ran out",
        };
        write!(
            f,
            "closing connection {}: {what} at {} with no fresh AUTH ({})",
            self.peer,
            crate::issuer::rfc3339(self.expired_at),
            self.report
        )
    }
}

/// How many expiry-close reports a front keeps.
const REPORTS_KEPT: usize = 32;

impl Counters {
    fn remember_expired(&self, close: ExpiredClose) {
        let mut reports = self
            .expired_reports
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if reports.len() < REPORTS_KEPT {
            reports.push(close);
        }
    }
}

/// A snapshot of the front's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontStats {
    /// Connections that completed the TLS handshake.
    pub connections: u64,
    /// AUTHs (or HELLO … AUTH) that succeeded and moved a deadline.
    pub auth_ok: u64,
    /// Tokens the front refused (invalid, expired, wrong user, no user).
    pub auth_rejected: u64,
    /// Tokens that passed the check (for AWS: whose SigV4 signature was
    /// recomputed and matched, and every field checked), whether or not the
    /// backend then accepted the AUTH.
    pub tokens_verified: u64,
    /// AUTHs (or HELLO … AUTH) inside MULTI the front answered with
    /// [`AUTH_IN_MULTI`] (AWS only); counted in neither of the above.
    pub auth_refused_in_multi: u64,
    /// AUTHs (or HELLO … AUTH) with a good token the front answered with
    /// [`IAM_RATE_LIMITED`] because its AUTH rate limit was reached (GCP
    /// only); counted in none of the above.
    pub auth_rate_limited: u64,
    /// Connections closed because their deadline passed without a fresh
    /// AUTH (the token's expiry, or AWS's connection limit).
    pub expired_closes: u64,
}

impl FrontStats {
    /// Adds another front's counts to these (a cluster's fronts together).
    pub fn add(&mut self, other: &FrontStats) {
        self.connections += other.connections;
        self.auth_ok += other.auth_ok;
        self.auth_rejected += other.auth_rejected;
        self.tokens_verified += other.tokens_verified;
        self.auth_refused_in_multi += other.auth_refused_in_multi;
        self.auth_rate_limited += other.auth_rate_limited;
        self.expired_closes += other.expired_closes;
    }
}

/// Everything a connection task needs.
struct Shared {
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    gate: Gate,
    counters: Counters,
}

/// A running TLS front.
pub struct Front {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("addr", &self.addr)
            .field("backend", &self.shared.backend)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Front {
    /// Builds the TLS configuration, binds the listener and starts accepting.
    pub async fn start(config: FrontConfig) -> io::Result<Front> {
        let tls = server_config(&config.cert_pem, &config.key_pem)?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("binding the front to {}: {e}", config.listen),
            )
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            acceptor: TlsAcceptor::from(tls),
            backend: config.backend,
            gate: Gate::new(
                config.checker,
                config.backend_password,
                format!("invalid-{}", random::secret()),
            ),
            counters: Counters::default(),
        });
        let serving = shared.clone();
        let task = tokio::spawn(super::serve_each(listener, "front", move |stream, peer| {
            relay::serve(stream, peer, serving.clone())
        }));
        Ok(Front { addr, shared, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters as they are now.
    pub fn stats(&self) -> FrontStats {
        let c = &self.shared.counters;
        FrontStats {
            connections: c.connections.load(Ordering::Relaxed),
            auth_ok: c.auth_ok.load(Ordering::Relaxed),
            auth_rejected: c.auth_rejected.load(Ordering::Relaxed),
            tokens_verified: c.tokens_verified.load(Ordering::Relaxed),
            auth_refused_in_multi: c.auth_refused_in_multi.load(Ordering::Relaxed),
            auth_rate_limited: c.auth_rate_limited.load(Ordering::Relaxed),
            expired_closes: c.expired_closes.load(Ordering::Relaxed),
        }
    }

    /// The first few connections closed for a passed deadline, with what
    /// each had done (also logged at info).
    pub fn expired_reports(&self) -> Vec<ExpiredClose> {
        let c = &self.shared.counters;
        c.expired_reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops accepting and closes every open connection.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rustls server configuration: TLS 1.3 and 1.2, ring, no client auth.
fn server_config(cert_pem: &str, key_pem: &str) -> io::Result<Arc<ServerConfig>> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the front's {what}: {e}"),
        )
    };
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate", &e))?;
    if certs.is_empty() {
        return Err(invalid("certificate", &"no PEM certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid("key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid("TLS configuration", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key", &e))?;
    Ok(Arc::new(config))
}
