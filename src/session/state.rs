//! The protocol state of one upstream connection, without any I/O.
//!
//! Redis answers commands in order, so a relay sees the connection's state
//! twice: the request side runs ahead of the replies, and must decide by what
//! the commands *sent so far* will have done ([`Sent`]: may an AUTH go in
//! now, does this command get a reply at all, may the client be called
//! idle); the reply side must read each frame by what the server *has* done
//! so far ([`Answered`]: may a `*` frame be a pub/sub message, must RESP3
//! pushes be turned back into RESP2). Both are built from the same facts —
//! [`Mode`], [`ReplyMode`], [`Protocol`], [`Subscriptions`] — and meet at the
//! queue of [`super::Expect`] records, through which every change the request
//! side predicts reaches the reply side in order.
//!
//! Everything here belongs to one upstream connection; what belongs to the
//! client (its password, its idleness, its input) stays with the session.

use crate::resp::command::SubscribeKind;
use bytes::Bytes;
use std::collections::HashSet;

/// Where the command stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each command runs when it arrives.
    #[default]
    Normal,
    /// Inside `MULTI`: commands are queued until `EXEC` or `DISCARD`.
    Multi,
    /// `MONITOR`, `SYNC` or `PSYNC` was sent: the connection is a one-way
    /// feed and takes no more commands.
    Raw,
    /// `QUIT` was answered: nothing more is read from the client.
    Quitting,
}

/// `CLIENT REPLY`: whether a command gets a reply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// The next `n` commands (SKIP itself, then one more) get no reply.
    Skip(u8),
}

impl ReplyMode {
    /// Whether the command now being sent gets a reply; counts a skip down.
    pub fn take(&mut self) -> bool {
        match *self {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::Skip(n) => {
                *self = if n > 1 {
                    ReplyMode::Skip(n - 1)
                } else {
                    ReplyMode::On
                };
                false
            }
        }
    }

    /// Follows `CLIENT REPLY ON|OFF|SKIP` (`args` whole: `CLIENT`, `REPLY`,
    /// the mode); any other `CLIENT` command changes nothing.
    pub fn follow(&mut self, args: &[Bytes]) {
        if args.len() != 3 || !args[1].eq_ignore_ascii_case(b"reply") {
            return;
        }
        let mode = &args[2];
        if mode.eq_ignore_ascii_case(b"on") {
            *self = ReplyMode::On;
        } else if mode.eq_ignore_ascii_case(b"off") {
            *self = ReplyMode::Off;
        } else if mode.eq_ignore_ascii_case(b"skip") && *self != ReplyMode::Off {
            // SKIP itself is not answered, and neither is the next command.
            *self = ReplyMode::Skip(2);
        }
    }
}

/// The protocol spoken on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
    /// RESP3 upstream for a RESP2 client: redauth switched the connection
    /// for its subscriptions (a RESP2 subscribed connection refuses AUTH), and
    /// turns what the server sends back into RESP2 (see `super::resp2`).
    Switched,
}

impl Protocol {
    /// Whether the server speaks RESP3 on the connection.
    pub fn server_resp3(self) -> bool {
        self != Protocol::Resp2
    }
}

/// The channels, patterns and shard channels a connection is subscribed to.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    /// Indexed by [`SubscribeKind::set`].
    sets: [HashSet<Bytes>; 3],
    /// A subscribe command too large to read was sent: assume subscribed.
    unknown: bool,
}

impl Subscriptions {
    /// Whether the connection is subscribed to anything.
    pub fn any(&self) -> bool {
        self.unknown || self.sets.iter().any(|s| !s.is_empty())
    }

    /// How many of `kind`'s set there are.
    pub fn count(&self, kind: SubscribeKind) -> usize {
        self.sets[kind.set()].len()
    }

    /// A SUBSCRIBE-family command's effect, from its channel arguments
    /// (`None`: too large to read).
    pub fn command(&mut self, kind: SubscribeKind, channels: Option<Vec<Bytes>>) {
        let Some(channels) = channels else {
            self.unknown = kind.adds() || self.unknown;
            return;
        };
        let set = &mut self.sets[kind.set()];
        match (kind.adds(), channels.is_empty()) {
            // SUBSCRIBE with no channel is an arity error: no change.
            (true, true) => {}
            (true, false) => set.extend(channels),
            (false, true) => set.clear(),
            (false, false) => channels.iter().for_each(|c| {
                set.remove(c);
            }),
        }
    }

    /// One confirmation from the server, naming `channel`.
    pub fn confirmed(&mut self, kind: SubscribeKind, channel: Bytes) {
        let set = &mut self.sets[kind.set()];
        if kind.adds() {
            set.insert(channel);
        } else {
            set.remove(&channel);
        }
    }
}

