//! A warm pool of authenticated upstream connections.
//!
//! Without it, a new client waits for a TCP connect, a TLS handshake and an
//! AUTH round trip before its first command can go. With it, a background task
//! keeps connections dialed and authenticated ahead of demand; a new session
//! takes one at once and the task dials a replacement.
//!
//! How many it keeps adapts to demand ([`sizing`]): enough for the takes
//! expected while a replacement is dialed, at the recent rate of takes, within
//! a cap (the thread's share of `--pool-size`) and down to one connection when
//! no client comes.
//!
//! When a client leaves at a quiet moment (every reply delivered, nothing in
//! flight, no subscription or MONITOR feed), its connection comes back
//! ([`Pool::recycle`]): `RESET` (transaction, watches, database, protocol,
//! tracking, reply mode, subscriptions, name, identity), the commands that
//! undo what the client set and `RESET` keeps (see
//! [`super::leftovers`]), and `AUTH` with the current token return
//! it to the state of a fresh dial before it waits for the next client; any
//! other answer drops it. A client that ran a command whose effect `RESET`
//! may not undo leaves a connection that is closed, never handed back. So a
//! busy sidecar needs no TLS handshake per client: returned connections are
//! kept up to the cap, and those the recent demand does not call for are
//! closed after [`sizing::LINGER`] unused. The refill counts
//! connections on their way back and waits [`SETTLE`] after a take before
//! dialing, so short sessions are served by returned connections and no
//! handshake is spent on a replacement that would only be thrown away.
//!
//! Each relay thread has its own pool (see [`crate::relays`]), so a pooled
//! connection is driven by the thread whose sessions use it.
//!
//! A connection is discarded rather than handed out when the
//! token it authenticated with is no longer the current one (a new one was
//! published: replacements authenticate with it), when its token is about to
//! expire, when it has waited longer than [`MAX_IDLE`] (servers close idle
//! connections; Azure after ten minutes), or when the server closed it or sent
//! anything unasked.

mod sizing;

use super::connect::read_reply;
use super::{auth, leftovers};
use super::{Connector, Upstream};
use crate::credentials::{ConnectionLimit, Credential, CredentialFeed};
use crate::resp::encode;
use bytes::BytesMut;
use sizing::{Limits, TakeRate};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The longest a connection waits in the pool before it is replaced.
pub const MAX_IDLE: Duration = Duration::from_secs(240);

/// A pooled connection whose token has less than this left is not handed out.
const MIN_LEFT: Duration = Duration::from_secs(1);

/// Bound on resetting a used connection.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// How many dials a refill runs at once.
const PARALLEL: usize = 4;

/// The longest pause between refill attempts while dials keep failing.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// How long the refill waits after a connection was taken before dialing a
/// replacement. Short sessions hand their connection back within it (see
/// [`Pool::recycle`]), and a dial it spares is a TLS handshake's worth of CPU
/// on both ends; a longer session's replacement is merely this much later.
const SETTLE: Duration = Duration::from_millis(25);

/// Why no connection could be had for a client, and when: the message is fit
/// for the client (it names the step that failed, never a secret).
#[derive(Debug)]
pub struct CheckoutError {
    pub message: String,
    pub at: Instant,
}

/// Handle to the pool; cheap to clone. A cap of 0 keeps no connections.
/// When the last handle is dropped the refill stops and the idle
/// connections are closed (a cluster node that left takes its pools along).
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
    _refill: Arc<StopOnDrop>,
}

/// Stops the refill task when dropped.
struct StopOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(refill) = &self.0 {
            refill.abort();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("limits", &self.shared.limits)
            .field("idle", &self.idle())
            .finish()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the refill task when a connection was taken, and when a used
    /// one's return ended (returned or dropped).
    taken: Notify,
    /// Used connections being reset on their way back.
    returning: AtomicUsize,
    limits: Limits,
    credentials: CredentialFeed,
    /// Dials what the pool does not have.
    connector: Connector,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the pool holds and what it has seen of demand.
struct State {
    /// Oldest first. Arrivals go to the back and takes come from the back too,
    /// so under light demand the same few are reused and a surplus, at the
    /// front, ages out.
    idle: VecDeque<Warm>,
    takes: TakeRate,
    /// The recent time a dial took (connect, TLS, AUTH).
    dial: Duration,
}

impl State {
    /// How many connections the refill keeps waiting now.
    fn target(&self, now: Instant, limits: Limits) -> usize {
        let refill = SETTLE + self.dial;
        sizing::target(self.takes.per_second(now), refill, limits)
    }

