//! One client connection: dial an authenticated upstream, then relay both ways.
//!
//! The request side reads client commands, answers the ones redauth
//! intercepts (AUTH, QUIT, the AUTH part of HELLO), re-authenticates when a
//! newer credential is due and after RESET, and forwards the rest verbatim.
//! The reply side relays server output, consuming replies to the commands
//! redauth sent itself and putting local replies in their place. The two run
//! concurrently in one task and share only an ordered queue of [`Expect`]
//! records (and, back, how a sliced blocking command's slices ended).
//!
//! # Where things are
//!
//! - request side: [`requests`] (the wire loop, command boundaries, the fast
//!   path for ordinary commands), [`dispatch`] (where a command's kind decides
//!   what happens to it), [`local`] (the commands redauth answers itself),
//!   [`outbox`] (bytes for the upstream and their records);
//! - the upstream connection's protocol state, without I/O: [`state`]
//!   (`Sent`, as the commands leave it; `Answered`, as the replies show it);
//! - re-authentication: [`reauth`] (`Reauth::take_if_safe` decides when);
//!   blocking commands across token expiry: [`blocking`] (which commands,
//!   their timeouts), [`slicer`] (the held command's slices);
//! - reply side: [`replies`] (frames and their roles), [`consumed`] (replies
//!   to redauth's own commands), [`resp2`] (RESP3 pushes reshaped for a RESP2
//!   client), [`delivery`] (a client slow to read);
//! - [`gate`]: the local client password; [`closing`]: ending connections
//!   without losing what is on its way;
//! - `harness` (feature `harness`): the pumps over in-memory streams, for
//!   fuzzing and tests.
//!
//! A session ends when the client leaves (once every whole command it sent
//! was forwarded and answered: a half-close is served like a close, see
//! [`Expect::InputEnded`]), the upstream drops (the client is then closed,
//! after every reply that came first: its server-side state cannot be
//! recreated), a QUIT or protocol error has been answered, or a write fails.
//! Connections are closed gracefully (see [`closing`]); an upstream connection
//! whose client left at a quiet moment goes back to the warm pool instead,
//! with what the client set that `RESET` keeps (see
//! [`crate::upstream::leftovers`]).

mod blocking;
mod closing;
mod consumed;
mod delivery;
mod dispatch;
mod expect;
mod gate;
#[cfg(feature = "harness")]
pub mod harness;
mod local;
mod outbox;
pub(crate) mod reauth;
mod replies;
mod requests;
mod resp2;
mod slicer;
mod state;

pub use expect::Expect;
use expect::{ExpectRx, ExpectTx};
pub(crate) use gate::authenticate;
pub use gate::ClientPassword;

use crate::cluster::Directory;
use crate::credentials::Credential;
use crate::resp::encode;
use crate::upstream::{Pool, Upstream};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Read buffer size of both pumps; also the chunk in which large
/// arguments and replies stream through.
const READ_CHUNK: usize = 16 * 1024;

/// What every session needs, the same on every relay thread.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Largest bulk argument accepted from clients (`proto-max-bulk-len`).
    pub max_bulk: u64,
    /// The password local clients must AUTH with (`--client-password-file`).
    pub client_password: ClientPassword,
    /// How long a client may leave its replies unread before it is closed.
    pub output_timeout: Duration,
    /// Close a client that has sent nothing for this long (`--idle-timeout`);
    /// `None` never does, like Redis's `timeout 0`.
    pub idle_timeout: Option<Duration>,
}

/// What a session needs: the settings, and its relay thread's share of the
/// warm pool, through which it gets its upstream connection.
#[derive(Debug)]
pub struct SessionContext {
    pub settings: SessionSettings,
    pub pool: Pool,
    /// In cluster mode, what node addresses in replies are rewritten through.
    pub rewriter: Option<Arc<Directory>>,
    /// In cluster mode on a node's port, that node's series.
    pub node: Option<crate::metrics::NodeMetrics>,
}

/// Moves the first `n` bytes of `buf` to the end of `out`: relaying without
/// copying, as `out` is normally the part of the same buffer just before them.
fn pass_on(buf: &mut BytesMut, out: &mut BytesMut, n: usize) {
    if n > 0 {
        out.unsplit(buf.split_to(n));
    }
}

/// Sleeps until `at`; never wakes for `None`. (A timer is made only when
/// this is polled with a deadline, not every time the pump goes round.)
pub(crate) async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a session whose client ended its input (or sent QUIT) was closed
/// before it was served.
const DRAIN_TIMED_OUT: &str =
    "the client's last replies were not all delivered within the output timeout";

/// Once the request side has stopped (QUIT or a protocol error answered,
/// the client's input ended, or writing upstream failed), lets the reply side
/// deliver what is owed within `limit`, and says how the session ended.
async fn finish(
    stop: requests::Stopped,
    reply_side: impl std::future::Future<Output = Ended>,
    limit: Duration,
) -> Ended {
    match (stop, tokio::time::timeout(limit, reply_side).await) {
        // The server may have closed after replies not yet relayed: they went
        // out first, as a direct connection would have received them.
        (requests::Stopped::UpstreamWriteFailed(why), Ok(Ended::UpstreamClosed) | Err(_)) => {
            Ended::Failed(why)
        }
        (_, Err(_)) => Ended::Closed(DRAIN_TIMED_OUT),
        // A half-close: every reply was delivered, then the close.
        (requests::Stopped::InputEnded, Ok(Ended::Closed(_))) => Ended::ClientClosed,
        (_, Ok(ended)) => ended,
    }
}

