//! The request side of a session: client commands in, upstream commands out.
//!
//! Commands are forwarded as the very bytes the client sent, a read's worth
//! at a time; large arguments stream through. Only the commands the relay must
//! understand are looked at (see [`CommandKind`]); for each forwarded or
//! locally answered command an [`Expect`] record goes to the reply side first.
//!
//! When a new credential is published, the request side also injects
//! `AUTH` between two client commands at a safe point (see [`reauth`]), and
//! runs blocking commands that would outlive the token in slices (see
//! [`blocking`]).

use super::blocking::{self, Call, SliceEnd};
use super::reauth::{self, Blocker, StreamState};
use super::{gate, resp2, ClientPassword};
use super::{pass_on, until, Ended, Expect, ExpectTx, READ_CHUNK};
use crate::credentials::{Credential, CredentialWatch, NextCredential};
use crate::metrics::{self, Direction, UpstreamError};
use crate::resp::command::{BlockKind, CommandKind, SubscribeKind};
use crate::resp::frame::arguments;
use crate::resp::request::{Request, RequestBody};
use crate::resp::{encode, ProtocolError};
use crate::upstream::auth;
use crate::upstream::leftovers::Leftovers;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// The stand-in command (see [`Expect::StandIn`]).
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// How long a HELLO or CLIENT command may grow while waiting for all of its
/// arguments; beyond this it is relayed without being looked at.
const WHOLE_COMMAND_MAX: usize = 1024 * 1024;

/// How much a client may send while its blocking command runs in slices;
/// beyond this redauth stops reading until the call is over.
const HELD_MAX: usize = 1024 * 1024;

/// What the configuration asks of every client.
pub(super) struct Policy {
    /// Largest bulk argument (`--max-bulk-len`).
    pub max_bulk: u64,
    /// Close the client after this long without a command (`--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// The password a client's AUTH must give (`--client-password-file`).
    pub client_password: ClientPassword,
}

/// How the request side stopped.
pub(super) enum Stop {
    /// QUIT or a protocol error was answered: the reply side finishes the
    /// session.
    Closing,
    /// The client ended its input (a half-close, or a close): every command
    /// it sent whole before that was forwarded, and the reply side delivers
    /// their replies and then closes the client.
    InputEnded,
    /// Writing to the upstream failed: the server may have closed the
    /// connection after replies the reply side has yet to read and deliver.
    UpstreamWriteFailed(String),
    Ended(Ended),
}

/// `CLIENT REPLY` state, which decides whether a command gets a reply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyMode {
    On,
    Off,
    /// The next `n` commands (SKIP itself, then one more) get no reply.
    Skip(u8),
}

/// What happens to the rest of a command that is being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    Forward,
    Drop,
}

pub(super) struct RequestPump<R, W> {
    client: R,
    upstream: W,
    expect: ExpectTx,
    buf: BytesMut,
    /// Bytes ready for the upstream, accumulated over one read.
    out: BytesMut,
    /// Ordinary commands in `out` not yet announced to the reply side.
    unannounced: u32,
    /// A command whose arguments are still arriving.
    streaming: Option<(RequestBody, Rest)>,
    credential: Arc<Credential>,
    max_bulk: u64,
    /// Close the client after this long without a command (`--idle-timeout`).
    idle_timeout: Option<Duration>,
    /// The password a client's AUTH must give, if any.
    client_password: ClientPassword,
    /// The client ended its input (a read returned 0).
    input_ended: bool,
    /// When the client last sent anything.
    last_active: Instant,
    /// The last command was a blocking one (maybe still blocked upstream):
    /// like Redis, never close a blocked client for idleness.
    last_blocking: bool,
    /// Commands handled since the last flush, for the metrics.
    handled: u64,
    in_multi: bool,
    reply_mode: ReplyMode,
    /// QUIT was seen: nothing after it is read.
    quitting: bool,
    /// The next credential to be published.
    next_credential: NextCredential,
    /// A newer credential to re-authenticate with, once due and safe.
    reauth: Option<PendingReauth>,
    /// The server-side state the commands so far leave the connection in.
    stream: StreamState,
    /// MONITOR or SYNC was forwarded: the connection takes no more commands.
    raw: bool,
    /// A RESP2 client's subscribed connection runs in RESP3 upstream, where
    /// AUTH is allowed; the reply side translates back (see [`Expect::Protocol`]).
    upgraded: bool,
    /// A blocking command running in slices: later commands wait.
    held: Option<Held>,
    /// How the slices of the held command end (from the reply side).
    slices: UnboundedReceiver<SliceEnd>,
    /// Settings the client made that `RESET` does not undo.
    leftovers: Leftovers,
}