    /// Closes connections beyond `target` that have waited [`sizing::LINGER`]
    /// (the oldest are at the front); returns how many.
    fn close_surplus(&mut self, target: usize, now: Instant) -> usize {
        let mut closed = 0;
        while self.idle.len() > target
            && self
                .idle
                .front()
                .is_some_and(|w| now.duration_since(w.since) >= sizing::LINGER)
        {
            self.idle.pop_front();
            closed += 1;
        }
        closed
    }
}

/// A connection waiting in the pool.
struct Warm {
    upstream: Upstream,
    credential: Arc<Credential>,
    since: Instant,
}

impl Warm {
    /// Whether this connection can be handed to a client now. Under
    /// [`ConnectionLimit::None`] its token may have expired: the server keeps
    /// the connection, and it is never re-authenticated.
    fn usable(&mut self, now: Instant, wall: SystemTime) -> bool {
        let kept = self.credential.limit == ConnectionLimit::None;
        now.duration_since(self.since) < MAX_IDLE
            && (kept || !self.credential.expired_at(wall + MIN_LEFT))
            && self.stale_at().is_none_or(|stale| wall < stale)
            && quiet(&mut self.upstream)
    }

    /// Under a connection-age limit ([`ConnectionLimit::AfterAuth`]), when
    /// the connection is no longer worth handing out: halfway from its AUTH
    /// to the moment it must authenticate again (the server closes it then).
    /// Never within [`MAX_IDLE`] for AWS's 12 hours; a limit shortened for a
    /// test would otherwise have the server close idle connections.
    fn stale_at(&self) -> Option<SystemTime> {
        if !matches!(self.credential.limit, ConnectionLimit::AfterAuth { .. }) {
            return None;
        }
        let authed = self.upstream.authed_at;
        let renew_by = self.credential.renew_by(authed)?;
        Some(authed + renew_by.duration_since(authed).unwrap_or_default() / 2)
    }
}

/// True when the server has neither closed the connection nor sent anything:
/// an idle authenticated connection has nothing to say.
fn quiet(upstream: &mut Upstream) -> bool {
    if !upstream.pending.is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    // TLS records that carry no data (session tickets) are taken in stride.
    matches!(
        Pin::new(&mut upstream.stream).poll_read(&mut cx, &mut buf),
        Poll::Pending
    )
}

impl Pool {
    /// A pool of up to `cap` connections (one when quiet), filled in the
    /// background from now on (nothing is spawned for cap 0). Must be called
    /// inside a runtime.
    pub fn start(connector: Connector, credentials: CredentialFeed, cap: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                idle: VecDeque::new(),
                takes: TakeRate::default(),
                dial: sizing::FIRST_DIAL,
            }),
            taken: Notify::new(),
            returning: AtomicUsize::new(0),
            limits: Limits::up_to(cap),
            credentials: credentials.clone(),
            connector: connector.clone(),
        });
        let refill = (cap > 0)
            .then(|| tokio::spawn(refill(shared.clone(), connector, credentials)).abort_handle());
        Pool {
            shared,
            _refill: Arc::new(StopOnDrop(refill)),
        }
    }

    /// A connection for a new client, and the credential it authenticated
    /// with: a warm one if one is waiting, else one dialed now with the
    /// current credential (waiting for one up to the connect timeout).
    pub async fn checkout(&self) -> Result<(Upstream, Arc<Credential>), CheckoutError> {
        if let Some(ready) = self.take() {
            return Ok(ready);
        }
        let failed = |message: String| CheckoutError {
            message,
            at: Instant::now(),
        };
        let connector = &self.shared.connector;
        let credential = self
            .shared
            .credentials
            .current(connector.timeout())
            .await
            .map_err(|e| failed(e.to_string()))?;
        connector
            .connect_from(credential, &self.shared.credentials)
            .await
            .map_err(|e| failed(e.to_string()))
    }

    /// The credentials connections are authenticated with.
    pub fn credentials(&self) -> &CredentialFeed {
        &self.shared.credentials
    }

    /// A ready connection and the credential it authenticated with, if one is
    /// waiting; stale or broken ones met on the way are dropped.
    pub fn take(&self) -> Option<(Upstream, Arc<Credential>)> {
        if self.shared.limits.cap == 0 {
            return None;
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut dropped = Vec::new();
        let found = {
            let mut state = self.shared.state();
            state.takes.record(now);
            loop {
                let Some(mut warm) = state.idle.pop_back() else {
                    break None;
                };
                if warm.usable(now, wall) {
                    break Some(warm);
                }
                dropped.push(warm);
            }
        };
        drop(dropped);
        self.shared.taken.notify_one();
        found.map(|warm| (warm.upstream, warm.credential))
    }

    /// Takes back a connection whose client has left with nothing in flight
    /// (the session checked), to serve another client once it has been reset,
    /// rid of the client's settings by the `undo` commands, and authenticated
    /// again; dropped if any of that fails or the pool is at its cap.
    pub fn recycle(&self, upstream: Upstream, undo: Vec<BytesMut>) {
        if !upstream.pending.is_empty() || self.idle() >= self.shared.limits.cap {
            return;
        }
        let shared = self.shared.clone();
        let returning = Returning::new(shared.clone());
        tokio::spawn(async move {
            let _returning = returning;
            let Ok(credential) = shared.credentials.current(Duration::ZERO).await else {
                return;
            };
            let reset =
                tokio::time::timeout(RESET_TIMEOUT, reset(upstream, &credential, &undo)).await;
            match reset {
                Ok(Ok(upstream)) => {
                    let mut state = shared.state();
                    if state.idle.len() < shared.limits.cap {
                        tracing::trace!("warm pool: a used connection was reset and returned");
                        state.idle.push_back(Warm {
                            upstream,
                            credential,
                            since: Instant::now(),
                        });
                    }
                }
                Ok(Err(why)) => {
                    tracing::debug!(%why, "warm pool: a used connection could not be reset; dropped")
                }
                Err(_) => {
                    tracing::debug!("warm pool: resetting a used connection timed out; dropped")
                }
            }
        });
    }

    /// Connections waiting now.
    pub fn idle(&self) -> usize {
        self.shared.state().idle.len()
    }
}

