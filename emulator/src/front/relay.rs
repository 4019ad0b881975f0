//! One front connection: TLS handshake, backend dial, then both directions
//! relayed concurrently in one task until either side leaves or the token
//! deadline passes.
//!
//! The request pump sends each command's [`Expect`] record over a channel
//! before writing the command, so a reply never arrives ahead of its record.
//! When it sends a reply the front makes itself ([`Expect::Local`]) it also
//! wakes the reply pump, which may have no backend bytes coming to wake it.
//! Both pumps report successful AUTHs on a `watch` channel holding the
//! deadline, which the connection's select loop sleeps on.

use super::replies::ReplyTracker;
use super::requests::{AuthEvent, RequestScanner};
use super::{Expect, ExpiredClose, Shared};
use crate::issuer::rfc3339;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

/// Bound on the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Bound on dialing the backend.
const DIAL: Duration = Duration::from_secs(5);

/// Bound on the TLS close after an expiry.
const CLOSE: Duration = Duration::from_millis(200);

const READ_CHUNK: usize = 16 * 1024;

/// What one connection did, for the report when it is closed for an
/// expired token: enough to tell which kind of client let its token lapse.
/// Holds command names and times, never an argument.
#[derive(Debug)]
struct Seen {
    opened: Instant,
    commands: u64,
    last_name: Vec<u8>,
    last_command: Option<Instant>,
    /// The last AUTH (or HELLO … AUTH) forwarded with a verified token.
    auth_sent: Option<Instant>,
    auth_sent_wall: Option<SystemTime>,
    auth_sent_count: u32,
    /// The last AUTH the backend confirmed.
    auth_ok: Option<Instant>,
    auth_ok_count: u32,
    replies: Option<Instant>,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            opened: Instant::now(),
            commands: 0,
            last_name: Vec::new(),
            last_command: None,
            auth_sent: None,
            auth_sent_wall: None,
            auth_sent_count: 0,
            auth_ok: None,
            auth_ok_count: 0,
            replies: None,
        }
    }

    /// The close, with what the connection did.
    fn close(
        &self,
        peer: SocketAddr,
        expired_at: SystemTime,
        shared: &Shared,
        scanner: &RequestScanner,
        tracker: &ReplyTracker,
    ) -> ExpiredClose {
        ExpiredClose {
            peer,
            expired_at,
            kind: shared.gate.deadline_kind(),
            auth_sent_at: self.auth_sent_wall,
            owed_before_auth: tracker.owed_before_auth(),
            report: self.report(scanner, tracker),
        }
    }

    /// One line: the connection's age and how long ago each thing happened.
    fn report(&self, scanner: &RequestScanner, tracker: &ReplyTracker) -> String {
        let now = Instant::now();
        let ago = |at: Option<Instant>| match at {
            Some(at) => format!("{:.1}s ago", (now - at).as_secs_f64()),
            None => "never".to_owned(),
        };
        let state = scanner.describe();
        format!(
            "open {:.1}s; {} commands, the last {} {}; {} verified AUTHs sent, the last {}; \
             {} confirmed, the last {}; last reply {}; {}{}{}",
            (now - self.opened).as_secs_f64(),
            self.commands,
            String::from_utf8_lossy(&self.last_name),
            ago(self.last_command),
            self.auth_sent_count,
            ago(self.auth_sent),
            self.auth_ok_count,
            ago(self.auth_ok),
            ago(self.replies),
            tracker.describe(),
            if state.is_empty() { "" } else { "; " },
            state,
        )
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    ClientClosed,
    BackendClosed,
    /// The token of the last successful AUTH expired at this time.
    Expired(SystemTime),
    /// A read or write failed (a client that vanished, usually).
    Io(String),
    /// Something no well-behaved peer does.
    Failed(String),
}

/// An I/O failure, doing `what`. A client that closes without a TLS
/// close_notify (redis-cli does) simply closed.
fn io_ended(what: &str, e: std::io::Error) -> Ended {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Ended::ClientClosed,
        _ => Ended::Io(format!("{what}: {e}")),
    }
}

