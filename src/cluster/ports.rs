//! Which local port serves which upstream node.
//!
//! Ports are given out from `--cluster-ports` upward in the order nodes are
//! first seen. A node keeps its port as long as it stays in the topology (by
//! id, so a node whose address changes keeps it too); a new node takes the
//! lowest port free; a departed node's port is not given to another until
//! its listener has closed ([`LocalPorts::release`]), so no client of the old
//! node is ever relayed to a new one.

use super::node::{LocalAddresses, NodeAddr};
use super::topology::{Node, Topology, SLOTS};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One port's node.
#[derive(Debug, Clone)]
struct Entry {
    node: Node,
    /// Whether the node counts as in the topology.
    present: bool,
    /// Topology reads in a row that have not named it.
    missing: u32,
}

/// How many topology reads in a row must leave a node out before it counts
/// as departed. Redis leaves nodes out of `CLUSTER SLOTS` for a while
/// without them leaving: a replica whose replication restarts (after a
/// failover) until its offset moves, a primary between losing its last slot
/// and being forgotten; one read is no verdict.
pub const DEPART_AFTER: u32 = 3;

/// What [`LocalPorts::update`] changed, for the listeners.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Nodes that need a listener, or a listener that dials them anew:
    /// `(port, node)` for a new node, one back before its port was released,
    /// and one whose address changed.
    pub added: Vec<(u16, Node)>,
    /// Ports whose node left the topology: close their listener once its
    /// clients have left, then [`LocalPorts::release`] them.
    pub departed: Vec<u16>,
}

/// The map from upstream nodes to local ports.
#[derive(Debug, Clone)]
pub struct LocalPorts {
    announce_host: Bytes,
    first: u16,
    last: u16,
    ports: BTreeMap<u16, Entry>,
    /// Ports never given out (redauth's own listeners).
    reserved: Vec<u16>,
    /// Every alias of every node with a port, present or departed.
    by_alias: HashMap<NodeAddr, u16>,
    /// Each slot's primary, by local port (0: no primary serves it), as the
    /// last topology read said; shared, as it is only ever replaced whole.
    slots: Arc<[u16]>,
    /// The ports in `slots`, each once, ascending.
    primaries: Arc<[u16]>,
}

/// No port is left above `--cluster-ports` for a new node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no local port left for cluster node {node} (--cluster-ports {first}-{last} are all taken)"
)]
pub struct PortsExhausted {
    pub node: NodeAddr,
    pub first: u16,
    pub last: u16,
}

impl LocalPorts {
    /// Ports from `first`, announced to clients as `announce_host`.
    pub fn new(announce_host: impl Into<Bytes>, first: u16) -> LocalPorts {
        LocalPorts {
            announce_host: announce_host.into(),
            first,
            last: u16::MAX,
            reserved: Vec::new(),
            ports: BTreeMap::new(),
            by_alias: HashMap::new(),
            slots: Arc::from(vec![0; usize::from(SLOTS)]),
            primaries: Arc::from(Vec::new()),
        }
    }

    /// Gives out no port above `last`.
    pub fn up_to(self, last: u16) -> LocalPorts {
        LocalPorts { last, ..self }
    }

    /// Never gives out `ports` (redauth's own listeners).
    pub fn reserving(self, reserved: Vec<u16>) -> LocalPorts {
        LocalPorts { reserved, ..self }
    }

    /// Follows a new topology: new nodes get ports, departed ones are
    /// reported, returning ones (a port not yet released) are present again.
    /// On an error nothing changes.
    pub fn update(&mut self, topology: &Topology) -> Result<Changes, PortsExhausted> {
        let before = self.ports.clone();
        let result = self.follow(topology);
        if result.is_err() {
            self.ports = before;
        } else {
            self.slots = self.slot_owners(topology);
            let mut primaries: Vec<u16> = self.slots.iter().copied().filter(|&p| p != 0).collect();
            primaries.sort_unstable();
            primaries.dedup();
            self.primaries = Arc::from(primaries);
        }
        self.reindex();
        result
    }

    /// Each slot's primary's local port, by the new topology.
    fn slot_owners(&self, topology: &Topology) -> Arc<[u16]> {
        let mut slots = vec![0; usize::from(SLOTS)];
        for range in &topology.ranges {
            let Some(primary) = topology.nodes.get(range.primary) else {
                continue;
            };
            let Some((&port, _)) = self.ports.iter().find(|(_, e)| e.node.id == primary.id) else {
                continue;
            };
            let (start, end) = (usize::from(range.start), usize::from(range.end));
            if let Some(run) = slots.get_mut(start..=end) {
                run.fill(port);
            }
        }
        Arc::from(slots)
    }

    /// The local port of the primary serving `slot`, if one does.
    pub fn owner(&self, slot: u16) -> Option<u16> {
        self.slots
            .get(usize::from(slot))
            .copied()
            .filter(|&p| p != 0)
    }