/// Why an AUTH cannot be injected at this point of the command stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// Inside MULTI, Redis would queue it and answer it in the EXEC array.
    Multi,
    /// A RESP2 connection with subscriptions refuses AUTH.
    SubscribedResp2,
    /// Under `CLIENT REPLY SKIP` the AUTH's reply would be the one skipped.
    ReplySkip,
    /// A command's arguments are still arriving.
    MidCommand,
    /// A MONITOR feed or replication stream (or QUIT) takes no more commands.
    Raw,
    /// A blocking command is running in slices; the next slice takes it.
    Blocked,
}

/// The connection as the commands sent so far will leave it: the request
/// side's view.
#[derive(Debug, Default)]
pub struct Sent {
    pub mode: Mode,
    pub replies: ReplyMode,
    pub protocol: Protocol,
    pub subscriptions: Subscriptions,
    /// SUBSCRIBE-family commands queued in the open MULTI (`None`: channels
    /// too large to read); they take effect at EXEC.
    queued: Vec<(SubscribeKind, Option<Vec<Bytes>>)>,
}

impl Sent {
    pub fn in_multi(&self) -> bool {
        self.mode == Mode::Multi
    }

    pub fn switched(&self) -> bool {
        self.protocol == Protocol::Switched
    }

    /// A SUBSCRIBE-family command with its arguments (`None` if too large to
    /// hold); inside MULTI it takes effect at EXEC.
    pub fn subscribe(&mut self, kind: SubscribeKind, args: Option<&[Bytes]>) {
        let channels = args.map(|args| args.get(1..).unwrap_or_default().to_vec());
        if self.in_multi() {
            self.queued.push((kind, channels));
        } else {
            self.subscriptions.command(kind, channels);
        }
    }

    pub fn multi(&mut self) {
        self.mode = Mode::Multi;
    }

    /// EXEC: the queued subscriptions take effect. True when there were any
    /// (their confirmations then come inside the EXEC array).
    pub fn exec(&mut self) -> bool {
        self.mode = Mode::Normal;
        let queued = std::mem::take(&mut self.queued);
        let any = !queued.is_empty();
        for (kind, channels) in queued {
            self.subscriptions.command(kind, channels);
        }
        any
    }

    /// DISCARD: the queued subscriptions never happen.
    pub fn discard(&mut self) {
        self.mode = Mode::Normal;
        self.queued.clear();
    }

    /// RESET: RESP2, replies on, no transaction, no subscriptions. (A raw
    /// feed stays raw: the reply side relays it as is from then on.)
    pub fn reset(&mut self) {
        let mode = match self.mode {
            Mode::Raw => Mode::Raw,
            _ => Mode::Normal,
        };
        *self = Sent {
            mode,
            ..Sent::default()
        };
    }

    /// Why an AUTH cannot go in now, as far as the connection's state goes
    /// (the session adds what it alone knows: a command mid-stream, a
    /// blocking command in slices).
    pub fn reauth_blocker(&self) -> Option<Blocker> {
        match (self.mode, self.replies) {
            (Mode::Multi, _) => Some(Blocker::Multi),
            (_, ReplyMode::Skip(_)) => Some(Blocker::ReplySkip),
            (Mode::Raw | Mode::Quitting, _) => Some(Blocker::Raw),
            _ if self.subscriptions.any() && self.protocol == Protocol::Resp2 => {
                Some(Blocker::SubscribedResp2)
            }
            _ => None,
        }
    }

    /// Nothing the connection could still send or owe: no feed, no
    /// subscription, replies on, the protocol the client chose. (An open
    /// transaction is no obstacle: the pool's `RESET` discards it.)
    pub fn quiet(&self) -> bool {
        self.mode != Mode::Raw
            && self.replies == ReplyMode::On
            && self.protocol != Protocol::Switched
            && !self.subscriptions.any()
    }

    /// Subscribed and MONITOR clients are never idle (as in Redis).
    pub fn never_idle(&self) -> bool {
        self.mode == Mode::Raw || self.subscriptions.any()
    }
}

/// The connection as the replies so far show it: the reply side's view.
#[derive(Debug, Default)]
pub struct Answered {
    pub protocol: Protocol,
    pub subscriptions: Subscriptions,
    /// A MONITOR feed or a replication stream: everything is relayed as is.
    pub passthrough: bool,
}

impl Answered {
    /// `HELLO <version>` succeeded (the client's own).
    pub fn hello(&mut self, version: u8) {
        self.protocol = if version == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
    }

    /// redauth's own `HELLO <version>` succeeded: RESP3 for a RESP2 client's
    /// subscriptions, or back.
    pub fn switched(&mut self, version: u8) {
        self.protocol = if version == 3 {
            Protocol::Switched
        } else {
            Protocol::Resp2
        };
    }

