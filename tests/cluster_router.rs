//! Cluster routing mode (issue 17): redauth's main port in front of a real TLS Redis cluster makes
//! it look like one Redis to clients that know nothing of clusters — `redis-cli` without `-c`, and
//! raw pipelines — while each command goes to the primary serving its slot.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// `redis-cli` without `-c` against redauth's main port.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["30", "redis-cli", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sends `commands` in one write on a new connection and reads until the replies end with `until`.
fn pipeline(port: u16, commands: &str, until: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(commands.as_bytes()).unwrap();
    let replies = read_until(&mut conn, until);
    assert!(replies.ends_with(until), "more after {until:?}: {replies}");
    replies
}

#[test]
fn a_client_without_cluster_support_reaches_every_slot() {
    let cluster = TlsCluster::start();
    let port = free_ports(16);
    let redauth = cluster.redauth(port);

    // Keys on every primary, through one port, no redirects seen.
    for i in 0..60 {
        assert_eq!(
            cli(port, &["SET", &format!("key:{i}"), &format!("v{i}")]),
            "OK"
        );
    }
    for i in 0..60 {
        assert_eq!(cli(port, &["GET", &format!("key:{i}")]), format!("v{i}"));
    }
    // Split and merged across slots.
    assert_eq!(cli(port, &["MSET", "a", "1", "b", "2", "c", "3"]), "OK");
    assert_eq!(cli(port, &["MGET", "a", "b", "nope", "c"]), "1\n2\n\n3");
    assert_eq!(cli(port, &["EXISTS", "a", "b", "nope", "c"]), "3");
    assert_eq!(cli(port, &["DBSIZE"]), "63");
    assert_eq!(cli(port, &["DEL", "a", "b", "c"]), "3");
    assert_eq!(cli(port, &["DBSIZE"]), "60");
    // Cross-slot commands that cannot be split get Redis Cluster's own answer.
    assert!(cli(port, &["SUNIONSTORE", "x", "y", "z"]).starts_with("CROSSSLOT"));
    // SCAN covers every key exactly once.
    let mut cursor = "0".to_owned();
    let mut seen = Vec::new();
    loop {
        let page = cli(port, &["SCAN", &cursor, "COUNT", "7"]);
        let mut lines = page.lines();
        cursor = lines.next().unwrap().to_owned();
        seen.extend(lines.map(str::to_owned));
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    let mut expected: Vec<String> = (0..60).map(|i| format!("key:{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);

    // A pipeline mixing nodes keeps its order.
    let mut commands = String::new();
    for i in 0..60 {
        commands.push_str(&format!("GET key:{i}\r\n"));
    }
    commands.push_str("ECHO end\r\n");
    let replies = pipeline(port, &commands, "$3\r\nend\r\n");
    let values: Vec<&str> = replies.lines().filter(|l| l.starts_with('v')).collect();
    let expected: Vec<String> = (0..60).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected);

    // A transaction pinned to one slot; another slot inside it is refused.
    let tx = pipeline(
        port,
        "MULTI\r\nSET {t}a 1\r\nINCR {t}a\r\nEXEC\r\nMULTI\r\nSET {t}a 1\r\nSET other 2\r\nEXEC\r\n",
        "previous errors.\r\n",
    );
    assert_eq!(
        tx,
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n+OK\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"
    );

    // Plain commands run on a direct connection to the node; a blocking pop and a transaction
    // hand the node over to a session. In one pipeline the node still runs them in the order
    // sent, and the session speaks the protocol the client chose (RESP3 here: a map, a `_`).
    let mixed = pipeline(
        port,
        "SET {h}n 1\r\nINCR {h}n\r\nBLPOP {h}list 0.01\r\nINCR {h}n\r\nMULTI\r\nINCR {h}n\r\nEXEC\r\nGET {h}n\r\n",
        "$1\r\n4\r\n",
    );
    assert_eq!(
        mixed,
        "+OK\r\n:2\r\n*-1\r\n:3\r\n+OK\r\n+QUEUED\r\n*1\r\n:4\r\n$1\r\n4\r\n"
    );
    let resp3 = pipeline(
        port,
        "HELLO 3\r\nHSET {h}m f v\r\nBLPOP {h}list 0.01\r\nHGETALL {h}m\r\n",
        "%1\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
    assert!(
        resp3.ends_with(":1\r\n_\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n"),
        "{resp3}"
    );

    // A slot half-way through a migration: the key already moved answers -ASK from its old
    // node, which the router follows (ASKING, then the command on the new node).
    assert_eq!(cli(port, &["SET", "{ask}moved", "there"]), "OK");
    assert_eq!(cli(port, &["SET", "{ask}stays", "here"]), "OK");
    let slot = cli(port, &["CLUSTER", "KEYSLOT", "{ask}"]);
    let primaries: Vec<u16> = cluster
        .ports()
        .into_iter()
        .filter(|&p| cluster.is_primary(p))
        .collect();
    let owner = *primaries
        .iter()
        .find(|&&p| {
            cluster
                .cli(p, &["EXISTS", "{ask}moved"])
                .is_some_and(|r| r.trim() == "1")
        })
        .expect("the key's node");
    let target = *primaries.iter().find(|&&p| p != owner).unwrap();
    let (owner_id, target_id) = (cluster.id(owner), cluster.id(target));
    let setslot = |port: u16, args: &[&str]| {
        let mut all = vec!["CLUSTER", "SETSLOT", slot.as_str()];
        all.extend_from_slice(args);
        assert_eq!(
            cluster.cli(port, &all).map(|r| r.trim().to_owned()),
            Some("OK".into())
        );
    };
    setslot(target, &["IMPORTING", &owner_id]);
    setslot(owner, &["MIGRATING", &target_id]);
    let target_port = target.to_string();
    let migrate = |key: &str| {
        let args = [
            "MIGRATE",
            "127.0.0.1",
            &target_port,
            "",
            "0",
            "5000",
            "AUTH2",
            support::redis_server::USERNAME,
            support::redis_server::PASSWORD,
            "KEYS",
            key,
        ];
        let migrated = cluster.cli(owner, &args);
        assert_eq!(
            migrated.map(|r| r.trim().to_owned()),
            Some("OK".into()),
            "MIGRATE {key}"
        );
    };
    migrate("{ask}moved");
    let asks = || {
        let scrape = http::get(redauth.admin_addr(), "/metrics").body;
        http::sample(&scrape, "redauth_router_redirects_total{kind=\"ask\"}").unwrap_or(0.0)
    };
    let before = asks();
    assert_eq!(cli(port, &["GET", "{ask}moved"]), "there");
    assert_eq!(cli(port, &["GET", "{ask}stays"]), "here");
    assert_eq!(
        cli(port, &["SET", "{ask}new", "made"]),
        "OK",
        "a new key goes to the new node"
    );
    assert!(asks() >= before + 2.0, "the -ASKs were followed by redauth");
    migrate("{ask}stays");
    setslot(target, &["NODE", &target_id]);
    setslot(owner, &["NODE", &target_id]);
    assert_eq!(
        cli(port, &["MGET", "{ask}moved", "{ask}stays", "{ask}new"]),
        "there\nhere\nmade"
    );
    drop(redauth);
}

/// Reads from `conn` until `until` has arrived; everything read.
fn read_until(conn: &mut TcpStream, until: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(until) {
        let n = conn.read(&mut buf).unwrap_or_else(|e| {
            panic!(
                "waiting for {until:?}: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            )
        });
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn redirects_during_a_reshard_never_reach_the_client_and_pub_sub_works() {
    let cluster = TlsCluster::start();
    let port = free_ports(16);
    let redauth = cluster.redauth(port);

    // A subscriber to a classic channel and to a shard channel, through the one port.
    let mut sub = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sub.write_all(b"SUBSCRIBE news\r\nSSUBSCRIBE {s}feed\r\n")
        .unwrap();
    let confirmed = read_until(&mut sub, "{s}feed\r\n:1\r\n");
    assert!(
        confirmed.starts_with("*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"),
        "{confirmed}"
    );

    // Keys written and read back in pipelined batches while slots move between primaries.
    let writer = std::thread::spawn(move || {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut round = 0;
        while started.elapsed() < Duration::from_secs(12) {
            let mut batch = String::new();
            for i in 0..200 {
                batch.push_str(&format!("SET r{i} {round}\r\nGET r{i}\r\n"));
            }
            batch.push_str("ECHO done\r\n");
            conn.write_all(batch.as_bytes()).unwrap();
            let replies = read_until(&mut conn, "$4\r\ndone\r\n");
            assert!(
                !replies.contains("MOVED") && !replies.contains("ASK") && !replies.contains("-"),
                "a redirect or error reached the client: {replies}"
            );
            let expected =
                format!("+OK\r\n${}\r\n{round}\r\n", round.to_string().len()).repeat(200);
            assert!(replies.starts_with(&expected), "round {round}: {replies}");
            round += 1;
        }
        round
    });
    let primaries: Vec<u16> = cluster
        .ports()
        .into_iter()
        .filter(|&p| cluster.is_primary(p))
        .collect();
    cluster.reshard(primaries[0], primaries[1], 2000);
    cluster.reshard(primaries[1], primaries[2], 2000);
    let rounds = writer.join().expect("the writer saw only its own values");
    assert!(rounds > 3, "only {rounds} rounds");

    assert_eq!(cli(port, &["PUBLISH", "news", "hello"]), "1");
    assert_eq!(cli(port, &["SPUBLISH", "{s}feed", "item"]), "1");
    let messages = read_until(&mut sub, "item\r\n");
    assert!(
        messages.contains("$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"),
        "{messages}"
    );
    assert!(
        messages.contains("$8\r\nsmessage\r\n$7\r\n{s}feed\r\n$4\r\nitem\r\n"),
        "{messages}"
    );
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    assert!(
        scrape.contains("redauth_cluster_topology_refresh_total"),
        "{scrape}"
    );
}