    /// The local ports of the primaries that serve slots, each once, by port.
    pub fn primaries(&self) -> Arc<[u16]> {
        self.primaries.clone()
    }

    fn follow(&mut self, topology: &Topology) -> Result<Changes, PortsExhausted> {
        let mut changes = Changes::default();
        let mut seen = Vec::new();
        for node in &topology.nodes {
            let known = self
                .ports
                .iter()
                .find(|(_, e)| e.node.id == node.id)
                .map(|(&p, e)| (p, e.present && e.node.dial == node.dial));
            let port = match known {
                Some((port, true)) => port,
                Some((port, false)) => {
                    changes.added.push((port, node.clone()));
                    port
                }
                None => {
                    let port = self.free_port().ok_or_else(|| PortsExhausted {
                        node: node.dial.clone(),
                        first: self.first,
                        last: self.last,
                    })?;
                    changes.added.push((port, node.clone()));
                    port
                }
            };
            self.ports.insert(
                port,
                Entry {
                    node: node.clone(),
                    present: true,
                    missing: 0,
                },
            );
            seen.push(port);
        }
        for (port, entry) in self.ports.iter_mut() {
            if !seen.contains(port) {
                entry.missing += 1;
                entry.present &= entry.missing < DEPART_AFTER;
            }
        }
        changes.departed = self
            .ports
            .iter()
            .filter(|(_, e)| !e.present)
            .map(|(&p, _)| p)
            .collect();
        Ok(changes)
    }

    /// Frees a departed node's port once its listener has closed.
    pub fn release(&mut self, port: u16) {
        if self.ports.get(&port).is_some_and(|e| !e.present) {
            self.ports.remove(&port);
            self.reindex();
        }
    }

    /// The node a local port serves, while it is in the topology.
    pub fn node(&self, port: u16) -> Option<&Node> {
        self.ports.get(&port).filter(|e| e.present).map(|e| &e.node)
    }

    /// Every `(port, node)` of the current topology, by port.
    pub fn present(&self) -> impl Iterator<Item = (u16, &Node)> {
        self.ports
            .iter()
            .filter(|(_, e)| e.present)
            .map(|(&p, e)| (p, &e.node))
    }

    fn free_port(&self) -> Option<u16> {
        (self.first..=self.last).find(|p| !self.ports.contains_key(p) && !self.reserved.contains(p))
    }

    fn reindex(&mut self) {
        self.by_alias = self
            .ports
            .iter()
            .flat_map(|(&port, e)| e.node.aliases.iter().map(move |a| (a.clone(), port)))
            .collect();
    }
}

