//! The reply side of a session: upstream output in, client output out.
//!
//! Every server frame is one of: a reply (matched, in order, to the head of
//! the [`Expect`] queue), a push (a pub/sub message or RESP3 `>` frame, relayed
//! as it comes), or a pub/sub confirmation (a reply that may come several to a
//! command). Replies to injected commands are consumed; local replies are
//! slotted in at frame boundaries. Frames are relayed as they arrive, so a
//! large bulk reply streams through in read-sized pieces.

use super::blocking::{self, SliceEnd};
use super::closing::cancel_at;
use super::consumed::Report;
use super::delivery;
use super::state::{Answered, Protocol};
use super::{pass_on, until, Ended, Expect, ExpectRx, READ_CHUNK};
use crate::cluster::directory::{Directory, Reply};
use crate::metrics::{self, Direction, UpstreamError};
use crate::resp::command::SubscribeKind;
use crate::resp::pubsub::{self, Peek, TrackingPush};
use crate::resp::ReplyScanner;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

mod whole;
use whole::TOPOLOGY_WAIT;

/// What to do with the frame being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A reply to the queue head; `first` is its type byte.
    Reply { first: u8 },
    /// A push: relayed, answers nothing.
    Push,
    /// Parsed whole and consumed: the reply to a command redauth sent itself
    /// (an AUTH, a HELLO, a stand-in PING, a slice or an XINFO).
    Consumed,
    /// A subscribe-family confirmation, parsed whole.
    Confirmation(SubscribeKind),
    /// An EXEC reply that may hold confirmations, parsed whole.
    Exec,
    /// A reply that may name upstream nodes (cluster mode), parsed whole and
    /// rewritten; `first` is its type byte.
    Rewrite { reply: Reply, first: u8 },
    /// A client-side caching push to a RESP2 client whose connection runs in
    /// RESP3: parsed whole, and given the shape RESP2 would have had, or none.
    Tracking(TrackingPush),
}

pub(super) struct ReplyPump<R, W> {
    upstream: R,
    client: W,
    expect: ExpectRx,
    /// How slices of blocking commands ended, for the request side.
    slices: UnboundedSender<Report>,
    queue: VecDeque<Expect>,
    buf: BytesMut,
    out: BytesMut,
    scanner: ReplyScanner,
    /// Role of the frame being scanned, if one is under way.
    current: Option<Role>,
    /// Confirmations still owed to the SUBSCRIBE-family command at the head.
    confirmations_left: Option<u32>,
    /// The connection as the replies so far show it.
    state: Answered,
    /// Whether the request side has gone (its channel closed).
    requests_done: bool,
    /// How long a client may leave its replies unread.
    output_timeout: Duration,
    /// The client's input ended ([`Expect::InputEnded`] came).
    input_ended: bool,
    /// When the latest blocking command (or slice of one) was sent.
    blocking_sent: Option<Instant>,
    /// Cluster mode: what node addresses are rewritten through.
    rewriter: Option<Arc<Directory>>,
    /// The reply being rewritten names a node not known yet: the refresh
    /// asked for, whose end is awaited before rewriting it again.
    topology_wait: Option<tokio::sync::watch::Receiver<u64>>,
    /// On a cluster node's port, that node's series.
    node: Option<crate::metrics::NodeMetrics>,
}

/// What the frame loop asks of its caller.
enum Next {
    Read,
    /// Wait for the topology refresh a reply asked for, then go on.
    AwaitTopology,
    /// Read, but if nothing comes by then, cancel the blocked command.
    CancelAt(Instant),
    Close,
}

