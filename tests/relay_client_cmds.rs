//! Connection-level commands through redauth: MONITOR, CLIENT REPLY OFF/ON/SKIP, CLIENT
//! TRACKING (RESP3 invalidation pushes), CLIENT SETNAME/INFO, SELECT, and what the client sees
//! when its upstream connection is killed by the server.

mod support;

use std::time::Duration;

use support::*;

/// Reads MONITOR lines until one ends with `suffix`; every line must be a `+` status line and
/// none may show the password (redis-server prints AUTH arguments as "(redacted)").
fn monitor_until(monitor: &mut RespConn, suffix: &str) -> String {
    for _ in 0..100 {
        let line = String::from_utf8(monitor.read_reply()).unwrap();
        assert!(line.starts_with('+'), "not a MONITOR line: {line:?}");
        assert!(
            !line.contains(PASSWORD),
            "MONITOR shows the password: {line:?}"
        );
        if line.ends_with(suffix) {
            return line;
        }
    }
    panic!("MONITOR never showed a line ending with {suffix:?}");
}

#[test]
fn monitor_sees_commands_from_other_connections() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut monitor = redauth.connect();
    assert_eq!(monitor.request(&["MONITOR"]), b"+OK\r\n");

    redis.direct().request(&["SET", "monitored-key", "seen"]);
    monitor_until(&mut monitor, "\"SET\" \"monitored-key\" \"seen\"\r\n");

    // A command through a second redauth connection is seen too (after its upstream AUTH).
    redauth.connect().request(&["GET", "monitored-key"]);
    monitor_until(&mut monitor, "\"GET\" \"monitored-key\"\r\n");
}

#[test]
fn client_reply_off_on_skip_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd_n(&["CLIENT", "REPLY", "OFF"], 0),
            Step::cmd_n(&["INCR", "k"], 0),
            Step::Silence(Duration::from_millis(100)),
            Step::cmd(&["CLIENT", "REPLY", "ON"]),
            Step::cmd(&["GET", "k"]),
            Step::cmd_n(&["CLIENT", "REPLY", "SKIP"], 0),
            Step::cmd_n(&["INCR", "k"], 0),
            Step::cmd(&["INCR", "k"]),
            // All of it in one write.
            Step::raw(
                &[
                    cmd(&["CLIENT", "REPLY", "OFF"]),
                    cmd(&["INCR", "k"]),
                    cmd(&["PING"]),
                    cmd(&["CLIENT", "REPLY", "ON"]),
                    cmd(&["GET", "k"]),
                ]
                .concat(),
                2,
            ),
        ],
    );
    assert_eq!(
        transcript
            .iter()
            .filter(|l| l.starts_with("C<"))
            .cloned()
            .collect::<Vec<_>>(),
        [
            "C< +OK\\r\\n",
            "C< $1\\r\\n1\\r\\n",
            "C< :3\\r\\n",
            "C< +OK\\r\\n",
            "C< $1\\r\\n4\\r\\n"
        ],
    );
}

#[test]
fn client_tracking_invalidation_pushes_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["HELLO", "3"]),
            Step::cmd(&["CLIENT", "TRACKING", "ON"]),
            Step::cmd(&["SET", "tracked", "1"]),
            Step::cmd(&["GET", "tracked"]),
            Step::side(&["SET", "tracked", "2"]),
            Step::read(1),
            Step::cmd(&["GET", "tracked"]),
        ],
    );
    assert!(
        transcript.contains(
            &"C< >2\\r\\n$10\\r\\ninvalidate\\r\\n*1\\r\\n$7\\r\\ntracked\\r\\n".to_string()
        ),
        "{transcript:#?}"
    );
}

#[test]
fn client_name_select_and_info_are_per_connection() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["CLIENT", "GETNAME"]),
            Step::cmd(&["CLIENT", "SETNAME", "my-conn"]),
            Step::cmd(&["CLIENT", "GETNAME"]),
            Step::cmd(&["SELECT", "3"]),
            Step::cmd(&["SET", "in-db-3", "x"]),
            Step::cmd(&["SELECT", "0"]),
            Step::cmd(&["GET", "in-db-3"]),
            Step::cmd(&["CLIENT", "NO-EVICT", "ON"]),
        ],
    );

    let mut a = redauth.connect();
    let mut b = redauth.connect();
    assert_eq!(a.request(&["CLIENT", "SETNAME", "conn-a"]), b"+OK\r\n");
    assert_eq!(
        b.request(&["CLIENT", "GETNAME"]),
        b"$-1\r\n",
        "connections share upstream state"
    );
    assert_eq!(a.request(&["SELECT", "5"]), b"+OK\r\n");
    assert_eq!(b.request(&["SET", "db0", "1"]), b"+OK\r\n");
    assert_eq!(
        a.request(&["GET", "db0"]),
        b"$-1\r\n",
        "SELECT leaked across connections"
    );

    let info = String::from_utf8(a.request(&["CLIENT", "INFO"])).unwrap();
    assert!(
        info.contains(" name=conn-a ") && info.contains(&format!(" user={USERNAME} ")),
        "{info}"
    );
    assert!(info.contains(" db=5 "), "{info}");
}

#[test]
fn killing_the_upstream_connection_closes_the_client() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    assert_eq!(client.request(&["CLIENT", "SETNAME", "victim"]), b"+OK\r\n");
    let mut side = redis.direct();
    let list = String::from_utf8(side.request(&["CLIENT", "LIST"])).unwrap();
    let id = list
        .lines()
        .find(|l| l.contains(" name=victim "))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("no upstream connection named victim: {list}"))
        .to_string();
    assert_eq!(side.request(&["CLIENT", "KILL", "ID", &id]), b":1\r\n");
    // Directly, a killed connection just closes; through redauth the client must not hang.
    let rest = client.read_to_eof();
    assert!(
        rest.is_empty() || rest.starts_with(b"-ERR redauth: "),
        "unexpected bytes before close: {}",
        show(&rest)
    );
}

/// SYNC turns the connection into a replication stream: an RDB payload with no
/// trailing CRLF, then the write commands. redauth must relay it raw.
#[test]
fn sync_relays_the_replication_stream() {
    use std::io::{Read, Write};
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut replica = std::net::TcpStream::connect(("127.0.0.1", redauth.port())).unwrap();
    replica
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    replica.write_all(b"SYNC\r\n").unwrap();
    let mut writer = RespConn::connect(redauth.port());
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.windows(13).any(|w| w == b"sync-relayed\r") {
        assert!(
            std::time::Instant::now() < deadline,
            "write never appeared in the replication stream: {}",
            show(&seen[seen.len().saturating_sub(300)..])
        );
        assert_eq!(writer.request(&["SET", "k", "sync-relayed"]), b"+OK\r\n");
        let mut chunk = [0u8; 65536];
        if let Ok(n) = replica.read(&mut chunk) {
            assert!(n > 0, "redauth closed the replication stream");
            seen.extend_from_slice(&chunk[..n]);
        }
    }
    assert!(
        seen.starts_with(b"$"),
        "the stream starts with the RDB bulk header"
    );
}
