//! [`ClusterControl`]: what a test does to an emulated managed cluster under a running workload
//! (moves slots, promotes a replica, adds a primary), for every cloud's clustered cache alike.

use redauth_emulator::ClusterCloud;
use tokio::runtime::Runtime;

/// An emulated clustered cache on a runtime of its own: [`super::cloud::TestClusterCloud`]
/// (Azure), [`super::gcp::TestGcpCluster`] (Memorystore).
pub trait ClusterControl {
    /// The cluster and the runtime it runs on.
    fn parts(&self) -> (&ClusterCloud, &Runtime);
    /// The same, the cluster to change.
    fn parts_mut(&mut self) -> (&mut ClusterCloud, &Runtime);

    /// Front ports.
    fn ports(&self) -> Vec<u16> {
        self.parts().0.fronts().iter().map(|a| a.port()).collect()
    }

    fn reshard(&self, from: u16, to: u16, slots: u32) {
        let (cloud, runtime) = self.parts();
        runtime
            .block_on(cloud.reshard(from, to, slots))
            .expect("resharding");
    }

    fn failover(&self, replica: u16) {
        let (cloud, runtime) = self.parts();
        runtime
            .block_on(cloud.failover(replica))
            .expect("failing over");
    }

    fn add_primary(&mut self) -> u16 {
        let (cloud, runtime) = self.parts_mut();
        runtime
            .block_on(cloud.add_primary())
            .expect("adding a primary")
            .port()
    }

    /// `ROLE` of the node behind `port`, as RESP text.
    fn role(&self, port: u16) -> String {
        self.admin(port, &["ROLE"])
    }

    /// The reply to `args`, run on the node behind `port` as its admin, as RESP text.
    fn admin(&self, port: u16, args: &[&str]) -> String {
        let (cloud, runtime) = self.parts();
        runtime
            .block_on(cloud.admin(port, args))
            .unwrap_or_else(|e| panic!("{args:?} on {port}: {e}"))
    }

    /// Moves slots, promotes a replica, adds a primary and moves slots to it, as a managed
    /// cluster does under a running workload (`first` and `last`: how many slots each move takes).
    fn churn(&mut self, first: u32, last: u32) {
        let started = std::time::Instant::now();
        let primaries: Vec<u16> = self
            .ports()
            .into_iter()
            .filter(|&p| self.role(p).contains("master"))
            .collect();
        self.reshard(primaries[0], primaries[1], first);
        eprintln!("resharded at {:?}", started.elapsed());
        let replica = self
            .ports()
            .into_iter()
            .find(|&p| self.role(p).contains("slave"))
            .expect("a replica");
        self.failover(replica);
        eprintln!("failed over to {replica} at {:?}", started.elapsed());
        let new = self.add_primary();
        // The failover may have demoted one of the primaries above: take slots from one that
        // still is.
        let from = self
            .ports()
            .into_iter()
            .find(|&p| p != new && self.role(p).contains("master"))
            .expect("a primary");
        self.reshard(from, new, last);
        eprintln!("added {new} at {:?}", started.elapsed());
    }
}
