//! The running proxy: bind every listener, accept clients, hand each to a
//! relay thread for its session ([`crate::relays`]), and stop accepting when
//! told to.
//!
//! [`Server::bind`] binds everything first (so a bad address fails before any
//! client is served); [`Server::run`] accepts until the shutdown signal, then
//! waits (bounded) for open sessions to finish. Beyond `--max-connections`
//! open sessions, a new client gets Redis's own
//! `-ERR max number of clients reached` and is closed before any upstream
//! connection is made. Open and refused clients are counted in
//! [`crate::metrics`].
//!
//! In cluster mode ([`crate::cluster`]) the server also runs the topology
//! refresher and a listener per upstream node ([`nodes`]).

mod nodes;

use crate::cluster::refresh::{NodeDialer, Refresher};
use crate::cluster::{Directory, LocalPorts};
use crate::config::{BindError, ClusterMode, Config};
use crate::credentials::CredentialFeed;
use crate::metrics;
use crate::relays::{self, NodeTargets, Relays, Target};
use crate::session::{ClientPassword, SessionSettings};
use crate::upstream::{tls, Connector};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Failure to start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration problem: the flag's address cannot be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The cause is the source, not repeated here: `{:#}` chains print both.
    #[error("building the TLS configuration")]
    Tls(#[from] tls::TlsError),
    #[error("starting the relay threads: {0}")]
    Threads(std::io::Error),
}

/// What a client beyond `--max-connections` gets, exactly as from Redis.
pub const MAX_CLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";

/// Listeners bound and ready to accept.
pub struct Server {
    tcp: Vec<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
    relays: Arc<Relays>,
    max_connections: Option<usize>,
    connector: Connector,
    /// Where the main listeners relay: the seed endpoint.
    target: Arc<Target>,
    cluster: Option<ClusterParts>,
}

/// What cluster mode needs to run (`--cluster auto|on` with node ports).
struct ClusterParts {
    directory: Arc<Directory>,
    dialer: NodeDialer,
    credentials: CredentialFeed,
    interval: Duration,
    required: bool,
    bind_ip: std::net::IpAddr,
    pool_size: usize,
    /// Each node's target, for the main port's router.
    nodes: Arc<NodeTargets>,
}

