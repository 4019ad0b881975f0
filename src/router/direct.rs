//! A leg's *direct* link: an authenticated upstream connection from the
//! node's warm pool that the router writes plain commands to and reads their
//! replies from itself, with no session in between.
//!
//! Most of what a routed client sends is plain: one command, one reply, no
//! state left on the connection (`GET`, `SET`, `HSET`, `INCR`, …). For those
//! the session core's work (parsing each command again, scanning each reply
//! again, the pipe between them) is done twice; a direct link does it once.
//! Anything else ([`fit`] says which) goes to a full session on the node
//! ([`super::legs`] hands the leg over once the direct link's replies are
//! in), which runs MULTI/WATCH, subscriptions, blocking commands and
//! `CLUSTER` replies as on a node's own port.
//!
//! Re-authentication is the session core's decision ([`Reauth`]), taken at
//! the one point that is always safe on a connection of plain commands:
//! when no reply is owed. Once a new credential is due, commands for the
//! node are held back until the replies before them are in; then the `AUTH`
//! goes out, with the held commands behind it, and its reply is the next
//! frame the node sends (consumed here, judged and reported as a session
//! does). The pause is one round trip, once per token.

use crate::credentials::{Credential, NextRenewal};
use crate::metrics::{self, NodeMetrics};
use crate::resp::command::CommandKind;
use crate::resp::{encode, frame, ReplyScanner};
use crate::session::reauth::{self, Reauth, When};
use crate::session::SessionContext;
use crate::upstream::{auth, CheckoutError, Upstream, UpstreamStream};
use bytes::{Buf, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// Where a command for a node can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// On the direct link: one reply, nothing left on the connection that
    /// the router does not set up again on a session.
    Direct,
    /// `ASKING`: wherever the command after it goes.
    Asking,
    /// Only on a session.
    Session,
}

/// Where `command` (one whole multibulk command) can run.
pub(super) fn fit(command: &[u8]) -> Fit {
    let Some((argc, name)) = name(command) else {
        return Fit::Session;
    };
    let is = |word: &[u8], s: &str| word.eq_ignore_ascii_case(s.as_bytes());
    match CommandKind::of(name) {
        CommandKind::Other => match name.len() {
            // Connection state a session must own (or set up again on a hand-over).
            5 if is(name, "watch") => Fit::Session,
            6 if is(name, "asking") => Fit::Asking,
            6 if is(name, "select") => Fit::Session,
            7 if is(name, "unwatch") => Fit::Session,
            8 if is(name, "readonly") => Fit::Session,
            9 if is(name, "readwrite") => Fit::Session,
            _ => Fit::Direct,
        },
        CommandKind::Ping => Fit::Direct,
        // The router's own `HELLO 3` (no AUTH, no SETNAME).
        CommandKind::Hello if argc <= 2 => Fit::Direct,
        // What RESET undoes, or only reads.
        CommandKind::Client => {
            let mut second: &[u8] = &[];
            let mut n = 0;
            frame::each_argument(command, argc.min(2) as u32, |arg| {
                if n == 1 {
                    second = arg;
                }
                n += 1;
            });
            let harmless = ["setname", "getname", "id", "info", "list"];
            if harmless.iter().any(|s| is(second, s)) {
                Fit::Direct
            } else {
                Fit::Session
            }
        }
        _ => Fit::Session,
    }
}

/// A command's argument count and name.
fn name(command: &[u8]) -> Option<(u64, &[u8])> {
    let (argc, _) = crate::resp::request::short_count(command, b'*')?;
    let mut name = None;
    frame::each_argument(command, argc.min(1) as u32, |arg| name = Some(arg));
    Some((argc, name?))
}

type Checkout =
    Pin<Box<dyn Future<Output = Result<(Upstream, Arc<Credential>), CheckoutError>> + Send>>;

/// The connection, once it is checked out.
struct Conn {
    stream: UpstreamStream,
    reauth: Reauth,
    renewals: NextRenewal,
    /// Wakes the leg when a pending re-authentication falls due.
    timer: Pin<Box<Sleep>>,
    /// The next frame from the node answers an injected `AUTH`.
    auth_owed: bool,
    /// Bytes read while that reply is owed.
    raw: BytesMut,
}

enum State {
    Dialing(Checkout),
    Ready(Box<Conn>),
    Gone,
}

/// A direct link (see the module).
pub(super) struct Direct {
    ctx: Arc<SessionContext>,
    state: State,
    /// Commands not yet written.
    out: BytesMut,
    /// A due `AUTH` waits for the replies to what was written: commands
    /// are held back meanwhile, in `paused`.
    pausing: bool,
    paused: BytesMut,
    paused_count: usize,
}

