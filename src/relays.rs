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

use crate::cluster::Directory;
use crate::credentials::CredentialFeed;
use crate::metrics::NodeMetrics;
use crate::router::{self, NodeContexts, RouterContext};
use crate::session::{self, SessionContext, SessionSettings};
use crate::upstream::{Connector, Pool};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

/// Where a listener's sessions relay to: the upstream endpoint (or, in
/// cluster mode, one node of it), the warm pool it may keep, and the
/// directory its replies' node addresses are rewritten through. Each relay
/// thread starts its share of the target's pool when the target's first
/// client comes to it.
#[derive(Debug)]
pub struct Target {
    id: u64,
    connector: Connector,
    pool_size: usize,
    rewriter: Option<Arc<Directory>>,
    /// A cluster node's own series.
    metrics: Option<NodeMetrics>,
    /// Cluster routing mode (the main port of a cluster): the node targets
    /// the router's legs go to.
    routes: Option<Arc<NodeTargets>>,
}

/// Every cluster node's target by local port, for the router's legs; kept
/// by the node listeners.
#[derive(Debug, Default)]
pub struct NodeTargets(RwLock<HashMap<u16, Arc<Target>>>);

impl NodeTargets {
    pub fn insert(&self, port: u16, target: Arc<Target>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, target);
    }

    /// Forgets `port`'s target if it is still `target`.
    pub fn remove(&self, port: u16, target: &Target) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if map.get(&port).is_some_and(|t| t.id == target.id) {
            map.remove(&port);
        }
    }

    fn get(&self, port: u16) -> Option<Arc<Target>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .cloned()
    }
}

impl Target {
    /// `pool_size` is shared out among the relay threads.
    pub fn new(
        connector: Connector,
        pool_size: usize,
        rewriter: Option<Arc<Directory>>,
        metrics: Option<NodeMetrics>,
    ) -> Arc<Target> {
        Arc::new(Target::build(connector, pool_size, rewriter, metrics, None))
    }

    fn build(
        connector: Connector,
        pool_size: usize,
        rewriter: Option<Arc<Directory>>,
        metrics: Option<NodeMetrics>,
        routes: Option<Arc<NodeTargets>>,
    ) -> Target {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Target {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            connector,
            pool_size,
            rewriter,
            metrics,
            routes,
        }
    }

    /// The main port's target in cluster mode: once the upstream is known to
    /// be a cluster, its clients are routed by slot to `nodes`.
    pub fn routing(
        connector: Connector,
        pool_size: usize,
        directory: Arc<Directory>,
        nodes: Arc<NodeTargets>,
    ) -> Arc<Target> {
        let target = Target::build(connector, pool_size, Some(directory), None, Some(nodes));
        Arc::new(target)
    }
}

/// A client for a relay to serve. `guard` is dropped when the session ends.
struct Job {
    client: Client,
    peer: String,
    guard: Box<dyn Send>,
    target: Arc<Target>,
}

/// What a relay thread is told.
enum Message {
    Serve(Job),
    /// A target is gone (its cluster node left): drop its pool once the
    /// sessions using it have ended.
    Forget(u64),
}

struct Relay {
    jobs: mpsc::UnboundedSender<Message>,
    /// Sessions handed to this relay and not yet ended.
    sessions: Arc<AtomicUsize>,
}

/// The relay threads. Dropping this lets them end: each stops once it has no
/// more clients to take, cutting any session still open.
pub struct Relays {
    relays: Vec<Relay>,
}

