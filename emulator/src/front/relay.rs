//! One front connection: TLS handshake, backend dial, then both directions
//! relayed concurrently in one task until either side leaves or the token
//! deadline passes.
//!
//! The request pump sends each command's [`Expect`] record over a channel
//! before writing the command, so a reply never arrives ahead of its record.
//! Both pumps report successful AUTHs on a `watch` channel holding the
//! deadline, which the connection's select loop sleeps on.

use super::replies::ReplyTracker;
use super::requests::{AuthEvent, RequestScanner};
use super::{Expect, Shared};
use crate::issuer::rfc3339;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Bound on the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Bound on dialing the backend.
const DIAL: Duration = Duration::from_secs(5);

/// Bound on the TLS close after an expiry.
const CLOSE: Duration = Duration::from_millis(200);

const READ_CHUNK: usize = 16 * 1024;

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
        Ended::Expired(at) => {
            shared
                .counters
                .expired_closes
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "front: closing connection {peer}: its token expired at {} with no fresh AUTH",
                rfc3339(at)
            );
        }
        Ended::Failed(error) => tracing::info!(%peer, %error, "front: connection failed"),
        Ended::Io(error) => tracing::debug!(%peer, %error, "front: connection ended"),
        ended => tracing::debug!(%peer, ?ended, "front: connection closed"),
    }
}

async fn relay<C>(client: C, backend: TcpStream, peer: SocketAddr, shared: &Shared) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut backend_read, mut backend_write) = backend.into_split();
    let (records_tx, records_rx) = mpsc::unbounded_channel();
    let (deadline_tx, mut deadline_rx) = watch::channel(None::<SystemTime>);
    let ended = {
        let requests = pump_requests(
            &mut client_read,
            &mut backend_write,
            records_tx,
            &deadline_tx,
            shared,
            peer,
        );
        let replies = pump_replies(
            &mut backend_read,
            &mut client_write,
            records_rx,
            &deadline_tx,
            shared,
            peer,
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
    ended
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
    deadline: &watch::Sender<Option<SystemTime>>,
    shared: &Shared,
    peer: SocketAddr,
) -> Option<Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = RequestScanner::default();
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
        for event in output.events {
            match event {
                AuthEvent::Refused(refusal) => {
                    shared
                        .counters
                        .auth_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, reason = %refusal, "front: refused a token");
                }
                AuthEvent::AcceptedUntracked(expires_at) => {
                    shared.counters.auth_ok.fetch_add(1, Ordering::Relaxed);
                    deadline.send_replace(Some(expires_at));
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
        if let Err(e) = backend.write_all(&output.bytes).await {
            return Some(Ended::Io(format!("writing to the backend: {e}")));
        }
    }
}

/// Backend → client.
async fn pump_replies<R, W>(
    backend: &mut R,
    client: &mut W,
    mut records: mpsc::UnboundedReceiver<Expect>,
    deadline: &watch::Sender<Option<SystemTime>>,
    shared: &Shared,
    peer: SocketAddr,
) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut tracker = ReplyTracker::default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        match backend.read_buf(&mut buf).await {
            Ok(0) => return Ended::BackendClosed,
            Ok(_) => {}
            Err(e) => return Ended::Io(format!("reading from the backend: {e}")),
        }
        while let Ok(record) = records.try_recv() {
            tracker.push(record);
        }
        let mut out = BytesMut::new();
        let succeeded = match tracker.process(&mut buf, &mut out) {
            Ok(succeeded) => succeeded,
            Err(e) => return Ended::Failed(format!("the backend sent invalid RESP: {e}")),
        };
        for expires_at in succeeded {
            shared.counters.auth_ok.fetch_add(1, Ordering::Relaxed);
            deadline.send_replace(Some(expires_at));
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
