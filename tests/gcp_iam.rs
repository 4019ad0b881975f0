//! `--auth gcp-iam` end to end (issue 19): redauth fetching short-lived access tokens from the
//! emulated GCE metadata server (`GCE_METADATA_HOST`), and the emulated Memorystore front
//! accepting `AUTH <token>` only with an unexpired token it issued, keeping authenticated
//! connections open after their token expires, and rate-limiting IAM AUTHs per second with
//! `-ERR (ERR_IAM_EXHAUSTED) …`.

mod support;

use std::time::{Duration, Instant};
use support::clients::assert_all_clean;
use support::gcp::{GcpTiming, TestGcp, TestGcpCluster};
use support::*;

/// Tokens live 5 s: a 25-second run spans five token lifetimes.
const TIMING: GcpTiming = GcpTiming {
    token_lifetime: Duration::from_secs(5),
    auth_rate_limit: None,
};
const WORKLOAD_SECONDS: u64 = 25;

#[test]
fn seed_workloads_run_clean_across_token_lifetimes_without_live_reauth() {
    let clients = Clients::install();
    let gcp = TestGcp::start(TIMING);
    let redauth = gcp
        .redauth_cmd()
        .args(["--log-level", "info,redauth=debug"])
        .start();
    let mut whoami = redauth.connect();
    assert_eq!(whoami.request(&["ACL", "WHOAMI"]), bulk("default"));

    // Held for the whole run, across every token expiry: a RESP2 subscriber and a client blocked
    // on BLPOP 0. Memorystore keeps them; redauth leaves them alone.
    let mut subscriber = redauth.connect();
    assert!(subscriber
        .request(&["SUBSCRIBE", "gcp:news"])
        .starts_with(b"*3\r\n$9\r\nsubscribe\r\n"));
    let mut blocked = redauth.connect();
    blocked.send(&cmd(&["BLPOP", "gcp:jobs", "0"]));

    let started = Instant::now();
    let verified_at_start = gcp.stats().tokens_verified;
    let resp2 = clients.start_plain_resp(redauth.port(), WORKLOAD_SECONDS, 2);
    let resp3 = clients.start_plain_resp(redauth.port(), WORKLOAD_SECONDS, 3);
    let mut published = 0;
    // Now and then a brand-new connection: it must authenticate with a token still valid.
    let mut fresh_connections = 0;
    while started.elapsed() < Duration::from_secs(WORKLOAD_SECONDS) {
        std::thread::sleep(Duration::from_millis(500));
        published += 1;
        assert_eq!(
            whoami.request(&["PUBLISH", "gcp:news", &published.to_string()]),
            b":1\r\n",
            "the held subscriber is gone after {:?}",
            started.elapsed()
        );
        if published % 6 == 0 {
            let mut fresh = redauth.connect();
            assert_eq!(fresh.request(&["PING"]), b"+PONG\r\n");
            fresh_connections += 1;
        }
    }
    assert_all_clean(vec![("RESP2", resp2), ("RESP3", resp3)], &redauth);

    for n in 1..=published {
        let message = subscriber.read_reply();
        let want = [
            &b"*3\r\n$7\r\nmessage\r\n$8\r\ngcp:news\r\n"[..],
            &bulk(&n.to_string()),
        ]
        .concat();
        assert_eq!(message, want, "message {n}");
    }
    assert_eq!(
        whoami.request(&["RPUSH", "gcp:jobs", "late"]),
        b":1\r\n",
        "the blocked client is still waiting"
    );
    assert_eq!(
        blocked.read_reply(),
        [&b"*2\r\n"[..], &bulk("gcp:jobs"), &bulk("late")].concat()
    );

    let stats = gcp.stats();
    eprintln!(
        "front: {stats:?}; tokens issued: {}; fresh connections: {fresh_connections}",
        gcp.tokens_issued()
    );
    assert_eq!(
        stats.auth_rejected,
        0,
        "a token was refused:\n{}",
        redauth.logs()
    );
    assert!(
        stats.tokens_verified > verified_at_start,
        "no connection authenticated during the run"
    );
    assert_eq!(stats.tokens_verified, stats.auth_ok);
    assert!(
        gcp.tokens_issued() >= 5,
        "only {} tokens in {WORKLOAD_SECONDS} s",
        gcp.tokens_issued()
    );
    assert_eq!(http::get(redauth.admin_addr(), "/readyz").status, 200);
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let refreshes =
        http::sample(&scrape, "redauth_token_refresh_total{result=\"ok\"}").unwrap_or(0.0);
    assert!(
        refreshes >= 5.0,
        "only {refreshes} token refreshes:\n{scrape}"
    );
    let reauths = http::sample(&scrape, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0);
    assert_eq!(reauths, 0.0, "live connections were re-authenticated");

    let secrets = gcp.secrets();
    assert!(secrets.len() >= 5);
    let output = redauth.stop();
    assert!(
        output.contains("gcp-iam (metadata-server)"),
        "the kind is logged"
    );
    for secret in &secrets {
        assert!(!output.contains(secret.as_str()), "a token is in the logs");
    }
    assert!(!output.contains("ya29."), "a token is in the logs");
}

