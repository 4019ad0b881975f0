//! Cluster routing mode: the main port makes an OSS cluster look like one
//! Redis to clients that know nothing of clusters.
//!
//! Each client command goes to the primary serving its keys' slot, over the
//! client's own connection to that node (a [`legs::Leg`]: an ordinary session
//! on the node's warm pool, so authentication and re-authentication are the
//! single-endpoint core's); keyless commands go to the client's *home* node
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
//! Transactions are pinned to one slot's node: `WATCH` pins at once, `MULTI`
//! is answered here until the first keyed command names the slot (keyless
//! commands before it are held and answered `+QUEUED`); a key in another slot
//! gets `-CROSSSLOT` and the `EXEC` `-EXECABORT`, as Redis answers queue-time
//! errors. Pub/sub: classic channels on the home node, shard channels on
//! their slot's node; messages from any leg are passed on as they come.
//!
//! Limits (see README): replies are held whole until complete; a shard
//! channel whose slot moves is not subscribed again; RESP2 subscribed-mode
//! command checks are left to each node; `CLIENT REPLY`/`TRACKING`,
//! `MONITOR` and `SYNC` are refused.

mod keyless;
mod legs;
mod merge;
mod plan;
mod replies;
mod tx;

use crate::cluster::Directory;
use crate::resp::request::Request;
use crate::resp::{encode, frame};
use crate::session::{SessionContext, SessionSettings};
use bytes::{Bytes, BytesMut};
use legs::{Frames, Leg, Legs, Resend, Waiting};
use merge::{combine, Combine};
use plan::Plan;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

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

/// Redirects (or retries) of one command before its error is passed on.
const MAX_REDIRECTS: u8 = 5;

