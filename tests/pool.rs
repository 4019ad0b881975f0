//! Connecting fast. The warm pool: new clients get connections dialed ahead of them, each as
//! fresh as a new dial; a pooled connection the server closed is never handed out, and pooled
//! connections follow token rotation (the front would close one still on an expired token). The
//! pool keeps one connection per relay thread when quiet, grows under a burst of connects within
//! its cap, and shrinks back. And TLS session resumption: dials after the first skip the full
//! handshake.

mod support;

use std::thread;
use std::time::{Duration, Instant};
use support::cloud::{whoami, TestCloud, OID};
use support::*;

/// Connections from redauth's user that the server sees, from a direct plaintext connection.
fn upstream_connections(direct: &mut RespConn) -> usize {
    let list = direct.request(&["CLIENT", "LIST", "TYPE", "normal"]);
    String::from_utf8_lossy(&list)
        .lines()
        .filter(|l| l.contains(&format!("user={USERNAME}")))
        .count()
}

/// A direct plaintext connection to the test server as its superuser.
fn direct(redis: &TlsRedis) -> RespConn {
    let mut c = RespConn::connect(redis.plain_port());
    assert_eq!(c.request(&["AUTH", USERNAME, PASSWORD]), b"+OK\r\n");
    c
}

#[test]
fn the_pool_fills_and_hands_out_fresh_connections() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "3", "--threads", "2"]);
    let mut admin = direct(&redis);
    // One per relay thread while quiet; the admin connection is the superuser too: count it.
    wait_for("2 pooled connections", Duration::from_secs(20), || {
        upstream_connections(&mut admin) == 3
    });

    // A client that leaves state behind, then a new one: it sees none of it.
    let mut first = redauth.connect();
    assert_eq!(first.request(&["SELECT", "5"]), b"+OK\r\n");
    assert_eq!(first.request(&["CLIENT", "SETNAME", "used"]), b"+OK\r\n");
    assert_eq!(first.request(&["MULTI"]), b"+OK\r\n");
    drop(first);
    let mut second = redauth.connect();
    let info = String::from_utf8(second.request(&["CLIENT", "INFO"])).unwrap();
    let user = format!("user={USERNAME}");
    for field in [
        "name=", "db=0", "multi=-1", "sub=0", "psub=0", "resp=2", &user,
    ] {
        assert!(
            info.split_whitespace().any(|f| f == field),
            "{field:?} not in {info}"
        );
    }
    // It was taken from the pool, and the pool is refilled behind it.
    wait_for("the pool refilled", Duration::from_secs(20), || {
        upstream_connections(&mut admin) == 4
    });
}

#[test]
fn connections_the_server_closed_are_not_handed_out() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "3", "--threads", "2"]);
    let mut admin = direct(&redis);
    wait_for("2 pooled connections", Duration::from_secs(20), || {
        upstream_connections(&mut admin) == 3
    });
    // Kill every pooled connection (SKIPME keeps the admin connection).
    let killed = admin.request(&["CLIENT", "KILL", "USER", USERNAME, "SKIPME", "yes"]);
    assert_eq!(killed, b":2\r\n");
    thread::sleep(Duration::from_millis(100));
    for _ in 0..4 {
        let mut c = redauth.connect();
        assert_eq!(c.request(&["PING"]), b"+PONG\r\n");
        assert_eq!(c.request(&["ACL", "WHOAMI"]), whoami_reply());
    }
    assert!(
        !redauth.logs().contains("session failed"),
        "{}",
        redauth.output()
    );
}

#[test]
fn pooled_connections_follow_token_rotation() {
    let cloud = TestCloud::start(Duration::from_secs(3));
    let redauth = cloud
        .redauth_cmd("managed-identity")
        .args(["--pool-size", "2"])
        .start();
    // Let tokens rotate a few times while the pool waits, then use pooled connections for longer
    // than a token lives.
    wait_for_refreshes(&redauth, 4);
    let mut clients: Vec<RespConn> = (0..3).map(|_| redauth.connect()).collect();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for c in &mut clients {
            assert_eq!(whoami(c), bulk(OID));
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        cloud.expired_closes(),
        0,
        "the front closed connections for expiry"
    );
}

