//! Nothing lost when a client ends its input. A client that writes its commands and then
//! shuts down its sending side (`printf … | nc`, `cat commands.txt | nc`, health-check scripts)
//! gets, as from redis-server, every reply to every whole command it sent before the end of its
//! input, then the close. Each case is compared byte for byte with the same bytes sent straight
//! to the server. Also: a command cut short by the end of input or by a reset client is never
//! run, a blocked command is cancelled when its client leaves (as Redis cancels it), and when
//! the server closes the connection mid-pipeline every reply it sent first reaches the client.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;
use support::*;

/// Sends `input` (after `prelude`, whose replies are dropped), ends the sending side as
/// `printf … | nc` does, and returns everything received until the other side closed.
fn half_closed(port: u16, prelude: &[u8], input: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut prefix = Vec::new();
    if !prelude.is_empty() {
        let mut conn = RespConn::new(stream.try_clone().expect("clone"), "prelude".into());
        conn.send(prelude);
        prefix = conn.read_reply();
    }
    // A writer thread, so a large input and its replies never deadlock on socket buffers.
    let mut writer = stream.try_clone().expect("clone");
    let input = input.to_vec();
    let sender = std::thread::spawn(move || {
        writer.write_all(&input).expect("writing the input");
        writer.shutdown(Shutdown::Write).expect("half-closing");
    });
    let mut received = Vec::new();
    stream
        .read_to_end(&mut received)
        .unwrap_or_else(|e| panic!("reading to the close: {e}; got {}", show(&received)));
    sender.join().expect("writer thread");
    assert!(
        prelude.is_empty() || prefix.starts_with(b"+OK"),
        "prelude failed: {}",
        show(&prefix)
    );
    received
}

/// `input` half-closed through redauth and straight to the server: the bytes received.
fn both(redis: &TlsRedis, redauth: &Redauth, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut admin = redis.direct();
    assert_eq!(admin.request(&["FLUSHALL"]), b"+OK\r\n");
    let through = half_closed(redauth.port(), b"", input);
    assert_eq!(admin.request(&["FLUSHALL"]), b"+OK\r\n");
    let auth = cmd(&["AUTH", USERNAME, PASSWORD]);
    let direct = half_closed(redis.plain_port(), &auth, input);
    (through, direct)
}

fn assert_both_see(redis: &TlsRedis, redauth: &Redauth, input: &[u8]) {
    let (through, direct) = both(redis, redauth, input);
    assert_eq!(
        show(&through),
        show(&direct),
        "input {}: through redauth vs direct",
        show(input)
    );
}

#[test]
fn a_half_closed_client_gets_every_reply_redis_would_give() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let cases: &[&[u8]] = &[
        b"PING\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"$abc\r\n",
        b"SET hc:a 1\r\nGET hc:a\r\nDEL hc:a\r\n",
        // An incomplete command at the end is dropped, as Redis drops its query buffer.
        b"SET hc:b 1\r\n*3\r\n$3\r\nSET\r\n$4\r\nhc:c\r\n",
        b"MULTI\r\nSET hc:d 1\r\n",
        b"CLIENT REPLY OFF\r\nPING\r\n",
        b"SUBSCRIBE hc:chan\r\n",
        b"ECHO x\r\n*1\r\n:1\r\n",
    ];
    let mut check = redis.direct();
    for input in cases {
        assert_both_see(&redis, &redauth, input);
        // Neither the incomplete SET nor the unfinished transaction ran.
        assert_eq!(check.request(&["EXISTS", "hc:c", "hc:d"]), b":0\r\n");
    }
}

#[test]
fn twenty_thousand_piped_sets_are_all_applied_and_acknowledged() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut input = Vec::new();
    for i in 0..20_000 {
        input.extend_from_slice(format!("SET hk:{i} v\r\n").as_bytes());
    }
    let through = half_closed(redauth.port(), b"", &input);
    let mut direct = redis.direct();
    assert_eq!(direct.request(&["DBSIZE"]), b":20000\r\n");
    assert_eq!(
        through,
        b"+OK\r\n".repeat(20_000),
        "replies through redauth"
    );
    assert_eq!(direct.request(&["FLUSHALL"]), b"+OK\r\n");

    let auth = cmd(&["AUTH", USERNAME, PASSWORD]);
    let straight = half_closed(redis.plain_port(), &auth, &input);
    assert_eq!(direct.request(&["DBSIZE"]), b":20000\r\n");
    assert_eq!(through, straight);
}

