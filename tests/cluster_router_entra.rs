//! Cluster routing mode with Entra ID tokens (issue 17): a workload written for one Redis —
//! redis-py's plain client, which knows nothing of clusters — through redauth's main port against
//! the emulated Azure Managed Redis with the OSS policy (3 primaries with replicas, every node
//! behind a token-checking front), while tokens rotate every few seconds, slots move, a replica is
//! promoted and a primary joins: 0 errors and no message lost; every command the server sent a
//! redirect for was redirected by redauth, never by the client.
//!
//! One error is not redauth's to prevent, and is told apart precisely: a manual failover pauses the
//! old primary's writers for up to 10 s, and with 6-second tokens (1.8 s of margin) the
//! re-authentication redauth sent in time can be held behind a paused write until the token
//! expired; the emulated front then closes that connection, as Azure would (see
//! `tests/cluster_entra.rs`). A cluster client reconnects unseen; through the router, the commands
//! in flight on that node connection get `-ERR redauth: the connection to cluster node … was lost`
//! (they may have run: redauth does not send them again). Such errors are accepted only when every
//! front close was such a stall, and there are no more of them than closes.

mod support;

use std::time::Duration;
use support::cloud::TestClusterCloud;
use support::*;

const TOKEN_LIFETIME: Duration = Duration::from_secs(6);
const WORKLOAD_SECONDS: u64 = 40;

#[test]
fn a_workload_written_for_one_redis_runs_clean_on_the_cluster() {
    let clients = Clients::install();
    let mut cloud = TestClusterCloud::start(TOKEN_LIFETIME);
    let port = free_ports(16);
    let redauth = cloud.redauth_cmd(port).start_until("cluster topology");

    let plain = clients.start_plain(port, WORKLOAD_SECONDS);
    std::thread::sleep(Duration::from_secs(5));
    cloud.churn(1000, 1500);

    let plain = plain.wait_with_output().expect("the workload");
    let stdout = String::from_utf8_lossy(&plain.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&plain.stderr));
    let closes = cloud.expired_reports();
    let lapsed = cloud.lapsed();
    assert!(
        lapsed.is_empty(),
        "tokens redauth let expire:\n{}",
        lapsed.join("\n")
    );
    for close in &closes {
        eprintln!("a server pause held a re-authentication past its expiry: {close}");
    }
    if !plain.status.success() {
        let summary: serde_json::Value =
            serde_json::from_str(stdout.trim()).expect("the workload's summary");
        let count = summary["error_count"].as_u64().unwrap_or(u64::MAX);
        let all_lost = summary["errors"].as_array().is_some_and(|e| {
            e.iter()
                .all(|e| e.as_str().is_some_and(|e| e.contains("was lost")))
        });
        let others = ["classic", "sharded"]
            .iter()
            .all(|k| summary["published"][k] == summary["received"][k]);
        assert!(
            all_lost && others && count > 0 && count <= closes.len() as u64,
            "errors that no stalled re-authentication explains ({} stalled closes): {stdout}\nredauth:\n{}",
            closes.len(),
            redauth.logs()
        );
    }
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let moved =
        http::sample(&scrape, "redauth_router_redirects_total{kind=\"moved\"}").unwrap_or(0.0);
    let reauths = http::sample(&scrape, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0);
    eprintln!("router: {moved} MOVED followed; {reauths} live re-authentications");
    assert!(
        moved >= 1.0,
        "no MOVED was followed: were slots moved under the workload?\n{scrape}"
    );
    assert!(reauths >= 10.0, "only {reauths} live re-authentications");
    let stats = cloud.stats();
    assert_eq!(stats.auth_rejected, 0, "a front refused a token");
}

/// A client that sends only plain commands has each node's connection driven directly by the
/// router (no session in between): that connection is re-authenticated between replies. One raw
/// connection pipelines `INCR`s over keys on every primary, four times a second, across three
/// token lifetimes: every reply is the count expected, in order, and no front closed a
/// connection for an expired token.
#[test]
fn plain_pipelines_on_direct_connections_are_reauthenticated_between_replies() {
    use std::io::{Read, Write};
    const LIFETIME: Duration = Duration::from_secs(5);
    let cloud = TestClusterCloud::start(LIFETIME);
    let port = free_ports(16);
    let redauth = cloud.redauth_cmd(port).start_until("cluster topology");
    let scrape = || http::get(redauth.admin_addr(), "/metrics").body;
    let reauths = |s: &str| http::sample(s, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0);
    let before = reauths(&scrape());

    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let keys: Vec<String> = (0..16).map(|i| format!("direct:{i}")).collect();
    let batch: String = keys
        .iter()
        .map(|k| format!("*2\r\n$4\r\nINCR\r\n${}\r\n{k}\r\n", k.len()))
        .collect();
    let rounds = 3 * LIFETIME.as_millis() as u64 / 250 + 4;
    for round in 1..=rounds {
        conn.write_all(batch.as_bytes())
            .expect("writing a pipeline");
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while got.matches("\r\n").count() < keys.len() {
            let n = conn
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("round {round}: {e} after {got:?}"));
            assert!(n > 0, "round {round}: closed after {got:?}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let expected = format!(":{round}\r\n").repeat(keys.len());
        assert_eq!(got, expected, "round {round}\nredauth:\n{}", redauth.logs());
        std::thread::sleep(Duration::from_millis(250));
    }

    let closes = cloud.expired_reports();
    assert!(
        closes.is_empty(),
        "fronts closed for expired tokens: {closes:?}"
    );
    let after = reauths(&scrape());
    eprintln!("{} live re-authentications", after - before);
    assert!(
        after - before >= 2.0,
        "the direct connections were not re-authenticated ({before} → {after})"
    );
    assert_eq!(cloud.stats().auth_rejected, 0, "a front refused a token");
}
