//! What the request side does with each command that is not ordinary: the
//! one place a command's kind decides its handling. Commands are forwarded
//! with the [`Expect`] record their reply needs, change the connection's
//! [`Sent`](super::state::Sent) state, or go to [`super::local`] to be
//! answered by redauth; blocking commands may be held and run in slices
//! ([`super::slicer`]).

use super::blocking::{self, Call, SliceEnd};
use super::reauth::When;
use super::requests::{RequestPump, Rest};
use super::slicer::{After, Send};
use super::state::{Mode, Protocol, ReplyMode};
use super::Expect;
use crate::cluster::directory::Reply;
use crate::resp::command::{BlockKind, CommandKind, SubscribeKind};
use crate::resp::encode;
use crate::resp::frame::arguments;
use crate::upstream::auth;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

impl<R, W> RequestPump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Starts a command whose arguments may still be arriving; only its name
    /// and argument count are known.
    pub(super) fn start_streamed(
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
                self.switch_for(sub, argc);
                self.state.subscribe(sub, None);
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
    pub(super) fn command(
        &mut self,
        kind: CommandKind,
        frame: BytesMut,
        args: Option<&[Bytes]>,
        argc: u32,
    ) {
        if self.state.switched() {
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
                self.state.replies.follow(args);
                self.leftovers.client(args);
                self.forward_counted(frame);
            }
            (CommandKind::Cluster, Some(args)) => {
                match args.get(1).and_then(|sub| Reply::of_subcommand(sub)) {
                    // Inside MULTI the reply is +QUEUED (EXEC's array is
                    // rewritten for redirects only).
                    Some(reply) if self.policy.rewrites && !self.state.in_multi() => {
                        self.forward_as(frame, Expect::Rewrite(reply))
                    }
                    _ => self.forward_counted(frame),
                }
            }
            (CommandKind::Subscribe(sub), args) => {
                self.switch_for(sub, argc);
                self.state.subscribe(sub, args);
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
        let in_multi = self.state.in_multi();
        match kind {
            CommandKind::Quit => self.quit(),
            CommandKind::Reset => self.reset(frame),
            CommandKind::Multi => {
                // A transaction can outlast the token: take a pending
                // re-authentication now, while it still can go.
                self.reauth_if_safe(When::Early);
                self.state.multi();
                self.forward_counted(frame);
            }
            CommandKind::Exec => {
                if self.state.exec() {
                    self.forward_as(frame, Expect::ExecWithSubscribe);
                } else if self.policy.rewrites {
                    self.forward_as(frame, Expect::Rewrite(Reply::Redirects));
                } else {
                    self.forward_counted(frame);
                }
            }
            CommandKind::Discard => {
                self.state.discard();
                self.forward_counted(frame);
            }
            CommandKind::Monitor if !in_multi => {
                self.state.mode = Mode::Raw;
                self.forward_as(frame, Expect::Monitor);
            }
            CommandKind::Monitor => self.forward_as(frame, Expect::Monitor),
            CommandKind::Sync if !in_multi => {
                self.state.mode = Mode::Raw;
                self.forward_as(frame, Expect::Passthrough);
            }
            CommandKind::Subscribe(kind) if !in_multi => self.forward_as(
                frame,
                Expect::Subscribe {
                    kind,
                    channels: argc.saturating_sub(1),
                },
            ),
            // Queued in MULTI (and recorded in `state` by the caller).
            _ => self.forward_counted(frame),
        }
    }

    /// RESET drops the connection to the default user: follow it with AUTH,
    /// in the same write, so no client command runs unauthenticated.
    fn reset(&mut self, frame: BytesMut) {
        self.state.reset();
        // Authenticate with the newest credential; that settles a pending re-auth.
        let (frame, auth_owed) = auth::after_reset(frame, self.reauth.settle());
        self.outbox.announce(Expect::Reset);
        if auth_owed {
            self.outbox.announce(Expect::AuthAfterReset);
        }
        self.outbox.out.unsplit(frame);
    }

    /// A blocking command: forwarded as is when it ends before the
    /// connection must re-authenticate, else run in slices.
    fn blocking(&mut self, kind: BlockKind, frame: BytesMut, args: &[Bytes]) {
        // Replies must be seen to be held back, and a transaction never blocks.
        let sliceable = !self.state.in_multi()
            && self.state.replies == ReplyMode::On
            && self.reauth.deadline().is_some();
        let Some(call) = sliceable.then(|| Call::parse(kind, args)).flatten() else {
            return self.forward_blocking(frame);
        };
        // Blocked, the connection could not take an AUTH: take a pending one now.
        self.reauth_if_safe(When::Early);
        let budget = self.budget();
        match self.slicer.start(call, Instant::now(), budget) {
            Some(sends) => sends.into_iter().for_each(|send| self.send(send)),
            None => self.forward_blocking(frame),
        }
    }

    /// How long a slice may block before this connection must re-authenticate.
    fn budget(&self) -> Duration {
        let left = self
            .reauth
            .deadline()
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        blocking::budget(left, rand::random())
    }

    /// Sends what the slicer asks for.
    fn send(&mut self, send: Send) {
        match send {
            Send::Special(expect, frame) => self.outbox.special(frame, Some(expect)),
            Send::Counted(frame) => self.forward_counted(frame),
        }
    }

    /// The reply side reports on the held command.
    pub(super) fn slice_ended(&mut self, end: SliceEnd) {
        match self.slicer.ended(end, Instant::now(), self.budget()) {
            After::Nothing => {}
            After::Reply(null) => self.outbox.local(null),
            After::Send(send) => self.send(send),
            After::Between => {
                // Between two slices the connection takes an AUTH.
                self.reauth_if_safe(When::Early);
                let budget = self.budget();
                if let Some(send) = self.slicer.next(Instant::now(), budget) {
                    self.send(send);
                }
            }
        }
    }

    /// Before a RESP2 client's first subscription: switch the upstream
    /// connection to RESP3, where AUTH stays allowed while subscribed.
    fn switch_for(&mut self, kind: SubscribeKind, argc: u32) {
        let subscribes = kind.adds() && argc >= 2 && !self.state.in_multi();
        // Under CLIENT REPLY OFF/SKIP the HELLO's reply could not be told apart.
        if subscribes
            && self.state.protocol == Protocol::Resp2
            && self.state.replies == ReplyMode::On
        {
            self.switch_protocol(3);
        }
    }

    /// Injects `HELLO <version>`; its reply is consumed.
    pub(super) fn switch_protocol(&mut self, version: u8) {
        let v = [b'0' + version];
        let hello = encode::command(&[&b"HELLO"[..], &v]);
        self.outbox.special(hello, Some(Expect::Protocol(version)));
        self.state.protocol = match version {
            3 => Protocol::Switched,
            _ => Protocol::Resp2,
        };
    }

    /// Forwards an ordinary command: one reply, relayed.
    pub(super) fn forward_counted(&mut self, frame: BytesMut) {
        let replied = self.state.replies.take();
        self.outbox.counted(frame, replied);
    }

    /// Forwards a blocking command in one piece (in MULTI it never blocks).
    fn forward_blocking(&mut self, frame: BytesMut) {
        if self.state.in_multi() {
            self.forward_counted(frame);
        } else {
            self.forward_as(frame, Expect::Blocking);
        }
    }

    /// Forwards a command whose reply needs the reply side's attention.
    pub(super) fn forward_as(&mut self, frame: BytesMut, expect: Expect) {
        let replied = self.state.replies.take();
        self.outbox.special(frame, replied.then_some(expect));
    }
}
