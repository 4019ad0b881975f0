//! Real cluster clients with their default options through redauth (issue 16): redis-py's
//! `RedisCluster` and ioredis's `Cluster`, given only redauth's main port and no credential, run
//! strings with TTLs over every slot range, hashes, pipelines, same-slot MULTI/EXEC, streams,
//! blocking pops and classic and sharded pub/sub (tests/clients/cluster_workload.*) against a TLS
//! cluster in password mode — while slots are migrated between primaries (`-ASK` during the move,
//! `-MOVED` after), a replica is promoted, and a new primary joins and takes slots. Every value
//! read is checked; the test demands 0 errors seen by the applications and no message lost.
//!
//! The client libraries are installed, pinned, under .cache/clients/ by tests/clients/install.sh.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// How long each workload runs; the disruptions happen within it.
const WORKLOAD_SECONDS: u64 = 40;

#[test]
fn cluster_clients_run_clean_through_migration_failover_and_a_new_node() {
    let clients = Clients::install();
    let mut cluster = TlsCluster::start();
    let port = free_ports(16);
    let redauth = cluster.redauth(port);

    let (py, js) = clients.start(port, WORKLOAD_SECONDS);
    let started = Instant::now();

    // (a) slots move between primaries, keys and all.
    std::thread::sleep(Duration::from_secs(4));
    let shape = cluster.primaries_and_replicas();
    let (a, b) = (shape[0].0, shape[1].0);
    cluster.reshard(a, b, 500);
    eprintln!("resharded 500 slots {a} → {b} at {:?}", started.elapsed());
    // (b) a replica is promoted in place of its primary.
    let replica = shape[2].1.expect("every primary has a replica");
    cluster.failover(replica);
    eprintln!("failed over to {replica} at {:?}", started.elapsed());
    // (c) a new primary joins and takes slots.
    let new = cluster.add_primary();
    cluster.reshard(b, new, 800);
    eprintln!("added {new} with 800 slots at {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(WORKLOAD_SECONDS - 5),
        "the disruptions must happen while the workloads run (took {:?})",
        started.elapsed()
    );

    clients::assert_clean(py, js, &redauth);
    let logs = redauth.logs();
    assert!(
        logs.contains("cluster node joined"),
        "the new node was given a port:\n{logs}"
    );
    assert!(!logs.contains(PASSWORD), "the password reached the log");
}