    /// `+RESET`: as a fresh connection.
    pub fn reset(&mut self) {
        *self = Answered::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn subscriptions_follow_the_commands() {
        let mut s = Sent::default();
        let sub = SubscribeKind::Subscribe;
        let unsub = SubscribeKind::Unsubscribe;
        s.subscribe(sub, Some(&[b("SUBSCRIBE"), b("a"), b("b")]));
        assert!(s.subscriptions.any());
        s.subscribe(unsub, Some(&[b("UNSUBSCRIBE"), b("a")]));
        assert!(s.subscriptions.any());
        s.subscribe(SubscribeKind::PUnsubscribe, Some(&[b("PUNSUBSCRIBE")]));
        assert!(s.subscriptions.any(), "patterns are another set");
        s.subscribe(unsub, Some(&[b("UNSUBSCRIBE")]));
        assert!(!s.subscriptions.any());
    }

    #[test]
    fn subscriptions_in_multi_count_from_exec_and_vanish_on_discard() {
        let mut s = Sent::default();
        let args = [b("PSUBSCRIBE"), b("p*")];
        s.multi();
        s.subscribe(SubscribeKind::PSubscribe, Some(&args));
        assert!(!s.subscriptions.any());
        s.discard();
        assert!(!s.exec(), "nothing was queued after the DISCARD");
        assert!(!s.subscriptions.any());
        s.multi();
        s.subscribe(SubscribeKind::PSubscribe, Some(&args));
        assert!(s.exec());
        assert!(s.subscriptions.any());
        s.protocol = Protocol::Switched;
        s.reset();
        assert!(!s.subscriptions.any() && s.protocol == Protocol::Resp2);
    }

    #[test]
    fn an_unreadable_subscribe_counts_as_subscribed() {
        let mut s = Subscriptions::default();
        s.command(SubscribeKind::Unsubscribe, None);
        assert!(!s.any());
        s.command(SubscribeKind::Subscribe, None);
        assert!(s.any());
    }

    #[test]
    fn auth_waits_for_multi_skip_feeds_and_resp2_subscriptions() {
        let mut s = Sent::default();
        assert_eq!(s.reauth_blocker(), None);
        s.multi();
        assert_eq!(s.reauth_blocker(), Some(Blocker::Multi));
        s.exec();
        s.replies = ReplyMode::Skip(2);
        assert_eq!(s.reauth_blocker(), Some(Blocker::ReplySkip));
        s.replies.take();
        s.replies.take();
        assert_eq!(s.replies, ReplyMode::On);
        s.subscribe(SubscribeKind::Subscribe, Some(&[b("SUBSCRIBE"), b("c")]));
        assert_eq!(s.reauth_blocker(), Some(Blocker::SubscribedResp2));
        assert!(s.never_idle() && !s.quiet());
        s.protocol = Protocol::Switched;
        assert_eq!(
            s.reauth_blocker(),
            None,
            "RESP3 allows AUTH while subscribed"
        );
        s.reset();
        s.mode = Mode::Raw;
        assert_eq!(s.reauth_blocker(), Some(Blocker::Raw));
        assert!(s.never_idle());
    }

    #[test]
    fn replies_off_on_and_skip() {
        let mut r = ReplyMode::default();
        let client = |mode: &str| [b("CLIENT"), b("REPLY"), b(mode)];
        r.follow(&client("SKIP"));
        assert_eq!((r.take(), r.take(), r.take()), (false, false, true));
        r.follow(&client("off"));
        assert!(!r.take());
        r.follow(&client("skip"));
        assert_eq!(r, ReplyMode::Off, "SKIP does not end OFF");
        r.follow(&[b("CLIENT"), b("SETNAME"), b("x")]);
        assert_eq!(r, ReplyMode::Off);
        r.follow(&client("On"));
        assert!(r.take());
    }

    #[test]
    fn the_reply_side_reads_frames_by_what_the_server_did() {
        let mut a = Answered::default();
        a.subscriptions
            .confirmed(SubscribeKind::Subscribe, b("news"));
        assert!(a.subscriptions.any() && !a.protocol.server_resp3());
        a.switched(3);
        assert!(a.protocol.server_resp3() && a.protocol == Protocol::Switched);
        a.subscriptions
            .confirmed(SubscribeKind::Unsubscribe, b("news"));
        assert_eq!(a.subscriptions.count(SubscribeKind::Subscribe), 0);
        a.hello(3);
        a.passthrough = true;
        a.reset();
        assert!(a.protocol == Protocol::Resp2 && !a.passthrough);
    }
}
