//! `--auth aws-iam` end to end (issue 18): the real `aws-config` credential chain fetching
//! rotating temporary credentials from the emulated container-credentials endpoint, redauth
//! signing ElastiCache IAM tokens with them, and the emulated front checking every token by
//! recomputing its SigV4 signature, refusing AUTH inside MULTI, and closing any connection that
//! has not authenticated again within the connection limit (AWS's 12 hours, shortened here).

mod support;

use std::time::{Duration, Instant};
use support::aws::{AwsTiming, TestAws, TestAwsCluster};
use support::clients::assert_all_clean;
use support::*;

/// Credentials live 9 s and connections 6 s after their last AUTH: a 40-second run spans six
/// connection-limit periods and at least four credential rotations.
const TIMING: AwsTiming = AwsTiming {
    credentials: Duration::from_secs(9),
    connection_limit: Duration::from_secs(6),
};
const WORKLOAD_SECONDS: u64 = 40;

#[test]
fn seed_workloads_run_clean_across_connection_limits_and_credential_rotations() {
    let clients = Clients::install();
    let aws = TestAws::start(TIMING);
    let redauth = aws
        .redauth_cmd()
        .args(["--log-level", "info,redauth=debug"])
        .start();
    let mut whoami = redauth.connect();
    assert_eq!(
        whoami.request(&["ACL", "WHOAMI"]),
        bulk(redauth_emulator::aws::DEFAULT_USER_ID)
    );

    // Held for the whole run: a RESP2 subscriber (AUTH is refused in subscribed RESP2; redauth
    // switches such a connection to RESP3 to re-authenticate it) and a client blocked on BLPOP 0.
    let mut subscriber = redauth.connect();
    assert!(subscriber
        .request(&["SUBSCRIBE", "aws:news"])
        .starts_with(b"*3\r\n$9\r\nsubscribe\r\n"));
    let mut blocked = redauth.connect();
    blocked.send(&cmd(&["BLPOP", "aws:jobs", "0"]));

    let started = Instant::now();
    let resp2 = clients.start_plain_resp(redauth.port(), WORKLOAD_SECONDS, 2);
    let resp3 = clients.start_plain_resp(redauth.port(), WORKLOAD_SECONDS, 3);
    let mut published = 0;
    while started.elapsed() < Duration::from_secs(WORKLOAD_SECONDS) {
        std::thread::sleep(Duration::from_millis(500));
        published += 1;
        assert_eq!(
            whoami.request(&["PUBLISH", "aws:news", &published.to_string()]),
            b":1\r\n",
            "the held subscriber is gone after {:?}",
            started.elapsed()
        );
    }
    assert_all_clean(vec![("RESP2", resp2), ("RESP3", resp3)], &redauth);
    eprintln!(
        "front: {:?}\nclosed at the limit: {:#?}",
        aws.stats(),
        aws.expired_reports()
    );
    let notable: String = redauth
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("closed") || l.contains("re-auth"))
        .map(|l| format!("{l}\n"))
        .collect();
    eprintln!("redauth:\n{notable}");

    // Every message reached the subscriber, in order, on its one connection.
    for n in 1..=published {
        let message = subscriber.read_reply();
        let want = [
            &b"*3\r\n$7\r\nmessage\r\n$8\r\naws:news\r\n"[..],
            &bulk(&n.to_string()),
        ]
        .concat();
        assert_eq!(message, want, "message {n}");
    }
    // The blocked client waited through every limit period and still gets its item.
    assert_eq!(
        whoami.request(&["RPUSH", "aws:jobs", "late"]),
        b":1\r\n",
        "the blocked client is still waiting"
    );
    assert_eq!(
        blocked.read_reply(),
        [&b"*2\r\n"[..], &bulk("aws:jobs"), &bulk("late")].concat()
    );

    let stats = aws.stats();
    let reports = aws.expired_reports();
    eprintln!(
        "front: {stats:?}; credentials issued: {}",
        aws.credentials_issued()
    );
    assert_eq!(
        stats.expired_closes,
        0,
        "the front closed connections at their limit: {reports:#?}\n{}",
        redauth.logs()
    );
    assert_eq!(
        stats.auth_rejected,
        0,
        "a token was refused:\n{}",
        redauth.logs()
    );
    assert_eq!(
        stats.auth_refused_in_multi, 0,
        "an AUTH was sent inside MULTI"
    );
    assert_eq!(
        stats.tokens_verified, stats.auth_ok,
        "every AUTH the backend accepted carried a token whose signature the front recomputed"
    );
    assert!(
        aws.credentials_issued() >= 4,
        "only {} sets of credentials in {WORKLOAD_SECONDS} s",
        aws.credentials_issued()
    );
    // Readiness and the metrics work as for Entra ID.
    assert_eq!(http::get(redauth.admin_addr(), "/readyz").status, 200);
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let refreshes =
        http::sample(&scrape, "redauth_token_refresh_total{result=\"ok\"}").unwrap_or(0.0);
    assert!(
        refreshes >= 4.0,
        "only {refreshes} token refreshes:\n{scrape}"
    );
    assert!(scrape.contains("redauth_token_expiry_seconds "), "{scrape}");
    let reauths = http::sample(&scrape, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0);
    assert!(
        reauths >= 6.0,
        "only {reauths} live re-authentications: did the held connections renew?\n{scrape}"
    );

    let secrets = aws.secrets();
    let output = redauth.stop();
    for secret in &secrets {
        assert!(
            !output.contains(secret.as_str()),
            "a secret key, session token or the endpoint's authorization token is in the logs"
        );
    }
    assert!(
        !output.contains("X-Amz-Signature") && !output.contains("Action=connect"),
        "a token is in the logs"
    );
}

#[test]
fn cluster_mode_works_with_aws_iam_as_with_entra() {
    let clients = Clients::install();
    let aws = TestAwsCluster::start(TIMING);
    let port = free_ports(17);
    let redauth = aws.redauth_cmd(port).start_until("cluster topology");
    // Through the router (a client that knows no cluster) and through the node ports (a
    // cluster client), both for several connection-limit periods.
    let plain = clients.start_plain(port, 25);
    let (py, js) = clients.start(port, 25);
    assert_all_clean(
        vec![("plain", plain), ("redis-py", py), ("ioredis", js)],
        &redauth,
    );
    let stats = aws.stats();
    assert_eq!(
        stats.expired_closes,
        0,
        "the fronts closed connections at their limit: {:#?}",
        aws.cloud().expired_reports()
    );
    assert_eq!(stats.auth_rejected, 0, "a token was refused");
    assert_eq!(stats.tokens_verified, stats.auth_ok);
}
