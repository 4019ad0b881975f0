//! A routed client's connections to the cluster's nodes: one *leg* per node
//! the client has needed, opened on first need.
//!
//! A leg starts as a [`Direct`] link: an authenticated connection from the
//! node's warm pool that the router writes plain commands to and reads their
//! replies from itself (re-authenticated between replies). The first command
//! a direct link cannot take ([`fit`]: MULTI/WATCH, the subscribe family,
//! blocking commands, `CLUSTER …`) hands the leg over to a *session*: that
//! command and those after it are held until every reply owed on the direct
//! link is in (so the node runs them in the order sent), the direct
//! connection goes back to the pool, and the router sets the session's
//! connection up as it did the direct one ([`Leg::hand_over`]). A leg stays a
//! session from then on.
//!
//! A session leg is an ordinary session (the single-endpoint core,
//! unchanged: its upstream connection from the node's warm pool,
//! authenticated and re-authenticated, MULTI, subscribers and blocked
//! commands handled as on a node's own port) whose client is the router, over
//! an in-memory [`super::pipe`]. Either way the router puts commands in and
//! takes replies out, frame by frame, matching each frame to the [`Waiting`]
//! record at the head of the leg's queue. Nothing here blocks, and
//! [`Legs::event`] polls every leg.
//!
//! Links run inside the router's own task (polled by [`Legs::event`]), not
//! as tasks of their own: a command and its reply cross no task boundary.
//! Each leg polls its link with a waker of its own, which notes that the leg
//! woke and wakes the router's task, so an event polls only the legs that
//! have something to do. A leg dropped while its session still runs (RESET,
//! the client gone) hands the session to a task of its own, which sees its
//! client leave and ends as any session does (its connection back to the
//! pool when it was quiet); a direct link's connection goes back to the pool
//! at once when nothing is owed on it.

use super::direct::{fit, Direct, Fit, Status};
use super::pipe::{self, RouterEnd};
use super::waiting::Waiting;
use crate::resp::{ReplyError, ReplyScanner};
use crate::session::{self, SessionContext};
use bytes::BytesMut;
use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A leg's session, driven by the router's task.
type Session = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a leg reaches its node.
enum Link {
    Direct(Box<Direct>),
    Session {
        /// `None` once it ended.
        session: Option<Session>,
        pipe: RouterEnd,
    },
}

