//! The live map from upstream nodes to local ports, shared by every session
//! (which rewrites replies through it) and the refresher (which keeps it
//! current, see [`super::refresh`]).
//!
//! Reading is a shared lock held for one rewrite; the refresher takes the
//! write lock only to swap in a map it built aside. A session that meets an
//! address the map does not know asks for a refresh ([`Directory::refresh`])
//! and waits for the next one to finish before it rewrites again, so a
//! client is never told an upstream address.

use super::ports::LocalPorts;
use super::rewrite::{self, Rewrite};
use super::topology::Node;
use crate::metrics;
use bytes::Bytes;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::{watch, Notify};

/// Which reply a frame is, for its rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Any error reply, or an `EXEC` array: `-MOVED`/`-ASK` redirects.
    Redirects,
    /// `CLUSTER SLOTS`.
    Slots,
    /// `CLUSTER SHARDS`.
    Shards,
    /// `CLUSTER NODES`, `CLUSTER REPLICAS`, `CLUSTER SLAVES`.
    Nodes,
}

impl Reply {
    /// The reply a `CLUSTER <subcommand>` gets, if it names nodes.
    pub fn of_subcommand(sub: &[u8]) -> Option<Reply> {
        let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
        if is("slots") {
            Some(Reply::Slots)
        } else if is("shards") {
            Some(Reply::Shards)
        } else if is("nodes") || is("replicas") || is("slaves") {
            Some(Reply::Nodes)
        } else {
            None
        }
    }
}

/// The node → local port map every session rewrites through.
#[derive(Debug)]
pub struct Directory {
    ports: RwLock<LocalPorts>,
    /// Counts finished refreshes (successful or not): a session waiting for
    /// one waits for this to change.
    refreshes: watch::Sender<u64>,
    /// Wakes the refresher.
    wanted: Notify,
    /// What the upstream turned out to be: [`PENDING`], [`SINGLE`] or
    /// [`CLUSTER`] (a topology has been read).
    state: AtomicU8,
}

const PENDING: u8 = 0;
const SINGLE: u8 = 1;
const CLUSTER: u8 = 2;

impl Directory {
    pub fn new(ports: LocalPorts) -> Arc<Directory> {
        Arc::new(Directory {
            ports: RwLock::new(ports),
            refreshes: watch::channel(0).0,
            wanted: Notify::new(),
            state: AtomicU8::new(PENDING),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, LocalPorts> {
        self.ports.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites a whole reply frame through the current map.
    pub fn rewrite(&self, reply: Reply, frame: &Bytes) -> Rewrite {
        if reply == Reply::Redirects && frame.starts_with(b"-MOVED ") {
            // A slot moved: the map of slots may be stale, the clients' too.
            self.wanted.notify_one();
        }
        let ports = self.read();
        let result = match reply {
            Reply::Redirects => rewrite::redirects(frame, &*ports),
            Reply::Slots => rewrite::slots(frame, &*ports),
            Reply::Shards => rewrite::shards(frame, &*ports),
            Reply::Nodes => rewrite::nodes(frame, &*ports),
        };
        if let Rewrite::Rewritten(_) = result {
            metrics::cluster_rewrite(reply == Reply::Redirects);
        }
        result
    }

    /// Asks for a refresh; the receiver changes once the next one is over
    /// (`changed().await`).
    pub fn refresh(&self) -> watch::Receiver<u64> {
        let finished = self.refreshes.subscribe();
        self.wanted.notify_one();
        finished
    }

    /// Whether a topology has been read.
    pub fn known(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLUSTER
    }

    /// Whether the upstream turned out not to be a cluster (`--cluster
    /// auto`): sessions then rewrite nothing.
    pub fn single(&self) -> bool {
        self.state.load(Ordering::Acquire) == SINGLE
    }

    /// The upstream is a single endpoint.
    pub(super) fn set_single(&self) {
        self.state.store(SINGLE, Ordering::Release);
    }

    /// A copy of the map, for the refresher to update aside.
    pub(super) fn snapshot(&self) -> LocalPorts {
        self.read().clone()
    }

    /// Swaps in the updated map.
    pub(super) fn publish(&self, ports: LocalPorts) {
        *self.ports.write().unwrap_or_else(|e| e.into_inner()) = ports;
        self.state.store(CLUSTER, Ordering::Release);
    }

    /// Tells waiting sessions a refresh is over.
    pub(super) fn refreshed(&self) {
        self.refreshes.send_modify(|n| *n += 1);
    }

    /// Resolves when a session asked for a refresh.
    pub(super) async fn wanted(&self) {
        self.wanted.notified().await
    }

    /// Every `(port, node)` of the current topology.
    pub fn present(&self) -> Vec<(u16, Node)> {
        self.read()
            .present()
            .map(|(port, node)| (port, node.clone()))
            .collect()
    }

    /// The local port of the primary serving `slot`, if one does.
    pub fn owner(&self, slot: u16) -> Option<u16> {
        self.read().owner(slot)
    }

    /// The local ports of the primaries that serve slots.
    pub fn primaries(&self) -> Arc<[u16]> {
        self.read().primaries()
    }

    /// The node a local port serves, while it is in the topology.
    pub fn node(&self, port: u16) -> Option<Node> {
        self.read().node(port).cloned()
    }

    /// Frees a departed node's port once its listener closed.
    pub fn release(&self, port: u16) {
        self.ports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .release(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_subcommands_that_name_nodes() {
        assert_eq!(Reply::of_subcommand(b"SLOTS"), Some(Reply::Slots));
        assert_eq!(Reply::of_subcommand(b"shards"), Some(Reply::Shards));
        assert_eq!(Reply::of_subcommand(b"Nodes"), Some(Reply::Nodes));
        assert_eq!(Reply::of_subcommand(b"replicas"), Some(Reply::Nodes));
        assert_eq!(Reply::of_subcommand(b"SLAVES"), Some(Reply::Nodes));
        assert_eq!(Reply::of_subcommand(b"info"), None);
        assert_eq!(Reply::of_subcommand(b"keyslot"), None);
    }

    #[test]
    fn a_refresh_asked_for_is_seen_when_it_ends() {
        let directory = Directory::new(LocalPorts::new("127.0.0.1", 7000));
        let finished = directory.refresh();
        assert!(!finished.has_changed().unwrap());
        directory.refreshed();
        assert!(finished.has_changed().unwrap());
        assert!(!directory.known());
        directory.publish(directory.snapshot());
        assert!(directory.known());
    }
}
