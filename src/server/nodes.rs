//! Cluster mode: a listener per upstream node, opened when the refresher
//! gives the node a local port and closed when the node leaves the topology.
//!
//! Each node's listener relays to that node only (its own [`Target`]: a
//! connector verified against the node's name, and pools on the relay
//! threads), and its sessions rewrite replies like the main port's. A
//! departed node's listener stops accepting at once; its port is released
//! for another node (and its pools dropped) once the last of its clients has
//! left, so no client of the old node is ever relayed to a new one.

use super::{accept_loop, Listener, SessionGuard};
use crate::cluster::refresh::{NodeDialer, Update};
use crate::cluster::topology::Node;
use crate::cluster::Directory;
use crate::relays::{NodeTargets, Relays, Target};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How often departed nodes' listeners are checked for clients still open.
const SWEEP: Duration = Duration::from_secs(1);

/// Attempts, 50 ms apart, to bind a port whose previous listener is closing.
const REBIND_TRIES: u32 = 20;

/// The node listeners' owner.
pub(super) struct NodeListeners {
    pub relays: Arc<Relays>,
    pub directory: Arc<Directory>,
    pub dialer: NodeDialer,
    pub bind_ip: IpAddr,
    /// The pool budget shared among the nodes.
    pub pool_size: usize,
    /// Where the main port's router finds each node's target.
    pub nodes: Arc<NodeTargets>,
    pub guard: SessionGuard,
}

/// One node's listener.
struct Open {
    target: Arc<Target>,
    /// Stops its accept loop.
    stop: watch::Sender<bool>,
    /// One clone per open session, and the accept loop's.
    sessions: Arc<()>,
    /// Its node left the topology.
    departed: bool,
}

impl NodeListeners {
    /// Follows the refresher's updates until `shutdown`.
    pub async fn run(
        self,
        mut updates: mpsc::UnboundedReceiver<Update>,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut shutdown = shutdown;
        let mut open: HashMap<u16, Open> = HashMap::new();
        let mut sweep = tokio::time::interval(SWEEP);
        let global = shutdown.clone();
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                update = updates.recv() => {
                    let Some(Update { changes, done }) = update else { break };
                    let nodes = open.values().filter(|o| !o.departed).count() + changes.added.len();
                    for (port, node) in changes.added {
                        // A node back before its port was released, or at a new address:
                        // its old listener (and pools) make way for one dialing it anew.
                        if let Some(old) = open.remove(&port) {
                            let _ = old.stop.send(true);
                            self.nodes.remove(port, &old.target);
                            self.relays.forget(&old.target);
                        }
                        if let Some(listener) = self.open(port, &node, nodes, &global).await {
                            open.insert(port, listener);
                        }
                    }
                    for port in changes.departed {
                        if let Some(listener) = open.get_mut(&port) {
                            listener.departed = true;
                            let _ = listener.stop.send(true);
                        } else {
                            // Never bound: nothing to wait for.
                            self.directory.release(port);
                        }
                    }
                    let _ = done.send(());
                }
                _ = sweep.tick() => self.sweep(&mut open),
            }
        }
        for listener in open.values() {
            let _ = listener.stop.send(true);
        }
    }

    /// Binds the node's port and starts accepting; `None` (logged) when the
    /// port cannot be bound.
    async fn open(
        &self,
        port: u16,
        node: &Node,
        nodes: usize,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<Open> {
        let addr = SocketAddr::new(self.bind_ip, port);
        // A listener this port had a moment ago may still be closing.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < REBIND_TRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => {
                    tracing::error!(%addr, node = %node.dial, %error, "cannot listen for a cluster node: clients sent to this port will fail (choose free --cluster-ports)");
                    return None;
                }
            }
        };
        let share = (self.pool_size / nodes.max(1)).max(usize::from(self.pool_size > 0));
        let target = Target::new(
            self.dialer.connector(&node.dial),
            share,
            Some(self.directory.clone()),
            Some(crate::metrics::NodeMetrics::of(&node.dial.to_string())),
        );
        let (stop, stopped) = watch::channel(false);
        let sessions = Arc::new(());
        // Server shutdown stops this listener too.
        let mut global = shutdown.clone();
        let forward = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = global.wait_for(|s| *s) => { let _ = forward.send(true); }
                _ = forward.closed() => {}
            }
        });
        tokio::spawn(accept_loop(
            Listener::Tcp(listener),
            (self.relays.clone(), target.clone()),
            stopped,
            self.guard.clone(),
            sessions.clone(),
        ));
        self.nodes.insert(port, target.clone());
        tracing::debug!(%addr, node = %node.dial, "listening for a cluster node");
        Some(Open {
            target,
            stop,
            sessions,
            departed: false,
        })
    }

    /// Releases the ports of departed nodes whose clients have all left.
    fn sweep(&self, open: &mut HashMap<u16, Open>) {
        let done: Vec<u16> = open
            .iter()
            .filter(|(_, o)| o.departed && Arc::strong_count(&o.sessions) == 1)
            .map(|(&port, _)| port)
            .collect();
        for port in done {
            if let Some(listener) = open.remove(&port) {
                self.nodes.remove(port, &listener.target);
                self.relays.forget(&listener.target);
                self.directory.release(port);
                tracing::info!(
                    port,
                    "a departed cluster node's last client left: its port is free"
                );
            }
        }
    }
}