#[test]
fn new_connections_after_a_token_expired_authenticate_with_the_next_one() {
    let gcp = TestGcp::start(TIMING);
    // No warm pool: every client dials, and each dial is one AUTH the front counts.
    let redauth = gcp.redauth_cmd().args(["--pool-size", "0"]).start();
    let mut first = redauth.connect();
    assert_eq!(first.request(&["PING"]), b"+PONG\r\n");
    let before = gcp.stats();
    // Past the first token's life (5 s) and then some.
    std::thread::sleep(Duration::from_secs(7));
    let mut later = redauth.connect();
    assert_eq!(later.request(&["SET", "gcp:k", "v"]), b"+OK\r\n");
    // The connection from before the expiry still works: Memorystore keeps it.
    assert_eq!(first.request(&["GET", "gcp:k"]), bulk("v"));
    let after = gcp.stats();
    assert_eq!(after.auth_rejected, 0, "{}", redauth.logs());
    assert!(
        after.tokens_verified > before.tokens_verified,
        "the new connection authenticated with a token the front verified"
    );
    assert!(gcp.tokens_issued() >= 2, "a second token was fetched");
}

#[test]
fn with_reauth_always_live_connections_renew_before_each_token_expires() {
    let gcp = TestGcp::start(TIMING);
    let redauth = gcp.redauth_cmd().args(["--reauth", "always"]).start();
    let mut held = redauth.connect();
    assert_eq!(held.request(&["PING"]), b"+PONG\r\n");
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(held.request(&["PING"]), b"+PONG\r\n");
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let reauths = http::sample(&scrape, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0);
    assert!(
        reauths >= 2.0,
        "only {reauths} re-authentications:\n{scrape}"
    );
    assert_eq!(gcp.stats().auth_rejected, 0);
}

#[test]
fn the_auth_rate_limit_is_backed_off_and_every_client_gets_its_answer() {
    let gcp = TestGcp::start(GcpTiming {
        token_lifetime: Duration::from_secs(30),
        auth_rate_limit: Some(2),
    });
    // No warm pool: 20 clients at once means 20 dials, 20 AUTHs, at 2 a second.
    let redauth = gcp
        .redauth_cmd()
        .args(["--pool-size", "0", "--connect-timeout", "40s"])
        .start();
    let port = redauth.port();
    let clients: Vec<_> = (0..20)
        .map(|n| {
            std::thread::spawn(move || {
                let mut conn = RespConn::connect(port);
                let key = format!("gcp:rate:{n}");
                let reply = conn.request(&["SET", &key, "1"]);
                (n, reply)
            })
        })
        .collect();
    for client in clients {
        let (n, reply) = client.join().expect("a client thread");
        assert_eq!(reply, b"+OK\r\n", "client {n}: {}", show(&reply));
    }
    let stats = gcp.stats();
    eprintln!("front: {stats:?}");
    assert!(
        stats.auth_rate_limited > 0,
        "the front never rate-limited: {stats:?}"
    );
    assert_eq!(stats.auth_rejected, 0);
    let output = redauth.stop();
    assert!(!output.contains("ya29."), "a token is in the logs");
}

#[test]
fn cluster_mode_works_with_gcp_iam() {
    let clients = Clients::install();
    let gcp = TestGcpCluster::start(TIMING);
    let port = free_ports(17);
    let redauth = gcp.redauth_cmd(port).start_until("cluster topology");
    let plain = clients.start_plain(port, 20);
    let (py, js) = clients.start(port, 20);
    assert_all_clean(
        vec![("plain", plain), ("redis-py", py), ("ioredis", js)],
        &redauth,
    );
    let stats = gcp.stats();
    assert_eq!(stats.auth_rejected, 0, "a token was refused");
    assert_eq!(stats.tokens_verified, stats.auth_ok);
    assert!(stats.tokens_verified > 0);
}

/// The cluster scenarios of `tests/cluster_router_entra.rs` and `tests/cluster_clients.rs` with
/// Memorystore's tokens: through the router (a client written for one Redis) and the node ports
/// (the redis-py and ioredis cluster clients) while slots move, a replica is promoted and a
/// primary joins, across several token lifetimes. Memorystore closes nothing when a token expires,
/// so unlike Entra there is no server pause that could excuse an error: 0 of them, no token
/// refused, and at least five tokens used over the run.
#[test]
fn cluster_scenarios_with_gcp_iam_survive_slot_moves_and_a_failover() {
    let clients = Clients::install();
    let mut gcp = TestGcpCluster::start(TIMING);
    let port = free_ports(17);
    let redauth = gcp.redauth_cmd(port).start_until("cluster topology");
    let plain = clients.start_plain(port, 40);
    let (py, js) = clients.start(port, 40);
    std::thread::sleep(Duration::from_secs(5));
    gcp.churn(1000, 1500);
    assert_all_clean(
        vec![("plain", plain), ("redis-py", py), ("ioredis", js)],
        &redauth,
    );
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let moved =
        http::sample(&scrape, "redauth_router_redirects_total{kind=\"moved\"}").unwrap_or(0.0);
    assert!(
        moved >= 1.0,
        "the router followed no MOVED: did slots move?"
    );
    let stats = gcp.stats();
    assert_eq!(stats.auth_rejected, 0, "a token was refused");
    assert_eq!(stats.tokens_verified, stats.auth_ok);
    assert!(
        redauth.logs().matches("token refreshed").count() >= 5,
        "fewer than five tokens over the run"
    );
}
