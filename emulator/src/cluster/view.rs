//! Whether the cluster has formed, judged from what each node says about it.
//!
//! Pure: a [`NodeView`] holds one node's `CLUSTER INFO`, `CLUSTER NODES`,
//! `CLUSTER SLOTS` and `ROLE` replies (RESP text) and [`formed`] decides;
//! asking the nodes is the caller's business. Formed means what a client
//! needs: every node is settled (cluster ok, knows every node, no slot
//! migrating, no node failing, its replication link up if a replica), all
//! agree on which nodes serve slots, and every node's `CLUSTER SLOTS` names
//! all of them — a node leaves a replica out of it until gossip has told it
//! the replica's replication offset, a little after the replica connects.

use std::collections::BTreeSet;

/// One node's replies.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeView {
    pub info: String,
    pub nodes: String,
    pub slots: String,
    pub role: String,
}

impl NodeView {
    /// What keeps this node from looking settled, on its own, in a cluster
    /// of `count` nodes, if anything.
    fn unsettled(&self, count: usize) -> Option<&'static str> {
        let flags_ok = node_lines(&self.nodes).all(|fields| {
            !fields[2]
                .split(',')
                .any(|flag| ["fail", "fail?", "handshake", "noaddr"].contains(&flag))
        });
        let replicating = !self.role.contains("slave") || self.role.contains("connected");
        if !self.info.contains("cluster_state:ok") {
            Some("its cluster_state is not ok")
        } else if !self
            .info
            .contains(&format!("cluster_known_nodes:{count}\r\n"))
        {
            Some("it does not know every node")
        } else if self.nodes.contains("->-") || self.nodes.contains("-<-") {
            Some("a slot is migrating")
        } else if !flags_ok {
            Some("it flags a node as failing or in handshake")
        } else if !replicating {
            Some("its replication link is down")
        } else {
            None
        }
    }

    /// The nodes clients are told about, per `CLUSTER NODES`: the primaries
    /// serving slots and their replicas, as (id, its primary's id or `-`).
    fn serving(&self) -> BTreeSet<(&str, &str)> {
        let primaries: BTreeSet<&str> = node_lines(&self.nodes)
            .filter(|fields| fields[2].contains("master") && fields.len() > 8)
            .map(|fields| fields[0])
            .collect();
        let replicas = node_lines(&self.nodes)
            .filter(|fields| fields[2].contains("slave") && primaries.contains(fields[3]))
            .map(|fields| (fields[0], fields[3]));
        replicas
            .chain(primaries.iter().map(|id| (*id, "-")))
            .collect()
    }
}

/// The fields of each node line of a `CLUSTER NODES` reply (`<id> <addr>
/// <flags> <master> <ping> <pong> <epoch> <link> <slot>…`).
fn node_lines(reply: &str) -> impl Iterator<Item = Vec<&str>> {
    reply
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 8)
}

/// Why `views` do not (yet) add up to a formed cluster, naming the first
/// node (by its index) that disagrees; `None` once formed.
pub(super) fn unformed(views: &[NodeView]) -> Option<String> {
    let Some(first) = views.first() else {
        return Some("no nodes".into());
    };
    let serving = first.serving();
    views.iter().enumerate().find_map(|(i, view)| {
        let why = view.unsettled(views.len()).or_else(|| {
            if view.serving() != serving {
                Some("it disagrees with the first node on who serves slots")
            } else if !serving.iter().all(|(id, _)| view.slots.contains(id)) {
                Some("its CLUSTER SLOTS leaves a serving node out")
            } else {
                None
            }
        })?;
        Some(format!("node {i}: {why}"))
    })
}

/// Whether `views`, one per node of the cluster, add up to a formed cluster.
#[cfg(test)]
pub(super) fn formed(views: &[NodeView]) -> bool {
    unformed(views).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "$40\r\ncluster_state:ok\r\ncluster_known_nodes:3\r\n\r\n";
    const NODES: &str = "$300\r\n\
        aaa 127.0.0.2:1@2,localhost myself,master - 0 0 1 connected 0-16383\n\
        bbb 127.0.0.2:3@4,localhost slave aaa 0 0 1 connected\n\
        ccc 127.0.0.2:5@6,localhost master - 0 0 2 connected\n\r\n";
    const SLOTS: &str = "*1\r\n*4\r\n:0\r\n:16383\r\n*3\r\n$9\r\nlocalhost\r\n:1\r\n$3\r\naaa\r\n\
        *3\r\n$9\r\nlocalhost\r\n:3\r\n$3\r\nbbb\r\n";

    fn view() -> NodeView {
        NodeView {
            info: INFO.into(),
            nodes: NODES.into(),
            slots: SLOTS.into(),
            role: "*3\r\n$6\r\nmaster\r\n".into(),
        }
    }

    #[test]
    fn serving_nodes_are_primaries_with_slots_and_their_replicas() {
        let view = view();
        assert_eq!(
            view.serving(),
            BTreeSet::from([("aaa", "-"), ("bbb", "aaa")])
        );
    }

    #[test]
    fn formed_needs_every_node_settled_agreeing_and_announcing_all() {
        assert!(formed(&[view(), view(), view()]));
        assert!(!formed(&[]));
        assert!(!formed(&[view(), view()]), "a node unknown to the others");

        let mut replica_not_yet_announced = view();
        replica_not_yet_announced.slots = SLOTS.replace("bbb", "zzz");
        assert!(!formed(&[view(), replica_not_yet_announced, view()]));

        let mut migrating = view();
        migrating.nodes = NODES.replace("0-16383", "0-16383 [5->-ccc]");
        assert!(!formed(&[view(), migrating, view()]));

        let mut failing = view();
        failing.nodes = NODES.replace("slave aaa", "slave,fail? aaa");
        assert!(!formed(&[view(), failing, view()]));

        let mut replica_without_link = view();
        replica_without_link.role =
            "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.2\r\n:1\r\n$10\r\nconnecting\r\n".into();
        assert!(!formed(&[view(), view(), replica_without_link]));

        let mut failed_over = view();
        failed_over.nodes = NODES
            .replace(
                "myself,master - 0 0 1 connected 0-16383",
                "myself,slave bbb 0 0 1 connected",
            )
            .replace(
                "slave aaa 0 0 1 connected",
                "master - 0 0 3 connected 0-16383",
            );
        assert!(!formed(&[view(), failed_over, view()]), "views disagree");
    }
}