/// Serves one accepted connection to its end. Never panics on bad input.
pub(super) async fn serve(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let client = match tokio::time::timeout(HANDSHAKE, shared.acceptor.accept(tcp)).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => return tracing::debug!(%peer, %error, "front: TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "front: TLS handshake timed out"),
    };
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let backend = match tokio::time::timeout(DIAL, TcpStream::connect(shared.backend)).await {
        Ok(Ok(backend)) => backend,
        Ok(Err(error)) => {
            return tracing::warn!(%peer, %error, backend = %shared.backend, "front: dialing the backend failed")
        }
        Err(_) => {
            return tracing::warn!(%peer, backend = %shared.backend, "front: dialing the backend timed out")
        }
    };
    let _ = backend.set_nodelay(true);
    tracing::debug!(%peer, "front: connection open");
    match relay(client, backend, peer, &shared).await {
        (Ended::Expired(_), Some(close)) => {
            shared
                .counters
                .expired_closes
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!("front: {close}");
            shared.counters.remember_expired(close);
        }
        (Ended::Failed(error), _) => tracing::info!(%peer, %error, "front: connection failed"),
        (Ended::Io(error), _) => tracing::debug!(%peer, %error, "front: connection ended"),
        (ended, _) => tracing::debug!(%peer, ?ended, "front: connection closed"),
    }
}

/// Relays until the connection ends: why, and (for an expiry) the report.
async fn relay<C>(
    client: C,
    backend: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> (Ended, Option<ExpiredClose>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut backend_read, mut backend_write) = backend.into_split();
    let (records_tx, mut records_rx) = mpsc::unbounded_channel();
    let (deadline_tx, mut deadline_rx) = watch::channel(None::<SystemTime>);
    let mut scanner = RequestScanner::default();
    let mut tracker = ReplyTracker::default();
    let sent = std::sync::Mutex::new(Seen::new());
    let local_replies = Notify::new();
    let ended = {
        let requests = pump_requests(
            &mut client_read,
            &mut backend_write,
            records_tx,
            Pump {
                deadline: &deadline_tx,
                shared,
                peer,
                seen: &sent,
                local_replies: &local_replies,
            },
            &mut scanner,
        );
        let replies = pump_replies(
            &mut backend_read,
            &mut client_write,
            &mut records_rx,
            Pump {
                deadline: &deadline_tx,
                shared,
                peer,
                seen: &sent,
                local_replies: &local_replies,
            },
            &mut tracker,
        );
        tokio::pin!(requests, replies);
        let mut requests_done = false;
        loop {
            let deadline = *deadline_rx.borrow_and_update();
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(instant_of(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = &mut requests, if !requests_done => match ended {
                    // The client finished sending; its replies are still owed.
                    None => requests_done = true,
                    Some(ended) => break ended,
                },
                ended = &mut replies => break match ended {
                    Ended::BackendClosed if requests_done => Ended::ClientClosed,
                    ended => ended,
                },
                _ = deadline_rx.changed() => {}
                () = expiry => break Ended::Expired(deadline.unwrap_or(SystemTime::UNIX_EPOCH)),
            }
        }
    };
    // Close the client side with a TLS close_notify where it still works.
    if !matches!(ended, Ended::Io(_)) {
        let _ = tokio::time::timeout(CLOSE, client_write.shutdown()).await;
    }
    let close = match ended {
        Ended::Expired(at) => {
            // Commands sent but not yet read back by the reply side are owed too.
            while let Ok(record) = records_rx.try_recv() {
                tracker.push(record);
            }
            let seen = sent.lock().unwrap_or_else(|e| e.into_inner());
            Some(seen.close(peer, at, shared, &scanner, &tracker))
        }
        _ => None,
    };
    (ended, close)
}

/// What both pumps share.
struct Pump<'a> {
    deadline: &'a watch::Sender<Option<SystemTime>>,
    shared: &'a Shared,
    peer: SocketAddr,
    seen: &'a std::sync::Mutex<Seen>,
    /// Signalled when a record for a reply the front makes itself was sent.
    local_replies: &'a Notify,
}

