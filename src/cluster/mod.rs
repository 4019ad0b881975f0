//! OSS cluster endpoints (issue 16): what redauth knows of the upstream's
//! nodes and how it keeps clients pointed at its own local ports.
//!
//! - [`node`]: node addresses as announced, and the map from an upstream node
//!   to its local address;
//! - [`topology`]: the nodes and slot ranges `CLUSTER SLOTS` reports;
//! - [`discover`]: asking the seed endpoint whether it is a cluster, and for
//!   its topology;
//! - [`ports`]: which local port serves which node, kept stable across
//!   topology changes;
//! - [`rewrite`]: replacing every node address a client can see (`CLUSTER
//!   SLOTS`/`SHARDS`/`NODES`/`REPLICAS`, `-MOVED`/`-ASK`) with its local one.
//!
//! - [`directory`]: the live map every session rewrites through;
//! - [`refresh`]: keeping it current, and the connectors for each node.
//!
//! The listeners per node are [`crate::server`]'s (`server/nodes.rs`).

pub mod directory;
pub mod discover;
pub mod keys;
pub mod node;
pub mod ports;
pub mod refresh;
pub mod rewrite;
pub mod slot;
pub mod topology;

pub use directory::Directory;
pub use discover::{discover, Discovery};
pub use node::{LocalAddresses, NodeAddr};
pub use ports::LocalPorts;
pub use rewrite::Rewrite;
pub use topology::Topology;

/// A reply captured from a real cluster (`tests/fixtures/cluster/`), for
/// the unit tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> bytes::Bytes {
    let path = format!(
        "{}/tests/fixtures/cluster/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    bytes::Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}
