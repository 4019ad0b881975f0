//! Relay threads ("shards"): where client sessions run.
//!
//! Each shard is one OS thread running its own single-threaded tokio runtime,
//! with its own share of the warm pool. A session stays on the shard it was
//! handed to, so its task, its client socket and its upstream socket are all
//! driven by one thread: no work stealing, no wake-ups crossing threads, no
//! task moving between caches. Accepting stays on the main runtime (with the
//! admin endpoints and the token refresher), which hands each new client to
//! the shard serving the fewest sessions.
//!
//! Why not one work-stealing runtime for everything: on the 2-core bench
//! machine, with the proxy sharing the cores with redis-server and the load
//! generator, a 2-thread work-stealing runtime spent 1.24–1.52 µs of CPU per
//! pipelined request over three runs where shards spent 1.07–1.12 µs, and it
//! relayed less (see README, Performance). Shards keep the single-thread cost
//! per request and still use every core given.

use crate::session::{self, SessionContext};
use crate::upstream::Pool;
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

/// A client for a shard to serve. `guard` is dropped when the session ends.
struct Job {
    client: Client,
    peer: String,
    guard: Box<dyn Send>,
}

struct Shard {
    jobs: mpsc::UnboundedSender<Job>,
    /// Sessions handed to this shard and not yet ended.
    sessions: Arc<AtomicUsize>,
}

/// The relay threads. Dropping this lets them end: each stops once it has no
/// more clients to take, cutting any session still open.
pub struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// Starts `threads` relay threads serving sessions with `ctx`; each
    /// starts its own warm pool, `pool_size` being shared out among them.
    pub fn start(
        threads: usize,
        ctx: &SessionContext,
        pool_size: usize,
    ) -> std::io::Result<Shards> {
        let threads = threads.max(1);
        let mut shards = Vec::with_capacity(threads);
        for index in 0..threads {
            let share = pool_size / threads + usize::from(index < pool_size % threads);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (jobs, queue) = mpsc::unbounded_channel();
            let sessions = Arc::new(AtomicUsize::new(0));
            let ctx = ctx.clone();
            let counted = sessions.clone();
            std::thread::Builder::new()
                .name(format!("redauth-relay-{index}"))
                .spawn(move || runtime.block_on(serve_jobs(queue, ctx, share, counted)))?;
            shards.push(Shard { jobs, sessions });
        }
        Ok(Shards { shards })
    }

    /// Hands a client to the shard with the fewest sessions (the first of
    /// equals, so a lone client always lands where the last one was served).
    pub fn serve(&self, client: Client, peer: String, guard: impl Send + 'static) {
        let shard = self
            .shards
            .iter()
            .min_by_key(|s| s.sessions.load(Ordering::Relaxed))
            .expect("at least one shard");
        shard.sessions.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            client,
            peer,
            guard: Box::new(guard),
        };
        if shard.jobs.send(job).is_err() {
            // Only when the shard's thread died; the client is closed.
            shard.sessions.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("a relay thread has stopped: client closed");
        }
    }
}

/// A shard's life: its pool, then a session task per client handed over.
async fn serve_jobs(
    mut queue: mpsc::UnboundedReceiver<Job>,
    template: SessionContext,
    pool_size: usize,
    sessions: Arc<AtomicUsize>,
) {
    let ctx = Arc::new(SessionContext {
        pool: Pool::start(
            template.connector.clone(),
            template.credentials.clone(),
            pool_size,
        ),
        ..template
    });
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

/// One session on a shard's count, until dropped (even by a panic).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