impl<R, W> ReplyPump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(super) fn new(
        upstream: R,
        client: W,
        expect: ExpectRx,
        slices: UnboundedSender<Report>,
        pending: BytesMut,
        output_timeout: Duration,
    ) -> Self {
        let mut buf = pending;
        buf.reserve(READ_CHUNK);
        ReplyPump {
            upstream,
            client,
            expect,
            slices,
            queue: VecDeque::new(),
            buf,
            out: BytesMut::new(),
            scanner: ReplyScanner::default(),
            current: None,
            confirmations_left: None,
            state: Answered::default(),
            requests_done: false,
            output_timeout,
            input_ended: false,
            blocking_sent: None,
            rewriter: None,
            topology_wait: None,
            node: None,
        }
    }

    /// Counts re-authentications in a cluster node's series too.
    pub(super) fn counting_for(mut self, node: Option<crate::metrics::NodeMetrics>) -> Self {
        self.node = node;
        self
    }

    /// Rewrites node addresses in replies through `directory` (cluster mode).
    pub(super) fn rewriting_through(mut self, directory: Option<Arc<Directory>>) -> Self {
        self.rewriter = directory;
        self
    }

    pub(super) async fn run(&mut self) -> Ended {
        loop {
            let next = match self.process() {
                Ok(next) => next,
                Err(why) => return Ended::Failed(why),
            };
            if let Err(e) = self.write_out().await {
                return Ended::Failed(format!("writing to client: {e}"));
            }
            let cancel_at = match next {
                Next::Close => {
                    let _ = self.client.shutdown().await;
                    return Ended::Closed("closed after the last reply");
                }
                Next::CancelAt(at) => Some(at),
                Next::Read => None,
                Next::AwaitTopology => {
                    if let Some(finished) = &mut self.topology_wait {
                        let _ = tokio::time::timeout(TOPOLOGY_WAIT, finished.changed()).await;
                    }
                    continue;
                }
            };
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                expect = self.expect.recv(), if !self.requests_done => match expect {
                    Some(e) => self.enqueue(e),
                    None => self.requests_done = true,
                },
                read = self.upstream.read_buf(&mut self.buf) => match read {
                    Ok(0) => return Ended::UpstreamClosed,
                    Ok(_) => {}
                    Err(e) => {
                        metrics::upstream_error(UpstreamError::Io);
                        return Ended::Failed(format!("reading from upstream: {e}"));
                    }
                },
                _ = until(cancel_at) => {
                    // The session closes the upstream connection, which makes
                    // the server drop the blocked command as if this client
                    // had gone, and then the client.
                    return Ended::Closed("the client ended its input while blocked");
                }
            }
        }
    }

    /// Nothing is owed or in flight: every reply delivered, no subscription
    /// or raw feed that could still send something.
    pub(super) fn quiet(&self) -> bool {
        self.queue.is_empty()
            && self.expect.is_empty()
            && self.current.is_none()
            && self.buf.is_empty()
            && self.confirmations_left.is_none()
            && !self.state.passthrough
            && !self.state.subscriptions.any()
    }

    /// The upstream side, once the pump is done.
    pub(super) fn into_upstream(self) -> R {
        self.upstream
    }

    /// Moves every record the request side has sent into the queue.
    fn receive(&mut self) {
        while let Some(e) = self.expect.try_recv() {
            self.enqueue(e);
        }
    }

    fn enqueue(&mut self, expect: Expect) {
        match expect {
            Expect::InputEnded => self.input_ended = true,
            Expect::Blocking | Expect::Slice => self.blocking_sent = Some(Instant::now()),
            _ => {}
        }
        if expect != Expect::Abandoned {
            return self.queue.push_back(expect);
        }
        match self.queue.back_mut() {
            Some(Expect::Replies(n)) if *n > 1 => *n -= 1,
            Some(_) => {
                self.queue.pop_back();
            }
            None => {}
        }
    }

    /// Works through buffered server bytes, frame by frame.
    fn process(&mut self) -> Result<Next, String> {
        let mut ready = 0;
        let next = self.frames(&mut ready);
        pass_on(&mut self.buf, &mut self.out, ready);
        next
    }

    fn frames(&mut self, ready: &mut usize) -> Result<Next, String> {
        loop {
            if self.current.is_none() {
                if self.ordinary_reply(ready)? {
                    continue;
                }
                pass_on(&mut self.buf, &mut self.out, std::mem::take(ready));
            }
            if self.current.is_none() {
                self.receive();
                if let Next::Close = self.emit_locals() {
                    return Ok(Next::Close);
                }
                if self.queue.front() == Some(&Expect::Passthrough) {
                    self.queue.pop_front();
                    self.state.passthrough = true;
                }
                if self.state.passthrough {
                    // Nothing the server sends is a reply any more: of the
                    // records only redauth's own replies and a close still
                    // mean something, and they go before raw bytes.
                    self.queue
                        .retain(|e| matches!(e, Expect::Local(_) | Expect::Close));
                    if let Next::Close = self.emit_locals() {
                        return Ok(Next::Close);
                    }
                    let all = self.buf.split();
                    self.out.unsplit(all);
                    return Ok(Next::Read);
                }
                if self.buf.is_empty() {
                    return Ok(self.blocked_since_input_ended());
                }
                match self.role() {
                    Some(role) => {
                        if role == Role::Push && self.translate() && self.buf[0] == b'>' {
                            // A RESP3 message push is a RESP2 array but for its type byte.
                            self.buf[0] = b'*';
                        }
                        self.current = Some(role);
                    }
                    None => return Ok(Next::Read),
                }
            }
            let role = self.current.expect("set above");
            let done = match role {
                Role::Reply { .. } | Role::Push => self.stream_frame()?,
                Role::Rewrite { reply, .. } => match self.rewrite_frame(reply)? {
                    Some(done) => done,
                    None => return Ok(Next::AwaitTopology),
                },
                Role::Consumed | Role::Confirmation(_) | Role::Exec | Role::Tracking(_) => {
                    self.whole_frame(role)?
                }
            };
            if !done {
                return Ok(Next::Read);
            }
            self.current = None;
            if let Role::Reply { first } | Role::Rewrite { first, .. } = role {
                self.reply_done(first);
            }
        }
    }

    /// The fast path for the common case, a run of ordinary replies to
    /// ordinary commands: relays the reply at `ready` (just past the replies
    /// already taken this pass) by moving `ready` over it, with no queue or
    /// buffer work per reply. False when the next frame needs the general
    /// path: the head record is not `Replies`, or the frame may be a push, or
    /// none of it is buffered. A reply only partly buffered starts out here
    /// and goes on in the general path.
    fn ordinary_reply(&mut self, ready: &mut usize) -> Result<bool, String> {
        if !matches!(self.queue.front(), Some(Expect::Replies(_))) || self.state.passthrough {
            return Ok(false);
        }
        let Some(&first) = self.buf.get(*ready) else {
            return Ok(false);
        };
        if self.may_be_pubsub(first) || self.rewrites(first) {
            return Ok(false);
        }
        let progress = self
            .scanner
            .advance(&self.buf[*ready..])
            .map_err(|e| format!("upstream sent invalid RESP: {e}"))?;
        *ready += progress.consumed;
        if progress.done {
            self.reply_done(first);
            Ok(true)
        } else {
            self.current = Some(Role::Reply { first });
            Ok(false)
        }
    }

    /// Sends local replies at the head of the queue; says whether to close.
    fn emit_locals(&mut self) -> Next {
        loop {
            match self.queue.front() {
                Some(Expect::Local(reply)) => {
                    self.out.extend_from_slice(reply);
                    self.queue.pop_front();
                }
                Some(Expect::Close | Expect::InputEnded) => {
                    self.queue.pop_front();
                    return Next::Close;
                }
                _ => return Next::Read,
            }
        }
    }

    /// With nothing buffered: read on, and once the client's input has ended
    /// and a blocking command is all that is left waiting (the reply to those
    /// before it came), cancel it unless its reply comes within the grace
    /// (see [`super::closing::BLOCKED_GRACE`]).
    fn blocked_since_input_ended(&self) -> Next {
        cancel_at(self.input_ended, self.blocking_sent, self.queue.front())
            .map_or(Next::Read, Next::CancelAt)
    }

    /// Whether RESP3 pushes go to a RESP2 client, and must be given the
    /// shape RESP2 would have had (see [`Protocol::Switched`]).
    fn translate(&self) -> bool {
        self.state.protocol == Protocol::Switched
    }

    /// Whether a frame starting with `first` may be a push or a pub/sub
    /// confirmation rather than the reply the queue head waits for.
    fn may_be_pubsub(&self, first: u8) -> bool {
        let head_subscribes = matches!(self.queue.front(), Some(Expect::Subscribe { .. }));
        first == b'>'
            || (first == b'*'
                && !self.state.protocol.server_resp3()
                && (self.state.subscriptions.any() || head_subscribes))
    }

    /// Decides what the frame at the start of the buffer is; `None` when more
    /// bytes are needed to tell.
    fn role(&self) -> Option<Role> {
        let role = self.role_by_queue()?;
        Some(match role {
            Role::Reply { first } if self.rewrites(first) => Role::Rewrite {
                reply: Reply::Redirects,
                first,
            },
            role => role,
        })
    }

    fn role_by_queue(&self) -> Option<Role> {
        let first = self.buf[0];
        if self.may_be_pubsub(first) {
            match pubsub::peek(&self.buf) {
                Peek::NeedMore => return None,
                Peek::Message => return Some(Role::Push),
                Peek::Confirmation(kind) => return Some(Role::Confirmation(kind)),
                Peek::Tracking(push) if self.translate() => return Some(Role::Tracking(push)),
                Peek::Tracking(_) => return Some(Role::Push),
                Peek::Other if first == b'>' => return Some(Role::Push),
                Peek::Other => {}
            }
        }
        Some(match self.queue.front() {
            Some(
                Expect::AuthAfterReset
                | Expect::ReplyOn
                | Expect::StandIn(_)
                | Expect::Reauth
                | Expect::Protocol(_),
            ) => Role::Consumed,
            Some(Expect::ExecWithSubscribe) => Role::Exec,
            Some(Expect::Rewrite(reply)) if self.rewriter.is_some() => Role::Rewrite {
                reply: *reply,
                first,
            },
            Some(Expect::LastId) => Role::Consumed,
            Some(Expect::Slice) => match blocking::timed_out(&self.buf)? {
                true => Role::Consumed,
                false => Role::Reply { first },
            },
            _ => Role::Reply { first },
        })
    }

    /// Relays as much of the current frame as is buffered; true when it ended.
    fn stream_frame(&mut self) -> Result<bool, String> {
        let progress = self
            .scanner
            .advance(&self.buf)
            .map_err(|e| format!("upstream sent invalid RESP: {e}"))?;
        pass_on(&mut self.buf, &mut self.out, progress.consumed);
        Ok(progress.done)
    }

    /// A reply ended: it answered the queue head, whose effect now applies.
    fn reply_done(&mut self, first: u8) {
        let ok = first != b'-' && first != b'!';
        match self.queue.front_mut() {
            Some(Expect::Replies(n)) if *n > 1 => {
                *n -= 1;
                return;
            }
            Some(Expect::Hello(Some(version))) if ok => self.state.hello(*version),
            Some(Expect::Reset) if first == b'+' => self.state.reset(),
            Some(Expect::Monitor) if first == b'+' => self.state.passthrough = true,
            Some(Expect::Subscribe { .. }) => self.confirmations_left = None,
            Some(Expect::Slice) => {
                let _ = self.slices.send(Report::Slice(SliceEnd::Served));
            }
            None => {
                tracing::debug!("a reply arrived with no command waiting for it; relayed");
                return;
            }
            _ => {}
        }
        self.queue.pop_front();
    }

    /// Delivers what is ready (see [`delivery::write`]).
    async fn write_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        metrics::bytes(Direction::UpstreamToClient, out.len() as u64);
        delivery::write(&mut self.client, &out, self.output_timeout).await
    }
}
