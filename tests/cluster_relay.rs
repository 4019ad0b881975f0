//! Cluster mode end to end (issue 16): redauth in front of a real TLS Redis cluster (ElastiCache
//! shaped, password mode) opens a local port per node, and a real cluster client given only the
//! main port — `redis-cli -c` — works across every slot without a credential, never learning an
//! upstream address.

mod support;

use std::process::{Command, Stdio};
use support::*;

/// redauth in front of `cluster`, with the main port and `--cluster-ports` from it.
fn redauth_for(cluster: &TlsCluster) -> (Redauth, u16) {
    let port = free_ports(16);
    let redauth = cluster.redauth(port);
    (redauth, port)
}

/// `redis-cli -c` against redauth's main port: no TLS, no user, no password.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["30", "redis-cli", "-c", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_cluster_client_given_the_main_port_reaches_every_slot_through_local_ports() {
    let cluster = TlsCluster::start();
    let (redauth, port) = redauth_for(&cluster);
    let local = port + 1..=port + 16;

    // CLUSTER SLOTS through redauth: every node at a local port on 127.0.0.1.
    let slots = cli(port, &["CLUSTER", "SLOTS"]);
    for upstream in cluster.ports() {
        assert!(
            !slots.lines().any(|l| l.trim() == upstream.to_string()),
            "upstream port {upstream} leaked:\n{slots}"
        );
    }
    let announced: Vec<u16> = slots
        .lines()
        .filter_map(|l| l.trim().parse::<u16>().ok())
        .filter(|p| local.contains(p))
        .collect();
    assert_eq!(announced.len(), 6, "six nodes at local ports:\n{slots}");
    assert!(!slots.contains("localhost"), "{slots}");

    // Keys over every primary: redis-cli follows the rewritten MOVEDs to local ports.
    for i in 0..60 {
        let key = format!("key:{i}");
        assert_eq!(cli(port, &["SET", &key, &format!("v{i}")]).trim(), "OK");
    }
    for i in 0..60 {
        let key = format!("key:{i}");
        assert_eq!(cli(port, &["GET", &key]).trim(), format!("v{i}"));
    }
    // Every primary holds some of them, read straight from the cluster.
    let holding = cluster
        .ports()
        .into_iter()
        .filter(|&p| {
            let role = cluster.cli(p, &["ROLE"]).unwrap_or_default();
            let keys = cluster.cli(p, &["DBSIZE"]).unwrap_or_default();
            role.starts_with("master") && keys.trim().parse::<u32>().unwrap_or(0) > 0
        })
        .count();
    assert_eq!(holding, 3, "the keys are spread over the three primaries");

    // A node port answers as its node: MOVED for a key it does not own, rewritten.
    let mut conn = RespConn::connect(port + 1);
    let mut moved = None;
    for i in 0..60 {
        let reply = conn.request(&["GET", &format!("key:{i}")]);
        if reply.starts_with(b"-MOVED") {
            moved = Some(String::from_utf8_lossy(&reply).into_owned());
            break;
        }
    }
    let moved = moved.expect("some key lives on another node");
    let target = moved.trim().rsplit(' ').next().unwrap();
    let (host, to) = target.rsplit_once(':').unwrap();
    assert_eq!(host, "127.0.0.1", "{moved}");
    assert!(local.contains(&to.parse().unwrap()), "{moved}");

    // READONLY on a replica's local port: it serves reads of its primary's slots there, as a
    // replica does, instead of redirecting them.
    let (primary, replica) = cluster
        .primaries_and_replicas()
        .into_iter()
        .find_map(|(p, r)| r.map(|r| (p, r)))
        .expect("a primary with a replica");
    let local_of = |upstream: u16| -> u16 {
        let nodes = cli(port, &["CLUSTER", "NODES"]);
        let id = cluster.id(upstream);
        let line = nodes
            .lines()
            .find(|l| l.starts_with(&id))
            .expect("the node");
        let addr = line.split(' ').nth(1).unwrap();
        addr.split(['@', ','])
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (primary_local, replica_local) = (local_of(primary), local_of(replica));
    let key = (0..60)
        .map(|i| format!("key:{i}"))
        .find(|k| {
            !RespConn::connect(primary_local)
                .request(&["GET", k])
                .starts_with(b"-")
        })
        .expect("a key the primary owns");
    let mut replica_conn = RespConn::connect(replica_local);
    assert!(replica_conn.request(&["GET", &key]).starts_with(b"-MOVED"));
    assert_eq!(replica_conn.request(&["READONLY"]), b"+OK\r\n");
    let value = replica_conn.request(&["GET", &key]);
    assert!(
        value.starts_with(b"$"),
        "{}",
        String::from_utf8_lossy(&value)
    );

    // CLUSTER NODES and SHARDS name only local ports as well.
    let nodes = cli(port, &["CLUSTER", "NODES"]);
    for upstream in cluster.ports() {
        assert!(!nodes.contains(&format!(":{upstream}@")), "{nodes}");
    }
    let shards = cli(port, &["CLUSTER", "SHARDS"]);
    assert!(!shards.contains("localhost"), "{shards}");

    // The metrics: six nodes, redirects and topology replies rewritten, per-node series by the
    // address the cluster announces (its preferred endpoint is the IP: those nodes were dialed by
    // IP and verified against the seed's name), and readiness.
    let admin = redauth.admin_addr();
    assert_eq!(http::get(admin, "/readyz").status, 200);
    let scrape = http::get(admin, "/metrics").body;
    assert_eq!(http::sample(&scrape, "redauth_cluster_nodes"), Some(6.0));
    let redirects = http::sample(
        &scrape,
        "redauth_cluster_rewrites_total{reply=\"redirect\"}",
    );
    assert!(redirects.unwrap_or(0.0) >= 1.0, "{scrape}");
    let topology = http::sample(
        &scrape,
        "redauth_cluster_rewrites_total{reply=\"topology\"}",
    );
    assert!(topology.unwrap_or(0.0) >= 3.0, "{scrape}");
    for upstream in cluster.ports() {
        assert!(
            scrape.contains(&format!(
                "redauth_cluster_node_client_connections{{node=\"127.0.0.1:{upstream}\"}}"
            )),
            "no series for node {upstream}:\n{scrape}"
        );
    }
    assert!(!scrape.contains(PASSWORD));

    let logs = redauth.logs();
    assert!(!logs.contains(PASSWORD), "the password reached the log");
}

