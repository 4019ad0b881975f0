//! Cluster mode with Entra ID tokens (issue 16): the emulated Azure Managed Redis with the OSS
//! clustering policy — a redis cluster, every node behind its own token-checking TLS front that
//! closes connections whose token expired, all announced as `localhost:<port>` — and redis-py's
//! `RedisCluster` and ioredis's `Cluster` through redauth while tokens rotate every few seconds
//! and slots move, a replica is promoted and a primary joins: 0 errors, no message lost, and no
//! connection closed by any front for an expired token.

mod support;

use std::time::{Duration, Instant};
use support::cloud::TestClusterCloud;
use support::*;

/// Token lifetime: redauth refreshes at about 70 % of it, so every live connection is
/// re-authenticated every few seconds, on every node.
const TOKEN_LIFETIME: Duration = Duration::from_secs(6);
const WORKLOAD_SECONDS: u64 = 40;

#[test]
#[ignore = "issue 16, open: in 2 of about 11 runs the fronts closed 2 connections whose token had expired (the clients saw no error); run with --ignored until that is found"]
fn cluster_clients_run_clean_on_every_node_while_tokens_rotate() {
    let clients = Clients::install();
    let mut cloud = TestClusterCloud::start(TOKEN_LIFETIME);
    let port = free_ports(16);
    let redauth = cloud.redauth_cmd(port).start_until("cluster topology");

    let (py, js) = clients.start(port, WORKLOAD_SECONDS);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let primaries: Vec<u16> = cloud
        .ports()
        .into_iter()
        .filter(|&p| cloud.role(p).contains("master"))
        .collect();
    cloud.reshard(primaries[0], primaries[1], 500);
    eprintln!("resharded at {:?}", started.elapsed());
    let replica = cloud
        .ports()
        .into_iter()
        .find(|&p| cloud.role(p).contains("slave"))
        .expect("a replica");
    cloud.failover(replica);
    eprintln!("failed over to {replica} at {:?}", started.elapsed());
    let new = cloud.add_primary();
    // The failover may have demoted one of the primaries above: take slots from one that still is.
    let from = cloud
        .ports()
        .into_iter()
        .find(|&p| p != new && cloud.role(p).contains("master"))
        .expect("a primary");
    cloud.reshard(from, new, 800);
    eprintln!("added {new} at {:?}", started.elapsed());

    eprintln!("fronts: {:?}", cloud.stats());
    clients::assert_clean(py, js, &redauth);
    let stats = cloud.stats();
    assert_eq!(
        stats.expired_closes, 0,
        "a front closed a connection whose token expired"
    );
    assert_eq!(stats.auth_rejected, 0, "a front refused a token");

    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let refreshes =
        http::sample(&scrape, "redauth_token_refresh_total{result=\"ok\"}").unwrap_or(0.0);
    let reauths = http::sample(&scrape, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0);
    eprintln!("token refreshes {refreshes}, live re-authentications {reauths}");
    assert!(refreshes >= 5.0, "tokens rotated only {refreshes} times");
    assert!(reauths >= 10.0, "only {reauths} live re-authentications");
    let per_node = scrape
        .lines()
        .filter(|l| {
            l.starts_with("redauth_cluster_node_reauth_total{") && l.contains("result=\"ok\"")
        })
        .filter(|l| !l.ends_with(" 0"))
        .count();
    assert!(
        per_node >= 3,
        "live connections were re-authenticated on {per_node} nodes:\n{scrape}"
    );
    assert!(redauth.logs().contains("cluster node joined"));
}