#[test]
fn a_large_command_cut_by_the_end_of_input_is_not_run_and_its_connection_not_reused() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "1"]);
    let mut input = cmd(&["SET", "hc:before", "1"]);
    // Header of a 1 MiB value, of which only 600 KiB come: streamed, never finished.
    input.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$7\r\nhc:huge\r\n$1048576\r\n");
    input.extend_from_slice(&vec![b'x'; 600 * 1024]);
    let (through, direct) = both(&redis, &redauth, &input);
    assert_eq!(show(&through), show(&direct));
    assert_eq!(through, b"+OK\r\n");

    let mut check = redis.direct();
    assert_eq!(check.request(&["EXISTS", "hc:huge"]), b":0\r\n");
    // The next clients get connections that hold no half command.
    for _ in 0..3 {
        let mut next = redauth.connect();
        assert_eq!(next.request(&["SET", "hc:after", "2"]), b"+OK\r\n");
        assert_eq!(next.request(&["GET", "hc:after"]), bulk("2"));
    }
}

#[test]
fn a_blocked_command_is_cancelled_when_its_client_ends_its_input() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut check = redis.direct();
    // Blocked on an empty list: Redis drops the command (and the ones behind it) when the client
    // leaves, so a later push is not taken by a client that is gone.
    let input = b"SET hc:s 1\r\nBLPOP hc:q 0\r\nSET hc:t 1\r\n";
    let (through, direct) = both(&redis, &redauth, input);
    assert_eq!(show(&through), show(&direct));
    assert_eq!(through, b"+OK\r\n");
    // Both blocked connections (redauth's upstream one and the direct one) are gone.
    support::wait_for("no client blocked", Duration::from_secs(10), || {
        !String::from_utf8_lossy(&check.request(&["CLIENT", "LIST"])).contains("flags=b")
    });
    assert_eq!(check.request(&["RPUSH", "hc:q", "x"]), b":1\r\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        check.request(&["LLEN", "hc:q"]),
        b":1\r\n",
        "a gone client took the element"
    );
    assert_eq!(check.request(&["EXISTS", "hc:t"]), b":0\r\n");
    // The same through a token-like credential, where blocking commands run in slices, is in
    // tests/reauth.rs's territory; here the credential never expires.

    // Served at once (the list has an element): the client gets it, as from Redis.
    assert_eq!(check.request(&["RPUSH", "hc:q", "y"]), b":2\r\n");
    assert_both_see(&redis, &redauth, b"BLPOP hc:q 0\r\n");
    assert_eq!(check.request(&["LLEN", "hc:q"]), b":0\r\n");
}

#[test]
fn a_client_reset_mid_command_leaves_no_half_command_and_redauth_serves_on() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "1"]);
    let mut client = redauth.connect();
    assert_eq!(client.request(&["SET", "hc:first", "1"]), b"+OK\r\n");
    let mut partial = b"*3\r\n$3\r\nSET\r\n$7\r\nhc:huge\r\n$1048576\r\n".to_vec();
    partial.extend_from_slice(&vec![b'x'; 300 * 1024]);
    client.send(&partial);
    support::reset_connection(client.writer());
    drop(client);

    let mut check = redis.direct();
    // redauth closes the upstream connection that holds the half command: the server frees
    // the partial argument with it.
    support::wait_for(
        "no connection holding a large partial argument",
        Duration::from_secs(10),
        || {
            let list = String::from_utf8_lossy(&check.request(&["CLIENT", "LIST"])).to_string();
            !list.split_whitespace().any(|field| {
                let value =
                    |name: &str| field.strip_prefix(name).and_then(|v| v.parse::<u64>().ok());
                value("qbuf=")
                    .or(value("argv-mem="))
                    .is_some_and(|n| n > 100_000)
            })
        },
    );
    assert_eq!(check.request(&["GET", "hc:first"]), bulk("1"));
    assert_eq!(check.request(&["EXISTS", "hc:huge"]), b":0\r\n");
    for _ in 0..3 {
        let mut next = redauth.connect();
        assert_eq!(next.request(&["PING"]), b"+PONG\r\n");
        assert_eq!(next.request(&["EXISTS", "hc:huge"]), b":0\r\n");
    }
}

