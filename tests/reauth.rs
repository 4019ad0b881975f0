//! Live re-authentication against the token-checking front: 3-second tokens, and the front closes
//! every connection whose token expired without a fresh successful AUTH. Connections of every
//! kind run side by side through at least five rotations; none may see an error, a stray reply
//! or a close, and the front must close none for expiry. Blocked clients too: every blocking
//! command stays blocked across rotations (redauth runs it in slices) and is then served.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::cloud::{whoami, TestCloud, OID};
use support::*;

const ROTATIONS: usize = 5;

/// PING's reply on a RESP2 subscribed connection.
const SUBSCRIBED_PONG: &[u8] = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";

/// The next frame that is not the reply to a PING sent meanwhile.
fn next_frame(conn: &mut RespConn, pongs_owed: &mut u32) -> Vec<u8> {
    loop {
        let frame = conn.read_reply();
        if frame == SUBSCRIBED_PONG && *pongs_owed > 0 {
            *pongs_owed -= 1;
            continue;
        }
        return frame;
    }
}

/// Runs `body` on its own thread with a fresh connection until `stop` is set.
fn scenario(
    name: &'static str,
    redauth: &Redauth,
    stop: &Arc<AtomicBool>,
    body: impl FnOnce(RespConn, &AtomicBool) -> String + Send + 'static,
) -> thread::JoinHandle<(String, String)> {
    let mut conn = redauth.connect();
    conn.label = name.to_string();
    let stop = stop.clone();
    thread::spawn(move || (name.to_string(), body(conn, &stop)))
}

/// An XREAD reply holding one entry `id` of `stream` with field `f` = `value` (RESP2).
fn xread_reply(stream: &str, id: &str, value: &str) -> String {
    format!(
        "*1\r\n*2\r\n${}\r\n{stream}\r\n*1\r\n*2\r\n${}\r\n{id}\r\n*2\r\n$1\r\nf\r\n${}\r\n{value}\r\n",
        stream.len(),
        id.len(),
        value.len()
    )
}

fn until_stopped(stop: &AtomicBool, pause: Duration, mut step: impl FnMut()) {
    while !stop.load(Ordering::SeqCst) {
        step();
        thread::sleep(pause);
    }
}

