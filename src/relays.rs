//! Relay threads: where client sessions run.
//!
//! Each relay is one OS thread running its own single-threaded tokio runtime,
//! with its own share of the warm pool. A session stays on the relay it was
//! handed to, so its task, its client socket and its upstream socket are all
//! driven by one thread: no work stealing, no wake-ups crossing threads, no
//! task moving between caches. Accepting stays on the main runtime (with the
//! admin endpoints and the token refresher), which hands each new client to
//! the relay serving the fewest sessions.
//!
//! Why not one work-stealing runtime for everything: on the 2-core bench
//! machine, with the proxy sharing the cores with redis-server and the load
//! generator, a 2-thread work-stealing runtime spent 1.24–1.52 µs of CPU per
//! pipelined request over three runs where relay threads spent 1.07–1.12 µs, and it
//! relayed less (see README, Performance). Relay threads keep the single-thread cost
//! per request and still use every core given.

use crate::credentials::CredentialFeed;
use crate::session::{self, SessionContext, SessionSettings};
use crate::upstream::{Connector, Pool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An accepted client socket, detached from the runtime that accepted it.
#[derive(Debug)]
pub enum Client {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Client {
    /// Detaches a socket accepted on the main runtime.
    pub fn from_tcp(stream: tokio::net::TcpStream) -> std::io::Result<Client> {
        stream.into_std().map(Client::Tcp)
    }

    pub fn from_unix(stream: tokio::net::UnixStream) -> std::io::Result<Client> {
        stream.into_std().map(Client::Unix)
    }
}

/// A client for a relay to serve. `guard` is dropped when the session ends.
struct Job {
    client: Client,
    peer: String,
    guard: Box<dyn Send>,
}

struct Relay {
    jobs: mpsc::UnboundedSender<Job>,
    /// Sessions handed to this relay and not yet ended.
    sessions: Arc<AtomicUsize>,
}

/// The relay threads. Dropping this lets them end: each stops once it has no
/// more clients to take, cutting any session still open.
pub struct Relays {
    relays: Vec<Relay>,
}

impl Relays {
    /// Starts `threads` relay threads serving sessions with `settings`;
    /// each starts its own warm pool of connections from `connector` with
    /// `credentials`, the cap `pool_size` being shared out among them (each
    /// adapts below its share, keeping one when quiet).
    pub fn start(
        threads: usize,
        settings: &SessionSettings,
        (connector, credentials): (&Connector, &CredentialFeed),
        pool_size: usize,
    ) -> std::io::Result<Relays> {
        let threads = threads.max(1);
        let mut relays = Vec::with_capacity(threads);
        for index in 0..threads {
            let share = pool_size / threads + usize::from(index < pool_size % threads);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (jobs, queue) = mpsc::unbounded_channel();
            let sessions = Arc::new(AtomicUsize::new(0));
            let settings = settings.clone();
            let (connector, credentials) = (connector.clone(), credentials.clone());
            let counted = sessions.clone();
            std::thread::Builder::new()
                .name(format!("redauth-relay-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        // The pool's refill task runs on this thread's loop.
                        let pool = Pool::start(connector, credentials, share);
                        let ctx = Arc::new(SessionContext { settings, pool });
                        serve_jobs(queue, ctx, counted).await
                    })
                })?;
            relays.push(Relay { jobs, sessions });
        }
        Ok(Relays { relays })
    }

    /// Hands a client to the relay with the fewest sessions (the first of
    /// equals: while no other session is open, clients land on the first
    /// thread, where the last lone client's connection went back to the pool).
    pub fn serve(&self, client: Client, peer: String, guard: impl Send + 'static) {
        let mut job = Job {
            client,
            peer,
            guard: Box::new(guard),
        };
        loop {
            let relay = self
                .relays
                .iter()
                .min_by_key(|s| s.sessions.load(Ordering::Relaxed))
                .expect("at least one relay");
            if relay.sessions.load(Ordering::Relaxed) >= DEAD {
                tracing::error!(peer = %job.peer, "every relay thread has stopped: client closed");
                return;
            }
            relay.sessions.fetch_add(1, Ordering::Relaxed);
            match relay.jobs.send(job) {
                Ok(()) => return,
                Err(returned) => {
                    // Its thread is gone: never choose it again.
                    relay.sessions.store(DEAD, Ordering::Relaxed);
                    tracing::error!("a relay thread has stopped; its share goes to the others");
                    job = returned.0;
                }
            }
        }
    }
}

/// The session count that marks a relay whose thread has stopped.
const DEAD: usize = usize::MAX / 2;

/// A relay's life: a session task per client handed over.
async fn serve_jobs(
    mut queue: mpsc::UnboundedReceiver<Job>,
    ctx: Arc<SessionContext>,
    sessions: Arc<AtomicUsize>,
) {
    while let Some(Job {
        client,
        peer,
        guard,
    }) = queue.recv().await
    {
        let ctx = ctx.clone();
        let counted = Counted(sessions.clone());
        tokio::spawn(async move {
            let (_counted, _guard) = (counted, guard);
            let attached = match client {
                Client::Tcp(stream) => match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => return session::serve(stream, ctx, &peer).await,
                    Err(error) => error,
                },
                Client::Unix(stream) => match tokio::net::UnixStream::from_std(stream) {
                    Ok(stream) => return session::serve(stream, ctx, &peer).await,
                    Err(error) => error,
                },
            };
            tracing::warn!(%peer, error = %attached, "taking over an accepted client failed");
        });
    }
}

/// One session on a relay's count, until dropped (even by a panic).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> (Relay, mpsc::UnboundedReceiver<Job>) {
        let (jobs, queue) = mpsc::unbounded_channel();
        let sessions = Arc::new(AtomicUsize::new(0));
        (Relay { jobs, sessions }, queue)
    }

    fn client() -> Client {
        Client::Unix(std::os::unix::net::UnixStream::pair().unwrap().0)
    }

    #[test]
    fn clients_go_to_the_least_loaded_shard_and_never_to_a_stopped_one() {
        let (first, first_queue) = relay();
        let (second, mut second_queue) = relay();
        let relays = Relays {
            relays: vec![first, second],
        };
        // The first relay's thread is gone: its receiving end with it.
        drop(first_queue);
        relays.serve(client(), "a".into(), ());
        assert_eq!(second_queue.try_recv().unwrap().peer, "a");
        assert_eq!(relays.relays[0].sessions.load(Ordering::Relaxed), DEAD);
        // Once marked, it is passed over even though the other is busier.
        relays.serve(client(), "b".into(), ());
        assert_eq!(second_queue.try_recv().unwrap().peer, "b");
        assert_eq!(relays.relays[1].sessions.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_first_of_equally_loaded_shards_is_chosen() {
        let (first, mut first_queue) = relay();
        let (second, mut second_queue) = relay();
        let relays = Relays {
            relays: vec![first, second],
        };
        relays.serve(client(), "a".into(), ());
        relays.serve(client(), "b".into(), ());
        relays.serve(client(), "c".into(), ());
        assert_eq!(first_queue.try_recv().unwrap().peer, "a");
        assert_eq!(second_queue.try_recv().unwrap().peer, "b");
        assert_eq!(first_queue.try_recv().unwrap().peer, "c");
    }
}