/// How a direct link is after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Open; `more`: it stopped reading with bytes maybe left, poll again.
    Open { more: bool },
    /// Gone: the dial failed or the connection was lost.
    Closed,
}

/// What one poll reads at most before letting the router handle it.
const READ_BUDGET: usize = 256 * 1024;

impl Direct {
    /// A link to `ctx`'s node, dialed (taken from the pool) when first polled.
    pub fn new(ctx: Arc<SessionContext>) -> Direct {
        let dial = ctx.clone();
        Direct {
            ctx,
            state: State::Dialing(Box::pin(async move { dial.pool.checkout().await })),
            out: BytesMut::new(),
            pausing: false,
            paused: BytesMut::new(),
            paused_count: 0,
        }
    }

    /// Queues one command (one reply).
    pub fn send(&mut self, command: &[u8]) {
        if self.pausing {
            self.paused.extend_from_slice(command);
            self.paused_count += 1;
        } else {
            self.out.extend_from_slice(command);
        }
    }

    /// Whether commands wait behind a re-authentication.
    pub fn pausing(&self) -> bool {
        self.pausing
    }

    /// Writes, reads into `input` and re-authenticates as due; `owed`: the
    /// replies the router still waits for from this link.
    pub fn poll(&mut self, cx: &mut Context<'_>, input: &mut BytesMut, owed: usize) -> Status {
        if let State::Dialing(checkout) = &mut self.state {
            match checkout.as_mut().poll(cx) {
                Poll::Pending => return Status::Open { more: false },
                Poll::Ready(Ok((upstream, credential))) => {
                    input.extend_from_slice(&upstream.pending);
                    let renewals = self
                        .ctx
                        .pool
                        .credentials()
                        .renewals_after(credential.clone())
                        .into_next();
                    self.state = State::Ready(Box::new(Conn {
                        stream: upstream.stream,
                        reauth: Reauth::new(credential, upstream.authed_at),
                        renewals,
                        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
                        auth_owed: false,
                        raw: BytesMut::new(),
                    }));
                }
                Poll::Ready(Err(failure)) => {
                    // As a session says it on the client's first command
                    // (the dial itself was counted where it failed).
                    if let Some(directory) = &self.ctx.rewriter {
                        directory.refresh();
                    }
                    if let Some(node) = &self.ctx.node {
                        node.upstream_error();
                    }
                    let reply = encode::error(&format!("ERR redauth: {}", failure.message));
                    for _ in 0..owed {
                        input.extend_from_slice(&reply);
                    }
                    self.state = State::Gone;
                    return Status::Closed;
                }
            }
        }
        let State::Ready(conn) = &mut self.state else {
            return Status::Closed;
        };
        let now = Instant::now();
        while let Poll::Ready((renewals, credential)) = conn.renewals.as_mut().poll(cx) {
            conn.renewals = renewals.into_next();
            conn.reauth.published(credential, now, rand::random());
        }
        if let Some(at) = conn.reauth.wake_at(now) {
            if conn.timer.deadline() != at {
                conn.timer.as_mut().reset(at);
            }
            let _ = conn.timer.as_mut().poll(cx);
        }
        if !conn.auth_owed && conn.reauth.due(now) {
            // The replies to what was written come first; meanwhile new
            // commands wait behind the AUTH (`send`).
            self.pausing = owed > self.paused_count;
            if !self.pausing {
                reauthenticate(conn, &mut self.out, now);
            }
        }
        if !self.pausing && self.paused_count > 0 {
            self.out.unsplit(std::mem::take(&mut self.paused));
            self.paused_count = 0;
        }
        match io(conn, cx, &mut self.out, input, self.ctx.node.as_ref()) {
            Ok(more) => Status::Open { more },
            Err(why) => {
                tracing::debug!(%why, "a routed direct connection to a cluster node failed");
                self.lost();
                self.state = State::Gone;
                Status::Closed
            }
        }
    }

    /// Counts the lost connection as a session whose upstream closed does.
    fn lost(&self) {
        metrics::upstream_error(metrics::UpstreamError::Closed);
        if let Some(node) = &self.ctx.node {
            node.upstream_error();
        }
    }

    /// The connection back to the pool, when nothing is owed on it (`owed`
    /// is 0 and nothing waits to be written or answered); closed otherwise.
    pub fn give_back(&mut self, owed: usize) {
        let State::Ready(conn) = std::mem::replace(&mut self.state, State::Gone) else {
            return;
        };
        let quiet = owed == 0
            && self.out.is_empty()
            && self.paused.is_empty()
            && !conn.auth_owed
            && conn.raw.is_empty();
        if quiet {
            // `RESET` in the pool undoes `HELLO 3` and the name.
            let upstream = Upstream {
                stream: conn.stream,
                pending: BytesMut::new(),
                authed_at: conn.reauth.confirmed_at(),
            };
            self.ctx.pool.recycle(upstream, Vec::new());
        }
    }
}