/// A blocking command running in slices (see [`blocking`]).
struct Held {
    call: Call,
    /// When the client's own timeout runs out (`None`: never).
    deadline: Option<Instant>,
}

/// A re-authentication waiting for its time or for a safe point.
struct PendingReauth {
    credential: Arc<Credential>,
    due: Instant,
    /// Already counted as deferred.
    deferred: bool,
}

impl<R, W> RequestPump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(super) fn new(
        client: R,
        upstream: W,
        (expect, slices): (ExpectTx, UnboundedReceiver<SliceEnd>),
        early: BytesMut,
        credential: Arc<Credential>,
        watch: CredentialWatch,
        policy: Policy,
    ) -> Self {
        let mut buf = early;
        buf.reserve(READ_CHUNK);
        RequestPump {
            client,
            upstream,
            expect,
            buf,
            out: BytesMut::new(),
            unannounced: 0,
            streaming: None,
            credential,
            max_bulk: policy.max_bulk,
            idle_timeout: policy.idle_timeout,
            client_password: policy.client_password,
            input_ended: false,
            last_active: Instant::now(),
            last_blocking: false,
            handled: 0,
            in_multi: false,
            reply_mode: ReplyMode::On,
            quitting: false,
            next_credential: watch.into_next(),
            reauth: None,
            stream: StreamState::default(),
            raw: false,
            upgraded: false,
            held: None,
            slices,
            leftovers: Leftovers::default(),
        }
    }

    pub(super) async fn run(&mut self) -> Stop {
        loop {
            let closing = match self.process() {
                Ok(()) => false,
                Err((error, mid_command)) => {
                    tracing::debug!(%error, "protocol error from client");
                    if mid_command {
                        // The server holds part of a command it will never see
                        // finished: no reply will come for it.
                        self.announce(Expect::Abandoned);
                    }
                    self.local(error.reply());
                    self.announce(Expect::Close);
                    true
                }
            };
            if !closing {
                self.maybe_reauth();
            }
            let input_done = self.input_ended && !closing && !self.quitting;
            if input_done {
                self.end_of_input();
            }
            if let Err(e) = self.flush().await {
                metrics::upstream_error(UpstreamError::Io);
                return Stop::UpstreamWriteFailed(format!("writing to upstream: {e}"));
            }
            if closing || self.quitting {
                return Stop::Closing;
            }
            if input_done {
                return Stop::InputEnded;
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            // Wake for a due re-authentication only while it is still ahead;
            // one that is due but blocked waits for the client's next bytes.
            let wake = self
                .reauth
                .as_ref()
                .map(|r| r.due)
                .filter(|&due| due > Instant::now());
            let held = self.held.is_some();
            // Backpressure: while the client is not reading its replies, stop
            // reading its commands.
            let backlogged = self.expect.backlog().full();
            let readable = !backlogged && (!held || self.buf.len() < HELD_MAX);
            // Subscribed, blocked and MONITOR clients are never idle (as in Redis).
            let idle_at = self
                .idle_timeout
                .filter(|_| !held && !self.last_blocking && !self.raw && !self.stream.subscribed())
                .map(|t| self.last_active + t);
            tokio::select! {
                read = self.client.read_buf(&mut self.buf), if readable => match read {
                    Ok(0) => self.input_ended = true,
                    Ok(_) if self.idle_timeout.is_some() => self.last_active = Instant::now(),
                    Ok(_) => {}
                    Err(e) => return Stop::Ended(Ended::Failed(format!("reading from client: {e}"))),
                },
                (watch, credential) = &mut self.next_credential => {
                    self.next_credential = watch.into_next();
                    self.schedule_reauth(credential);
                }
                _ = self.expect.backlog().drained(), if backlogged => {}
                _ = until(idle_at) => {
                    return Stop::Ended(Ended::Closed("idle timeout"));
                }
                end = self.slices.recv(), if held => match end {
                    Some(end) => self.slice_ended(end),
                    None => return Stop::Ended(Ended::UpstreamClosed),
                },
                _ = until(wake) => {}
            }
        }
    }

    /// The client's input ended and every whole command in it was handled,
    /// as Redis handles what it read before the end of a client's input: a
    /// command left incomplete is dropped with the rest of the query buffer
    /// (one already partly forwarded will never be answered, and its
    /// connection is not reused), and so are commands waiting behind a
    /// blocking one. The reply side closes the client once its replies are
    /// out, and cancels a blocked command (see [`Expect::InputEnded`]).
    fn end_of_input(&mut self) {
        if let Some((_, Rest::Forward)) = self.streaming {
            self.announce(Expect::Abandoned);
        }
        self.announce(Expect::InputEnded);
    }

    /// Nothing sent upstream is unaccounted for: no command half-forwarded
    /// or held, no feed, no subscription, and every reply announced.
    pub(super) fn quiet(&self) -> bool {
        self.streaming.is_none()
            && self.held.is_none()
            && !self.raw
            && !self.upgraded
            && self.reply_mode == ReplyMode::On
            && !self.stream.subscribed()
            && self.unannounced == 0
            && self.out.is_empty()
    }

    /// The upstream side, and what the client left on it, once the pump is done.
    pub(super) fn into_upstream(self) -> (W, Leftovers) {
        (self.upstream, self.leftovers)
    }

    /// A new credential was published: re-authenticate within a window
    /// before the current one expires (a newer one replaces a pending one).
    fn schedule_reauth(&mut self, credential: Arc<Credential>) {
        let due = match &self.reauth {
            Some(pending) => pending.due,
            None => {
                let delay = reauth::delay(
                    SystemTime::now(),
                    self.credential.expires_at,
                    rand::random(),
                );
                Instant::now() + delay
            }
        };
        self.reauth = Some(PendingReauth {
            credential,
            due,
            deferred: false,
        });
    }

    /// Why AUTH cannot be injected at this point of the command stream.
    fn reauth_blocker(&self) -> Option<Blocker> {
        if self.streaming.is_some() {
            Some(Blocker::MidCommand)
        } else if self.in_multi {
            Some(Blocker::Multi)
        } else if matches!(self.reply_mode, ReplyMode::Skip(_)) {
            Some(Blocker::ReplySkip)
        } else if self.raw || self.quitting {
            Some(Blocker::Raw)
        } else if self.held.is_some() {
            Some(Blocker::Blocked)
        } else if self.stream.subscribed() && !self.stream.resp3 && !self.upgraded {
            Some(Blocker::SubscribedResp2)
        } else {
            None
        }
    }

    /// Injects a due re-authentication if this is a safe point.
    fn maybe_reauth(&mut self) {
        if self.reauth.as_ref().is_none_or(|p| Instant::now() < p.due) {
            return;
        }
        if let Some(blocker) = self.reauth_blocker() {
            let pending = self.reauth.as_mut().expect("checked above");
            if !pending.deferred {
                pending.deferred = true;
                metrics::reauth(metrics::Reauth::Deferred);
                tracing::debug!(?blocker, "re-authentication deferred");
            }
            return;
        }
        self.inject_reauth();
    }

    /// Injects `AUTH` with the pending credential now (the caller made sure
    /// this is a safe point).
    fn inject_reauth(&mut self) {
        let Some(pending) = self.reauth.take() else {
            return;
        };
        let Some(auth) = auth::command(&pending.credential) else {
            return;
        };
        metrics::reauth(metrics::Reauth::Injected);
        if self.reply_mode == ReplyMode::Off {
            // The AUTH must be answered for its reply to be consumed.
            self.announce(Expect::ReplyOn);
            self.out
                .unsplit(encode::command(&["CLIENT", "REPLY", "ON"]));
            self.announce(Expect::Reauth);
            self.out.unsplit(auth);
            self.out
                .unsplit(encode::command(&["CLIENT", "REPLY", "OFF"]));
        } else {
            self.announce(Expect::Reauth);
            self.out.unsplit(auth);
        }
        self.credential = pending.credential;
    }

    /// Handles every complete command (and streamable part) in the buffer.
    /// `Err` is a protocol error, with whether it struck inside a command
    /// that was already partly forwarded; everything before it was handled.
    fn process(&mut self) -> Result<(), (ProtocolError, bool)> {
        let mut ready = 0;
        let result = self.commands(&mut ready);
        pass_on(&mut self.buf, &mut self.out, ready);
        result
    }

    /// The fast path for the common case, a run of ordinary commands (one
    /// reply each, relayed as is): if `request`, parsed at `ready` (just past
    /// the commands already taken this pass), is one, whole in the buffer,
    /// moves `ready` over it, with no buffer work per command.
    fn ordinary_command(
        &mut self,
        request: &Request,
        ready: &mut usize,
    ) -> Result<bool, (ProtocolError, bool)> {
        let Request::Multibulk {
            head_len,
            name: Some(name),
            body,
            ..
        } = request
        else {
            return Ok(false);
        };
        let buf = &self.buf[*ready..];
        if self.upgraded
            || self.reply_mode != ReplyMode::On
            || CommandKind::of(&buf[name.clone()]) != CommandKind::Other
        {
            return Ok(false);
        }
        let mut whole = *body;
        let advance = whole
            .advance(&buf[*head_len..], self.max_bulk)
            .map_err(|e| (e, false))?;
        if !advance.done {
            return Ok(false);
        }
        *ready += head_len + advance.consumed;
        self.handled += 1;
        self.unannounced += 1;
        self.last_blocking = false;
        Ok(true)
    }

    fn commands(&mut self, ready: &mut usize) -> Result<(), (ProtocolError, bool)> {
        loop {
            // (`ready` is 0 here whenever a command is mid-stream: streaming
            // starts only in the general path, once `ready` was passed on.)
            if let Some((mut body, rest)) = self.streaming.take() {
                let advance = body
                    .advance(&self.buf, self.max_bulk)
                    .map_err(|e| (e, true))?;
                let part = self.buf.split_to(advance.consumed);
                if rest == Rest::Forward {
                    self.out.unsplit(part);
                }
                if !advance.done {
                    self.streaming = Some((body, rest));
                    return Ok(());
                }
            }
            if self.quitting || self.held.is_some() {
                return Ok(());
            }
            let Some(request) =
                Request::parse(&self.buf[*ready..], self.max_bulk).map_err(|e| (e, false))?
            else {
                return Ok(());
            };
            if self.ordinary_command(&request, ready)? {
                continue;
            }
            // The general path works at the front of the buffer: the
            // request's positions, taken at `ready`, hold there after this.
            pass_on(&mut self.buf, &mut self.out, std::mem::take(ready));
            match request {
                Request::Ignored { len } => self.buf.advance(len),
                Request::Inline { len, args } => {
                    self.handled += 1;
                    self.buf.advance(len);
                    let kind = CommandKind::of(&args[0]);
                    self.last_blocking = matches!(kind, CommandKind::Blocking(_));
                    let argc = args.len() as u32;
                    self.command(kind, encode::command(&args), Some(&args), argc);
                }
                Request::Multibulk {
                    argc,
                    head_len,
                    name,
                    body,
                } => {
                    let kind = name
                        .clone()
                        .map_or(CommandKind::Other, |r| CommandKind::of(&self.buf[r]));
                    self.handled += 1;
                    self.last_blocking = matches!(kind, CommandKind::Blocking(_));
                    // Validate what is buffered before forwarding any of it, so a
                    // malformed command held whole never reaches the server.
                    let mut whole = body;
                    let advance = whole
                        .advance(&self.buf[head_len..], self.max_bulk)
                        .map_err(|e| (e, false))?;
                    if advance.done {
                        let frame = self.buf.split_to(head_len + advance.consumed);
                        let args = kind
                            .needs_arguments()
                            .then(|| arguments(&frame.clone().freeze(), argc));
                        self.command(kind, frame, args.as_deref(), argc);
                    } else if (kind.needs_arguments() || self.upgraded)
                        && self.buf.len() <= WHOLE_COMMAND_MAX
                    {
                        // (While upgraded, a refused command is named in full.)
                        return Ok(()); // wait for the whole command
                    } else {
                        // Too large to hold: forward it as it arrives.
                        let name = name.map(|r| Bytes::copy_from_slice(&self.buf[r]));
                        let head = self.buf.split_to(head_len);
                        let rest = self.start_streamed(kind, argc, head, name);
                        self.streaming = Some((body, rest));
                    }
                }
            }
        }
    }

    /// Starts a command whose arguments may still be arriving; only its name
    /// and argument count are known.
    fn start_streamed(
        &mut self,
        kind: CommandKind,
        argc: u32,
        head: BytesMut,
        name: Option<Bytes>,
    ) -> Rest {
        let name = name.unwrap_or_default();
        if self.subscribed_gate(kind, None, &[name]) {
            return Rest::Drop;
        }
        match kind {
            CommandKind::Auth => {
                self.auth(None);
                Rest::Drop
            }
            // Answered here, never forwarded: neither are arguments still to come.
            CommandKind::Quit => {
                self.quit();
                Rest::Drop
            }
            CommandKind::Subscribe(sub) => {
                self.upgrade_for(sub, argc);
                self.stream.subscribe(sub, None, self.in_multi);
                self.command_with_count(kind, argc, head);
                Rest::Forward
            }
            CommandKind::Client => {
                self.leftovers.unreadable_client_command();
                self.command_with_count(kind, argc, head);
                Rest::Forward
            }
            _ => {
                self.command_with_count(kind, argc, head);
                Rest::Forward
            }
        }
    }

    /// Handles a command held whole, with its arguments when they were needed.
    fn command(&mut self, kind: CommandKind, frame: BytesMut, args: Option<&[Bytes]>, argc: u32) {
        if self.upgraded {
            // Name and subcommand, for the error Redis gives in this context.
            let named = match args {
                Some(args) => args.to_vec(),
                None => arguments(&frame.clone().freeze(), argc.min(2)),
            };
            if self.subscribed_gate(kind, args, &named) {
                return;
            }
        }
        match (kind, args) {
            (CommandKind::Auth, args) => self.auth(args),
            (CommandKind::Hello, Some(args)) => self.hello(args),
            (CommandKind::Blocking(block), Some(args)) => self.blocking(block, frame, args),
            (CommandKind::Client, Some(args)) => {
                self.client_reply(args);
                self.leftovers.client(args);
                self.forward_counted(frame);
            }
            (CommandKind::Subscribe(sub), args) => {
                self.upgrade_for(sub, argc);
                self.stream.subscribe(sub, args, self.in_multi);
                self.command_with_count(kind, argc, frame);
            }
            _ => self.command_with_count(kind, argc, frame),
        }
    }

    /// Forwards a command known by kind and argument count.
    fn command_with_count(&mut self, kind: CommandKind, argc: u32, frame: BytesMut) {
        // With arguments these take none of their effect: the server answers an
        // arity error, and redauth must not act on them (a RESET with an argument
        // still arriving must not be followed by its AUTH, which would land
        // inside it).
        let takes_no_arguments = matches!(
            kind,
            CommandKind::Reset
                | CommandKind::Multi
                | CommandKind::Exec
                | CommandKind::Discard
                | CommandKind::Monitor
        );
        if takes_no_arguments && argc != 1 {
            return self.forward_counted(frame);
        }
        match kind {
            CommandKind::Quit => self.quit(),
            CommandKind::Reset => self.reset(frame),
            CommandKind::Multi => {
                // A transaction can outlast the token: take a pending
                // re-authentication now, while it still can go.
                if self.reauth.is_some() && self.reauth_blocker().is_none() {
                    self.inject_reauth();
                }
                self.in_multi = true;
                self.forward_counted(frame);
            }
            CommandKind::Exec => {
                self.in_multi = false;
                let subscribes = self.stream.queued_any();
                self.stream.exec();
                if subscribes {
                    self.forward_as(frame, Expect::ExecWithSubscribe);
                } else {
                    self.forward_counted(frame);
                }
            }
            CommandKind::Discard => {
                self.in_multi = false;
                self.stream.discard();
                self.forward_counted(frame);
            }
            CommandKind::Monitor if !self.in_multi => {
                self.raw = true;
                self.forward_as(frame, Expect::Monitor);
            }
            CommandKind::Monitor => self.forward_as(frame, Expect::Monitor),
            CommandKind::Sync if !self.in_multi => {
                self.raw = true;
                self.forward_as(frame, Expect::Passthrough);
            }
            CommandKind::Subscribe(kind) if !self.in_multi => self.forward_as(
                frame,
                Expect::Subscribe {
                    kind,
                    channels: argc.saturating_sub(1),
                },
            ),
            // Queued in MULTI (and recorded in `stream` by the caller).
            CommandKind::Subscribe(_) => self.forward_counted(frame),
            _ => self.forward_counted(frame),
        }
    }

    /// A blocking command: forwarded as is when it ends before the
    /// connection must re-authenticate, else run in slices.
    fn blocking(&mut self, kind: BlockKind, frame: BytesMut, args: &[Bytes]) {
        // Replies must be seen to be held back, and a transaction never blocks.
        let sliceable = !self.in_multi
            && self.reply_mode == ReplyMode::On
            && self.credential.expires_at.is_some();
        let Some(call) = sliceable.then(|| Call::parse(kind, args)).flatten() else {
            return self.forward_blocking(frame);
        };
        // Blocked, the connection could not take an AUTH: take a pending one now.
        if self.reauth.is_some() && self.reauth_blocker().is_none() {
            self.inject_reauth();
        }
        let deadline = call.timeout.map(|t| Instant::now() + t);
        if deadline.is_some_and(|d| d <= Instant::now() + self.budget()) {
            return self.forward_blocking(frame);
        }
        let keys = call.unresolved_keys();
        self.held = Some(Held { call, deadline });
        if keys.is_empty() {
            return self.next_slice();
        }
        for key in keys {
            self.announce(Expect::LastId);
            self.out
                .unsplit(encode::command(&[&b"XINFO"[..], b"STREAM", &key]));
        }
    }

    /// How long a slice may block before this connection must re-authenticate.
    fn budget(&self) -> std::time::Duration {
        let left = self
            .credential
            .expires_at
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        blocking::budget(left, rand::random())
    }

    /// Sends the held command again, for the time it has left or the
    /// budget, whichever is shorter; the last slice ends the hold.
    fn next_slice(&mut self) {
        let Some(held) = &self.held else {
            return;
        };
        let budget = self.budget();
        let now = Instant::now();
        match held.deadline {
            Some(deadline) if deadline <= now + budget => {
                // Whatever this one answers is the client's reply.
                let frame = held
                    .call
                    .with_timeout(deadline.saturating_duration_since(now));
                self.held = None;
                self.forward_counted(frame);
            }
            _ => {
                let frame = held.call.with_timeout(budget);
                self.announce(Expect::Slice);
                self.out.unsplit(frame);
            }
        }
    }

    /// The reply side reports on the held command.
    fn slice_ended(&mut self, end: SliceEnd) {
        let Some(held) = &mut self.held else {
            return;
        };
        match end {
            SliceEnd::Served => self.held = None,
            SliceEnd::LastId(Ok(id)) => {
                if held.call.resolve(id) {
                    self.next_slice();
                }
            }
            SliceEnd::LastId(Err(why)) => {
                // `$` cannot be pinned down: block in one piece, as sent.
                tracing::warn!(reply = %why, "cannot resolve XREAD's $; the command blocks unsliced and may not outlive the token");
                let frame = held.call.original();
                self.held = None;
                self.forward_counted(frame);
            }
            SliceEnd::TimedOut(null) => {
                if held.deadline.is_some_and(|d| d <= Instant::now()) {
                    self.held = None;
                    self.local(null);
                    return;
                }
                // Between two slices the connection takes an AUTH.
                let held = self.held.take();
                if self.reauth.is_some() && self.reauth_blocker().is_none() {
                    self.inject_reauth();
                }
                self.held = held;
                self.next_slice();
            }
        }
    }

    /// Before a RESP2 client's first subscription: switch the upstream
    /// connection to RESP3, where AUTH stays allowed while subscribed.
    fn upgrade_for(&mut self, kind: SubscribeKind, argc: u32) {
        let subscribes = kind.adds() && argc >= 2 && !self.in_multi;
        // Under CLIENT REPLY OFF/SKIP the HELLO's reply could not be told apart.
        if subscribes && !self.stream.resp3 && !self.upgraded && self.reply_mode == ReplyMode::On {
            self.switch_protocol(3);
        }
    }

    /// Injects `HELLO <version>`; its reply is consumed.
    fn switch_protocol(&mut self, version: u8) {
        self.announce(Expect::Protocol(version));
        let v = [b'0' + version];
        self.out.unsplit(encode::command(&[&b"HELLO"[..], &v]));
        self.upgraded = version == 3;
    }

    /// While a RESP2 client's connection runs in RESP3 for its subscriptions,
    /// does what Redis does with a RESP2 subscribed client: only the
    /// SUBSCRIBE family, PING, QUIT and RESET run; PING answers in the
    /// subscribed shape; anything else gets Redis's context error. Once the
    /// subscriptions are gone the connection returns to RESP2 first. `named`
    /// holds at least the command's name (and subcommand, if sent). True when
    /// the command was answered here.
    fn subscribed_gate(
        &mut self,
        kind: CommandKind,
        args: Option<&[Bytes]>,
        named: &[Bytes],
    ) -> bool {
        if !self.upgraded {
            return false;
        }
        if !self.stream.subscribed() {
            self.switch_protocol(2);
            return false;
        }
        match kind {
            CommandKind::Subscribe(_) | CommandKind::Quit | CommandKind::Reset => false,
            CommandKind::Ping => match args {
                Some(args) if args.len() <= 2 => {
                    self.stand_in(resp2::subscribed_pong(args.get(1)));
                    true
                }
                _ => false, // an arity error, which the server words itself
            },
            _ => {
                self.local(encode::error(&format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    full_name(named)
                )));
                true
            }
        }
    }

    /// Whether the command now being handled gets a reply (`CLIENT REPLY`).
    fn replied(&mut self) -> bool {
        match self.reply_mode {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::Skip(n) => {
                self.reply_mode = if n > 1 {
                    ReplyMode::Skip(n - 1)
                } else {
                    ReplyMode::On
                };
                false
            }
        }
    }

    /// Forwards an ordinary command: one reply, relayed.
    fn forward_counted(&mut self, frame: BytesMut) {
        if self.replied() {
            self.unannounced += 1;
        }
        self.out.unsplit(frame);
    }

    /// Forwards a blocking command in one piece (in MULTI it never blocks).
    fn forward_blocking(&mut self, frame: BytesMut) {
        if self.in_multi {
            self.forward_counted(frame);
        } else {
            self.forward_as(frame, Expect::Blocking);
        }
    }

    /// Forwards a command whose reply needs the reply side's attention.
    fn forward_as(&mut self, frame: BytesMut, expect: Expect) {
        if self.replied() {
            self.announce(expect);
        }
        self.out.unsplit(frame);
    }

    /// Client AUTH: redauth owns authentication, so the answer is `+OK`.
    /// Inside MULTI, Redis would queue it and put `+OK` in the EXEC array; a
    /// queued `CLIENT REPLY ON` (a no-op answering `+OK`) takes its place so
    /// the transaction's replies come out exactly as they would.
    ///
    /// With a client password, AUTH is checked (a command too large to hold
    /// cannot be, and is refused); a wrong one gets `-WRONGPASS` and the
    /// connection stays as it was, as in Redis. Inside MULTI a wrong one is
    /// still answered `+OK` in the EXEC array (see README Limits).
    fn auth(&mut self, args: Option<&[Bytes]>) {
        if let Some(password) = self.client_password.current() {
            let checked = args.map_or(Err(gate::WRONGPASS), |a| gate::check_auth(&password, a));
            if let (Err(reply), false) = (checked, self.in_multi) {
                return self.stand_in(Bytes::from_static(reply));
            }
        }
        if self.in_multi {
            self.forward_counted(encode::command(&["CLIENT", "REPLY", "ON"]));
        } else {
            self.stand_in(encode::ok());
        }
    }

    /// QUIT: `+OK`, then close once earlier replies are out.
    fn quit(&mut self) {
        self.stand_in(encode::ok());
        self.announce(Expect::Close);
        self.quitting = true;
    }

    /// Answers the current command with `reply` by way of a `PING` whose own
    /// reply is replaced (see [`Expect::StandIn`]). With replies off, nothing
    /// needs to go to the server at all.
    fn stand_in(&mut self, reply: Bytes) {
        match self.reply_mode {
            ReplyMode::Off => {}
            ReplyMode::Skip(_) => {
                // The server's pending skip must fall on the stand-in.
                self.replied();
                self.out.extend_from_slice(PING);
            }
            ReplyMode::On => {
                self.announce(Expect::StandIn(reply));
                self.out.extend_from_slice(PING);
            }
        }
    }

    /// RESET drops the connection to the default user: follow it with AUTH,
    /// in the same write, so no client command runs unauthenticated.
    fn reset(&mut self, frame: BytesMut) {
        self.in_multi = false;
        self.reply_mode = ReplyMode::On;
        self.stream.reset();
        self.upgraded = false;
        // Authenticate with the newest credential; that settles a pending re-auth.
        if let Some(pending) = self.reauth.take() {
            self.credential = pending.credential;
        }
        let (frame, auth_owed) = auth::after_reset(frame, &self.credential);
        self.announce(Expect::Reset);
        if auth_owed {
            self.announce(Expect::AuthAfterReset);
        }
        self.out.unsplit(frame);
    }

    /// HELLO: forwarded without its `AUTH user pass` option (which, with a
    /// client password, must give it).
    fn hello(&mut self, args: &[Bytes]) {
        if let (Some(password), Some((user, pass))) =
            (self.client_password.current(), gate::hello_auth(args))
        {
            if !gate::matches(&password, Some(user), pass) {
                return self.stand_in(Bytes::from_static(gate::WRONGPASS));
            }
        }
        let version = args.get(1).and_then(|v| match &v[..] {
            b"2" => Some(2),
            b"3" => Some(3),
            _ => None,
        });
        if let Some(v) = version {
            self.stream.resp3 = v == 3;
        }
        let kept = strip_hello_auth(args);
        let frame = encode::command(&kept);
        self.forward_as(frame, Expect::Hello(version));
    }

    /// Tracks `CLIENT REPLY ON|OFF|SKIP`, which decides which later commands
    /// get replies. The command itself is forwarded by the caller.
    fn client_reply(&mut self, args: &[Bytes]) {
        if args.len() != 3 || !args[1].eq_ignore_ascii_case(b"reply") {
            return;
        }
        let mode = &args[2];
        if mode.eq_ignore_ascii_case(b"on") {
            self.reply_mode = ReplyMode::On;
        } else if mode.eq_ignore_ascii_case(b"off") {
            self.reply_mode = ReplyMode::Off;
        } else if mode.eq_ignore_ascii_case(b"skip") && self.reply_mode != ReplyMode::Off {
            // SKIP itself is not answered, and neither is the next command.
            self.reply_mode = ReplyMode::Skip(2);
        }
    }

    /// Queues a reply made by redauth, in order.
    fn local(&mut self, reply: Bytes) {
        self.announce(Expect::Local(reply));
    }

    /// Sends a record to the reply side, after any pending ordinary ones.
    fn announce(&mut self, expect: Expect) {
        if self.unannounced > 0 {
            self.expect.send(Expect::Replies(self.unannounced));
            self.unannounced = 0;
        }
        self.expect.send(expect);
    }

    /// Announces pending commands, then writes them upstream.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.unannounced > 0 {
            self.expect.send(Expect::Replies(self.unannounced));
            self.unannounced = 0;
        }
        if self.handled > 0 {
            metrics::commands(std::mem::take(&mut self.handled));
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        metrics::bytes(Direction::ClientToUpstream, out.len() as u64);
        self.upstream.write_all(&out).await?;
        self.upstream.flush().await
    }
}