/// Counts a used connection in [`Shared::returning`] while it is reset; when
/// it is done, returned or not, the refill task looks again.
struct Returning(Arc<Shared>);

impl Returning {
    fn new(shared: Arc<Shared>) -> Returning {
        shared.returning.fetch_add(1, Ordering::Relaxed);
        Returning(shared)
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.0.returning.fetch_sub(1, Ordering::Relaxed);
        self.0.taken.notify_one();
    }
}

/// Returns a used connection to the state of a fresh dial: `RESET` (which
/// also clears the name), `AUTH`, and the `undo` commands, in one write; each
/// must succeed. Public for tests.
pub async fn reset(
    mut upstream: Upstream,
    credential: &Credential,
    undo: &[BytesMut],
) -> Result<Upstream, String> {
    // AUTH before the rest: after RESET the connection is the default user's.
    let (mut out, auth_owed) = auth::after_reset(encode::command(&["RESET"]), credential);
    for command in undo {
        out.extend_from_slice(command);
    }
    let sent = match upstream.stream.write_all(&out).await {
        Ok(()) => upstream.stream.flush().await,
        Err(e) => Err(e),
    };
    sent.map_err(|e| format!("sending RESET and AUTH: {e}"))?;
    upstream.authed_at = SystemTime::now();
    // RESET's reply, AUTH's, then one per undo command.
    let fixed = if auth_owed { 2 } else { 1 };
    for i in 0..fixed + undo.len() {
        let reply = read_reply(&mut upstream.stream, &mut upstream.pending)
            .await
            .map_err(|e| format!("waiting for the replies to RESET and AUTH: {e}"))?;
        let accepted = match i {
            0 => &reply[..] == b"+RESET\r\n",
            i if i < fixed => auth::judge(&reply).is_ok(),
            _ => leftovers::undone_by(&reply),
        };
        if !accepted {
            // Never the AUTH's text: it may quote nothing secret, but keep it short.
            return Err(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(&reply[..reply.len().min(40)])
            ));
        }
    }
    if !upstream.pending.is_empty() {
        return Err("more than the replies asked for".into());
    }
    Ok(upstream)
}

