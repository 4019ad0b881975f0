//! Cluster routing mode: the main port makes an OSS cluster look like one
//! Redis to clients that know nothing of clusters.
//!
//! Each client command goes to the primary serving its keys' slot, over the
//! client's own connection to that node (a [`legs::Leg`]: a connection from
//! the node's warm pool that the router drives itself for plain commands
//! ([`direct`]), handed over to an ordinary session for anything else, so
//! authentication and re-authentication are the single-endpoint core's);
//! keyless commands go to the client's *home* node
//! (the first primary), and the few with a cluster-wide meaning to every
//! primary ([`plan`]). Replies come back in the order the client sent the
//! commands: each command is an *entry* in an ordered queue, filled in part
//! by part as the legs answer, and sent to the client once complete and at
//! the head ([`merge`] builds a split command's one reply).
//!
//! Redirects never reach the client: `-MOVED` resends the command where it
//! says (and asks for a topology refresh), `-ASK` sends `ASKING` and the
//! command there, `-TRYAGAIN` and `-CLUSTERDOWN` are retried with backoff, a
//! few times, then passed on. A command the server executed is never resent.
//!
//! Transactions are pinned to one slot's node ([`tx`]). Pub/sub: classic
//! channels on the home node, shard channels on their slot's node (and
//! subscribed again where the slot went when a node drops one); messages
//! from any leg are passed on as they come. A client's commands for one slot
//! keep their order through redirects ([`order`]).
//!
//! Limits (see README): replies are held whole until complete; commands for
//! different slots may run out of order; `CLIENT REPLY`/`TRACKING`,
//! `MONITOR` and `SYNC` are refused.

mod direct;
mod dispatch;
mod info;
mod keyless;
mod legs;
mod merge;
mod order;
mod pipe;
mod plan;
mod replies;
mod tx;
mod waiting;

use crate::cluster::Directory;
use crate::metrics;
use crate::resp::encode;
use crate::session::{SessionContext, SessionSettings};
use bytes::{Buf, Bytes, BytesMut};
use legs::{Leg, Legs};
use merge::{combine, Combine};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use waiting::{Frames, Redo, Waiting};

/// Where a router finds a node's session context on its relay thread.
pub trait NodeContexts: Send + Sync + std::fmt::Debug {
    /// The context for the node on local `port`, if it is in the topology.
    fn for_port(&self, port: u16) -> Option<Arc<SessionContext>>;
}

/// What a routed session needs.
#[derive(Debug)]
pub struct RouterContext {
    pub directory: Arc<Directory>,
    pub nodes: Box<dyn NodeContexts>,
    pub settings: SessionSettings,
}

/// The port that stands for "waiting to be retried" ([`Router::route`]).
const RETRY: u16 = 0;

/// Redirects (or retries) of one command before its error is passed on.
const MAX_REDIRECTS: u8 = 5;

/// Commands in flight before the router stops reading the client. Redis
/// itself reads on and buffers replies without a limit (for normal clients);
/// this bounds what one client can make the router hold.
const MAX_IN_FLIGHT: usize = 1_000_000;

/// Reply bytes the client has not taken before the router stops reading it.
const MAX_OUT: usize = 64 * 1024 * 1024;

/// Serves one client connection in routing mode to the end.
pub async fn serve<C>(mut client: C, ctx: Arc<RouterContext>, peer: &str)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!(%peer, "client connected (routing)");
    let mut input = BytesMut::with_capacity(16 * 1024);
    if let Some(password) = ctx.settings.client_password.current() {
        if crate::session::authenticate(&mut client, &password, &mut input)
            .await
            .is_err()
        {
            return;
        }
    }
    metrics::router_client(true);
    let _counted = Counted;
    let (mut read, mut write) = tokio::io::split(client);
    let mut router = Router::new(&ctx, peer);
    let mut input_open = true;
    router.requests(&mut input);
    loop {
        router.deliver();
        if router.finished(input_open) {
            break;
        }
        let retry_at = router.retries.iter().map(|r| r.at).min();
        // Replies go out as the client takes them while its commands keep
        // being read, as Redis buffers a client's replies: a client that
        // writes a long pipeline before it reads must not stall.
        tokio::select! {
            written = write.write(&router.out), if !router.out.is_empty() => match written {
                Ok(n) if n > 0 => router.out.advance(n),
                _ => break,
            },
            read = read.read_buf(&mut input), if input_open && router.accepting() => match read {
                Ok(n) if n > 0 => router.requests(&mut input),
                _ => input_open = false,
            },
            event = router.legs.event(), if !router.legs.legs.is_empty() => router.on_leg(event),
            () = crate::session::until(retry_at) => router.retry_due(),
        }
        if router.reset_due() {
            router.reset();
            router.requests(&mut input);
        }
    }
    if !router.out.is_empty() {
        let _ = write.write_all(&router.out).await;
    }
    let _ = write.shutdown().await;
    tracing::debug!(%peer, "client disconnected (routing)");
}