impl LocalAddresses for LocalPorts {
    fn local(&self, upstream: &NodeAddr) -> Option<NodeAddr> {
        let port = *self.by_alias.get(upstream)?;
        Some(NodeAddr::new(self.announce_host.clone(), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::SlotRange;

    fn node(id: &str, host: &str, port: u16) -> Node {
        let addr = NodeAddr::new(host.to_string(), port);
        Node {
            id: Bytes::from(id.to_string()),
            dial: addr.clone(),
            aliases: vec![addr, NodeAddr::new(format!("{id}.example"), port)],
            primary: true,
        }
    }

    fn topology(nodes: &[Node]) -> Topology {
        Topology {
            nodes: nodes.to_vec(),
            ranges: Vec::new(),
        }
    }

    #[test]
    fn each_slot_is_owned_by_its_primary_s_local_port() {
        let (a, b) = (node("a", "10.0.0.1", 7000), node("b", "10.0.0.2", 7000));
        let mut ports = LocalPorts::new("127.0.0.1", 6380);
        let range = |start, end, primary| SlotRange {
            start,
            end,
            primary,
            replicas: Vec::new(),
        };
        let split = Topology {
            nodes: vec![a.clone(), b.clone()],
            ranges: vec![range(0, 99, 0), range(200, 16383, 1)],
        };
        ports.update(&split).unwrap();
        assert_eq!(ports.owner(0), Some(6380));
        assert_eq!(ports.owner(99), Some(6380));
        assert_eq!(ports.owner(100), None, "an unserved slot");
        assert_eq!(ports.owner(16383), Some(6381));
        assert_eq!(&ports.primaries()[..], &[6380, 6381]);
        // b takes everything: a serves no slot and is no longer a primary to ask.
        let moved = Topology {
            nodes: vec![a, b],
            ranges: vec![range(0, 16383, 1)],
        };
        ports.update(&moved).unwrap();
        assert_eq!(ports.owner(0), Some(6381));
        assert_eq!(&ports.primaries()[..], &[6381]);
    }

    #[test]
    fn nodes_keep_their_ports_and_new_ones_take_the_lowest_free() {
        let (a, b, c) = (
            node("a", "10.0.0.1", 7000),
            node("b", "10.0.0.2", 7000),
            node("c", "10.0.0.3", 7000),
        );
        let mut ports = LocalPorts::new("127.0.0.1", 6380);
        let changes = ports.update(&topology(&[a.clone(), b.clone()])).unwrap();
        assert_eq!(changes.added, vec![(6380, a.clone()), (6381, b.clone())]);
        assert!(changes.departed.is_empty());

        // Known under every alias, answered with the announced host.
        assert_eq!(
            ports.local(&NodeAddr::new("b.example", 7000)),
            Some(NodeAddr::new("127.0.0.1", 6381))
        );
        assert_eq!(ports.local(&NodeAddr::new("10.0.0.9", 7000)), None);

        // a leaves, c arrives: c must not take a's port while a's listener is open.
        let changes = ports.update(&topology(&[b.clone(), c.clone()])).unwrap();
        assert_eq!(changes.added, vec![(6382, c.clone())]);
        assert!(
            changes.departed.is_empty(),
            "one read leaving a out is no verdict"
        );
        for _ in 1..DEPART_AFTER - 1 {
            ports.update(&topology(&[b.clone(), c.clone()])).unwrap();
        }
        let changes = ports.update(&topology(&[b.clone(), c.clone()])).unwrap();
        assert_eq!(changes.departed, vec![6380]);
        assert_eq!(ports.node(6380), None);
        assert_eq!(ports.node(6381).map(|n| &n.id[..]), Some(&b"b"[..]));

        // Once a's listener closed, its port is the next given out.
        ports.release(6380);
        let d = node("d", "10.0.0.4", 7000);
        let changes = ports.update(&topology(&[b, c, d.clone()])).unwrap();
        assert_eq!(changes.added, vec![(6380, d)]);
        // Releasing a present node's port does nothing.
        ports.release(6381);
        assert!(ports.node(6381).is_some());
    }

    #[test]
    fn a_node_that_moves_keeps_its_port_and_a_returning_one_its_old_port() {
        let mut ports = LocalPorts::new("127.0.0.1", 6380);
        ports
            .update(&topology(&[node("a", "10.0.0.1", 7000)]))
            .unwrap();
        let moved = node("a", "10.0.0.7", 7001);
        let changes = ports
            .update(&topology(std::slice::from_ref(&moved)))
            .unwrap();
        assert_eq!(changes.added, vec![(6380, moved)]);
        assert_eq!(
            ports.local(&NodeAddr::new("10.0.0.7", 7001)),
            Some(NodeAddr::new("127.0.0.1", 6380))
        );
        // Left out of fewer than DEPART_AFTER reads: still there, nothing changes.
        for _ in 1..DEPART_AFTER {
            assert_eq!(ports.update(&topology(&[])).unwrap(), Changes::default());
        }
        assert!(ports.node(6380).is_some());
        let back = node("a", "10.0.0.7", 7001);
        assert_eq!(
            ports
                .update(&topology(std::slice::from_ref(&back)))
                .unwrap(),
            Changes::default()
        );
        // Gone for good, then back before its port was released: the same port, to open again.
        for _ in 0..DEPART_AFTER - 1 {
            ports.update(&topology(&[])).unwrap();
        }
        let changes = ports.update(&topology(&[])).unwrap();
        assert_eq!(changes.departed, vec![6380]);
        let changes = ports
            .update(&topology(std::slice::from_ref(&back)))
            .unwrap();
        assert_eq!(changes.added, vec![(6380, back)]);
        // Its address changes: the same port, dialing the new address.
        let moved = node("a", "10.0.0.8", 7002);
        let changes = ports
            .update(&topology(std::slice::from_ref(&moved)))
            .unwrap();
        assert_eq!(changes.added, vec![(6380, moved)]);
    }

    #[test]
    fn reserved_ports_are_never_given_out() {
        let mut ports = LocalPorts::new("127.0.0.1", 6380).reserving(vec![6381, 9180]);
        let (a, b) = (node("a", "10.0.0.1", 7000), node("b", "10.0.0.2", 7000));
        let changes = ports.update(&topology(&[a.clone(), b.clone()])).unwrap();
        assert_eq!(changes.added, vec![(6380, a), (6382, b)]);
    }

    #[test]
    fn running_out_of_ports_is_an_error_naming_the_node() {
        let mut ports = LocalPorts::new("127.0.0.1", u16::MAX);
        ports
            .update(&topology(&[node("a", "10.0.0.1", 7000)]))
            .unwrap();
        let err = ports
            .update(&topology(&[
                node("a", "10.0.0.1", 7000),
                node("b", "10.0.0.2", 7000),
            ]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no local port left for cluster node 10.0.0.2:7000 (--cluster-ports 65535-65535 are all taken)"
        );
        // Nothing changed: a still has its port.
        assert_eq!(ports.node(u16::MAX).map(|n| &n.id[..]), Some(&b"a"[..]));
    }
}