impl Relays {
    /// Starts `threads` relay threads serving sessions with `settings`,
    /// dialing with `credentials`; each starts its share of `first`'s pool
    /// at once, so the first clients find warm connections.
    pub fn start(
        threads: usize,
        settings: &SessionSettings,
        credentials: &CredentialFeed,
        first: &Arc<Target>,
    ) -> std::io::Result<Relays> {
        let threads = threads.max(1);
        let mut relays = Vec::with_capacity(threads);
        for index in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (jobs, queue) = mpsc::unbounded_channel();
            let sessions = Arc::new(AtomicUsize::new(0));
            let first = first.clone();
            let thread = Thread {
                sessions: sessions.clone(),
                contexts: Contexts {
                    index,
                    threads,
                    settings: settings.clone(),
                    credentials: credentials.clone(),
                    map: Arc::default(),
                },
            };
            std::thread::Builder::new()
                .name(format!("redauth-relay-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        thread.contexts.of(&first);
                        thread.serve(queue).await
                    })
                })?;
            relays.push(Relay { jobs, sessions });
        }
        Ok(Relays { relays })
    }

    /// Hands a client to the relay with the fewest sessions (the first of
    /// equals: while no other session is open, clients land on the first
    /// thread, where the last lone client's connection went back to the pool).
    pub fn serve(
        &self,
        client: Client,
        peer: String,
        guard: impl Send + 'static,
        target: &Arc<Target>,
    ) {
        let mut job = Job {
            client,
            peer,
            guard: Box::new(guard),
            target: target.clone(),
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
            match relay.jobs.send(Message::Serve(job)) {
                Ok(()) => return,
                Err(mpsc::error::SendError(Message::Serve(back))) => {
                    relay.sessions.store(DEAD, Ordering::Relaxed);
                    tracing::error!("a relay thread has stopped; its share goes to the others");
                    job = back;
                }
                Err(_) => unreachable!("a Serve was sent"),
            }
        }
    }

    /// Drops every relay's pool for `target` (once its sessions end).
    pub fn forget(&self, target: &Target) {
        for relay in &self.relays {
            let _ = relay.jobs.send(Message::Forget(target.id));
        }
    }
}

/// The session count that marks a relay whose thread has stopped.
const DEAD: usize = usize::MAX / 2;

/// One relay thread's state.
struct Thread {
    sessions: Arc<AtomicUsize>,
    contexts: Contexts,
}

/// Each target's context (its pool share) on one relay thread; shared with
/// the routed sessions of that thread, whose legs need the nodes' contexts.
#[derive(Clone)]
struct Contexts {
    index: usize,
    threads: usize,
    settings: SessionSettings,
    credentials: CredentialFeed,
    map: Arc<Mutex<HashMap<u64, Arc<SessionContext>>>>,
}

impl std::fmt::Debug for Contexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contexts")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Contexts {
    /// The target's context on this thread, its pool share started on first
    /// use (the pool's refill task runs on this thread's loop).
    fn of(&self, target: &Target) -> Arc<SessionContext> {
        let (index, threads) = (self.index, self.threads);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(target.id)
            .or_insert_with(|| {
                let size = target.pool_size;
                let share = size / threads + usize::from(index < size % threads);
                let pool = Pool::start(target.connector.clone(), self.credentials.clone(), share);
                Arc::new(SessionContext {
                    settings: self.settings.clone(),
                    pool,
                    rewriter: target.rewriter.clone(),
                    node: target.metrics.clone(),
                })
            })
            .clone()
    }

    fn forget(&self, id: u64) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// A router's view of the node contexts on its relay thread. A leg's
/// session has the router for its client: no client password, no idle
/// timeout (the client may be busy on other nodes).
#[derive(Debug)]
struct RoutedNodes {
    contexts: Contexts,
    nodes: Arc<NodeTargets>,
}

impl NodeContexts for RoutedNodes {
    fn for_port(&self, port: u16) -> Option<Arc<SessionContext>> {
        let target = self.nodes.get(port)?;
        let node = self.contexts.of(&target);
        let mut settings = node.settings.clone();
        settings.client_password = session::ClientPassword::none();
        settings.idle_timeout = None;
        Some(Arc::new(SessionContext {
            settings,
            pool: node.pool.clone(),
            rewriter: node.rewriter.clone(),
            node: node.node.clone(),
        }))
    }
}

