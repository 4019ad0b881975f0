//! A warm pool of authenticated upstream connections.
//!
//! Without it, a new client waits for a TCP connect, a TLS handshake and an
//! AUTH round trip before its first command can go. With it, a background task
//! keeps up to `size` connections dialed and authenticated ahead of demand; a
//! new session takes one at once and the task dials a replacement.
//!
//! A pooled connection has never carried a client command: it is exactly what
//! a fresh dial would give. It is discarded rather than handed out when the
//! token it authenticated with is no longer the current one (a new one was
//! published: replacements authenticate with it), when its token is about to
//! expire, when it has waited longer than [`MAX_IDLE`] (servers close idle
//! connections; Azure after ten minutes), or when the server closed it or sent
//! anything unasked.

use super::{Connector, Upstream};
use crate::credentials::{Credential, Credentials};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The longest a connection waits in the pool before it is replaced.
pub const MAX_IDLE: Duration = Duration::from_secs(240);

/// A pooled connection whose token has less than this left is not handed out.
const MIN_LEFT: Duration = Duration::from_secs(1);

/// How many dials a refill runs at once.
const PARALLEL: usize = 4;

/// The longest pause between refill attempts while dials keep failing.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Handle to the pool; cheap to clone. Size 0 keeps no connections.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.shared.size)
            .field("idle", &self.idle())
            .finish()
    }
}

struct Shared {
    idle: Mutex<VecDeque<Warm>>,
    /// Wakes the refill task when a connection was taken.
    taken: Notify,
    size: usize,
}

/// A connection waiting in the pool.
struct Warm {
    upstream: Upstream,
    credential: Arc<Credential>,
    dialed: Instant,
}

impl Warm {
    /// Whether this connection can be handed to a client now.
    fn usable(&mut self, now: Instant, wall: SystemTime) -> bool {
        now.duration_since(self.dialed) < MAX_IDLE
            && !self.credential.expired_at(wall + MIN_LEFT)
            && quiet(&mut self.upstream)
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
    /// A pool of `size` connections, filled in the background from now on
    /// (nothing is spawned for size 0). Must be called inside a runtime.
    pub fn start(connector: Connector, credentials: Credentials, size: usize) -> Pool {
        let shared = Arc::new(Shared {
            idle: Mutex::new(VecDeque::with_capacity(size)),
            taken: Notify::new(),
            size,
        });
        if size > 0 {
            tokio::spawn(refill(shared.clone(), connector, credentials));
        }
        Pool { shared }
    }

    /// A pool that never holds a connection.
    pub fn disabled() -> Pool {
        Pool {
            shared: Arc::new(Shared {
                idle: Mutex::new(VecDeque::new()),
                taken: Notify::new(),
                size: 0,
            }),
        }
    }

    /// A ready connection and the credential it authenticated with, if one is
    /// waiting; stale or broken ones met on the way are dropped.
    pub fn take(&self) -> Option<(Upstream, Arc<Credential>)> {
        if self.shared.size == 0 {
            return None;
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut dropped = Vec::new();
        let found = {
            let mut idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let Some(mut warm) = idle.pop_front() else {
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

    /// Connections waiting now.
    pub fn idle(&self) -> usize {
        self.shared
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Keeps the pool full of connections authenticated with the current
/// credential, for as long as the process runs.
async fn refill(shared: Arc<Shared>, connector: Connector, credentials: Credentials) {
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
        let missing = {
            let mut idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            idle.retain(|w| {
                Arc::ptr_eq(&w.credential, &credential) && now.duration_since(w.dialed) < MAX_IDLE
            });
            shared.size.saturating_sub(idle.len())
        };
        let room = PARALLEL.saturating_sub(dials.len());
        for _ in 0..missing.saturating_sub(dials.len()).min(room) {
            let (connector, credential) = (connector.clone(), credential.clone());
            dials.spawn(async move {
                let upstream = connector.connect(&credential).await?;
                Ok::<_, super::ConnectError>(Warm {
                    upstream,
                    credential,
                    dialed: Instant::now(),
                })
            });
        }
        let mut watch = credentials.watch_from(credential);
        tokio::select! {
            Some(done) = dials.join_next(), if !dials.is_empty() => match done {
                Ok(Ok(warm)) => {
                    failures = 0;
                    let mut idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.len() < shared.size {
                        idle.push_back(warm);
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
            _ = shared.taken.notified() => {}
            _ = watch.next() => {}
            _ = tokio::time::sleep(MAX_IDLE / 4) => {}
        }
    }
}
