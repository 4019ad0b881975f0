//! What the request side tells the reply side, in command order.
//!
//! Redis answers commands in the order they were sent, one reply each, with
//! pushes (pub/sub messages) on the side. The request side records, for every
//! command it forwards or answers itself, what the reply side must do with the
//! matching reply; it sends the record *before* writing the command upstream,
//! so a reply never arrives ahead of its record.

use crate::cluster::directory::Reply;
use crate::resp::command::SubscribeKind;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

/// The ordered queue of [`Expect`] records from the request side to the reply
/// side, counting its [`Backlog`].
pub fn channel() -> (ExpectTx, ExpectRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    (
        ExpectTx {
            tx,
            backlog: backlog.clone(),
        },
        ExpectRx { rx, backlog },
    )
}

/// The request side's end of the queue.
#[derive(Debug)]
pub struct ExpectTx {
    tx: UnboundedSender<Expect>,
    backlog: Arc<Backlog>,
}

impl ExpectTx {
    /// Queues a record (a closed queue means the reply side has ended; the
    /// session is ending too).
    pub fn send(&self, expect: Expect) {
        if self.tx.send(expect).is_ok() {
            self.backlog.sent();
        }
    }

    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }
}

/// The reply side's end of the queue.
#[derive(Debug)]
pub struct ExpectRx {
    rx: UnboundedReceiver<Expect>,
    backlog: Arc<Backlog>,
}

impl ExpectRx {
    pub async fn recv(&mut self) -> Option<Expect> {
        let expect = self.rx.recv().await;
        if expect.is_some() {
            self.backlog.taken();
        }
        expect
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub fn try_recv(&mut self) -> Option<Expect> {
        let expect = self.rx.try_recv().ok();
        if expect.is_some() {
            self.backlog.taken();
        }
        expect
    }
}

/// Records sent to the reply side and not yet taken by it. The reply side
/// takes them as fast as it can deliver replies, so they pile up only while
/// the client is not reading: past [`Backlog::HIGH`] the request side stops
/// reading the client's commands until half of them are gone. That bounds
/// what a client pipelining without reading can make redauth, and the
/// server, hold for it.
#[derive(Debug, Default)]
pub struct Backlog {
    records: AtomicUsize,
    drained: Notify,
}

impl Backlog {
    /// Records (each one read's worth of commands, or one special command)
    /// that may wait before the request side pauses.
    pub const HIGH: usize = 1024;

    pub fn sent(&self) {
        self.records.fetch_add(1, Ordering::Relaxed);
    }

    pub fn taken(&self) {
        let before = self.records.fetch_sub(1, Ordering::Relaxed);
        if before == Self::HIGH / 2 {
            self.drained.notify_one();
        }
    }

    /// Whether the request side should stop reading the client.
    pub fn full(&self) -> bool {
        self.records.load(Ordering::Relaxed) >= Self::HIGH
    }

    /// Resolves once the backlog fell to half (or spuriously: check again).
    pub async fn drained(&self) {
        self.drained.notified().await
    }
}

/// One entry of the reply queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `n` ordinary commands, each answered by one reply frame, relayed as is.
    Replies(u32),
    /// The `AUTH` redauth sends right after a client's `RESET`: its reply is
    /// consumed, never reaches the client, and must be a success.
    AuthAfterReset,
    /// The `CLIENT REPLY ON` that precedes a re-authentication under
    /// `CLIENT REPLY OFF` (so the AUTH is answered): consumed, must succeed.
    ReplyOn,
    /// An `AUTH` with a newer credential, injected into a live connection:
    /// its reply is consumed; a refusal is logged and counted, and the
    /// connection carries on with the identity it had.
    Reauth,
    /// A `PING` sent in place of a command redauth answers itself (client
    /// `AUTH`, `QUIT`): its reply is replaced by these bytes. Going through the
    /// server keeps the answer in its true place among pushes the server sent
    /// before it, and lets `CLIENT REPLY SKIP` apply as it would.
    StandIn(Bytes),
    /// A reply redauth makes itself, sent when its turn comes.
    Local(Bytes),
    /// Close the client connection once everything before this was delivered.
    Close,
    /// The client ended its input: close it once everything before this was
    /// delivered. A blocking command still waiting for its reply is cancelled
    /// as Redis cancels it when its client closes: the upstream connection is
    /// closed (and the server drops the command, and those queued behind it),
    /// after a short grace if the command was sent only just before (its
    /// reply may be on its way).
    InputEnded,
    /// A blocking command forwarded in one piece: relayed like an ordinary
    /// reply, but cancelled if the client's input ends while it waits.
    Blocking,
    /// The last command announced will get no reply after all (a protocol
    /// error cut it short after part of it was forwarded).
    Abandoned,
    /// A `HELLO 3` or `HELLO 2` redauth injected to run a RESP2 client's
    /// subscribed connection in RESP3 (where AUTH is allowed) and back: its
    /// reply is consumed, and RESP3 pub/sub pushes are translated to the RESP2
    /// frames the client expects while the version is 3.
    Protocol(u8),
    /// `HELLO`: if it succeeds, replies switch to this protocol version.
    Hello(Option<u8>),
    /// `RESET`: on `+RESET` the connection is back to RESP2 with no subscriptions.
    Reset,
    /// `EXEC` of a transaction that queued SUBSCRIBE-family commands: their
    /// confirmations come inside the EXEC array and change the subscriptions.
    ExecWithSubscribe,
    /// `SYNC`/`PSYNC`: from its reply on (an RDB payload without the usual
    /// trailing CRLF, then a command stream) everything is relayed as is.
    Passthrough,
    /// `MONITOR`: on `+OK` the connection becomes a one-way feed.
    Monitor,
    /// One slice of a blocking command (see [`super::blocking`]): a null
    /// reply (the slice timed out) is consumed and reported; any other reply
    /// is relayed and ends the call.
    Slice,
    /// An `XINFO STREAM` resolving an XREAD `$`: consumed, the stream's last
    /// generated id reported.
    LastId,
    /// A SUBSCRIBE-family command with `channels` arguments (0 for "all").
    /// It is answered by one confirmation per channel, or by one error.
    Subscribe { kind: SubscribeKind, channels: u32 },
    /// In cluster mode, a reply that may name upstream nodes (`CLUSTER
    /// SLOTS`…, an `EXEC` array holding `-MOVED`): seen whole and rewritten
    /// to name local ports (see [`crate::cluster::Directory`]).
    Rewrite(Reply),
}
