//! A recycled upstream connection is indistinguishable from a fresh one. A client sets a
//! per-connection setting `RESET` leaves in place (`CLIENT NO-EVICT`, `CLIENT NO-TOUCH`,
//! `CLIENT SETINFO`) and leaves; the next client that is handed the same upstream connection
//! (same `CLIENT ID`) must start with the `CLIENT INFO` fields of a fresh direct connection. A
//! `CLIENT` subcommand redauth does not know, and `CLIENT TRACKING on` (whose tracked keys outlive
//! `RESET`), make the connection be closed, never reused. And
//! a connection cut by the server during AUTH is reported as such, not as a refused credential.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::thread;
use std::time::Duration;
use support::*;

/// The `CLIENT INFO` fields a client's settings show in.
const FIELDS: &[&str] = &[
    "flags", "db", "name", "resp", "multi", "sub", "psub", "lib-name", "lib-ver",
];

fn client_id(conn: &mut RespConn) -> String {
    let reply = String::from_utf8(conn.request(&["CLIENT", "ID"])).expect("utf-8");
    reply.trim_start_matches(':').trim_end().to_string()
}

/// The [`FIELDS`] of a connection's `CLIENT INFO` (those the server has).
fn info_fields(conn: &mut RespConn) -> Vec<String> {
    let info = String::from_utf8(conn.request(&["CLIENT", "INFO"])).expect("utf-8");
    info.split_whitespace()
        .filter(|f| FIELDS.iter().any(|name| f.starts_with(&format!("{name}="))))
        .map(str::to_string)
        .collect()
}

/// Whether the server knows `CLIENT <sub>` (Redis 7.0 lacks NO-TOUCH and SETINFO).
fn supports(redis: &TlsRedis, setting: &[&str]) -> bool {
    let reply = redis.direct().request(setting);
    !reply.starts_with(b"-ERR unknown subcommand")
}

/// One client runs `setting` (and `SELECT 3`) through redauth and leaves; then clients are
/// connected (and kept) until one is handed the same upstream connection. Returns that
/// client, or `None` if the connection never came back within a few tries.
fn next_on_the_same_connection(redauth: &Redauth, setting: &[&str]) -> Option<RespConn> {
    for _attempt in 0..5 {
        let mut first = redauth.connect();
        let id = client_id(&mut first);
        // (Refused by a server that lacks it, as a client library's handshake may be.)
        first.request(setting);
        assert_eq!(first.request(&["SELECT", "3"]), b"+OK\r\n");
        drop(first);
        thread::sleep(Duration::from_millis(200));
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut next = redauth.connect();
            if client_id(&mut next) == id {
                return Some(next);
            }
            held.push(next);
        }
    }
    None
}

fn assert_recycled_fresh(setting: &[&str]) {
    let redis = TlsRedis::start();
    if !supports(&redis, setting) {
        eprintln!(
            "skipped: {setting:?} is not known to {} (Redis 7.2+)",
            String::from_utf8_lossy(&redis.direct().request(&["INFO", "server"]))
                .lines()
                .find(|l| l.starts_with("redis_version"))
                .unwrap_or("this server")
        );
        return;
    }
    let redauth = redis.redauth(&["--pool-size", "2", "--threads", "1", "--log-level", "debug"]);
    let Some(mut reused) = next_on_the_same_connection(&redauth, setting) else {
        panic!(
            "no later client was handed the recycled connection; redauth's log:\n{}",
            redauth.logs()
        );
    };
    let mut fresh = redis.direct();
    assert_eq!(
        info_fields(&mut reused),
        info_fields(&mut fresh),
        "after {setting:?}: recycled through redauth (left) vs a fresh direct connection (right)"
    );
}

#[test]
fn no_evict_does_not_outlive_its_client() {
    assert_recycled_fresh(&["CLIENT", "NO-EVICT", "on"]);
}

#[test]
fn no_touch_does_not_outlive_its_client() {
    assert_recycled_fresh(&["CLIENT", "NO-TOUCH", "on"]);
}

#[test]
fn the_library_name_does_not_outlive_its_client() {
    assert_recycled_fresh(&["CLIENT", "SETINFO", "LIB-NAME", "legacy-app"]);
}

#[test]
fn the_library_version_does_not_outlive_its_client() {
    assert_recycled_fresh(&["CLIENT", "SETINFO", "LIB-VER", "9.9.9"]);
}

/// A client runs `commands` through redauth and leaves: its upstream connection must be closed,
/// never handed to a later client.
fn assert_never_reused(commands: &[&[&str]]) {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "2", "--threads", "1"]);
    // Control: without them, the connection is reused.
    assert!(next_on_the_same_connection(&redauth, &["CLIENT", "SETNAME", "x"]).is_some());
    for _attempt in 0..3 {
        let mut first = redauth.connect();
        let id = client_id(&mut first);
        for command in commands {
            // Whatever the server answers, redauth cannot undo what it may have changed.
            first.request(command);
        }
        drop(first);
        thread::sleep(Duration::from_millis(200));
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut next = redauth.connect();
            assert_ne!(
                client_id(&mut next),
                id,
                "the connection was reused after {commands:?}"
            );
            held.push(next);
        }
    }
}

#[test]
fn a_client_library_handshake_keeps_the_connection_reusable() {
    // redis-py and others send CLIENT SETINFO on every connect; a server without it refuses,
    // and either way the connection is recycled, not closed.
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "2", "--threads", "1"]);
    let handshake = ["CLIENT", "SETINFO", "LIB-NAME", "redis-py"];
    let mut reused = next_on_the_same_connection(&redauth, &handshake)
        .expect("the connection was recycled after a library handshake");
    assert_eq!(info_fields(&mut reused), info_fields(&mut redis.direct()));
}

#[test]
fn an_unknown_client_subcommand_closes_the_connection_instead_of_reusing_it() {
    assert_never_reused(&[&["CLIENT", "FUTURE-SETTING", "on"]]);
}

#[test]
fn a_connection_that_tracked_keys_is_closed_instead_of_reused() {
    // The server remembers the keys read under tracking by client id, past RESET: a next
    // client turning tracking on would hear of this one's keys.
    assert_never_reused(&[&["CLIENT", "TRACKING", "on"], &["GET", "tracked"]]);
}

#[test]
fn a_connection_reset_during_auth_is_not_reported_as_a_refused_credential() {
    // A server that takes the connection and resets it when AUTH arrives, as one that is
    // failing over or killing connections does.
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
    let port = listener.local_addr().expect("address").port();
    let cutter = thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
            support::reset_connection(stream);
        }
    });
    let redis = TlsRedis::start();
    let redauth = RedauthCmd::new()
        .args(redis.redauth_args_with("--upstream", &format!("redis://127.0.0.1:{port}")))
        .arg("--allow-plaintext-upstream")
        .args(["--pool-size", "0"])
        .start();
    let mut client = redauth.connect();
    client.send(&cmd(&["PING"]));
    let reply = String::from_utf8(client.read_to_eof()).expect("utf-8");
    assert!(
        reply.starts_with(&format!(
            "-ERR redauth: upstream connection failed during AUTH (127.0.0.1:{port}): waiting for the AUTH reply:"
        )),
        "{reply:?}"
    );
    assert!(
        reply.contains("reset") || reply.contains("closed"),
        "{reply:?}"
    );
    assert!(!reply.contains("rejected"), "{reply:?}");
    let logs = redauth.logs();
    assert!(!logs.contains("rejected the credential"), "{logs}");
    // (The cutter thread ends with the test process.)
    drop(cutter);
}
