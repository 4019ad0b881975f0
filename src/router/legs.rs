//! A routed client's connections to the cluster's nodes: one *leg* per node
//! the client has needed, opened on first need.
//!
//! A leg is an ordinary session (the single-endpoint core, unchanged: its
//! upstream connection from the node's warm pool, authenticated and
//! re-authenticated, MULTI, subscribers and blocked commands handled as on a
//! node's own port) whose client is the router, over an in-memory pipe. The
//! router writes commands into it and reads replies back, frame by frame,
//! matching each frame to the [`Waiting`] record at the head of the leg's
//! queue. Nothing here blocks: bytes for a leg wait in its `out` buffer until
//! the pipe takes them, and [`Legs::event`] polls every leg at once.
//!
//! A leg's session runs inside the router's own task (polled by
//! [`Legs::event`]), not as a task of its own: a command and its reply cross
//! no task boundary. A leg dropped while its session still runs (RESET, the
//! client gone) hands the session to a task of its own, which sees its client
//! leave and ends as any session does (its connection back to the pool when
//! it was quiet).

use crate::resp::command::SubscribeKind;
use crate::resp::{ReplyError, ReplyScanner};
use crate::session::{self, SessionContext};
use bytes::{Bytes, BytesMut};
use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf, ReadHalf, WriteHalf};

/// Bytes in flight each way between the router and a leg's session.
const PIPE: usize = 64 * 1024;

/// The most read from a leg at once.
const READ_CHUNK: usize = 16 * 1024;

/// What one frame from a leg is for.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    /// The entry (client command) it answers; `None`: a command the router
    /// sent on its own (`ASKING`, a leg's set-up), its reply dropped.
    pub entry: Option<u64>,
    /// Which part of the entry's reply.
    pub part: usize,
    pub frames: Frames,
    /// How to send the command again after a redirect.
    pub resend: Option<Resend>,
}

impl Waiting {
    /// A command the router sent itself; its one reply is dropped.
    pub fn own() -> Waiting {
        Waiting {
            entry: None,
            part: 0,
            frames: Frames::One,
            resend: None,
        }
    }
}

/// How many frames answer a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frames {
    /// One reply.
    One,
    /// A subscribe-family command naming channels: a confirmation each.
    Confirmations(SubscribeKind, u32),
    /// An unsubscribe from everything of one kind: one confirmation per
    /// subscription of its set the leg has when it is answered, or one if
    /// it has none.
    UnsubscribeAll(SubscribeKind),
}

impl Frames {
    /// The confirmations that answer the command, if it is of the subscribe family.
    pub fn confirmed_by(self) -> Option<SubscribeKind> {
        match self {
            Frames::One => None,
            Frames::Confirmations(kind, _) | Frames::UnsubscribeAll(kind) => Some(kind),
        }
    }
}

/// A routed command, kept until it is answered, to be sent again where a
/// redirect says.
#[derive(Debug, Clone)]
pub(super) struct Resend {
    pub command: Bytes,
    pub slot: u16,
    pub redirects: u8,
    pub redo: Redo,
}

impl Resend {
    /// A command routed by `slot`, sent again wherever a redirect says.
    pub fn routed(command: Bytes, slot: u16, redo: Redo) -> Resend {
        Resend {
            command,
            slot,
            redirects: 0,
            redo,
        }
    }
}

/// What a redirect of the command means besides sending it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redo {
    /// Nothing: send it where the redirect says.
    Route,
    /// A WATCH: the transaction that follows goes where it went.
    Watch,
    /// Queued in transaction `id` on a node that no longer serves its slot:
    /// not sent again, but the transaction is replayed at EXEC ([`super::tx`]).
    InTx(u64),
    /// The EXEC of transaction `id`.
    Exec(u64),
}

