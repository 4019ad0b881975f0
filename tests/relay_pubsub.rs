//! Pub/sub through redauth, RESP2 and RESP3, byte-identical to a direct connection: subscribe,
//! psubscribe, ssubscribe, messages published by another connection, PING and (RESP3) ordinary
//! commands while subscribed, refused commands (RESP2), unsubscribe.

mod support;

use support::*;

#[test]
fn resp2_pubsub_is_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd_n(&["SUBSCRIBE", "a", "b"], 2),
            Step::cmd(&["PSUBSCRIBE", "p*"]),
            Step::side(&["PUBLISH", "a", "m1"]),
            Step::read(1),
            Step::side(&["PUBLISH", "pa", "m2"]),
            Step::read(1),
            Step::side(&["PUBLISH", "b", "bin\r\nary"]),
            Step::read(1),
            Step::cmd(&["PING"]),
            Step::cmd(&["PING", "hi"]),
            // Refused in RESP2 subscribed mode, with redis-server's own error.
            Step::cmd(&["GET", "x"]),
            Step::cmd(&["UNSUBSCRIBE", "a"]),
            Step::side(&["PUBLISH", "a", "not delivered"]),
            Step::cmd(&["UNSUBSCRIBE", "b"]),
            Step::cmd(&["PUNSUBSCRIBE", "p*"]),
            // Out of subscribed mode: a normal PONG again.
            Step::cmd(&["PING"]),
            Step::cmd(&["SET", "after", "1"]),
        ],
    );
    let all = transcript.join("\n");
    assert!(
        all.contains("$7\\r\\nmessage\\r\\n$1\\r\\na\\r\\n$2\\r\\nm1"),
        "{all}"
    );
    assert!(
        all.contains("$8\\r\\npmessage\\r\\n$2\\r\\np*\\r\\n$2\\r\\npa\\r\\n$2\\r\\nm2"),
        "{all}"
    );
    assert!(
        all.contains("S< :0"),
        "PUBLISH after UNSUBSCRIBE reached a subscriber: {all}"
    );
    assert!(all.contains("C< -ERR Can't execute 'get'"), "{all}");
}

/// redauth runs a RESP2 client's subscribed connection in RESP3 upstream (so it can
/// re-authenticate it) and translates back: the corners of that translation.
#[test]
fn resp2_subscribed_mode_corners_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["PSUBSCRIBE", "p*"]),
            // No channel subscribed: the confirmation's channel is a null.
            Step::cmd(&["UNSUBSCRIBE"]),
            Step::cmd(&["CLIENT", "INFO"]),
            Step::cmd(&["HELLO", "3"]),
            Step::cmd(&["AUTH", "someone", "pw"]),
            Step::cmd(&["PING", "a", "b"]),
            Step::cmd(&["SSUBSCRIBE", "s"]),
            Step::side(&["SPUBLISH", "s", "shard"]),
            Step::read(1),
            Step::cmd(&["SUNSUBSCRIBE"]),
            Step::cmd(&["PUNSUBSCRIBE"]),
            // Back to RESP2 proper: HELLO works, and so does everything else.
            Step::cmd(&["HGETALL", "nothing"]),
            Step::cmd(&["SUBSCRIBE", "again"]),
            Step::cmd(&["UNSUBSCRIBE", "again"]),
            Step::cmd(&["PING"]),
        ],
    );
    let all = transcript.join("\n");
    assert!(
        all.contains("$11\\r\\nunsubscribe\\r\\n$-1\\r\\n:1"),
        "{all}"
    );
    assert!(all.contains("C< -ERR Can't execute 'client|info'"), "{all}");
    assert!(all.contains("C< -ERR Can't execute 'hello'"), "{all}");
}

#[test]
fn resp3_pubsub_is_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["HELLO", "3"]),
            Step::cmd_n(&["SUBSCRIBE", "a", "b"], 2),
            Step::cmd(&["PSUBSCRIBE", "p*"]),
            Step::cmd(&["SSUBSCRIBE", "shard"]),
            Step::side(&["PUBLISH", "a", "m1"]),
            Step::read(1),
            Step::side(&["PUBLISH", "pa", "m2"]),
            Step::read(1),
            Step::side(&["SPUBLISH", "shard", "m3"]),
            Step::read(1),
            // RESP3 allows any command while subscribed; replies interleave with pushes in order.
            Step::cmd(&["PING"]),
            Step::cmd(&["SET", "k", "v"]),
            Step::cmd(&["GET", "k"]),
            Step::cmd(&["GET", "missing"]),
            Step::side(&["PUBLISH", "b", "m4"]),
            Step::cmd(&["ECHO", "after-push"]),
            Step::read(1),
            Step::cmd_n(&["UNSUBSCRIBE"], 2),
            Step::cmd(&["PUNSUBSCRIBE", "p*"]),
            Step::cmd(&["SUNSUBSCRIBE", "shard"]),
            Step::cmd(&["PING"]),
        ],
    );
    let all = transcript.join("\n");
    assert!(
        all.contains("C< >3\\r\\n$7\\r\\nmessage\\r\\n$1\\r\\na\\r\\n$2\\r\\nm1"),
        "{all}"
    );
    assert!(all.contains("C< >4\\r\\n$8\\r\\npmessage"), "{all}");
    assert!(all.contains("C< >3\\r\\n$8\\r\\nsmessage"), "{all}");
    assert!(all.contains("C< _\\r\\n"), "{all}");
}

#[test]
fn a_subscriber_receives_many_messages_in_order() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut subscriber = redauth.connect();
    assert_eq!(
        subscriber.request(&["SUBSCRIBE", "firehose"]),
        b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n"
    );
    let mut publisher = redis.direct();
    let n = 2000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(cmd(&["PUBLISH", "firehose", &format!("message {i}")]));
    }
    publisher.send(&batch);
    for i in 0..n {
        let payload = format!("message {i}");
        let expected = [
            b"*3\r\n$7\r\nmessage\r\n$8\r\nfirehose\r\n".to_vec(),
            bulk(&payload),
        ]
        .concat();
        assert_eq!(subscriber.read_reply(), expected, "message {i}");
    }
    for _ in 0..n {
        assert_eq!(publisher.read_reply(), b":1\r\n");
    }
}

/// SUBSCRIBE queued in a transaction subscribes at EXEC, inside the EXEC array.
/// redauth must notice, or it would take the next message for the reply to a
/// later command (here QUIT, which redauth answers through a stand-in).
#[test]
fn subscribing_inside_multi_is_tracked() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SUBSCRIBE", "q"]),
            Step::cmd(&["EXEC"]),
            Step::side(&["PUBLISH", "q", "first"]),
            Step::cmd_n(&["QUIT"], 2),
        ],
    );
    let all = transcript.join("\n");
    assert!(all.contains("$5\\r\\nfirst"), "message lost: {all}");
}