/// Puts an `AUTH` with the due credential at the front of `out` (empty: no
/// reply is owed), if the session core's [`Reauth`] still says so.
fn reauthenticate(conn: &mut Conn, out: &mut BytesMut, now: Instant) {
    let Some(credential) = conn.reauth.take_if_safe(None, When::Due(now)) else {
        return;
    };
    let Some(command) = auth::command(&credential) else {
        return;
    };
    metrics::reauth(metrics::ReauthEvent::Injected);
    out.unsplit(command);
    conn.auth_owed = true;
}

/// Writes what it can of `out` and reads what the node sent into `input`
/// (the reply to an injected AUTH taken out first); `Ok(true)` when it
/// stopped reading on its budget.
fn io(
    conn: &mut Conn,
    cx: &mut Context<'_>,
    out: &mut BytesMut,
    input: &mut BytesMut,
    node: Option<&NodeMetrics>,
) -> Result<bool, String> {
    while !out.is_empty() {
        match Pin::new(&mut conn.stream).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Err("the node took no more bytes".into()),
            Poll::Ready(Ok(n)) => out.advance(n),
            Poll::Ready(Err(e)) => return Err(format!("writing to the node: {e}")),
            Poll::Pending => break,
        }
    }
    if let Poll::Ready(Err(e)) = Pin::new(&mut conn.stream).poll_flush(cx) {
        return Err(format!("writing to the node: {e}"));
    }
    let mut read = 0;
    loop {
        if read >= READ_BUDGET {
            return Ok(true);
        }
        let into = if conn.auth_owed {
            &mut conn.raw
        } else {
            &mut *input
        };
        if into.capacity() - into.len() < 4096 {
            into.reserve(16 * 1024);
        }
        let reading = conn.stream.read_buf(into);
        tokio::pin!(reading);
        match reading.poll(cx) {
            Poll::Ready(Ok(0)) => return Err("the node closed the connection".into()),
            Poll::Ready(Ok(n)) => read += n,
            Poll::Ready(Err(e)) => return Err(format!("reading from the node: {e}")),
            Poll::Pending => return Ok(false),
        }
        if conn.auth_owed {
            auth_answer(conn, input, node)?;
        }
    }
}

/// Takes the reply to an injected AUTH off the front of what was read, once
/// it is whole, and passes the rest on.
fn auth_answer(
    conn: &mut Conn,
    input: &mut BytesMut,
    node: Option<&NodeMetrics>,
) -> Result<(), String> {
    let progress = ReplyScanner::default()
        .advance(&conn.raw)
        .map_err(|e| format!("the node sent invalid RESP: {e}"))?;
    if !progress.done {
        return Ok(());
    }
    let reply = conn.raw.split_to(progress.consumed);
    if let Some(node) = node {
        node.reauth(auth::judge(&reply).is_ok());
    }
    let verdict = reauth::answered(&reply);
    conn.reauth.answer(verdict, Instant::now(), rand::random());
    conn.auth_owed = false;
    input.unsplit(std::mem::take(&mut conn.raw));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit_of(words: &str) -> Fit {
        let args: Vec<&str> = words.split(' ').collect();
        fit(&encode::command(&args))
    }

    #[test]
    fn plain_commands_go_direct_and_stateful_ones_to_a_session() {
        for direct in [
            "GET k",
            "SET k v",
            "hset h f v",
            "PING",
            "HELLO 3",
            "CLIENT SETNAME n",
            "client id",
            "DBSIZE",
            "MSET a 1 b 2 c 3 d 4 e 5",
            "SUNIONSTORE d a b c",
        ] {
            assert_eq!(fit_of(direct), Fit::Direct, "{direct}");
        }
        for session in [
            "WATCH k",
            "UNWATCH",
            "MULTI",
            "EXEC",
            "BLPOP k 0",
            "XREAD BLOCK 0 STREAMS s $",
            "SUBSCRIBE c",
            "SSUBSCRIBE c",
            "CLUSTER SLOTS",
            "HELLO 3 AUTH u p",
            "CLIENT NO-EVICT on",
            "CLIENT TRACKING on",
            "READONLY",
            "RESET",
            "AUTH p",
            "MONITOR",
            "BRPOPLPUSH a b 0",
            "client kill id 3",
        ] {
            assert_eq!(fit_of(session), Fit::Session, "{session}");
        }
        assert_eq!(fit_of("ASKING"), Fit::Asking);
    }
}