/// With `--cluster auto` (the default) and node ports available, a single server — one that says
/// cluster support is disabled, and one whose ACL user may not run `CLUSTER` — is relayed to as
/// one Redis: ready, nothing rewritten, no node port opened.
#[test]
fn a_single_server_or_one_that_refuses_cluster_slots_is_served_as_one() {
    let redis = TlsRedis::start();
    let mut admin = RespConn::connect(redis.plain_port());
    admin.request(&["AUTH", USERNAME, PASSWORD]);
    let setuser = [
        "ACL",
        "SETUSER",
        "nocluster",
        "on",
        ">pw2",
        "~*",
        "&*",
        "+@all",
        "-cluster",
    ];
    assert_eq!(admin.request(&setuser), b"+OK\r\n");
    for (user, password, expected) in [
        (USERNAME, PASSWORD, "the upstream is not a cluster"),
        ("nocluster", "pw2", "does not tell its cluster topology"),
    ] {
        let port = free_ports(16);
        let file = redis.dir().join(format!("password-{user}"));
        std::fs::write(&file, password).unwrap();
        let mut args = redis.redauth_args_with("--username", user);
        let at = args.iter().position(|a| a == "--password-file").unwrap();
        args[at + 1] = file.display().to_string();
        let redauth = RedauthCmd::cluster(port).args(args).start_until(expected);
        let mut conn = RespConn::connect(port);
        assert_eq!(conn.request(&["SET", "k", "v"]), b"+OK\r\n");
        assert!(conn.request(&["CLUSTER", "SLOTS"]).starts_with(b"-"));
        assert_eq!(http::get(redauth.admin_addr(), "/readyz").status, 200);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port + 1)).is_err());
    }
}
