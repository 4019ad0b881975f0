//! Volume through redauth: a 10 000-command pipeline written in one go while replies are read
//! concurrently, a 100 MB value stored and read back intact, and many clients at once each
//! getting exactly their own replies.

mod support;

use std::io::Write;

use support::*;

#[test]
fn ten_thousand_pipelined_commands_are_answered_in_order() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    const N: usize = 10_000;

    let mut pipeline = Vec::new();
    for i in 0..N {
        if i % 2 == 0 {
            pipeline.extend(cmd(&["INCR", "counter"]));
        } else {
            pipeline.extend(cmd(&["ECHO", &format!("reply-{i}")]));
        }
    }
    // Write everything from another thread so that neither side can deadlock on full buffers.
    let mut writer = client.writer();
    let write = std::thread::spawn(move || writer.write_all(&pipeline));

    for i in 0..N {
        let expected = if i % 2 == 0 {
            format!(":{}\r\n", i / 2 + 1).into_bytes()
        } else {
            bulk(&format!("reply-{i}"))
        };
        let reply = client.read_reply();
        assert!(
            reply == expected,
            "reply {i}: expected {}, got {}",
            show(&expected),
            show(&reply)
        );
    }
    write.join().unwrap().expect("writing the pipeline");
    assert_eq!(
        client.request(&["GET", "counter"]),
        bulk(&(N / 2).to_string())
    );
}

/// Deterministic, incompressible-looking bytes that also contain `\r\n` and RESP type bytes.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"\r\n*$+-:%>abcdefgh"[(x % 17) as usize]
        })
        .collect()
}

#[test]
fn a_100_mb_value_round_trips_intact() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    const LEN: usize = 100 * 1024 * 1024;
    let value = pattern(LEN);
    let sum = checksum(&value);

    client.send(&cmd(&[b"SET".as_slice(), b"big", &value]));
    assert_eq!(client.read_reply(), b"+OK\r\n");
    assert_eq!(
        client.request(&["STRLEN", "big"]),
        format!(":{LEN}\r\n").into_bytes()
    );

    let header = format!("${LEN}\r\n");
    for (who, mut conn) in [("through redauth", client), ("direct", redis.direct())] {
        let reply = conn.request(&["GET", "big"]);
        assert_eq!(reply.len(), header.len() + LEN + 2, "{who}: reply length");
        assert!(
            reply.starts_with(header.as_bytes()),
            "{who}: {}",
            show(&reply[..32])
        );
        assert!(reply.ends_with(b"\r\n"), "{who}: reply not CRLF-terminated");
        assert_eq!(
            checksum(&reply[header.len()..header.len() + LEN]),
            sum,
            "{who}: payload differs"
        );
    }
}

#[test]
fn many_concurrent_clients_each_get_their_own_replies() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let port = redauth.port();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut client = RespConn::connect(port);
                let key = format!("client-{t}");
                for i in 0..200 {
                    let value = format!("{t}-{i}");
                    client.send(&[cmd(&["SET", &key, &value]), cmd(&["GET", &key])].concat());
                    assert_eq!(client.read_reply(), b"+OK\r\n");
                    assert_eq!(client.read_reply(), bulk(&value), "client {t}, round {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
}