/// Why a session ended, for the log.
#[derive(Debug)]
pub enum Ended {
    ClientClosed,
    Closed(&'static str),
    UpstreamClosed,
    Failed(String),
}

/// Serves one client connection to the end.
pub async fn serve<C>(client: C, ctx: Arc<SessionContext>, peer: &str)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!(%peer, "client connected");
    if let Some(node) = &ctx.node {
        node.client_opened();
    }
    let ended = run(client, &ctx).await;
    if let Some(node) = &ctx.node {
        node.client_closed();
        if matches!(ended, Ended::UpstreamClosed) {
            node.upstream_error();
        }
    }
    match &ended {
        Ended::UpstreamClosed => {
            crate::metrics::upstream_error(crate::metrics::UpstreamError::Closed);
            tracing::info!(%peer, "the upstream closed the connection; its client was closed too");
        }
        Ended::Failed(why) => tracing::warn!(%peer, error = %why, "session failed"),
        other => tracing::debug!(%peer, reason = ?other, "client disconnected"),
    }
}

async fn run<C>(mut client: C, ctx: &SessionContext) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut early = BytesMut::new();
    // With a client password nothing is dialed until the client has given it.
    if let Some(password) = ctx.settings.client_password.current() {
        if let Err(ended) = gate::authenticate(&mut client, &password, &mut early).await {
            return ended;
        }
    }
    let (upstream, credential) = match ctx.pool.checkout().await {
        Ok(ok) => ok,
        Err(first) => {
            // In cluster mode a node that cannot be dialed may have left.
            if let Some(directory) = &ctx.rewriter {
                directory.refresh();
            }
            if let Some(node) = &ctx.node {
                node.upstream_error();
            }
            // Say why on the client's first command, as Redis would reply.
            if early.is_empty() {
                match client.read_buf(&mut early).await {
                    Ok(0) | Err(_) => return Ended::ClientClosed,
                    Ok(_) => {}
                }
            }
            // A failure from a while ago may be over: try once more.
            let retried = if first.at.elapsed() > Duration::from_secs(1) {
                ctx.pool.checkout().await
            } else {
                Err(first)
            };
            match retried {
                Ok(ok) => ok,
                Err(failure) => {
                    let reply = encode::error(&format!("ERR redauth: {}", failure.message));
                    let _ = client.write_all(&reply).await;
                    closing::linger(&mut client).await;
                    return Ended::Failed(failure.message);
                }
            }
        }
    };
    relay(client, upstream, credential, early, ctx).await
}

async fn relay<C>(
    mut client: C,
    upstream: Upstream,
    credential: Arc<Credential>,
    early: BytesMut,
    ctx: &SessionContext,
) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Upstream {
        stream,
        pending,
        authed_at,
    } = upstream;
    let (upstream_read, upstream_write) = tokio::io::split(stream);
    let (client_read, client_write) = tokio::io::split(&mut client);
    let (tx, rx) = expect::channel();
    let (slice_tx, slice_rx) = mpsc::unbounded_channel();
    let settings = &ctx.settings;
    // Once the upstream is known to be a single endpoint, nothing is rewritten.
    let rewriter = ctx.rewriter.clone().filter(|d| !d.single());
    let watch = ctx.pool.credentials().renewals_after(credential.clone());
    let mut requests = requests::RequestPump::new(
        client_read,
        upstream_write,
        (tx, slice_rx),
        early,
        (credential, authed_at),
        watch,
        requests::Policy {
            max_bulk: settings.max_bulk,
            idle_timeout: settings.idle_timeout,
            client_password: settings.client_password.clone(),
            rewrites: rewriter.is_some(),
        },
    );
    let mut replies = replies::ReplyPump::new(
        upstream_read,
        client_write,
        rx,
        slice_tx,
        pending,
        settings.output_timeout,
    )
    .rewriting_through(rewriter)
    .counting_for(ctx.node.clone());
    let ended = {
        let request_side = requests.run();
        let reply_side = replies.run();
        tokio::pin!(request_side, reply_side);
        tokio::select! {
            stop = &mut request_side => match stop {
                requests::Stopped::Ended(ended) => ended,
                // The reply side delivers what is owed, within the output timeout.
                stop => finish(stop, reply_side, settings.output_timeout).await,
            },
            ended = &mut reply_side => ended,
        }
    };
    // The client left with nothing in flight: its connection can serve
    // another, once what the client set is undone; otherwise it is closed.
    let quiet = matches!(ended, Ended::ClientClosed) && requests.quiet() && replies.quiet();
    let (write_half, leftovers) = requests.into_upstream();
    let stream = replies.into_upstream().unsplit(write_half);
    match leftovers.undo() {
        Ok(undo) if quiet => {
            let pending = BytesMut::new();
            // `authed_at` moves when the pool resets and authenticates it.
            ctx.pool.recycle(
                Upstream {
                    stream,
                    pending,
                    authed_at,
                },
                undo,
            );
        }
        Ok(_) => closing::close_upstream(stream).await,
        Err(command) => {
            tracing::debug!(%command, "the client ran a command RESET may not undo: its upstream connection is closed, not reused");
            closing::close_upstream(stream).await;
        }
    }
    if !matches!(ended, Ended::ClientClosed) {
        closing::linger(&mut client).await;
    }
    ended
}
