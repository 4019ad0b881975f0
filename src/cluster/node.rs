//! Node addresses as a cluster announces them, and the map from an upstream
//! node to the local address redauth serves it on.

use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;

/// A host (name or IP, as announced; possibly empty when the node's endpoint
/// is unknown to the server) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    pub host: Bytes,
    pub port: u16,
}

impl NodeAddr {
    pub fn new(host: impl Into<Bytes>, port: u16) -> NodeAddr {
        NodeAddr {
            host: host.into(),
            port,
        }
    }

    /// Reads `host:port` as `-MOVED` and `CLUSTER NODES` write it. The port
    /// follows the last colon, so an IPv6 host (`::1:7000`) reads whole.
    pub fn parse(text: &[u8]) -> Option<NodeAddr> {
        let colon = text.iter().rposition(|&b| b == b':')?;
        let port = std::str::from_utf8(&text[colon + 1..]).ok()?.parse().ok()?;
        Some(NodeAddr::new(Bytes::copy_from_slice(&text[..colon]), port))
    }

    /// `host:port`, as [`NodeAddr::parse`] reads it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.host.to_vec();
        out.push(b':');
        out.extend_from_slice(self.port.to_string().as_bytes());
        out
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", String::from_utf8_lossy(&self.host), self.port)
    }
}

/// Where a client reaches each upstream node through redauth.
pub trait LocalAddresses {
    /// The local address serving `upstream`, or `None` if the node is not
    /// (yet) known: the caller refreshes the topology and asks again.
    fn local(&self, upstream: &NodeAddr) -> Option<NodeAddr>;
}

impl LocalAddresses for HashMap<NodeAddr, NodeAddr> {
    fn local(&self, upstream: &NodeAddr) -> Option<NodeAddr> {
        self.get(upstream).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_names_ipv4_ipv6_and_empty_hosts() {
        assert_eq!(
            NodeAddr::parse(b"a.example:7000"),
            Some(NodeAddr::new("a.example", 7000))
        );
        assert_eq!(
            NodeAddr::parse(b"10.0.0.1:6379"),
            Some(NodeAddr::new("10.0.0.1", 6379))
        );
        assert_eq!(
            NodeAddr::parse(b"::1:7001"),
            Some(NodeAddr::new("::1", 7001))
        );
        assert_eq!(NodeAddr::parse(b":7002"), Some(NodeAddr::new("", 7002)));
        assert_eq!(NodeAddr::parse(b"host"), None);
        assert_eq!(NodeAddr::parse(b"host:99999"), None);
        assert_eq!(NodeAddr::new("::1", 7001).to_bytes(), b"::1:7001");
    }
}
