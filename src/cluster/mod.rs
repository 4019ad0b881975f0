//! OSS cluster endpoints (issue 16): what redauth knows of the upstream's
//! nodes and how it keeps clients pointed at its own local ports.
//!
//! - [`node`]: node addresses as announced, and the map from an upstream node
//!   to its local address;
//! - [`rewrite`]: replacing every node address a client can see (`CLUSTER
//!   SLOTS`/`SHARDS`/`NODES`/`REPLICAS`, `-MOVED`/`-ASK`) with its local one.
//!
//! Still to come: topology discovery and refresh, a listener per node, and
//! the per-node upstream connections (see issue 16's notes).

pub mod node;
pub mod rewrite;

pub use node::{LocalAddresses, NodeAddr};
pub use rewrite::Rewrite;
