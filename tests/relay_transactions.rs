//! MULTI/EXEC/DISCARD/WATCH through redauth, byte-identical to a direct connection, in RESP2 and
//! RESP3, including a WATCH conflict caused by another connection (null EXEC) and the error
//! forms (EXECABORT, runtime errors inside EXEC, nested MULTI).

mod support;

use support::*;

#[test]
fn multi_exec_and_discard_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "k", "1"]),
            Step::cmd(&["INCR", "k"]),
            Step::cmd(&["GET", "k"]),
            Step::cmd(&["EXEC"]),
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "d", "1"]),
            Step::cmd(&["DISCARD"]),
            Step::cmd(&["GET", "d"]),
            Step::cmd(&["DISCARD"]),
            Step::cmd(&["EXEC"]),
            // A transaction written in one go.
            Step::raw(
                &[
                    cmd(&["MULTI"]),
                    cmd(&["INCR", "p"]),
                    cmd(&["INCR", "p"]),
                    cmd(&["EXEC"]),
                ]
                .concat(),
                4,
            ),
        ],
    );
    assert!(
        transcript.contains(&"C< *3\\r\\n+OK\\r\\n:2\\r\\n$1\\r\\n2\\r\\n".to_string()),
        "{transcript:#?}"
    );
    assert!(
        transcript.contains(&"C< $-1\\r\\n".to_string()),
        "DISCARD did not discard: {transcript:#?}"
    );
}

#[test]
fn transaction_errors_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "k", "v"]),
            Step::cmd(&["NOSUCHCOMMAND"]),
            Step::cmd(&["EXEC"]),
            Step::cmd(&["GET", "k"]),
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "s", "text"]),
            Step::cmd(&["INCR", "s"]),
            Step::cmd(&["MULTI"]),
            Step::cmd(&["WATCH", "s"]),
            Step::cmd(&["EXEC"]),
        ],
    );
    assert!(
        transcript.iter().any(|l| l.starts_with("C< -EXECABORT")),
        "{transcript:#?}"
    );
}

#[test]
fn watch_conflict_from_another_connection_nulls_exec() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let steps = |hello: bool| {
        let mut steps = Vec::new();
        if hello {
            steps.push(Step::cmd(&["HELLO", "3"]));
        }
        steps.extend([
            Step::cmd(&["SET", "w", "0"]),
            Step::cmd(&["WATCH", "w"]),
            Step::side(&["SET", "w", "changed"]),
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "w", "mine"]),
            Step::cmd(&["EXEC"]),
            Step::cmd(&["GET", "w"]),
            // Without a conflict the same transaction goes through.
            Step::cmd(&["WATCH", "w"]),
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "w", "mine"]),
            Step::cmd(&["EXEC"]),
            Step::cmd(&["GET", "w"]),
            // UNWATCH forgets the watch.
            Step::cmd(&["WATCH", "w"]),
            Step::cmd(&["UNWATCH"]),
            Step::side(&["SET", "w", "again"]),
            Step::cmd(&["MULTI"]),
            Step::cmd(&["SET", "w", "last"]),
            Step::cmd(&["EXEC"]),
        ]);
        steps
    };

    let resp2 = assert_same_as_direct(&redis, &redauth, &steps(false));
    let exec_null = resp2.iter().position(|l| l == "C< *-1\\r\\n");
    assert!(
        exec_null.is_some(),
        "EXEC after a conflicting write was not null: {resp2:#?}"
    );
    assert!(
        resp2.contains(&format!("C< {}", escape(&bulk("changed")))),
        "{resp2:#?}"
    );

    let resp3 = assert_same_as_direct(&redis, &redauth, &steps(true));
    assert!(
        resp3.contains(&"C< _\\r\\n".to_string()),
        "RESP3 null EXEC missing: {resp3:#?}"
    );
}