/// A leg's session, driven by the router's task.
type Session = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One leg.
pub(super) struct Leg {
    pub port: u16,
    /// `None` once it ended.
    session: Option<Session>,
    read: ReadHalf<DuplexStream>,
    write: WriteHalf<DuplexStream>,
    /// Bytes for the leg not yet taken by the pipe.
    out: BytesMut,
    /// Bytes from the leg not yet made into frames.
    input: BytesMut,
    /// Where reads land (made once: zeroing it on every read would cost more
    /// than the copy out of it).
    chunk: Box<[u8]>,
    scanner: ReplyScanner,
    /// How far into `input` the scanner has read the frame at its start.
    scanned: usize,
    pub waiting: VecDeque<Waiting>,
    /// Frames still owed to the head record (set when its first arrives).
    pub owed: Option<u32>,
    /// The leg's channels, patterns and shard channels, as confirmed.
    pub subscriptions: [HashSet<Vec<u8>>; 3],
    closed: bool,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("port", &self.port)
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Leg {
    /// Starts a session for `ctx`'s node whose client is this leg.
    pub fn open(port: u16, ctx: Arc<SessionContext>, peer: &str) -> Leg {
        let (ours, theirs) = tokio::io::duplex(PIPE);
        let peer = format!("{peer} (routed to :{port})");
        let session: Session = Box::pin(async move { session::serve(theirs, ctx, &peer).await });
        let (read, write) = tokio::io::split(ours);
        Leg {
            port,
            session: Some(session),
            read,
            write,
            out: BytesMut::new(),
            input: BytesMut::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            scanner: ReplyScanner::default(),
            scanned: 0,
            waiting: VecDeque::new(),
            owed: None,
            subscriptions: Default::default(),
            closed: false,
        }
    }

    /// Queues `command` for the leg, its reply described by `waiting`.
    pub fn send(&mut self, command: &[u8], waiting: Waiting) {
        self.out.extend_from_slice(command);
        self.waiting.push_back(waiting);
    }

    /// Whether any subscription is open on this leg.
    pub fn subscribed(&self) -> bool {
        self.subscriptions.iter().any(|s| !s.is_empty())
    }

    /// The next whole frame read from the leg, if one is in.
    pub fn frame(&mut self) -> Result<Option<Bytes>, ReplyError> {
        if self.input.len() == self.scanned {
            return Ok(None);
        }
        let progress = self.scanner.advance(&self.input[self.scanned..])?;
        self.scanned += progress.consumed;
        if !progress.done {
            return Ok(None);
        }
        let frame = self.input.split_to(self.scanned).freeze();
        self.scanned = 0;
        self.scanner = ReplyScanner::default();
        Ok(Some(frame))
    }

    /// Whether commands are still owed replies.
    pub fn busy(&self) -> bool {
        !self.waiting.is_empty() || !self.out.is_empty()
    }

    /// Writes what the pipe takes; `Ready` once something was read (or the
    /// leg closed), `Pending` otherwise (the waker registered either way).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        self.write_out(cx);
        if let Some(session) = &mut self.session {
            if session.as_mut().poll(cx).is_ready() {
                self.session = None;
            }
        }
        if self.closed {
            return Poll::Ready(false);
        }
        let mut buf = ReadBuf::new(&mut self.chunk);
        match Pin::new(&mut self.read).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().is_empty() {
                    self.closed = true;
                    return Poll::Ready(false);
                }
                self.input.extend_from_slice(buf.filled());
                Poll::Ready(true)
            }
            Poll::Ready(Err(_)) => {
                self.closed = true;
                Poll::Ready(false)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes what the pipe takes of the bytes for the leg.
    fn write_out(&mut self, cx: &mut Context<'_>) {
        while !self.out.is_empty() {
            match Pin::new(&mut self.write).poll_write(cx, &self.out) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    let _ = self.out.split_to(n);
                }
                Poll::Ready(_) => {
                    self.closed = true;
                    return;
                }
                Poll::Pending => break,
            }
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        // Its session ends on its own once it sees the pipe close.
        if let Some(session) = self.session.take() {
            tokio::spawn(session);
        }
    }
}

/// What happened on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegEvent {
    /// Bytes arrived from the leg on this port.
    Data(u16),
    /// The leg's session ended (its upstream connection was lost).
    Closed(u16),
}

/// Every leg of one routed client, by port.
#[derive(Debug, Default)]
pub(super) struct Legs {
    pub legs: Vec<Leg>,
}

impl Legs {
    pub fn get(&mut self, port: u16) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.port == port)
    }

    /// Removes the leg on `port` (its session sees its client leave).
    pub fn remove(&mut self, port: u16) -> Option<Leg> {
        let at = self.legs.iter().position(|l| l.port == port)?;
        Some(self.legs.swap_remove(at))
    }

    /// Waits until a leg has news, writing every leg's pending bytes meanwhile.
    pub async fn event(&mut self) -> LegEvent {
        poll_fn(|cx| {
            for leg in &mut self.legs {
                if leg.closed {
                    return Poll::Ready(LegEvent::Closed(leg.port));
                }
                if let Poll::Ready(open) = leg.poll(cx) {
                    return Poll::Ready(if open {
                        LegEvent::Data(leg.port)
                    } else {
                        LegEvent::Closed(leg.port)
                    });
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Whether any leg still owes replies.
    pub fn busy(&self) -> bool {
        self.legs.iter().any(Leg::busy)
    }
}