impl Server {
    /// Builds TLS and binds every listener in `config`.
    pub async fn bind(
        config: &Config,
        credentials: CredentialFeed,
        client_password: ClientPassword,
    ) -> Result<Server, StartError> {
        let tls = if config.upstream.tls {
            let client = tls::client_config(&config.tls)?;
            let name = ServerName::try_from(config.tls_server_name.clone())
                .map_err(|e| tls::TlsError::Config(e.to_string()))?;
            Some((client, name))
        } else {
            tracing::warn!(upstream = %config.upstream, "upstream is plaintext: credentials cross the network unencrypted");
            None
        };
        let tls_config = tls.as_ref().map(|(client, _)| client.clone());
        let connector = Connector::new(config.upstream.clone(), tls, config.connect_timeout);
        let cluster = cluster_parts(config, tls_config, &credentials);
        let mut tcp = Vec::new();
        for addr in &config.listen {
            let bind_error = BindError::maker("--listen", addr);
            let listener = TcpListener::bind(addr).await.map_err(&bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            tcp.push((listener, local));
        }
        let unix = match &config.unix_socket {
            Some(path) => Some((bind_unix(path, config.unix_socket_mode)?, path.clone())),
            None => None,
        };
        let settings = SessionSettings {
            max_bulk: config.max_bulk,
            client_password,
            output_timeout: config.output_timeout,
            idle_timeout: config.idle_timeout,
        };
        // Each relay thread starts its own share of the pool.
        let target = match &cluster {
            Some(c) => Target::routing(
                connector.clone(),
                config.pool_size,
                c.directory.clone(),
                c.nodes.clone(),
            ),
            None => Target::new(connector.clone(), config.pool_size, None, None),
        };
        let relays = Relays::start(config.threads, &settings, &credentials, &target)
            .map_err(StartError::Threads)?;
        tracing::debug!(threads = config.threads, "relay threads started");
        // Said once everything a client needs is up: the relay threads included.
        for (_, local) in &tcp {
            tracing::info!(addr = %local, upstream = %config.upstream, "listening");
        }
        Ok(Server {
            tcp: tcp.into_iter().map(|(listener, _)| listener).collect(),
            unix,
            relays: Arc::new(relays),
            max_connections: config.max_connections,
            connector,
            target,
            cluster,
        })
    }

    /// In cluster mode, the node map (for readiness: a topology must be known).
    pub fn directory(&self) -> Option<Arc<Directory>> {
        self.cluster.as_ref().map(|c| c.directory.clone())
    }

    /// Dials the upstream as sessions do (for the connection test and the
    /// readiness probe); its clones share one [`Connector::health`].
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Addresses the TCP listeners are bound to.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Accepts clients until `shutdown` turns true, then gives open sessions
    /// up to `grace` to finish. Returns how many were still open at the end.
    pub async fn run(self, shutdown: watch::Receiver<bool>, grace: Duration) -> usize {
        // Every session holds a clone of `alive`; when the last one is dropped,
        // `all_done` yields None and the drain is complete.
        let (alive, mut all_done) = mpsc::channel::<()>(1);
        let open = Arc::new(AtomicUsize::new(0));
        let limit = self.max_connections;
        let mut accepts = JoinSet::new();
        let main = (self.relays.clone(), self.target.clone());
        for listener in self.tcp {
            let guard = SessionGuard::new(alive.clone(), open.clone(), limit);
            accepts.spawn(accept_loop(
                Listener::Tcp(listener),
                main.clone(),
                shutdown.clone(),
                guard,
                Arc::new(()),
            ));
        }
        if let Some(parts) = self.cluster {
            let guard = SessionGuard::new(alive.clone(), open.clone(), limit);
            let (updates_tx, updates) = mpsc::unbounded_channel();
            let listeners = nodes::NodeListeners {
                relays: self.relays.clone(),
                directory: parts.directory.clone(),
                dialer: parts.dialer.clone(),
                bind_ip: parts.bind_ip,
                pool_size: parts.pool_size,
                nodes: parts.nodes.clone(),
                guard,
            };
            accepts.spawn(listeners.run(updates, shutdown.clone()));
            let refresher = Refresher {
                directory: parts.directory,
                seed: self.connector.detached(),
                dialer: parts.dialer,
                credentials: parts.credentials,
                interval: parts.interval,
                required: parts.required,
                listeners: updates_tx,
            };
            tokio::spawn(refresher.run());
        }
        let socket_path = self.unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = self.unix {
            let guard = SessionGuard::new(alive.clone(), open.clone(), limit);
            accepts.spawn(accept_loop(
                Listener::Unix(listener),
                main,
                shutdown.clone(),
                guard,
                Arc::new(()),
            ));
        }
        drop(alive);
        while accepts.join_next().await.is_some() {}
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
        let open_now = open.load(Ordering::Relaxed);
        tracing::info!(
            sessions = open_now,
            max_wait = %humantime::format_duration(grace),
            "stopped accepting clients; waiting for open sessions to finish"
        );
        match tokio::time::timeout(grace, all_done.recv()).await {
            Ok(_) => 0,
            Err(_) => open.load(Ordering::Relaxed),
        }
    }
}

/// A listening socket of either kind.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Held by each session: keeps the drain waiting and the open count right.
#[derive(Clone)]
struct SessionGuard {
    _alive: mpsc::Sender<()>,
    open: Arc<AtomicUsize>,
    limit: Option<usize>,
}

impl SessionGuard {
    fn new(alive: mpsc::Sender<()>, open: Arc<AtomicUsize>, limit: Option<usize>) -> SessionGuard {
        SessionGuard {
            _alive: alive,
            open,
            limit,
        }
    }

    /// Counts one more open session, or `None` when the limit is reached.
    fn try_enter(&self) -> Option<OpenSession> {
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        if self.limit.is_some_and(|max| before >= max) {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        metrics::client_opened();
        Some(OpenSession(self.clone()))
    }
}

/// Counts one open session for as long as it lives.
struct OpenSession(SessionGuard);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        metrics::client_closed();
    }
}