/// A routed client on the gauge, until dropped.
struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::router_client(false);
    }
}

/// One client command's reply, as its parts come in.
#[derive(Debug)]
struct Entry {
    /// The first part's reply so far.
    first: BytesMut,
    /// The other parts' (a split command's); empty, and so not allocated,
    /// for the common one-part entry.
    rest: Vec<BytesMut>,
    /// Parts not yet complete.
    left: usize,
    combine: Combine,
}

/// A command waiting to be retried after `-TRYAGAIN`/`-CLUSTERDOWN`.
#[derive(Debug)]
struct Retry {
    at: Instant,
    waiting: Waiting,
}

/// Why the router stops reading the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// QUIT was answered, or a protocol error.
    Close,
    /// RESET waits for every earlier reply.
    Reset,
}

struct Router<'a> {
    ctx: &'a RouterContext,
    peer: &'a str,
    legs: Legs,
    entries: VecDeque<Entry>,
    /// The sequence number of `entries[0]`.
    first: u64,
    out: BytesMut,
    home: Option<u16>,
    resp3: bool,
    name: Option<Bytes>,
    /// Between MULTI and EXEC/DISCARD.
    tx: Option<tx::Multi>,
    /// Transactions whose commands are on their way to a node.
    txs: Vec<tx::Track>,
    next_tx: u64,
    /// The node and slot a WATCH pinned.
    watched: Option<(u16, u16)>,
    retries: Vec<Retry>,
    order: order::SlotOrder,
    stop: Option<Stop>,
    /// Where the arguments of the command being read are (kept to be reused,
    /// so it is allocated once).
    places: Vec<std::ops::Range<usize>>,
}

impl<'a> Router<'a> {
    fn new(ctx: &'a RouterContext, peer: &'a str) -> Router<'a> {
        Router {
            ctx,
            peer,
            legs: Legs::default(),
            entries: VecDeque::new(),
            first: 0,
            out: BytesMut::new(),
            home: None,
            resp3: false,
            name: None,
            tx: None,
            txs: Vec::new(),
            next_tx: 0,
            watched: None,
            retries: Vec::new(),
            order: order::SlotOrder::default(),
            stop: None,
            places: Vec::new(),
        }
    }

    fn accepting(&self) -> bool {
        self.stop.is_none() && self.entries.len() < MAX_IN_FLIGHT && self.out.len() < MAX_OUT
    }

    fn finished(&self, input_open: bool) -> bool {
        let idle = self.entries.is_empty() && self.out.is_empty();
        idle && (self.stop == Some(Stop::Close) || (!input_open && !self.legs.busy()))
    }

    fn reset_due(&self) -> bool {
        self.stop == Some(Stop::Reset) && self.entries.is_empty()
    }

    /// RESET: every leg closed (their connections go back to the pools
    /// reset), the router's state back to a new connection's.
    fn reset(&mut self) {
        self.legs = Legs::default();
        self.home = None;
        self.resp3 = false;
        self.name = None;
        self.tx = None;
        self.txs.clear();
        self.watched = None;
        self.retries.clear();
        self.order.clear();
        self.stop = None;
        self.local(Bytes::from_static(b"+RESET\r\n"));
    }

    /// A new entry at the back of the queue; its sequence number.
    fn entry(&mut self, parts: usize, combine: Combine) -> u64 {
        // (`vec!` of none is not free: it is a call, with an element made and dropped.)
        let rest = match parts {
            0 | 1 => Vec::new(),
            _ => vec![BytesMut::new(); parts - 1],
        };
        self.entries.push_back(Entry {
            first: BytesMut::new(),
            rest,
            left: parts,
            combine,
        });
        self.first + self.entries.len() as u64 - 1
    }

    /// An entry answered here.
    fn local(&mut self, reply: Bytes) {
        self.entry(0, Combine::Local(reply));
    }

    /// Sends a command of the router's own, its reply dropped.
    fn send_own(&mut self, port: u16, command: &[u8]) {
        self.send(port, command, Waiting::own());
    }

    /// Sends `command` on the leg to `port`, opening it if needed.
    fn send(&mut self, port: u16, command: &[u8], waiting: Waiting) {
        if let Some(leg) = self.legs.get(port) {
            leg.send(command, waiting);
            if leg.attention() {
                self.hand_over_if_due(port);
            }
            return;
        }
        let Some(ctx) = self.ctx.nodes.for_port(port) else {
            let error = format!("ERR redauth: no cluster node serves local port {port} now");
            return self.answer(&waiting, &encode::error(&error), true);
        };
        let mut leg = Leg::open(port, ctx, self.peer, &self.legs, command);
        for setup in self.setup() {
            leg.send(&setup, Waiting::own());
        }
        leg.send(command, waiting);
        self.legs.legs.push(leg);
    }

    /// What a new connection to a node is sent first: the client's protocol
    /// and name.
    fn setup(&self) -> Vec<BytesMut> {
        let mut setup = Vec::new();
        if self.resp3 {
            setup.push(encode::command(&["HELLO", "3"]));
        }
        if let Some(name) = &self.name {
            setup.push(encode::command(&[&b"CLIENT"[..], b"SETNAME", name]));
        }
        setup
    }

    /// Once the leg to `port` needed attention ([`Leg::attention`]) and its
    /// replies were handled: hands it over to a session if that is due.
    fn hand_over_if_due(&mut self, port: u16) {
        let setup = match self.legs.get(port) {
            Some(leg) if leg.replies_handled() => self.setup(),
            _ => return,
        };
        if let Some(leg) = self.legs.get(port) {
            leg.hand_over(&setup);
        }
    }

    /// Adds `frame` to the part `waiting` fills; `last`: the part is complete.
    fn answer(&mut self, waiting: &Waiting, frame: &[u8], last: bool) {
        let Some(seq) = waiting.entry else { return };
        let Some(index) = seq.checked_sub(self.first) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return;
        };
        // The common case: the one reply the client waits for next goes
        // straight out.
        if index == 0 && entry.combine == Combine::One {
            // Frames that came while it was not yet at the head go first.
            if !entry.first.is_empty() {
                self.out.unsplit(std::mem::take(&mut entry.first));
            }
            self.out.extend_from_slice(frame);
            if last {
                // Off the queue now, not at the next `deliver` from the
                // loop: the replies behind it in the same read from the leg
                // then find their entry at the head too, instead of each
                // being buffered (an allocation and a copy) in its entry.
                self.entries.pop_front();
                self.first += 1;
                if self.entries.front().is_some_and(|e| e.left == 0) {
                    self.deliver();
                }
            }
            return;
        }
        let part = match waiting.part {
            0 => Some(&mut entry.first),
            n => entry.rest.get_mut(n - 1),
        };
        if let Some(part) = part {
            part.extend_from_slice(frame);
            if last {
                entry.left = entry.left.saturating_sub(1);
            }
        }
    }

    /// Moves every complete entry at the head of the queue to the client.
    fn deliver(&mut self) {
        while self.entries.front().is_some_and(|e| e.left == 0) {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            self.first += 1;
            if entry.combine == Combine::One {
                // Whatever of it was not passed on at the head (see `answer`).
                // (`unsplit` into an empty `out` would put the entry's
                // buffer in its place, dropping `out`'s, so an empty part
                // is not added at all.)
                if !entry.first.is_empty() {
                    self.out.unsplit(entry.first);
                }
                continue;
            }
            // (A local reply has no part and ignores the empty first one.)
            let parts: Vec<Bytes> = std::iter::once(entry.first)
                .chain(entry.rest)
                .map(BytesMut::freeze)
                .collect();
            self.out.extend_from_slice(&combine(&entry.combine, &parts));
        }
    }
}