impl Pump<'_> {
    fn seen(&self, note: impl FnOnce(&mut Seen)) {
        note(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The tokio instant at which the wall-clock time `at` comes.
fn instant_of(at: SystemTime) -> tokio::time::Instant {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::Instant::now() + left
}

/// Client → backend. `None` when the client closed its side cleanly (the
/// backend's write side is then shut down too).
async fn pump_requests<R, W>(
    client: &mut R,
    backend: &mut W,
    records: mpsc::UnboundedSender<Expect>,
    pump: Pump<'_>,
    scanner: &mut RequestScanner,
) -> Option<Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Pump {
        deadline,
        shared,
        peer,
        ..
    } = pump;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        match client.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = backend.shutdown().await;
                return None;
            }
            Ok(_) => {}
            Err(e) => return Some(io_ended("reading from the client", e)),
        }
        let output = match scanner.process(&mut buf, &shared.gate, SystemTime::now()) {
            Ok(output) => output,
            Err(e) => return Some(Ended::Failed(e.to_string())),
        };
        if output.commands > 0 {
            pump.seen(|seen| {
                let now = Instant::now();
                seen.commands += u64::from(output.commands);
                seen.last_command = Some(now);
                if let Some(name) = &output.last_name {
                    seen.last_name.clone_from(name);
                }
                if output.auth_sent {
                    seen.auth_sent = Some(now);
                    seen.auth_sent_wall = Some(SystemTime::now());
                    seen.auth_sent_count += 1;
                }
            });
        }
        if output.verified > 0 {
            shared
                .counters
                .tokens_verified
                .fetch_add(u64::from(output.verified), Ordering::Relaxed);
        }
        for event in output.events {
            match event {
                AuthEvent::Refused(refusal) => {
                    shared
                        .counters
                        .auth_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, reason = %refusal, "front: refused a token");
                }
                AuthEvent::RefusedInMulti => {
                    shared
                        .counters
                        .auth_refused_in_multi
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, "front: refused an AUTH inside MULTI");
                }
                AuthEvent::RateLimited => {
                    shared
                        .counters
                        .auth_rate_limited
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, "front: refused an AUTH over the rate limit");
                }
                AuthEvent::AcceptedUntracked(expires_at) => {
                    shared.counters.auth_ok.fetch_add(1, Ordering::Relaxed);
                    deadline.send_replace(shared.gate.deadline(expires_at));
                    tracing::debug!(
                        %peer,
                        expires_at = %rfc3339(expires_at),
                        "front: token accepted without waiting for its reply (replies are untracked)"
                    );
                }
            }
        }
        for record in output.records {
            // The reply side only goes away when the connection does.
            let _ = records.send(record);
        }
        if output.local_reply {
            pump.local_replies.notify_one();
        }
        if let Err(e) = backend.write_all(&output.bytes).await {
            return Some(Ended::Io(format!("writing to the backend: {e}")));
        }
    }
}

/// Backend → client.
async fn pump_replies<R, W>(
    backend: &mut R,
    client: &mut W,
    records: &mut mpsc::UnboundedReceiver<Expect>,
    pump: Pump<'_>,
    tracker: &mut ReplyTracker,
) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Pump {
        deadline,
        shared,
        peer,
        local_replies,
        ..
    } = pump;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        // Reading is cancel safe: when a local reply wins, nothing was read.
        let from_backend = tokio::select! {
            read = backend.read_buf(&mut buf) => match read {
                Ok(0) => return Ended::BackendClosed,
                Ok(_) => true,
                Err(e) => return Ended::Io(format!("reading from the backend: {e}")),
            },
            () = local_replies.notified() => false,
        };
        while let Ok(record) = records.try_recv() {
            tracker.push(record);
        }
        let mut out = BytesMut::new();
        let succeeded = match tracker.process(&mut buf, &mut out) {
            Ok(succeeded) => succeeded,
            Err(e) => return Ended::Failed(format!("the backend sent invalid RESP: {e}")),
        };
        if !from_backend && out.is_empty() {
            continue;
        }
        pump.seen(|seen| {
            seen.replies = Some(Instant::now());
            if !succeeded.is_empty() {
                seen.auth_ok = seen.replies;
                seen.auth_ok_count += succeeded.len() as u32;
            }
        });
        for expires_at in succeeded {
            shared.counters.auth_ok.fetch_add(1, Ordering::Relaxed);
            deadline.send_replace(shared.gate.deadline(expires_at));
            tracing::debug!(%peer, expires_at = %rfc3339(expires_at), "front: AUTH succeeded");
        }
        if let Err(e) = client.write_all(&out).await {
            return Ended::Io(format!("writing to the client: {e}"));
        }
        if let Err(e) = client.flush().await {
            return Ended::Io(format!("writing to the client: {e}"));
        }
    }
}
