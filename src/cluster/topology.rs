//! The cluster's nodes and slots, as `CLUSTER SLOTS` tells them.
//!
//! A node is known by its id; it may be announced under a host name, an IP
//! or both (Redis 7 gives the one it prefers first and the other in the
//! entry's metadata), and every such address is kept as an alias so that a
//! reply naming the node either way is recognised.

use super::node::NodeAddr;
use crate::resp::tree::Value;
use bytes::Bytes;

/// The number of hash slots of a Redis cluster.
pub const SLOTS: u16 = 16384;

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node id (40 hex characters).
    pub id: Bytes,
    /// Where to dial it: the address the server prefers clients to use, or
    /// the seed's host with the node's port when the server does not know
    /// the node's endpoint (`?` or empty).
    pub dial: NodeAddr,
    /// Every address it is announced under, `dial` first.
    pub aliases: Vec<NodeAddr>,
    /// Whether it serves slots as a primary (else it is a replica).
    pub primary: bool,
}

/// A contiguous range of slots, its primary and its replicas (indices into
/// [`Topology::nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub primary: usize,
    pub replicas: Vec<usize>,
}

/// What `CLUSTER SLOTS` said, once read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Every node, each once, in the order the reply first named it.
    pub nodes: Vec<Node>,
    pub ranges: Vec<SlotRange>,
}

/// Why a `CLUSTER SLOTS` reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("the server answered CLUSTER SLOTS with an error: {0}")]
    Refused(String),
    #[error("CLUSTER SLOTS reply is malformed: {0}")]
    Malformed(&'static str),
}