impl Thread {
    /// A relay's life: a session task per client handed over.
    async fn serve(self, mut queue: mpsc::UnboundedReceiver<Message>) {
        while let Some(message) = queue.recv().await {
            let job = match message {
                Message::Serve(job) => job,
                Message::Forget(id) => {
                    self.contexts.forget(id);
                    continue;
                }
            };
            let ctx = self.contexts.of(&job.target);
            let routed = job.target.routes.as_ref().and_then(|nodes| {
                let directory = ctx.rewriter.clone()?;
                directory.known().then(|| {
                    Arc::new(RouterContext {
                        directory,
                        nodes: Box::new(RoutedNodes {
                            contexts: self.contexts.clone(),
                            nodes: nodes.clone(),
                        }),
                        settings: ctx.settings.clone(),
                    })
                })
            });
            let counted = Counted(self.sessions.clone());
            let Job {
                client,
                peer,
                guard,
                ..
            } = job;
            tokio::spawn(async move {
                let (_counted, _guard) = (counted, guard);
                let attached = match (client, routed) {
                    (Client::Tcp(stream), routed) => {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => return serve(stream, ctx, routed, &peer).await,
                            Err(error) => error,
                        }
                    }
                    (Client::Unix(stream), routed) => {
                        match tokio::net::UnixStream::from_std(stream) {
                            Ok(stream) => return serve(stream, ctx, routed, &peer).await,
                            Err(error) => error,
                        }
                    }
                };
                tracing::warn!(%peer, error = %attached, "taking over an accepted client failed");
            });
        }
    }
}

/// A session, routed or relayed to one endpoint.
async fn serve<C>(
    client: C,
    ctx: Arc<SessionContext>,
    routed: Option<Arc<RouterContext>>,
    peer: &str,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match routed {
        Some(router) => router::serve(client, router, peer).await,
        None => session::serve(client, ctx, peer).await,
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

    fn relay() -> (Relay, mpsc::UnboundedReceiver<Message>) {
        let (jobs, queue) = mpsc::unbounded_channel();
        let sessions = Arc::new(AtomicUsize::new(0));
        (Relay { jobs, sessions }, queue)
    }

    fn client() -> Client {
        Client::Unix(std::os::unix::net::UnixStream::pair().unwrap().0)
    }

    fn target() -> Arc<Target> {
        let endpoint = crate::upstream::Endpoint::parse("redis://127.0.0.1:1").unwrap();
        let connector = Connector::new(endpoint, None, std::time::Duration::from_secs(1));
        Target::new(connector, 0, None, None)
    }

    fn peer(queue: &mut mpsc::UnboundedReceiver<Message>) -> String {
        match queue.try_recv().unwrap() {
            Message::Serve(job) => job.peer,
            Message::Forget(_) => panic!("a job was expected"),
        }
    }

    #[test]
    fn clients_go_to_the_least_loaded_shard_and_never_to_a_stopped_one() {
        let (first, first_queue) = relay();
        let (second, mut second_queue) = relay();
        let relays = Relays {
            relays: vec![first, second],
        };
        let target = target();
        // The first relay's thread is gone: its receiving end with it.
        drop(first_queue);
        relays.serve(client(), "a".into(), (), &target);
        assert_eq!(peer(&mut second_queue), "a");
        assert_eq!(relays.relays[0].sessions.load(Ordering::Relaxed), DEAD);
        // Once marked, it is passed over even though the other is busier.
        relays.serve(client(), "b".into(), (), &target);
        assert_eq!(peer(&mut second_queue), "b");
        assert_eq!(relays.relays[1].sessions.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_first_of_equally_loaded_shards_is_chosen() {
        let (first, mut first_queue) = relay();
        let (second, mut second_queue) = relay();
        let relays = Relays {
            relays: vec![first, second],
        };
        let target = target();
        relays.serve(client(), "a".into(), (), &target);
        relays.serve(client(), "b".into(), (), &target);
        relays.serve(client(), "c".into(), (), &target);
        assert_eq!(peer(&mut first_queue), "a");
        assert_eq!(peer(&mut second_queue), "b");
        assert_eq!(peer(&mut first_queue), "c");
    }
}
