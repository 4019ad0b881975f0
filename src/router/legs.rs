//! A routed client's connections to the cluster's nodes: one *leg* per node
//! the client has needed, opened on first need.
//!
//! A leg is an ordinary session (the single-endpoint core, unchanged: its
//! upstream connection from the node's warm pool, authenticated and
//! re-authenticated, MULTI, subscribers and blocked commands handled as on a
//! node's own port) whose client is the router, over an in-memory
//! [`super::pipe`]. The router puts commands in and takes replies out, frame
//! by frame, matching each frame to the [`Waiting`] record at the head of the
//! leg's queue. Nothing here blocks, and [`Legs::event`] polls every leg.
//!
//! A leg's session runs inside the router's own task (polled by
//! [`Legs::event`]), not as a task of its own: a command and its reply cross
//! no task boundary. Each leg polls its session with a waker of its own,
//! which notes that the leg woke and wakes the router's task, so an event
//! polls only the sessions that have something to do. A leg dropped while its session still
//! runs (RESET, the client gone) hands the session to a task of its own,
//! which sees its client leave and ends as any session does (its connection
//! back to the pool when it was quiet).

use super::pipe::{self, RouterEnd};
use crate::resp::command::SubscribeKind;
use crate::resp::{ReplyError, ReplyScanner};
use crate::session::{self, SessionContext};
use bytes::{Bytes, BytesMut};
use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

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
    pipe: RouterEnd,
    /// What the session is polled with, and whether it woke since.
    wake: Arc<LegWake>,
    waker: Waker,
    /// Bytes from the leg not yet handled as frames.
    pub input: BytesMut,
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
    pub fn open(port: u16, ctx: Arc<SessionContext>, peer: &str, legs: &Legs) -> Leg {
        let (ours, theirs) = pipe::pipe();
        let peer = format!("{peer} (routed to :{port})");
        let session: Session = Box::pin(async move { session::serve(theirs, ctx, &peer).await });
        let wake = Arc::new(LegWake {
            // Polled first thing, to start the session.
            woken: AtomicBool::new(true),
            router: legs.router.clone(),
        });
        Leg {
            port,
            session: Some(session),
            pipe: ours,
            waker: Waker::from(wake.clone()),
            wake,
            input: BytesMut::new(),
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
        self.pipe.send(command);
        // Its session must be polled to read it.
        self.wake.woken.store(true, Ordering::Relaxed);
        self.waiting.push_back(waiting);
    }

    /// Whether any subscription is open on this leg.
    pub fn subscribed(&self) -> bool {
        self.subscriptions.iter().any(|s| !s.is_empty())
    }

    /// The length of the whole frame at the start of `input` (the leg's
    /// input from where its last frame ended), if it is all in.
    pub fn frame(&mut self, input: &[u8]) -> Result<Option<usize>, ReplyError> {
        if input.len() == self.scanned {
            return Ok(None);
        }
        // The common reply, one line (`+OK`, `:1`, `-MOVED …`), found
        // without the scanner, whose answer it is (the session in front has
        // scanned each reply already; this is the second look).
        if self.scanned == 0 && matches!(input[0], b'+' | b'-' | b':') {
            if let Some(nl) = crate::resp::find_near(b'\n', input) {
                return Ok(Some(nl + 1));
            }
        }
        let progress = self.scanner.advance(&input[self.scanned..])?;
        self.scanned += progress.consumed;
        if !progress.done {
            return Ok(None);
        }
        let len = self.scanned;
        self.scanned = 0;
        self.scanner = ReplyScanner::default();
        Ok(Some(len))
    }

    /// Whether commands are still owed replies.
    pub fn busy(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Polls the session if it woke (or was given commands) since it was
    /// last polled; `Ready` once it replied (`true`) or ended (`false`),
    /// `Pending` otherwise.
    fn poll(&mut self) -> Poll<bool> {
        if !self.wake.woken.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        let mut cx = Context::from_waker(&self.waker);
        if let Some(session) = &mut self.session {
            if session.as_mut().poll(&mut cx).is_ready() {
                self.session = None;
            }
        }
        if self.closed {
            return Poll::Ready(false);
        }
        let had = self.input.len();
        let gone = self.pipe.take(&mut self.input);
        if self.input.len() > had {
            Poll::Ready(true)
        } else if gone {
            self.closed = true;
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        // Its session ends on its own once it sees the pipe close (closed
        // first: in a task of its own nothing would wake it to see it).
        self.pipe.close();
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
    /// The router's task, woken by any leg's waker.
    router: Arc<RouterWake>,
    /// Where the next event's search starts, so no leg is always first.
    next: usize,
}

/// The waker of the router's task, as last seen by [`Legs::event`].
#[derive(Debug, Default)]
struct RouterWake(Mutex<Option<Waker>>);

/// One leg's waker: notes that the leg woke, and wakes the router.
#[derive(Debug)]
struct LegWake {
    woken: AtomicBool,
    router: Arc<RouterWake>,
}

impl Wake for LegWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let router = self.router.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waker) = router.as_ref() {
            waker.wake_by_ref();
        }
    }
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

    /// Waits until a leg has news, polling the sessions that woke.
    pub async fn event(&mut self) -> LegEvent {
        poll_fn(|cx| {
            {
                let mut router = self.router.0.lock().unwrap_or_else(|e| e.into_inner());
                if !router.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *router = Some(cx.waker().clone());
                }
            }
            let count = self.legs.len();
            for i in 0..count {
                let at = (self.next + i) % count;
                let leg = &mut self.legs[at];
                let event = if leg.closed {
                    Poll::Ready(LegEvent::Closed(leg.port))
                } else {
                    leg.poll().map(|open| {
                        if open {
                            LegEvent::Data(leg.port)
                        } else {
                            LegEvent::Closed(leg.port)
                        }
                    })
                };
                if event.is_ready() {
                    self.next = at + 1;
                    return event;
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
