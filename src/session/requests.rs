//! The request side of a session: client commands in, upstream commands out.
//!
//! This file runs the wire loop and finds command boundaries: commands are
//! forwarded as the very bytes the client sent, a read's worth at a time, and
//! large arguments stream through. Runs of ordinary commands take a fast path
//! here; every other command is classified once and handled in
//! [`super::dispatch`] (forwarded, with an [`Expect`] record where its reply
//! needs attention) or [`super::local`] (answered by redauth).
//!
//! Between two commands the request side also re-authenticates when a newer
//! credential is due ([`super::reauth`]), and it runs blocking commands that
//! would outlive the token in slices ([`super::slicer`]).

use super::consumed::Report;
use super::outbox::Outbox;
use super::reauth::{Reauth, When};
use super::slicer::Slicer;
use super::state::{Blocker, Mode, ReplyMode, Sent};
use super::{pass_on, until, ClientPassword, Ended, Expect, ExpectTx, READ_CHUNK};
use crate::credentials::{Credential, NextRenewal, Renewals};
use crate::metrics::{self, Direction, UpstreamError};
use crate::resp::command::CommandKind;
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

/// How long a HELLO or CLIENT command may grow while waiting for all of its
/// arguments; beyond this it is relayed without being looked at.
const WHOLE_COMMAND_MAX: usize = 1024 * 1024;

/// How much a client may send while its blocking command runs in slices;
/// beyond this redauth stops reading until the call is over.
const HELD_MAX: usize = 1024 * 1024;

/// What happens to the rest of a command that is being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rest {
    Forward,
    Drop,
}

/// What the configuration asks of every client.
pub(super) struct Policy {
    /// Largest bulk argument (`--max-bulk-len`).
    pub max_bulk: u64,
    /// Close the client after this long without a command (`--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// The password a client's AUTH must give (`--client-password-file`).
    pub client_password: ClientPassword,
    /// Node addresses in replies are rewritten (cluster mode): `CLUSTER`
    /// topology replies and `EXEC` arrays get records that say so.
    pub rewrites: bool,
}

/// How the request side stopped.
pub(super) enum Stopped {
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

pub(super) struct RequestPump<R, W> {
    client: R,
    upstream: W,
    pub(super) buf: BytesMut,
    pub(super) outbox: Outbox,
    /// A command whose arguments are still arriving, and what becomes of them.
    streaming: Option<(RequestBody, Rest)>,
    pub(super) policy: Policy,
    /// The client ended its input (a read returned 0).
    input_ended: bool,
    /// When the client last sent anything.
    last_active: Instant,
    /// The last command was a blocking one (maybe still blocked upstream):
    /// like Redis, never close a blocked client for idleness.
    last_blocking: bool,
    /// The upstream connection as the commands sent so far leave it.
    pub(super) state: Sent,
    /// The connection's credential, and a newer one waiting to be used.
    pub(super) reauth: Reauth,
    /// The next credential to be published.
    next_credential: NextRenewal,
    /// A blocking command running in slices: later commands wait.
    pub(super) slicer: Slicer,
    /// How the slices of the held command end, and how injected AUTHs were
    /// answered (from the reply side).
    slices: UnboundedReceiver<Report>,
    /// The reply side still reports (it has not ended).
    reporting: bool,
    /// Settings the client made that `RESET` does not undo.
    pub(super) leftovers: Leftovers,
}

impl<R, W> RequestPump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(super) fn new(
        client: R,
        upstream: W,
        (expect, slices): (ExpectTx, UnboundedReceiver<Report>),
        early: BytesMut,
        (credential, authed_at): (Arc<Credential>, SystemTime),
        watch: Renewals,
        policy: Policy,
    ) -> Self {
        let mut buf = early;
        buf.reserve(READ_CHUNK);
        RequestPump {
            client,
            upstream,
            buf,
            outbox: Outbox::new(expect),
            streaming: None,
            policy,
            input_ended: false,
            last_active: Instant::now(),
            last_blocking: false,
            state: Sent::default(),
            reauth: Reauth::new(credential, authed_at),
            next_credential: watch.into_next(),
            slicer: Slicer::default(),
            slices,
            reporting: true,
            leftovers: Leftovers::default(),
        }
    }