/// Accepts clients for `target` until `shutdown`; each session holds a
/// clone of `sessions` while it runs.
async fn accept_loop(
    listener: Listener,
    (relays, target): (Arc<Relays>, Arc<Target>),
    mut shutdown: watch::Receiver<bool>,
    guard: SessionGuard,
    sessions: Arc<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                let Some(open) = guard.try_enter() else {
                    reject(client, &peer, guard.limit);
                    continue;
                };
                let detached = match client {
                    Accepted::Tcp(stream) => relays::Client::from_tcp(stream),
                    Accepted::Unix(stream) => relays::Client::from_unix(stream),
                };
                match detached {
                    Ok(client) => relays.serve(client, peer, (open, sessions.clone()), &target),
                    Err(error) => tracing::warn!(%peer, %error, "handing a client over failed"),
                }
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accepting a client failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Cluster mode's parts, unless `--cluster off` or no node ports are
/// configured.
fn cluster_parts(
    config: &Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    credentials: &CredentialFeed,
) -> Option<ClusterParts> {
    let cluster = &config.cluster;
    if cluster.mode == ClusterMode::Off {
        return None;
    }
    let Some(ports) = cluster.ports.clone() else {
        tracing::debug!("no --cluster-ports (the listen port is 0): cluster mode is off");
        return None;
    };
    let map = LocalPorts::new(cluster.announce_host.clone(), *ports.start())
        .up_to(*ports.end())
        .reserving(cluster.reserved.clone());
    Some(ClusterParts {
        directory: Directory::new(map),
        dialer: NodeDialer {
            tls,
            ip_name: cluster.tls_server_name.clone(),
            timeout: config.connect_timeout,
        },
        credentials: credentials.clone(),
        interval: cluster.refresh_interval,
        required: cluster.mode == ClusterMode::On,
        bind_ip: cluster.bind_ip,
        pool_size: config.pool_size,
        nodes: Arc::default(),
    })
}

/// An accepted client connection of either kind.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Turns a client away as Redis does past `maxclients`: one error, then close.
fn reject(client: Accepted, peer: &str, limit: Option<usize>) {
    metrics::client_rejected();
    log_rejection(peer, limit);
    async fn refuse(mut stream: impl AsyncWrite + Unpin) {
        let _ = stream.write_all(MAX_CLIENTS_REPLY).await;
        let _ = stream.shutdown().await;
    }
    tokio::spawn(async move {
        match client {
            Accepted::Tcp(stream) => refuse(stream).await,
            Accepted::Unix(stream) => refuse(stream).await,
        }
    });
}

/// Warns at most every 10 s that clients are being turned away (a reconnect
/// storm at the limit would flood the log); otherwise logs at debug.
fn log_rejection(peer: &str, limit: Option<usize>) {
    static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let last = LAST_WARNED.load(Ordering::Relaxed);
    let due = now >= last.saturating_add(10)
        && LAST_WARNED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
    if due {
        tracing::warn!(
            %peer,
            max_connections = limit.unwrap_or_default(),
            "max number of clients reached: turning new clients away \
             (logged at most every 10 s; see redauth_client_connections_rejected_total)"
        );
    } else {
        tracing::debug!(%peer, "max number of clients reached: client turned away");
    }
}

async fn accept(listener: &Listener) -> std::io::Result<(Accepted, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok((Accepted::Tcp(stream), peer.to_string()))
        }
        Listener::Unix(l) => {
            let (stream, _) = l.accept().await?;
            Ok((Accepted::Unix(stream), "unix".to_string()))
        }
    }
}

/// Binds a Unix socket, replacing a stale socket file, with the given mode.
fn bind_unix(path: &PathBuf, mode: u32) -> Result<UnixListener, BindError> {
    let bind_err = BindError::maker("--unix-socket", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(&bind_err)?;
        }
    }
    let listener = UnixListener::bind(path).map_err(&bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(&bind_err)?;
    tracing::info!(path = %path.display(), mode = format!("{mode:o}"), "listening");
    Ok(listener)
}

/// A signal that asks redauth to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what Kubernetes, systemd and `docker stop` send.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C), saying which; only on SIGINT if
/// SIGTERM cannot be watched. The handlers are installed when this is called,
/// not when it is first polled, so a signal that arrives in between is not
/// lost. Call it on a runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let mut int = match int {
            Ok(int) => int,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGINT");
                return wait_for(term, Signal::Terminate).await;
            }
        };
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => Signal::Terminate,
                    _ = int.recv() => Signal::Interrupt,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops redauth");
                int.recv().await;
                Signal::Interrupt
            }
        }
    }
}

async fn wait_for(watched: std::io::Result<tokio::signal::unix::Signal>, which: Signal) -> Signal {
    match watched {
        Ok(mut watched) => {
            watched.recv().await;
            which
        }
        Err(_) => std::future::pending().await,
    }
}