#[test]
fn every_command_forwarded_for_a_client_that_resets_is_run() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--pool-size", "0"]);
    let command = |i: usize| cmd(&["SET", &format!("rk:{i:06}"), "v"]);
    let len = command(0).len();
    let pipeline: Vec<u8> = (0..100_000).flat_map(command).collect();
    let mut client = TcpStream::connect(redauth.addr()).expect("connecting");
    // Sent and reset at once, replies unread: redauth is cut off mid-stream.
    let _ = client.write_all(&pipeline[..pipeline.len() / 2]);
    support::reset_connection(client);

    // Every whole command redauth wrote upstream runs (the upstream connection is closed after
    // them, not reset under them), and the one it had begun to stream does not.
    let scrape = || support::http::get(redauth.admin_addr(), "/metrics").body;
    let series = "redauth_bytes_total{direction=\"client_to_upstream\"}";
    let mut check = redis.direct();
    let mut last = (0, 0);
    support::wait_for(
        "every forwarded command to have run",
        Duration::from_secs(20),
        || {
            let forwarded = support::http::sample(&scrape(), series).unwrap_or(0.0) as usize;
            let dbsize = String::from_utf8(check.request(&["DBSIZE"])).expect("utf-8");
            let dbsize: usize = dbsize
                .trim_start_matches(':')
                .trim_end()
                .parse()
                .expect("a count");
            last = (forwarded, dbsize);
            // A command cut short was streamed upstream in part: it must not run.
            forwarded > 0 && forwarded / len == dbsize
        },
    );
    let (forwarded, dbsize) = last;
    assert!(dbsize > 0 && forwarded / len == dbsize, "{last:?}");
}

#[test]
fn when_the_server_closes_mid_pipeline_every_reply_it_sent_first_arrives() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    for (label, port, prelude) in [
        ("through redauth", redauth.port(), Vec::new()),
        (
            "direct",
            redis.plain_port(),
            cmd(&["AUTH", USERNAME, PASSWORD]),
        ),
    ] {
        let mut client = RespConn::connect(port);
        if !prelude.is_empty() {
            client.send(&prelude);
            assert_eq!(client.read_reply(), b"+OK\r\n");
        }
        let id = String::from_utf8(client.request(&["CLIENT", "ID"])).expect("utf-8");
        let id = id.trim_start_matches(':').trim_end().to_string();
        // The server answers the kill of its own connection, then closes it: the commands
        // behind it never run, and what came before is answered in full.
        let mut pipeline = Vec::new();
        for i in 0..2_000 {
            pipeline.extend_from_slice(&cmd(&["SET", &format!("mp:{label}:{i}"), "v"]));
        }
        pipeline.extend_from_slice(&cmd(&["CLIENT", "KILL", "ID", &id, "SKIPME", "no"]));
        for _ in 0..2_000 {
            pipeline.extend_from_slice(&cmd(&["INCR", &format!("mp:{label}:after")]));
        }
        let mut stream = client.writer();
        let mut writer = client.writer();
        let sender = std::thread::spawn(move || {
            // The server may close before it has read everything: a failed write is expected.
            let _ = writer.write_all(&pipeline);
        });
        let (received, reset) = read_until_closed(&mut stream);
        sender.join().expect("writer thread");
        let mut expected = b"+OK\r\n".repeat(2_000);
        expected.extend_from_slice(b":1\r\n");
        assert_eq!(
            received.len(),
            expected.len(),
            "{label}: ends with {}",
            show(&received[received.len().saturating_sub(100)..])
        );
        assert_eq!(received, expected, "{label}");
        // redauth closes gracefully (it reads what the client still sends), where the server
        // resets a connection it closes with unread input.
        if label == "through redauth" {
            assert!(!reset, "{label}: the connection was reset");
        }
        let mut check = redis.direct();
        assert_eq!(
            check.request(&["EXISTS", &format!("mp:{label}:after")]),
            b":0\r\n",
            "{label}"
        );
    }
}

/// Reads until the peer closes; says whether it reset the connection rather than closing it.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut received = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (received, false),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (received, true),
            Err(e) => panic!("reading: {e}; got {}", show(&received)),
        }
    }
}