    pub(super) async fn run(&mut self) -> Stopped {
        loop {
            let closing = match self.process() {
                Ok(()) => false,
                Err((error, mid_command)) => {
                    tracing::debug!(%error, "protocol error from client");
                    if mid_command {
                        // The server holds part of a command it will never see
                        // finished: no reply will come for it.
                        self.outbox.announce(Expect::Abandoned);
                    }
                    self.outbox.local(error.reply());
                    self.outbox.announce(Expect::Close);
                    true
                }
            };
            if !closing {
                self.reauth_if_safe(When::Due(Instant::now()));
            }
            let quitting = self.state.mode == Mode::Quitting;
            let input_done = self.input_ended && !closing && !quitting;
            if input_done {
                self.end_of_input();
            }
            if let Err(e) = self.flush().await {
                metrics::upstream_error(UpstreamError::Io);
                return Stopped::UpstreamWriteFailed(format!("writing to upstream: {e}"));
            }
            if closing || quitting {
                return Stopped::Closing;
            }
            if input_done {
                return Stopped::InputEnded;
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            let wake = self.reauth.wake_at(Instant::now());
            let held = self.slicer.holding();
            // Backpressure: while the client is not reading its replies, stop
            // reading its commands.
            let backlogged = self.outbox.backlogged();
            let readable = !backlogged && (!held || self.buf.len() < HELD_MAX);
            // Subscribed, blocked and MONITOR clients are never idle (as in Redis).
            let idle_at = self
                .policy
                .idle_timeout
                .filter(|_| !held && !self.last_blocking && !self.state.never_idle())
                .map(|t| self.last_active + t);
            tokio::select! {
                read = self.client.read_buf(&mut self.buf), if readable => match read {
                    Ok(0) => self.input_ended = true,
                    Ok(_) if self.policy.idle_timeout.is_some() => self.last_active = Instant::now(),
                    Ok(_) => {}
                    Err(e) => return Stopped::Ended(Ended::Failed(format!("reading from client: {e}"))),
                },
                (watch, credential) = &mut self.next_credential => {
                    self.next_credential = watch.into_next();
                    self.reauth.published(credential, Instant::now(), rand::random());
                }
                _ = self.outbox.drained(), if backlogged => {}
                _ = until(idle_at) => {
                    return Stopped::Ended(Ended::Closed("idle timeout"));
                }
                report = self.slices.recv(), if self.reporting && (held || self.reauth.awaiting()) => match report {
                    Some(Report::Slice(end)) => self.slice_ended(end),
                    Some(Report::Reauth(verdict)) => {
                        self.reauth.answer(verdict, Instant::now(), rand::random());
                    }
                    None if held => return Stopped::Ended(Ended::UpstreamClosed),
                    None => self.reporting = false,
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
            self.outbox.announce(Expect::Abandoned);
        }
        self.outbox.announce(Expect::InputEnded);
    }

    /// Nothing sent upstream is unaccounted for: no command half-forwarded
    /// or held, no feed, no subscription, and every reply announced.
    pub(super) fn quiet(&self) -> bool {
        self.streaming.is_none()
            && !self.slicer.holding()
            && self.state.quiet()
            && self.outbox.is_empty()
    }

    /// The upstream side, and what the client left on it, once the pump is done.
    pub(super) fn into_upstream(self) -> (W, Leftovers) {
        (self.upstream, self.leftovers)
    }

    /// Why AUTH cannot be injected at this point of the command stream.
    fn blocker(&self) -> Option<Blocker> {
        if self.streaming.is_some() {
            Some(Blocker::MidCommand)
        } else if self.slicer.blocked() {
            Some(Blocker::Blocked)
        } else {
            self.state.reauth_blocker()
        }
    }

    /// Re-authenticates with a pending credential if `when` allows and this
    /// is a safe point (the decision is [`Reauth::take_if_safe`]'s).
    pub(super) fn reauth_if_safe(&mut self, when: When) {
        let blocker = self.blocker();
        let Some(credential) = self.reauth.take_if_safe(blocker, when) else {
            return;
        };
        let Some(auth) = auth::command(&credential) else {
            return;
        };
        metrics::reauth(metrics::ReauthEvent::Injected);
        if self.state.replies == ReplyMode::Off {
            // The AUTH must be answered for its reply to be consumed.
            let on = encode::command(&["CLIENT", "REPLY", "ON"]);
            self.outbox.special(on, Some(Expect::ReplyOn));
            self.outbox.special(auth, Some(Expect::Reauth));
            let off = encode::command(&["CLIENT", "REPLY", "OFF"]);
            self.outbox.special(off, None);
        } else {
            self.outbox.special(auth, Some(Expect::Reauth));
        }
    }

    /// Handles every complete command (and streamable part) in the buffer.
    /// `Err` is a protocol error, with whether it struck inside a command
    /// that was already partly forwarded; everything before it was handled.
    fn process(&mut self) -> Result<(), (ProtocolError, bool)> {
        let mut ready = 0;
        let result = self.commands(&mut ready);
        pass_on(&mut self.buf, &mut self.outbox.out, ready);
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
        if self.state.switched()
            || self.state.replies != ReplyMode::On
            || CommandKind::of(&buf[name.clone()]) != CommandKind::Other
        {
            return Ok(false);
        }
        let mut whole = *body;
        let advance = whole
            .advance(&buf[*head_len..], self.policy.max_bulk)
            .map_err(|e| (e, false))?;
        if !advance.done {
            return Ok(false);
        }
        *ready += head_len + advance.consumed;
        self.outbox.handled();
        self.outbox.counted_in_place();
        self.last_blocking = false;
        Ok(true)
    }

    fn commands(&mut self, ready: &mut usize) -> Result<(), (ProtocolError, bool)> {
        let max_bulk = self.policy.max_bulk;
        loop {
            // (`ready` is 0 here whenever a command is mid-stream: streaming
            // starts only in the general path, once `ready` was passed on.)
            if let Some((mut body, rest)) = self.streaming.take() {
                let advance = body.advance(&self.buf, max_bulk).map_err(|e| (e, true))?;
                let part = self.buf.split_to(advance.consumed);
                if rest == Rest::Forward {
                    self.outbox.out.unsplit(part);
                }
                if !advance.done {
                    self.streaming = Some((body, rest));
                    return Ok(());
                }
            }
            if self.state.mode == Mode::Quitting || self.slicer.holding() {
                return Ok(());
            }
            let Some(request) =
                Request::parse(&self.buf[*ready..], max_bulk).map_err(|e| (e, false))?
            else {
                return Ok(());
            };
            if self.ordinary_command(&request, ready)? {
                continue;
            }
            // The general path works at the front of the buffer: the
            // request's positions, taken at `ready`, hold there after this.
            pass_on(&mut self.buf, &mut self.outbox.out, std::mem::take(ready));
            match request {
                Request::Ignored { len } => self.buf.advance(len),
                Request::Inline { len, args } => {
                    self.outbox.handled();
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
                    self.outbox.handled();
                    self.last_blocking = matches!(kind, CommandKind::Blocking(_));
                    // Validate what is buffered before forwarding any of it, so a
                    // malformed command held whole never reaches the server.
                    let mut whole = body;
                    let advance = whole
                        .advance(&self.buf[head_len..], max_bulk)
                        .map_err(|e| (e, false))?;
                    if advance.done {
                        let frame = self.buf.split_to(head_len + advance.consumed);
                        let args = kind
                            .needs_arguments()
                            .then(|| arguments(&frame.clone().freeze(), argc));
                        self.command(kind, frame, args.as_deref(), argc);
                    } else if (kind.needs_arguments() || self.state.switched())
                        && self.buf.len() <= WHOLE_COMMAND_MAX
                    {
                        // (While switched, a refused command is named in full.)
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

    /// Writes what is ready upstream, once its records are announced.
    async fn flush(&mut self) -> std::io::Result<()> {
        let Some(out) = self.outbox.take() else {
            return Ok(());
        };
        metrics::bytes(Direction::ClientToUpstream, out.len() as u64);
        self.upstream.write_all(&out).await?;
        self.upstream.flush().await
    }
}