/// One leg.
pub(super) struct Leg {
    pub port: u16,
    link: Link,
    /// For a session, when the leg is handed over to one.
    ctx: Arc<SessionContext>,
    peer: String,
    /// A direct leg being handed over: the commands for the session, and
    /// how many, held until the direct link owes nothing.
    held: Option<(BytesMut, usize)>,
    /// An `ASKING` for a direct leg, sent with the command after it.
    asking: bool,
    /// What the link is polled with, and whether it woke since.
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
    /// A leg to `ctx`'s node: a direct link if `first` (the first command
    /// it is given) can run on one, else a session.
    pub fn open(port: u16, ctx: Arc<SessionContext>, peer: &str, legs: &Legs, first: &[u8]) -> Leg {
        let wake = Arc::new(LegWake {
            // Polled first thing, to start the link.
            woken: AtomicBool::new(true),
            router: legs.router.clone(),
        });
        let peer = format!("{peer} (routed to :{port})");
        let link = match fit(first) {
            Fit::Session => session_link(&ctx, &peer),
            Fit::Direct | Fit::Asking => {
                if let Some(node) = &ctx.node {
                    node.client_opened();
                }
                Link::Direct(Box::new(Direct::new(ctx.clone())))
            }
        };
        Leg {
            port,
            link,
            ctx,
            peer,
            held: None,
            asking: false,
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
    /// (A direct leg it is handed over for may be due at once: see
    /// [`Leg::attention`].)
    pub fn send(&mut self, command: &[u8], waiting: Waiting) {
        self.waiting.push_back(waiting);
        // Its link must be polled to take it.
        self.wake.woken.store(true, Ordering::Relaxed);
        let direct = match &mut self.link {
            Link::Session { pipe, .. } => return pipe.send(command),
            Link::Direct(direct) => direct,
        };
        let asking = std::mem::take(&mut self.asking);
        if let Some((held, count)) = &mut self.held {
            if asking {
                held.extend_from_slice(ASKING);
                *count += 1;
            }
            held.extend_from_slice(command);
            *count += 1;
            return;
        }
        match fit(command) {
            Fit::Direct => {
                if asking {
                    direct.send(ASKING);
                }
                direct.send(command);
            }
            Fit::Asking => self.asking = true,
            Fit::Session => {
                let mut held = BytesMut::new();
                if asking {
                    held.extend_from_slice(ASKING);
                }
                held.extend_from_slice(command);
                self.held = Some((held, 1 + usize::from(asking)));
            }
        }
    }

    /// Replies the direct link still owes the router.
    fn direct_owed(&self) -> usize {
        let held = self.held.as_ref().map_or(0, |(_, n)| *n);
        self.waiting.len() - held - usize::from(self.asking)
    }

    /// Whether the leg waits on replies to move on: a direct leg being
    /// handed over, or one whose re-authentication waits for the replies
    /// before it. Then the router calls [`Leg::replies_handled`] once it has
    /// handled replies (or sent a command).
    pub fn attention(&self) -> bool {
        match &self.link {
            Link::Direct(direct) => self.held.is_some() || direct.pausing(),
            Link::Session { .. } => false,
        }
    }

    /// After the router handled the leg's replies: a direct link whose
    /// re-authentication waited for them is polled again; `true` when the
    /// leg is now to be handed over ([`Leg::hand_over`]).
    pub fn replies_handled(&self) -> bool {
        let Link::Direct(direct) = &self.link else {
            return false;
        };
        if direct.pausing() {
            self.wake.woken.store(true, Ordering::Relaxed);
        }
        self.held.is_some() && self.direct_owed() == 0
    }

    /// Hands the leg over to a session: the direct connection back to the
    /// pool, a session started and set up with `setup` (what the router sent
    /// the direct connection first; the replies are dropped), then given the
    /// held commands.
    pub fn hand_over(&mut self, setup: &[BytesMut]) {
        let Some((held, _)) = self.held.take() else {
            return;
        };
        if let Link::Direct(direct) = &mut self.link {
            direct.give_back(0);
            if let Some(node) = &self.ctx.node {
                node.client_closed();
            }
        }
        self.link = session_link(&self.ctx, &self.peer);
        let Link::Session { pipe, .. } = &self.link else {
            return;
        };
        for command in setup {
            pipe.send(command);
        }
        for _ in setup {
            self.waiting.push_front(Waiting::own());
        }
        pipe.send(&held);
        self.wake.woken.store(true, Ordering::Relaxed);
    }

    /// Whether the leg runs its commands itself, not through a session.
    pub fn direct(&self) -> bool {
        matches!(self.link, Link::Direct(_))
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

    /// Polls the link if it woke (or was given commands) since it was
    /// last polled; `Ready` once it replied (`true`) or ended (`false`),
    /// `Pending` otherwise.
    fn poll(&mut self) -> Poll<bool> {
        if !self.wake.woken.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        if self.closed {
            return Poll::Ready(false);
        }
        let mut cx = Context::from_waker(&self.waker);
        let had = self.input.len();
        let owed = self.direct_owed();
        match &mut self.link {
            Link::Direct(direct) => match direct.poll(&mut cx, &mut self.input, owed) {
                Status::Open { more } => {
                    if more {
                        self.wake.woken.store(true, Ordering::Relaxed);
                    }
                }
                // What it answered (a failed dial's errors) is handled first.
                Status::Closed => self.closed = true,
            },
            Link::Session { session, pipe } => {
                if let Some(running) = session {
                    if running.as_mut().poll(&mut cx).is_ready() {
                        *session = None;
                    }
                }
                if pipe.take(&mut self.input) {
                    self.closed = true;
                }
            }
        }
        if self.input.len() > had {
            Poll::Ready(true)
        } else if self.closed {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }
}

/// A session for `ctx`'s node whose client is the leg.
fn session_link(ctx: &Arc<SessionContext>, peer: &str) -> Link {
    let (ours, theirs) = pipe::pipe();
    let (ctx, peer) = (ctx.clone(), peer.to_owned());
    Link::Session {
        session: Some(Box::pin(
            async move { session::serve(theirs, ctx, &peer).await },
        )),
        pipe: ours,
    }
}

/// `ASKING`, as a command.
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

impl Drop for Leg {
    fn drop(&mut self) {
        let owed = if self.closed { 1 } else { self.direct_owed() };
        match &mut self.link {
            Link::Direct(direct) => {
                direct.give_back(owed);
                if let Some(node) = &self.ctx.node {
                    node.client_closed();
                }
            }
            Link::Session { session, pipe } => {
                // Its session ends on its own once it sees the pipe close
                // (closed first: in a task of its own nothing would wake it
                // to see it).
                pipe.close();
                if let Some(session) = session.take() {
                    tokio::spawn(session);
                }
            }
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
