//! Cluster mode's series: topology refreshes, rewritten replies, the nodes
//! served, and each node's own client connections, re-authentications and
//! upstream errors (labelled with the node's announced address: a bounded
//! set, the cluster's nodes).

use super::{labelled, METRICS};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type NodeLabels = Vec<(&'static str, String)>;

/// The handles, registered once with the others.
pub(super) struct ClusterMetrics {
    /// ok, failed.
    refresh: [Counter; 2],
    /// redirect, topology.
    rewrites: [Counter; 2],
    /// moved, ask, retry (by the router).
    routed_redirects: [Counter; 3],
    /// Routed clients open now.
    routed_clients: Gauge,
    nodes: Gauge,
    node_clients: Family<NodeLabels, Gauge>,
    node_reauth: Family<NodeLabels, Counter>,
    node_errors: Family<NodeLabels, Counter>,
}

impl ClusterMetrics {
    pub(super) fn register(registry: &mut Registry) -> ClusterMetrics {
        let refresh = labelled(
            registry,
            "redauth_cluster_topology_refresh",
            "Cluster topology refreshes (CLUSTER SLOTS read from a node), by result",
            "result",
            ["ok", "failed"],
        );
        let rewrites = labelled(
            registry,
            "redauth_cluster_rewrites",
            "Replies whose node addresses were rewritten to local ports: -MOVED/-ASK redirects, and CLUSTER SLOTS/SHARDS/NODES/REPLICAS replies",
            "reply",
            ["redirect", "topology"],
        );
        let routed_redirects = labelled(
            registry,
            "redauth_router_redirects",
            "Redirects the cluster router followed for its clients instead of passing them on: -MOVED, -ASK, and retries after -TRYAGAIN/-CLUSTERDOWN/-UNBLOCKED",
            "kind",
            ["moved", "ask", "retry"],
        );
        let routed_clients = Gauge::default();
        registry.register(
            "redauth_router_clients",
            "Clients served in cluster routing mode (on the main port) now",
            routed_clients.clone(),
        );
        let nodes = Gauge::default();
        registry.register(
            "redauth_cluster_nodes",
            "Upstream cluster nodes served on a local port now",
            nodes.clone(),
        );
        let node_clients = Family::<NodeLabels, Gauge>::default();
        registry.register(
            "redauth_cluster_node_client_connections",
            "Client connections open now on a cluster node's local port, by node",
            node_clients.clone(),
        );
        let node_reauth = Family::<NodeLabels, Counter>::default();
        registry.register(
            "redauth_cluster_node_reauth",
            "Re-authentications of live connections to a cluster node answered, by node and result",
            node_reauth.clone(),
        );
        let node_errors = Family::<NodeLabels, Counter>::default();
        registry.register(
            "redauth_cluster_node_upstream_errors",
            "Connections to a cluster node that failed or that it closed, by node",
            node_errors.clone(),
        );
        ClusterMetrics {
            refresh,
            rewrites,
            routed_redirects,
            routed_clients,
            nodes,
            node_clients,
            node_reauth,
            node_errors,
        }
    }
}

/// What the cluster router followed instead of passing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutedRedirect {
    Moved = 0,
    Ask = 1,
    Retry = 2,
}

/// The router followed a redirect.
pub fn router_redirect(kind: RoutedRedirect) {
    METRICS.cluster.routed_redirects[kind as usize].inc();
}

/// A routed client connected (`true`) or left.
pub fn router_client(opened: bool) {
    if opened {
        METRICS.cluster.routed_clients.inc();
    } else {
        METRICS.cluster.routed_clients.dec();
    }
}

/// A cluster topology refresh finished (`ok`: the topology was read).
pub fn cluster_refresh(ok: bool) {
    METRICS.cluster.refresh[usize::from(!ok)].inc();
}

/// A reply was rewritten to name local node ports: a `-MOVED`/`-ASK`
/// redirect (`redirect`) or a `CLUSTER SLOTS/SHARDS/NODES/REPLICAS` reply.
pub fn cluster_rewrite(redirect: bool) {
    METRICS.cluster.rewrites[usize::from(!redirect)].inc();
}

/// The cluster nodes served on local ports now.
pub fn cluster_nodes(n: usize) {
    METRICS
        .cluster
        .nodes
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// One cluster node's series, labelled with its upstream address (a
/// bounded set: the cluster's nodes). Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    clients: Gauge,
    /// ok, failed.
    reauth: [Counter; 2],
    errors: Counter,
}

impl NodeMetrics {
    /// The series of the node at `addr` (`host:port` as announced).
    pub fn of(addr: &str) -> NodeMetrics {
        let node = |extra: Option<&'static str>| {
            let mut labels: NodeLabels = vec![("node", addr.to_string())];
            if let Some(result) = extra {
                labels.push(("result", result.to_string()));
            }
            labels
        };
        // One statement per series: a family's lookup guard must be gone
        // before the next lookup in it (creating a series takes its write lock).
        let clients = METRICS
            .cluster
            .node_clients
            .get_or_create(&node(None))
            .clone();
        let ok = METRICS
            .cluster
            .node_reauth
            .get_or_create(&node(Some("ok")))
            .clone();
        let failed = METRICS
            .cluster
            .node_reauth
            .get_or_create(&node(Some("failed")))
            .clone();
        let errors = METRICS
            .cluster
            .node_errors
            .get_or_create(&node(None))
            .clone();
        NodeMetrics {
            clients,
            reauth: [ok, failed],
            errors,
        }
    }

    /// A client session on this node's port began; pair with [`NodeMetrics::client_closed`].
    pub fn client_opened(&self) {
        self.clients.inc();
    }

    pub fn client_closed(&self) {
        self.clients.dec();
    }

    /// A re-authentication of a live connection to this node was answered.
    pub fn reauth(&self, ok: bool) {
        self.reauth[usize::from(!ok)].inc();
    }

    /// A connection to this node failed or was closed by it.
    pub fn upstream_error(&self) {
        self.errors.inc();
    }
}