#[test]
fn every_kind_of_connection_survives_five_rotations() {
    let cloud = TestCloud::start(Duration::from_secs(3));
    let redauth = cloud
        .redauth_cmd("managed-identity")
        .args(["--log-level", "info,redauth::session=debug"])
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = Vec::new();

    running.push(scenario("idle", &redauth, &stop, |mut c, stop| {
        assert_eq!(whoami(&mut c), bulk(OID));
        until_stopped(stop, Duration::from_millis(100), || {});
        assert_eq!(c.request(&["PING"]), b"+PONG\r\n");
        assert_eq!(whoami(&mut c), bulk(OID));
        "idle through every rotation".into()
    }));

    running.push(scenario("pipeline", &redauth, &stop, |mut c, stop| {
        let mut expected = 0u64;
        let mut batches = 0;
        until_stopped(stop, Duration::from_millis(5), || {
            let batch: Vec<u8> = (0..32)
                .flat_map(|_| cmd(&["INCR", "reauth:pipe"]))
                .collect();
            c.send(&batch);
            for _ in 0..32 {
                expected += 1;
                assert_eq!(c.read_reply(), format!(":{expected}\r\n").into_bytes());
            }
            batches += 1;
        });
        format!("{batches} batches of 32, {expected} replies in order")
    }));

    running.push(scenario("transactions", &redauth, &stop, |mut c, stop| {
        let (mut committed, mut discarded) = (0u64, 0u64);
        until_stopped(stop, Duration::ZERO, || {
            // WATCH/MULTI held open for most of a rotation window.
            assert_eq!(c.request(&["WATCH", "reauth:tx"]), b"+OK\r\n");
            assert_eq!(c.request(&["MULTI"]), b"+OK\r\n");
            assert_eq!(c.request(&["INCR", "reauth:tx"]), b"+QUEUED\r\n");
            thread::sleep(Duration::from_millis(700));
            assert_eq!(c.request(&["INCR", "reauth:tx"]), b"+QUEUED\r\n");
            if committed <= discarded {
                let n = 2 * committed;
                let want = format!("*2\r\n:{}\r\n:{}\r\n", n + 1, n + 2);
                assert_eq!(c.request(&["EXEC"]), want.into_bytes());
                committed += 1;
            } else {
                assert_eq!(c.request(&["DISCARD"]), b"+OK\r\n");
                assert_eq!(c.request(&["UNWATCH"]), b"+OK\r\n");
                discarded += 1;
            }
        });
        let total = c.request(&["GET", "reauth:tx"]);
        assert_eq!(total, bulk(&(2 * committed).to_string()));
        format!("{committed} committed, {discarded} discarded")
    }));

    running.push(scenario("after RESET", &redauth, &stop, |mut c, stop| {
        assert_eq!(c.request(&["SELECT", "3"]), b"+OK\r\n");
        assert_eq!(c.request(&["RESET"]), b"+RESET\r\n");
        let mut n = 0;
        until_stopped(stop, Duration::from_millis(200), || {
            assert_eq!(whoami(&mut c), bulk(OID));
            n += 1;
        });
        format!("{n} WHOAMIs after RESET")
    }));

    running.push(scenario("HELLO 3", &redauth, &stop, |mut c, stop| {
        let hello = c.request(&["HELLO", "3", "SETNAME", "reauth-resp3"]);
        assert!(hello.starts_with(b"%"), "{}", show(&hello));
        assert_eq!(c.request(&["HSET", "reauth:h", "f", "v"]).len(), 4);
        let mut n = 0;
        until_stopped(stop, Duration::from_millis(200), || {
            assert_eq!(
                c.request(&["HGETALL", "reauth:h"]),
                b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
            );
            n += 1;
        });
        assert_eq!(c.request(&["CLIENT", "GETNAME"]), bulk("reauth-resp3"));
        format!("{n} RESP3 map replies")
    }));

    // A RESP3 subscriber (AUTH is allowed in RESP3 subscribed mode) and its publisher.
    let mut sub = redauth.connect();
    sub.label = "RESP3 subscriber".into();
    let hello = sub.request(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    assert_eq!(
        sub.request(&["SUBSCRIBE", "reauth:ch"]),
        b">3\r\n$9\r\nsubscribe\r\n$9\r\nreauth:ch\r\n:1\r\n"
    );
    running.push(scenario("publisher", &redauth, &stop, |mut c, stop| {
        let mut sent = 0u64;
        until_stopped(stop, Duration::from_millis(10), || {
            sent += 1;
            assert_eq!(
                c.request(&["PUBLISH", "reauth:ch", &sent.to_string()]),
                b":1\r\n"
            );
        });
        assert_eq!(c.request(&["PUBLISH", "reauth:ch", "end"]), b":1\r\n");
        format!("{sent} published")
    }));
    let subscriber = thread::spawn(move || {
        let mut received = 0u64;
        loop {
            let push = sub.read_reply();
            let expected_end = b">3\r\n$7\r\nmessage\r\n$9\r\nreauth:ch\r\n$3\r\nend\r\n";
            if push == expected_end {
                break;
            }
            received += 1;
            let n = received.to_string();
            let want = format!(
                ">3\r\n$7\r\nmessage\r\n$9\r\nreauth:ch\r\n${}\r\n{n}\r\n",
                n.len()
            );
            assert_eq!(show(&push), show(want.as_bytes()), "message {received}");
        }
        assert_eq!(sub.request(&["PING"]), b"+PONG\r\n");
        (
            "RESP3 subscriber".to_string(),
            format!("{received} received in order"),
        )
    });

    // A RESP2 subscriber on a channel and a matching pattern (Redis refuses AUTH to a RESP2
    // subscribed connection; redauth runs it in RESP3 upstream and translates back), pinging
    // now and then, and its publisher.
    let mut sub2 = redauth.connect();
    sub2.label = "RESP2 subscriber".into();
    assert_eq!(
        sub2.request(&["SUBSCRIBE", "reauth:r2"]),
        b"*3\r\n$9\r\nsubscribe\r\n$9\r\nreauth:r2\r\n:1\r\n"
    );
    assert_eq!(
        sub2.request(&["PSUBSCRIBE", "reauth:r2*"]),
        b"*3\r\n$10\r\npsubscribe\r\n$10\r\nreauth:r2*\r\n:2\r\n"
    );
    running.push(scenario(
        "RESP2 publisher",
        &redauth,
        &stop,
        |mut c, stop| {
            let mut sent = 0u64;
            until_stopped(stop, Duration::from_millis(10), || {
                sent += 1;
                let receivers = c.request(&["PUBLISH", "reauth:r2", &sent.to_string()]);
                assert_eq!(receivers, b":2\r\n");
            });
            assert_eq!(c.request(&["PUBLISH", "reauth:r2", "end"]), b":2\r\n");
            format!("{sent} published")
        },
    ));
    let resp2_subscriber = thread::spawn(move || {
        let mut received = 0u64;
        let mut pongs_owed = 0u32;
        let message = |n: &str| {
            format!(
                "*3\r\n$7\r\nmessage\r\n$9\r\nreauth:r2\r\n${}\r\n{n}\r\n",
                n.len()
            )
        };
        let pmessage = |n: &str| {
            format!(
                "*4\r\n$8\r\npmessage\r\n$10\r\nreauth:r2*\r\n$9\r\nreauth:r2\r\n${}\r\n{n}\r\n",
                n.len()
            )
        };
        loop {
            let frame = next_frame(&mut sub2, &mut pongs_owed);
            if frame == message("end").into_bytes() {
                let p = next_frame(&mut sub2, &mut pongs_owed);
                assert_eq!(show(&p), show(pmessage("end").as_bytes()));
                break;
            }
            received += 1;
            let n = received.to_string();
            assert_eq!(show(&frame), show(message(&n).as_bytes()), "message {n}");
            let p = next_frame(&mut sub2, &mut pongs_owed);
            assert_eq!(show(&p), show(pmessage(&n).as_bytes()), "pmessage {n}");
            if received.is_multiple_of(50) {
                sub2.send(&cmd(&["PING"]));
                pongs_owed += 1;
            }
        }
        while pongs_owed > 0 {
            assert_eq!(sub2.read_reply(), SUBSCRIBED_PONG);
            pongs_owed -= 1;
        }
        assert_eq!(
            sub2.request(&["UNSUBSCRIBE"]),
            b"*3\r\n$11\r\nunsubscribe\r\n$9\r\nreauth:r2\r\n:1\r\n"
        );
        assert_eq!(
            sub2.request(&["PUNSUBSCRIBE"]),
            b"*3\r\n$12\r\npunsubscribe\r\n$10\r\nreauth:r2*\r\n:0\r\n"
        );
        assert_eq!(sub2.request(&["PING"]), b"+PONG\r\n");
        (
            "RESP2 subscriber".to_string(),
            format!("{received} messages and pmessages received in order"),
        )
    });

    // Blocked from the start to the end: BLPOP with no timeout (a PING pipelined behind it must
    // wait for it), and XREAD on `$` of a stream that already has an entry.
    let mut blpop = redauth.connect();
    blpop.label = "BLPOP 0".into();
    let mut blocked_pair = cmd(&["BLPOP", "reauth:bl", "0"]);
    blocked_pair.extend(cmd(&["PING"]));
    blpop.send(&blocked_pair);
    let mut xread = redauth.connect();
    xread.label = "XREAD $".into();
    assert_eq!(
        xread.request(&["XADD", "reauth:xs", "5-1", "f", "old"]),
        bulk("5-1")
    );
    xread.send(&cmd(&["XREAD", "BLOCK", "0", "STREAMS", "reauth:xs", "$"]));

    // A stream reader always blocked in XREAD BLOCK 0 (the first call on `$`, with entries
    // already there it must not see), and a producer adding an entry now and then.
    let mut reader = redauth.connect();
    reader.label = "stream reader".into();
    for id in ["0-1", "0-2"] {
        assert_eq!(
            reader.request(&["XADD", "reauth:st", id, "f", "pre"]),
            bulk(id)
        );
    }
    reader.send(&cmd(&[
        "XREAD",
        "COUNT",
        "1",
        "BLOCK",
        "0",
        "STREAMS",
        "reauth:st",
        "$",
    ]));
    running.push(scenario("producer", &redauth, &stop, |mut c, stop| {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(700));
            n += 1;
            let id = format!("{n}-0");
            assert_eq!(
                c.request(&["XADD", "reauth:st", &id, "f", &n.to_string()]),
                bulk(&id)
            );
        }
        let id = format!("{}-0", n + 1);
        assert_eq!(
            c.request(&["XADD", "reauth:st", &id, "f", "end"]),
            bulk(&id)
        );
        format!("{n} entries added")
    }));
    let stream_reader = thread::spawn(move || {
        let mut n = 0u64;
        loop {
            let reply = reader.read_reply();
            let id = format!("{}-0", n + 1);
            if reply == xread_reply("reauth:st", &id, "end").into_bytes() {
                break;
            }
            n += 1;
            let want = xread_reply("reauth:st", &id, &n.to_string());
            assert_eq!(show(&reply), show(want.as_bytes()), "entry {n}");
            reader.send(&cmd(&[
                "XREAD",
                "COUNT",
                "1",
                "BLOCK",
                "0",
                "STREAMS",
                "reauth:st",
                &id,
            ]));
        }
        (
            "stream reader".to_string(),
            format!("{n} entries read in order, each by one XREAD BLOCK 0"),
        )
    });

    // Let the tokens rotate: the first token, then ROTATIONS new ones each injected into every
    // connection, and one more so the last of those injections is surely done.
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_events(&redauth.logs(), "token refreshed").len() < ROTATIONS + 2 {
        assert!(
            Instant::now() < deadline,
            "tokens did not rotate:\n{}",
            redauth.output()
        );
        assert!(
            running.iter().all(|t| !t.is_finished()),
            "a scenario ended early:\n{}",
            redauth.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    // Now serve the clients blocked all along.
    let mut feeder = redauth.connect();
    assert_eq!(feeder.request(&["RPUSH", "reauth:bl", "served"]), b":1\r\n");
    assert_eq!(
        blpop.read_reply(),
        b"*2\r\n$9\r\nreauth:bl\r\n$6\r\nserved\r\n"
    );
    assert_eq!(blpop.read_reply(), b"+PONG\r\n");
    let id = "9999999999999-1";
    assert_eq!(
        feeder.request(&["XADD", "reauth:xs", id, "f", "new"]),
        bulk(id)
    );
    assert_eq!(
        show(&xread.read_reply()),
        show(xread_reply("reauth:xs", id, "new").as_bytes())
    );
    assert_eq!(whoami(&mut blpop), bulk(OID));
    assert_eq!(whoami(&mut xread), bulk(OID));
    for t in running
        .into_iter()
        .chain([subscriber, resp2_subscriber, stream_reader])
    {
        match t.join() {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => panic!("a scenario failed; redauth's logs:\n{}", redauth.output()),
        }
    }
    let logs = redauth.stop();
    eprintln!("{outcomes:#?}");
    let reauths = log_events(&logs, "re-authenticated with the new credential").len();
    eprintln!("re-authentications: {reauths}");
    assert!(
        reauths >= 12 * ROTATIONS,
        "{reauths} re-authentications:\n{logs}"
    );
    assert_eq!(
        log_events(
            &logs,
            "the server refused re-authentication; the connection keeps its current identity"
        )
        .len(),
        0
    );
    assert_eq!(
        cloud.expired_closes(),
        0,
        "the front closed connections for expiry"
    );
    assert!(!logs.contains("eyJ"), "a token in the logs");
}

/// Each blocking command, blocked with no timeout across three rotations, then served: the reply
/// is the one redis-server gives, and the connection is still the token's identity. A finite
/// timeout that spans rotations ends in the null reply of its protocol, not before it is due.
#[test]
fn every_blocking_command_is_served_after_rotations() {
    let cloud = TestCloud::start(Duration::from_secs(3));
    let redauth = cloud.redauth_cmd("managed-identity").start();
    let mut setup = redauth.connect();
    assert_eq!(
        setup.request(&["XGROUP", "CREATE", "bk:g", "grp", "$", "MKSTREAM"]),
        b"+OK\r\n"
    );
    // (command, what serves it, the reply redis-server gives)
    let cases: Vec<(Vec<&str>, Vec<&str>, &[u8])> = vec![
        (
            vec!["BLPOP", "bk:1", "0"],
            vec!["RPUSH", "bk:1", "a"],
            b"*2\r\n$4\r\nbk:1\r\n$1\r\na\r\n",
        ),
        (
            vec!["BRPOP", "bk:2", "0"],
            vec!["RPUSH", "bk:2", "a"],
            b"*2\r\n$4\r\nbk:2\r\n$1\r\na\r\n",
        ),
        (
            vec!["BLMOVE", "bk:3", "bk:3d", "LEFT", "RIGHT", "0"],
            vec!["RPUSH", "bk:3", "a"],
            b"$1\r\na\r\n",
        ),
        (
            vec!["BRPOPLPUSH", "bk:4", "bk:4d", "0"],
            vec!["RPUSH", "bk:4", "a"],
            b"$1\r\na\r\n",
        ),
        (
            vec!["BLMPOP", "0", "1", "bk:5", "LEFT"],
            vec!["RPUSH", "bk:5", "a"],
            b"*2\r\n$4\r\nbk:5\r\n*1\r\n$1\r\na\r\n",
        ),
        (
            vec!["BZPOPMIN", "bk:6", "0"],
            vec!["ZADD", "bk:6", "1", "m"],
            b"*3\r\n$4\r\nbk:6\r\n$1\r\nm\r\n$1\r\n1\r\n",
        ),
        (
            vec!["BZPOPMAX", "bk:7", "0"],
            vec!["ZADD", "bk:7", "2", "m"],
            b"*3\r\n$4\r\nbk:7\r\n$1\r\nm\r\n$1\r\n2\r\n",
        ),
        (
            vec!["BZMPOP", "0", "1", "bk:8", "MIN"],
            vec!["ZADD", "bk:8", "3", "m"],
            b"*2\r\n$4\r\nbk:8\r\n*1\r\n*2\r\n$1\r\nm\r\n$1\r\n3\r\n",
        ),
        (
            vec!["XREAD", "BLOCK", "0", "STREAMS", "bk:9", "$"],
            vec!["XADD", "bk:9", "1-1", "f", "v"],
            b"*1\r\n*2\r\n$4\r\nbk:9\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ),
        (
            vec![
                "XREADGROUP",
                "GROUP",
                "grp",
                "alice",
                "BLOCK",
                "0",
                "STREAMS",
                "bk:g",
                ">",
            ],
            vec!["XADD", "bk:g", "1-1", "f", "v"],
            b"*1\r\n*2\r\n$4\r\nbk:g\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ),
    ];
    let mut blocked: Vec<RespConn> = cases
        .iter()
        .map(|(command, _, _)| {
            let mut c = redauth.connect();
            c.label = command[0].to_string();
            c.send(&cmd(command));
            c
        })
        .collect();
    // Finite timeouts spanning rotations, in both protocols.
    let mut finite = redauth.connect();
    finite.label = "BLPOP 7".into();
    let mut finite3 = redauth.connect();
    finite3.label = "RESP3 XREAD BLOCK 7000".into();
    assert!(finite3.request(&["HELLO", "3"]).starts_with(b"%"));
    let started = Instant::now();
    finite.send(&cmd(&["BLPOP", "bk:none", "7"]));
    finite3.send(&cmd(&[
        "XREAD", "BLOCK", "7000", "STREAMS", "bk:none3", "$",
    ]));

    wait_for_refreshes(&redauth, 4);
    for (conn, (command, serve, reply)) in blocked.iter_mut().zip(&cases) {
        conn.expect_silence(Duration::ZERO);
        let served = setup.request(serve);
        assert!(matches!(served[0], b':' | b'$'), "{}", show(&served));
        assert_eq!(show(&conn.read_reply()), show(reply), "{command:?}");
        assert_eq!(whoami(conn), bulk(OID), "{command:?}");
    }
    assert_eq!(finite.read_reply(), b"*-1\r\n");
    assert_eq!(finite3.read_reply(), b"_\r\n");
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "the finite timeouts ended early"
    );
    assert_eq!(whoami(&mut finite), bulk(OID));
    let logs = redauth.stop();
    assert!(!logs.contains("refused re-authentication"), "{logs}");
    assert_eq!(
        cloud.expired_closes(),
        0,
        "the front closed connections for expiry"
    );
}