#[test]
fn later_dials_resume_the_tls_session() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[
        "--pool-size",
        "0",
        "--log-level",
        "info,redauth::upstream=trace",
    ]);
    for _ in 0..3 {
        let mut c = redauth.connect();
        assert_eq!(c.request(&["PING"]), b"+PONG\r\n");
    }
    // The log lines reach the test through a pipe: wait for all three.
    let handshakes = || -> Vec<String> {
        log_events(&redauth.logs(), "upstream TLS established")
            .iter()
            .map(|e| e["fields"]["handshake"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    wait_for("three handshakes logged", Duration::from_secs(20), || {
        handshakes().len() >= 3
    });
    let handshakes = handshakes();
    assert_eq!(handshakes.len(), 3, "{}", redauth.output());
    assert_eq!(handshakes[0], "Some(Full)");
    assert!(
        handshakes[1..].iter().all(|h| h == "Some(Resumed)"),
        "{handshakes:?}"
    );
}

/// What a used connection is reset to: everything a client can change about its connection is
/// back to a fresh dial's (database, name, transaction, protocol, reply mode), and it is
/// authenticated again.
#[test]
fn a_used_connection_is_reset_to_a_fresh_one() {
    use ::redauth::credentials::{Credential, Secret};
    use ::redauth::upstream::{pool, tls, Connector, Endpoint};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let redis = TlsRedis::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let settings = tls::TlsSettings {
            ca_file: Some(redis.certs().ca.clone()),
            system_roots: false,
            client_cert: None,
            client_key: None,
        };
        let config = tls::client_config(&settings).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let endpoint = Endpoint::parse(&redis.upstream_url()).unwrap();
        let connector = Connector::new(endpoint, Some((config, name)), Duration::from_secs(5));
        let credential = Credential::password(Some(USERNAME.into()), Secret::new(PASSWORD.into()));
        let mut upstream = connector.connect(&credential).await.unwrap();

        // A client leaves its mark, then its last reply has been read.
        let mut dirty = Vec::new();
        for c in [
            &["SELECT", "5"][..],
            &["CLIENT", "SETNAME", "used"],
            &["CLIENT", "REPLY", "ON"],
            &["HELLO", "3"],
            &["WATCH", "k"],
            &["MULTI"],
        ] {
            dirty.extend(cmd(c));
        }
        upstream.stream.write_all(&dirty).await.unwrap();
        // Read all six replies, so nothing is in flight.
        let mut seen = Vec::new();
        let mut replies = 0;
        while replies < 6 {
            let mut chunk = [0u8; 4096];
            let n = upstream.stream.read(&mut chunk).await.unwrap();
            seen.extend_from_slice(&chunk[..n]);
            while let Ok(Some(len)) = support::resp::frame_len(&seen) {
                seen.drain(..len);
                replies += 1;
            }
        }

        let mut upstream = pool::reset(upstream, &credential, &[]).await.unwrap();
        upstream
            .stream
            .write_all(&cmd(&["CLIENT", "INFO"]))
            .await
            .unwrap();
        let mut info = Vec::new();
        while !info.ends_with(b"\n\r\n") {
            let mut chunk = [0u8; 4096];
            let n = upstream.stream.read(&mut chunk).await.unwrap();
            info.extend_from_slice(&chunk[..n]);
        }
        let info = String::from_utf8(info).unwrap();
        let user = format!("user={USERNAME}");
        for field in ["name=", "db=0", "multi=-1", "resp=2", &user] {
            assert!(
                info.split_whitespace().any(|f| f == field),
                "{field:?} not in {info}"
            );
        }
    });
}

#[test]
fn short_sessions_run_on_returned_connections_without_new_dials() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "2", "--threads", "1"]);
    let mut admin = direct(&redis);
    wait_for("1 pooled connection", Duration::from_secs(20), || {
        upstream_connections(&mut admin) == 2
    });
    let dials_so_far = |admin: &mut RespConn| -> u64 {
        let info = String::from_utf8(admin.request(&["INFO", "stats"])).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = dials_so_far(&mut admin);
    // 50 clients one after another, each with one command: each leaves its connection for the
    // next, and the pool does not dial a replacement for a connection that comes back.
    for i in 0..50 {
        let mut client = redauth.connect();
        let key = format!("short:{i}");
        assert_eq!(client.request(&["SET", &key, "v"]), b"+OK\r\n");
        drop(client);
        // Long enough for the connection to be reset and returned.
        thread::sleep(Duration::from_millis(20));
    }
    // The admin connection's own INFO calls are not connections; anything else is a dial.
    let dials = dials_so_far(&mut admin) - before;
    eprintln!("50 short sessions took {dials} new upstream connections");
    assert!(dials <= 5, "{dials} dials for 50 short sessions");
    // The pool's floor, up to its cap of 2 while the recent takes still count, once the last
    // client's connection is back (its RESET and AUTH may still be on their way: then it is a
    // third for a moment).
    let mut held = 0;
    wait_for("the pool within its cap", Duration::from_secs(2), || {
        held = upstream_connections(&mut admin) - 1;
        held <= 2
    });
    assert!((1..=2).contains(&held), "{held} connections held");
}

#[test]
fn the_pool_grows_under_a_burst_of_connects_and_shrinks_back_when_idle() {
    let redis = TlsRedis::start();
    // A cap of 8, 4 per relay thread; one per thread when quiet.
    let redauth = redis.redauth(&["--pool-size", "8", "--threads", "2"]);
    let mut admin = direct(&redis);
    let pooled = |admin: &mut RespConn| upstream_connections(admin) - 1;
    wait_for(
        "1 pooled connection per thread",
        Duration::from_secs(20),
        || pooled(&mut admin) == 2,
    );

    // 10 clients connecting over and over, one command each, as `redis-benchmark -k 0 -c 10`.
    let port = redauth.port();
    let burst: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..100 {
                    let mut c = RespConn::connect(port);
                    assert_eq!(c.request(&["PING"]), b"+PONG\r\n");
                }
            })
        })
        .collect();
    for client in burst {
        client.join().unwrap();
    }
    // Every client has left; once their sessions have ended, what the server sees is the pool,
    // grown past its floor (connections beyond it wait 10 s unused before they are closed) and
    // never past its cap.
    thread::sleep(Duration::from_millis(500));
    let grown = pooled(&mut admin);
    eprintln!("after the burst: {grown} pooled connections");
    assert!((3..=8).contains(&grown), "{grown} connections held, cap 8");

    // Quiet again: back to one per thread.
    wait_for(
        "the pool back at its floor",
        Duration::from_secs(60),
        || pooled(&mut admin) == 2,
    );
}
