//! Asking the upstream whether it is a cluster, and if so for its topology.
//!
//! One authenticated connection to the seed endpoint (the ElastiCache
//! configuration endpoint, the Azure Managed Redis host on :10000) is asked
//! `CLUSTER SLOTS`. A server without cluster support answers `ERR This
//! instance has cluster support disabled`: a single endpoint. Anything else
//! that is not a topology is an error, said in full, for `--cluster auto` to
//! log and `--cluster on` to refuse.

use super::topology::{Topology, TopologyError};
use crate::credentials::Credential;
use crate::upstream::{read_reply_within, ConnectError, Connector};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// The largest `CLUSTER SLOTS` reply read: a thousand nodes with fragmented
/// slot ranges stay well below it.
const MAX_TOPOLOGY_REPLY: usize = 16 * 1024 * 1024;

/// What the seed endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// Not a cluster: relay to it as one Redis.
    Single,
    /// An OSS cluster and its topology.
    Cluster(Topology),
}

/// Why the question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("asking {addr} for CLUSTER SLOTS: {cause}")]
    Exchange { addr: String, cause: String },
    #[error("{addr}: {source}")]
    Topology {
        addr: String,
        #[source]
        source: TopologyError,
    },
}

/// Dials the seed with `credential` and asks for its topology; the seed's
/// host stands in for nodes announced without an endpoint.
pub async fn discover(
    connector: &Connector,
    credential: &Credential,
) -> Result<Discovery, DiscoverError> {
    let addr = connector.endpoint().to_string();
    let seed_host = connector.endpoint().host.clone();
    let mut upstream = connector.connect(credential).await?;
    let exchange = async {
        upstream
            .stream
            .write_all(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")
            .await
            .map_err(|e| format!("sending: {e}"))?;
        upstream
            .stream
            .flush()
            .await
            .map_err(|e| format!("sending: {e}"))?;
        read_reply_within(
            &mut upstream.stream,
            &mut upstream.pending,
            MAX_TOPOLOGY_REPLY,
        )
        .await
    };
    let reply = tokio::time::timeout(connector.timeout(), exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no reply within {:?}", connector.timeout())))
        .map_err(|cause| DiscoverError::Exchange {
            addr: addr.clone(),
            cause,
        })?;
    read(&reply.freeze(), seed_host.as_bytes())
        .map_err(|source| DiscoverError::Topology { addr, source })
}

/// Judges a `CLUSTER SLOTS` reply.
fn read(reply: &Bytes, seed_host: &[u8]) -> Result<Discovery, TopologyError> {
    match Topology::from_slots(reply, seed_host) {
        Ok(topology) => Ok(Discovery::Cluster(topology)),
        Err(TopologyError::Refused(message)) if message.contains("cluster support disabled") => {
            Ok(Discovery::Single)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_cluster_support_is_a_single_endpoint() {
        let disabled = Bytes::from_static(b"-ERR This instance has cluster support disabled\r\n");
        assert_eq!(read(&disabled, b"h"), Ok(Discovery::Single));
        let denied = Bytes::from_static(
            b"-NOPERM this user has no permissions to run the 'cluster|slots' command\r\n",
        );
        assert!(
            matches!(read(&denied, b"h"), Err(TopologyError::Refused(m)) if m.starts_with("NOPERM"))
        );
    }
}