/// Commands with subcommands, named `name|subcommand` in Redis's errors.
const CONTAINERS: &[&str] = &[
    "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
    "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
];

/// The command's full name as Redis writes it in errors: lower case, with
/// the subcommand for container commands (`client|info`).
fn full_name(named: &[Bytes]) -> String {
    let name = String::from_utf8_lossy(named.first().map_or(&b""[..], |n| &n[..])).to_lowercase();
    match named.get(1) {
        Some(sub) if CONTAINERS.contains(&name.as_str()) => {
            format!("{name}|{}", String::from_utf8_lossy(sub).to_lowercase())
        }
        _ => name,
    }
}

/// HELLO's arguments without `AUTH <user> <pass>` (kept whole if malformed,
/// so Redis reports the syntax error itself).
fn strip_hello_auth(args: &[Bytes]) -> Vec<Bytes> {
    let mut kept = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if i >= 2 && args[i].eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            i += 3;
            continue;
        }
        kept.push(args[i].clone());
        i += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn hello_loses_only_its_auth_option() {
        let args: Vec<Bytes> = ["HELLO", "3", "AUTH", "u", "p", "SETNAME", "n"]
            .iter()
            .map(|s| b(s))
            .collect();
        assert_eq!(
            strip_hello_auth(&args),
            vec![b("HELLO"), b("3"), b("SETNAME"), b("n")]
        );
        let short: Vec<Bytes> = ["HELLO", "3", "AUTH", "u"].iter().map(|s| b(s)).collect();
        assert_eq!(strip_hello_auth(&short), short);
    }
}