fn is(args: &[&[u8]], name: &str) -> bool {
    args.first()
        .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
}

/// The slot of a client command whose order [`order`] keeps.
fn ordered(waiting: &Waiting) -> Option<u16> {
    waiting.entry?;
    let resend = waiting.resend.as_ref()?;
    matches!(resend.redo, Redo::Route | Redo::Watch).then_some(resend.slot)
}

/// A waiting record for part `part` of entry `seq`, one frame, not resent.
fn part_of(seq: u64, part: usize) -> Waiting {
    Waiting {
        entry: Some(seq),
        part,
        frames: Frames::One,
        resend: None,
    }
}

/// How many frames answer `args`: one per channel for the subscribe family.
fn frames(args: &[&[u8]]) -> Frames {
    let Some(name) = args.first() else {
        return Frames::One;
    };
    match crate::resp::command::CommandKind::of(name) {
        crate::resp::command::CommandKind::Subscribe(kind) => {
            let channels = args.len() as u32 - 1;
            if channels == 0 && !kind.adds() {
                Frames::UnsubscribeAll(kind)
            } else {
                // A subscribe with no channel is answered by one error.
                Frames::Confirmations(kind, channels.max(1))
            }
        }
        _ => Frames::One,
    }
}

fn cluster_down() -> Bytes {
    Bytes::from_static(b"-CLUSTERDOWN Hash slot not served\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_family_commands_are_answered_per_channel() {
        let args = |words: &'static str| -> Vec<&'static [u8]> {
            words.split(' ').map(str::as_bytes).collect()
        };
        use crate::resp::command::SubscribeKind::*;
        assert_eq!(
            frames(&args("SUBSCRIBE a b c")),
            Frames::Confirmations(Subscribe, 3)
        );
        assert_eq!(
            frames(&args("SSUBSCRIBE a")),
            Frames::Confirmations(SSubscribe, 1)
        );
        assert!(matches!(
            frames(&args("UNSUBSCRIBE")),
            Frames::UnsubscribeAll(_)
        ));
        assert_eq!(frames(&args("GET a")), Frames::One);
    }
}