/// Entries in flight before the router stops reading the client.
const MAX_IN_FLIGHT: usize = 10_000;

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
    let (mut read, mut write) = tokio::io::split(client);
    let mut router = Router::new(&ctx, peer);
    let mut input_open = true;
    router.requests(&mut input);
    loop {
        router.deliver();
        if !router.out.is_empty() {
            let out = std::mem::take(&mut router.out);
            if write.write_all(&out).await.is_err() {
                break;
            }
        }
        if router.finished(input_open) {
            break;
        }
        let retry_at = router.retries.iter().map(|r| r.at).min();
        tokio::select! {
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
    let _ = write.shutdown().await;
    tracing::debug!(%peer, "client disconnected (routing)");
}

/// One client command's reply, as its parts come in.
#[derive(Debug)]
struct Entry {
    parts: Vec<BytesMut>,
    /// Parts not yet complete.
    left: usize,
    combine: Combine,
}

/// The transaction state.
#[derive(Debug, Default)]
enum Tx {
    #[default]
    Idle,
    /// Between MULTI and EXEC/DISCARD: the node and slot once pinned, the
    /// keyless commands held until then, and whether a command was refused.
    Multi {
        pin: Option<(u16, u16)>,
        held: Vec<Bytes>,
        aborted: bool,
    },
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
    tx: Tx,
    /// The node and slot a WATCH pinned.
    watched: Option<(u16, u16)>,
    retries: Vec<Retry>,
    stop: Option<Stop>,
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
            tx: Tx::Idle,
            watched: None,
            retries: Vec::new(),
            stop: None,
        }
    }

    fn accepting(&self) -> bool {
        self.stop.is_none() && self.entries.len() < MAX_IN_FLIGHT
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
        self.tx = Tx::Idle;
        self.watched = None;
        self.retries.clear();
        self.stop = None;
        self.local(Bytes::from_static(b"+RESET\r\n"));
    }

    /// Reads every whole command in `input` and sends it on its way.
    fn requests(&mut self, input: &mut BytesMut) {
        let max_bulk = self.ctx.settings.max_bulk;
        while self.accepting() {
            let request = match Request::parse(input, max_bulk) {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(error) => {
                    self.local(error.reply());
                    self.stop = Some(Stop::Close);
                    return;
                }
            };
            let (command, args) = match request {
                Request::Ignored { len } => {
                    let _ = input.split_to(len);
                    continue;
                }
                Request::Inline { len, args } => {
                    let _ = input.split_to(len);
                    (encode::command(&args).freeze(), args)
                }
                Request::Multibulk {
                    argc,
                    head_len,
                    mut body,
                    ..
                } => match body.advance(&input[head_len..], max_bulk) {
                    Ok(advance) if advance.done => {
                        let command = input.split_to(head_len + advance.consumed).freeze();
                        let args = frame::arguments(&command, argc);
                        (command, args)
                    }
                    Ok(_) => return,
                    Err(error) => {
                        self.local(error.reply());
                        self.stop = Some(Stop::Close);
                        return;
                    }
                },
            };
            self.command(command, &args);
        }
    }

    /// A new entry at the back of the queue; its sequence number.
    fn entry(&mut self, parts: usize, combine: Combine) -> u64 {
        self.entries.push_back(Entry {
            parts: vec![BytesMut::new(); parts],
            left: parts,
            combine,
        });
        self.first + self.entries.len() as u64 - 1
    }

    /// An entry answered here.
    fn local(&mut self, reply: Bytes) {
        self.entry(0, Combine::Local(reply));
    }

    fn command(&mut self, command: Bytes, args: &[Bytes]) {
        let plan = plan::plan(args);
        if let Tx::Multi { .. } = self.tx {
            return self.in_multi(command, args, plan);
        }
        match plan {
            Plan::Slot(slot) => {
                let Some(port) = self.owner(slot) else { return };
                if is(args, "watch") {
                    self.watched = Some((port, slot));
                }
                let seq = self.entry(1, Combine::One);
                let waiting = Waiting {
                    entry: Some(seq),
                    part: 0,
                    frames: frames(args),
                    resend: Some(Resend {
                        command: command.clone(),
                        slot,
                        redirects: 0,
                    }),
                };
                self.send(port, &command, waiting);
            }
            Plan::Home => self.home_command(command, args),
            Plan::Split { parts, combine } => {
                let owners: Option<Vec<u16>> =
                    parts.iter().map(|(_, slot)| self.owner(*slot)).collect();
                let Some(owners) = owners else { return };
                let seq = self.entry(parts.len(), combine);
                for (part, ((args, slot), port)) in parts.into_iter().zip(owners).enumerate() {
                    let command = encode::command(&args).freeze();
                    let waiting = Waiting {
                        entry: Some(seq),
                        part,
                        frames: Frames::One,
                        resend: Some(Resend {
                            command: command.clone(),
                            slot,
                            redirects: 0,
                        }),
                    };
                    self.send(port, &command, waiting);
                }
            }
            Plan::Every(how) => {
                let primaries = self.ctx.directory.primaries();
                if primaries.is_empty() {
                    return self.local(cluster_down());
                }
                let seq = self.entry(primaries.len(), how);
                for (part, &port) in primaries.iter().enumerate() {
                    self.send(port, &command, part_of(seq, part));
                }
            }
            Plan::Scan => self.scan(args),
            Plan::Reply(reply) => self.local(reply),
            Plan::Own(own) => self.own(own),
        }
    }

    /// The port of the primary serving `slot`; `None` after answering the
    /// client `-CLUSTERDOWN` when no node serves it.
    fn owner(&mut self, slot: u16) -> Option<u16> {
        let owner = self.ctx.directory.owner(slot);
        if owner.is_none() {
            let _ = self.ctx.directory.refresh();
            self.local(cluster_down());
        }
        owner
    }

    /// The client's home node (the first primary, chosen once).
    fn home(&mut self) -> Option<u16> {
        if self.home.is_none() {
            self.home = self.ctx.directory.primaries().first().copied();
        }
        if self.home.is_none() {
            self.local(cluster_down());
        }
        self.home
    }

    /// Sends a command of the router's own, its reply dropped.
    fn send_own(&mut self, port: u16, command: &[u8]) {
        self.send(port, command, Waiting::own());
    }

    /// Sends `command` on the leg to `port`, opening it if needed.
    fn send(&mut self, port: u16, command: &[u8], waiting: Waiting) {
        if self.legs.get(port).is_none() {
            let Some(ctx) = self.ctx.nodes.for_port(port) else {
                let error = format!("ERR redauth: no cluster node serves local port {port} now");
                return self.answer(&waiting, &encode::error(&error), true);
            };
            let mut leg = Leg::open(port, ctx, self.peer);
            if self.resp3 {
                leg.send(&encode::command(&["HELLO", "3"]), Waiting::own());
            }
            if let Some(name) = &self.name {
                leg.send(
                    &encode::command(&[&b"CLIENT"[..], b"SETNAME", name]),
                    Waiting::own(),
                );
            }
            self.legs.legs.push(leg);
        }
        if let Some(leg) = self.legs.get(port) {
            leg.send(command, waiting);
        }
    }

    /// Adds `frame` to the part `waiting` fills; `last`: the part is complete.
    fn answer(&mut self, waiting: &Waiting, frame: &[u8], last: bool) {
        let Some(seq) = waiting.entry else { return };
        let Some(entry) = seq
            .checked_sub(self.first)
            .and_then(|i| self.entries.get_mut(i as usize))
        else {
            return;
        };
        if let Some(part) = entry.parts.get_mut(waiting.part) {
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
            let parts: Vec<Bytes> = entry.parts.into_iter().map(BytesMut::freeze).collect();
            self.out
                .unsplit(BytesMut::from(&combine(&entry.combine, &parts)[..]));
        }
    }
}

fn is(args: &[Bytes], name: &str) -> bool {
    args.first()
        .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
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
fn frames(args: &[Bytes]) -> Frames {
    let Some(name) = args.first() else {
        return Frames::One;
    };
    match crate::resp::command::CommandKind::of(name) {
        crate::resp::command::CommandKind::Subscribe(kind) => {
            let channels = args.len() as u32 - 1;
            if channels == 0 && !kind.adds() {
                Frames::UnsubscribeAll(kind.set())
            } else {
                // A subscribe with no channel is answered by one error.
                Frames::Confirmations(channels.max(1))
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
        let args = |words: &str| -> Vec<Bytes> {
            words
                .split(' ')
                .map(|w| Bytes::from(w.to_owned()))
                .collect()
        };
        assert_eq!(frames(&args("SUBSCRIBE a b c")), Frames::Confirmations(3));
        assert_eq!(frames(&args("SSUBSCRIBE a")), Frames::Confirmations(1));
        assert!(matches!(
            frames(&args("UNSUBSCRIBE")),
            Frames::UnsubscribeAll(_)
        ));
        assert_eq!(frames(&args("GET a")), Frames::One);
    }
}