/// Keeps the pool at its target ([`sizing`]) with connections authenticated
/// with the current credential, for as long as the process runs.
async fn refill(shared: Arc<Shared>, connector: Connector, credentials: CredentialFeed) {
    let mut dials = JoinSet::new();
    let mut failures = 0u32;
    loop {
        let credential = match credentials.current(Duration::from_secs(5)).await {
            Ok(credential) => credential,
            Err(_) => {
                // Sessions report the reason to clients; just try again soon.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (missing, above_floor, next_stale) = {
            let mut state = shared.state();
            let (now, wall) = (Instant::now(), SystemTime::now());
            state.idle.retain(|w| {
                Arc::ptr_eq(&w.credential, &credential)
                    && now.duration_since(w.since) < MAX_IDLE
                    && w.stale_at().is_none_or(|stale| wall < stale)
            });
            let next_stale = state.idle.iter().filter_map(Warm::stale_at).min();
            let target = state.target(now, shared.limits);
            let closed = state.close_surplus(target, now);
            if closed > 0 {
                tracing::debug!(
                    closed,
                    target,
                    "warm pool: closed connections no longer needed"
                );
            }
            let coming = state.idle.len() + shared.returning.load(Ordering::Relaxed);
            (
                target.saturating_sub(coming),
                state.idle.len() > shared.limits.floor,
                next_stale,
            )
        };
        let room = PARALLEL.saturating_sub(dials.len());
        for _ in 0..missing.saturating_sub(dials.len()).min(room) {
            let (connector, credential) = (connector.clone(), credential.clone());
            let feed = credentials.clone();
            dials.spawn(async move {
                let started = Instant::now();
                let (upstream, credential) = connector.connect_from(credential, &feed).await?;
                let warm = Warm {
                    upstream,
                    credential,
                    since: Instant::now(),
                };
                Ok::<_, super::ConnectError>((warm, started.elapsed()))
            });
        }
        // While more than the floor waits, look again soon to close what is
        // no longer needed.
        let wake = if above_floor {
            Duration::from_secs(1)
        } else {
            MAX_IDLE / 4
        };
        // Replaced before it goes stale, too.
        let wake = next_stale.map_or(wake, |stale| {
            let left = stale.duration_since(SystemTime::now()).unwrap_or_default();
            wake.min(left + Duration::from_millis(1))
        });
        let mut watch = credentials.renewals_after(credential);
        tokio::select! {
            Some(done) = dials.join_next(), if !dials.is_empty() => match done {
                Ok(Ok((warm, took))) => {
                    failures = 0;
                    let mut state = shared.state();
                    state.dial = sizing::smoothed(state.dial, took);
                    if state.idle.len() < shared.limits.cap {
                        state.idle.push_back(warm);
                    }
                }
                Ok(Err(e)) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %e, "warm pool: dialing the upstream failed; retrying with backoff");
                    }
                    let pause = Duration::from_millis(100) * 2u32.saturating_pow(failures.min(10));
                    tokio::time::sleep(pause.min(BACKOFF_CAP)).await;
                }
                Err(e) => tracing::error!(error = %e, "warm pool: a dial task failed"),
            },
            _ = shared.taken.notified() => tokio::time::sleep(SETTLE).await,
            _ = watch.next() => {}
            _ = tokio::time::sleep(wake) => {}
        }
    }
}