impl Topology {
    /// Reads a whole `CLUSTER SLOTS` reply (RESP2 or RESP3). `seed_host` is
    /// the host redauth was given, for nodes announced without an endpoint.
    pub fn from_slots(frame: &Bytes, seed_host: &[u8]) -> Result<Topology, TopologyError> {
        let value = Value::parse(frame).ok_or(TopologyError::Malformed("not one RESP value"))?;
        if let Value::Line { kind: b'-', text } = &value {
            return Err(TopologyError::Refused(
                String::from_utf8_lossy(text).into_owned(),
            ));
        }
        let ranges = value
            .items()
            .ok_or(TopologyError::Malformed("not an array"))?;
        let mut topology = Topology::default();
        for range in ranges {
            let entry = range
                .items()
                .ok_or(TopologyError::Malformed("a range is not an array"))?;
            let slot = |i: usize| {
                entry
                    .get(i)
                    .and_then(Value::integer)
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|&s| s < SLOTS)
                    .ok_or(TopologyError::Malformed("a slot number out of range"))
            };
            let (start, end) = (slot(0)?, slot(1)?);
            if start > end {
                return Err(TopologyError::Malformed("a range ends before it starts"));
            }
            let mut members = Vec::new();
            for (n, node) in entry.iter().skip(2).enumerate() {
                let node = read_node(node, seed_host, n == 0)?;
                members.push(topology.add(node));
            }
            let (&primary, replicas) = members
                .split_first()
                .ok_or(TopologyError::Malformed("a range without a primary"))?;
            topology.ranges.push(SlotRange {
                start,
                end,
                primary,
                replicas: replicas.to_vec(),
            });
        }
        Ok(topology)
    }

    /// Adds a node not seen yet (by id), or merges aliases into the one seen;
    /// its index.
    fn add(&mut self, node: Node) -> usize {
        match self.nodes.iter().position(|n| n.id == node.id) {
            Some(i) => {
                let known = &mut self.nodes[i];
                known.primary |= node.primary;
                for alias in node.aliases {
                    if !known.aliases.contains(&alias) {
                        known.aliases.push(alias);
                    }
                }
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// The node serving `slot` as primary.
    pub fn primary_for(&self, slot: u16) -> Option<&Node> {
        let range = self
            .ranges
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)?;
        self.nodes.get(range.primary)
    }

    /// Whether every slot has a primary.
    pub fn covers_all_slots(&self) -> bool {
        let mut ranges: Vec<(u16, u16)> = self.ranges.iter().map(|r| (r.start, r.end)).collect();
        ranges.sort_unstable();
        let mut next = 0u32;
        for (start, end) in ranges {
            if u32::from(start) > next {
                return false;
            }
            next = next.max(u32::from(end) + 1);
        }
        next == u32::from(SLOTS)
    }
}

/// The metadata keys of a `CLUSTER SLOTS` node that hold a host.
pub(super) const HOST_KEYS: [&[u8]; 2] = [b"hostname", b"ip"];

/// The hosts a `CLUSTER SLOTS` node entry (`[host, port, id, metadata]`)
/// is announced under: its preferred endpoint, then the metadata's
/// [`HOST_KEYS`], each once. `?` and empty (the server does not know the
/// endpoint; clients use the host they asked) are left out.
pub(super) fn announced_hosts(fields: &[Value]) -> Vec<Bytes> {
    let preferred = fields.first().and_then(Value::text);
    let meta = fields.get(3).and_then(Value::items).unwrap_or_default();
    let from_meta = meta
        .chunks_exact(2)
        .filter(|pair| pair[0].text().is_some_and(|k| HOST_KEYS.contains(&&k[..])))
        .filter_map(|pair| pair[1].text());
    let mut hosts: Vec<Bytes> = Vec::new();
    for host in preferred.into_iter().chain(from_meta) {
        if !host.is_empty() && &host[..] != b"?" && !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    hosts
}

/// One `[host, port, id, metadata]` entry.
fn read_node(value: &Value, seed_host: &[u8], primary: bool) -> Result<Node, TopologyError> {
    let fields = value
        .items()
        .ok_or(TopologyError::Malformed("a node is not an array"))?;
    let port = fields
        .get(1)
        .and_then(Value::integer)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(TopologyError::Malformed("a node without a port"))?;
    let id = fields
        .get(2)
        .and_then(Value::text)
        .cloned()
        .ok_or(TopologyError::Malformed(
            "a node without an id (Redis before 4.0)",
        ))?;
    let mut aliases: Vec<NodeAddr> = announced_hosts(fields)
        .into_iter()
        .map(|host| NodeAddr::new(host, port))
        .collect();
    let dial = match aliases.first() {
        Some(first) => first.clone(),
        None => {
            // Clients use the host they asked: the seed. Replies name it with an empty host.
            let seed = NodeAddr::new(Bytes::copy_from_slice(seed_host), port);
            aliases.extend([seed.clone(), NodeAddr::new(Bytes::new(), port)]);
            seed
        }
    };
    Ok(Node {
        id,
        dial,
        aliases,
        primary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::fixture;

    #[test]
    fn a_real_clusters_slots_read_in_every_shape() {
        for (name, dial_host) in [
            ("slots-ip-resp2", "127.0.0.1"),
            ("slots-ip-resp3", "127.0.0.1"),
            ("slots-hostname-resp2", "node-7101.example"),
            ("slots-hostname-resp3", "node-7101.example"),
        ] {
            let topology = Topology::from_slots(&fixture(name), b"seed.example").unwrap();
            assert_eq!(topology.nodes.len(), 6, "{name}");
            assert_eq!(topology.ranges.len(), 3, "{name}");
            assert_eq!(
                topology.nodes.iter().filter(|n| n.primary).count(),
                3,
                "{name}"
            );
            assert!(topology.covers_all_slots(), "{name}");
            let first = topology.primary_for(0).unwrap();
            assert_eq!(first.dial.port, 7101, "{name}");
            assert_eq!(first.dial.host, dial_host.as_bytes(), "{name}");
            // Known by its IP and its announced host name alike.
            for host in ["127.0.0.1", "node-7101.example"] {
                assert!(
                    first.aliases.contains(&NodeAddr::new(host, 7101)),
                    "{name}: {host}"
                );
            }
            assert_eq!(
                topology.primary_for(16383).unwrap().dial.port,
                7103,
                "{name}"
            );
            for range in &topology.ranges {
                assert_eq!(range.replicas.len(), 1, "{name}");
            }
        }
    }

    #[test]
    fn a_node_without_a_known_endpoint_is_dialed_at_the_seed_host() {
        let reply = Bytes::from_static(
            b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7000\r\n$2\r\nab\r\n",
        );
        let topology = Topology::from_slots(&reply, b"cache.example").unwrap();
        assert_eq!(topology.nodes[0].dial, NodeAddr::new("cache.example", 7000));
    }

    #[test]
    fn errors_gaps_and_malformed_replies() {
        let refused = Bytes::from_static(b"-ERR This instance has cluster support disabled\r\n");
        assert!(matches!(
            Topology::from_slots(&refused, b"h"),
            Err(TopologyError::Refused(m)) if m.contains("cluster support disabled")
        ));
        let gap =
            Bytes::from_static(b"*1\r\n*3\r\n:0\r\n:100\r\n*3\r\n$1\r\na\r\n:1\r\n$2\r\nid\r\n");
        assert!(!Topology::from_slots(&gap, b"h").unwrap().covers_all_slots());
        for bad in [
            &b"+OK\r\n"[..],
            b"*1\r\n*2\r\n:0\r\n:16383\r\n",
            b"*1\r\n*3\r\n:0\r\n:16384\r\n*3\r\n$1\r\na\r\n:1\r\n$2\r\nid\r\n",
            b"*1\r\n*3\r\n:5\r\n:1\r\n*3\r\n$1\r\na\r\n:1\r\n$2\r\nid\r\n",
            b"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n",
            b"*1\r\n*3\r\n:0\r\n:1\r\n*3\r\n$1\r\na\r\n:70000\r\n$2\r\nid\r\n",
            b"*1\r\n",
        ] {
            let frame = Bytes::copy_from_slice(bad);
            assert!(
                matches!(
                    Topology::from_slots(&frame, b"h"),
                    Err(TopologyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
