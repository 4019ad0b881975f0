//! The commands redauth answers or rewrites itself: client `AUTH` (answered `+OK`, never
//! forwarded), `HELLO … AUTH u p` (AUTH part removed), `RESET` (forwarded, then the upstream
//! connection is re-authenticated), `QUIT` (`+OK` and close). Whatever the client sends, the
//! upstream identity stays the configured user, and redis-server never sees a client credential
//! (its `ACL LOG` of failed authentications stays empty).

mod support;

use support::*;

/// Asserts redis-server recorded no failed AUTH: client credentials never reached it.
fn assert_no_auth_reached_server(redis: &TlsRedis) {
    let log = redis.direct().request(&["ACL", "LOG"]);
    assert_eq!(
        log,
        b"*0\r\n",
        "redis-server saw a failed AUTH: {}",
        show(&log)
    );
}

#[test]
fn auth_with_any_arguments_is_answered_ok_and_identity_is_kept() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();

    // AUTH as the very first command, before anything was relayed.
    assert_eq!(client.request(&["AUTH", "wrong-password"]), b"+OK\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    for auth in [
        vec!["AUTH", "someone", "wrong-password"],
        vec!["AUTH", USERNAME, "wrong-password"],
        vec!["auth", "default", ""],
        vec!["AUTH", "a", "b", "c"],
    ] {
        assert_eq!(client.request(&auth), b"+OK\r\n", "{auth:?}");
        assert_eq!(
            client.request(&["ACL", "WHOAMI"]),
            whoami_reply(),
            "after {auth:?}"
        );
    }
    assert_eq!(client.request(&["SET", "still", "works"]), b"+OK\r\n");
    assert_no_auth_reached_server(&redis);
}

#[test]
fn inline_auth_is_answered_ok() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    client.send(b"AUTH nobody nothing\r\n");
    assert_eq!(client.read_reply(), b"+OK\r\n");
    client.send(b"ACL WHOAMI\r\n");
    assert_eq!(client.read_reply(), whoami_reply());
    assert_no_auth_reached_server(&redis);
}

#[test]
fn hello_3_with_auth_and_setname_switches_protocol_and_names_the_connection() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();

    let hello = client.request(&["HELLO", "3", "AUTH", "x", "y", "SETNAME", "n"]);
    assert!(
        hello.starts_with(b"%7\r\n"),
        "HELLO reply: {}",
        show(&hello)
    );
    assert!(
        hello.windows(15).any(|w| w == b"$5\r\nproto\r\n:3\r\n"),
        "HELLO reply lacks proto 3: {}",
        show(&hello)
    );
    assert_eq!(client.request(&["CLIENT", "GETNAME"]), bulk("n"));
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    // The connection really speaks RESP3 now: a missing key is `_`, not `$-1`.
    assert_eq!(client.request(&["GET", "missing"]), b"_\r\n");
    assert_no_auth_reached_server(&redis);
}

#[test]
fn hello_with_auth_in_any_case_and_resp2_is_rewritten() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();

    let hello = client.request(&["hello", "2", "auth", "x", "y"]);
    assert!(
        hello.starts_with(b"*14\r\n"),
        "HELLO 2 reply: {}",
        show(&hello)
    );
    assert_eq!(client.request(&["GET", "missing"]), b"$-1\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());

    let hello = client.request(&["HeLLo", "3", "SETNAME", "first", "AuTh", "u", "p"]);
    assert!(
        hello.starts_with(b"%7\r\n"),
        "HELLO 3 reply: {}",
        show(&hello)
    );
    assert_eq!(client.request(&["CLIENT", "GETNAME"]), bulk("first"));
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    assert_no_auth_reached_server(&redis);
}

#[test]
fn reset_is_forwarded_and_the_connection_reauthenticated() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();

    assert!(client.request(&["HELLO", "3"]).starts_with(b"%7\r\n"));
    assert_eq!(
        client.request(&["CLIENT", "SETNAME", "before-reset"]),
        b"+OK\r\n"
    );
    assert_eq!(client.request(&["RESET"]), b"+RESET\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    // RESET really reached redis-server: the name is gone and the protocol is RESP2 again.
    assert_eq!(client.request(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert_eq!(client.request(&["SET", "after-reset", "1"]), b"+OK\r\n");
}

#[test]
fn reset_leaves_subscribed_mode_and_keeps_identity() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();

    assert_eq!(
        client.request(&["SUBSCRIBE", "chan"]),
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n"
    );
    assert_eq!(client.request(&["RESET"]), b"+RESET\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    assert_eq!(client.request(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(
        redis.direct().request(&["PUBSUB", "NUMSUB", "chan"]),
        b"*2\r\n$4\r\nchan\r\n:0\r\n"
    );
}

#[test]
fn reset_pipelined_with_later_commands_runs_them_as_the_configured_user() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    client.send(
        &[
            cmd(&["RESET"]),
            cmd(&["ACL", "WHOAMI"]),
            cmd(&["SET", "x", "1"]),
        ]
        .concat(),
    );
    assert_eq!(client.read_reply(), b"+RESET\r\n");
    assert_eq!(client.read_reply(), whoami_reply());
    assert_eq!(client.read_reply(), b"+OK\r\n");
}

#[test]
fn quit_answers_ok_and_closes() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    assert_eq!(client.request(&["SET", "q", "1"]), b"+OK\r\n");
    assert_eq!(client.request(&["QUIT"]), b"+OK\r\n");
    client.expect_eof();
}

#[test]
fn quit_as_first_command_answers_ok_and_closes() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    client.send(b"QUIT\r\n");
    assert_eq!(client.read_reply(), b"+OK\r\n");
    client.expect_eof();
}

#[test]
fn commands_pipelined_after_quit_are_not_executed_same_as_direct() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let bytes = [
        cmd(&["SET", "q", "1"]),
        cmd(&["QUIT"]),
        cmd(&["SET", "q", "2"]),
    ]
    .concat();
    for mut conn in [redis.direct(), redauth.connect()] {
        redis.direct().request(&["DEL", "q"]);
        conn.send(&bytes);
        let all = conn.read_to_eof();
        assert_eq!(
            all,
            b"+OK\r\n+OK\r\n",
            "[{}] got {}",
            conn.label,
            show(&all)
        );
        assert_eq!(
            redis.direct().request(&["GET", "q"]),
            bulk("1"),
            "[{}]",
            conn.label
        );
    }
}

#[test]
fn auth_and_hello_inside_a_pipeline_keep_reply_order() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    client.send(
        &[
            cmd(&["PING"]),
            cmd(&["AUTH", "x", "y"]),
            cmd(&["ECHO", "a"]),
            cmd(&["AUTH", "z"]),
            cmd(&["ACL", "WHOAMI"]),
            cmd(&["HELLO", "2", "AUTH", "u", "p", "SETNAME", "piped"]),
            cmd(&["CLIENT", "GETNAME"]),
            b"AUTH inline inline\r\n".to_vec(),
            cmd(&["INCR", "counter"]),
        ]
        .concat(),
    );
    assert_eq!(client.read_reply(), b"+PONG\r\n");
    assert_eq!(client.read_reply(), b"+OK\r\n");
    assert_eq!(client.read_reply(), bulk("a"));
    assert_eq!(client.read_reply(), b"+OK\r\n");
    assert_eq!(client.read_reply(), whoami_reply());
    let hello = client.read_reply();
    assert!(
        hello.starts_with(b"*14\r\n"),
        "HELLO reply: {}",
        show(&hello)
    );
    assert_eq!(client.read_reply(), bulk("piped"));
    assert_eq!(client.read_reply(), b"+OK\r\n");
    assert_eq!(client.read_reply(), b":1\r\n");
    assert_no_auth_reached_server(&redis);
}

/// `CLIENT REPLY OFF` silences intercepted commands too, exactly as redis-server does.
#[test]
fn client_reply_off_silences_intercepted_auth_like_direct() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd_n(&["CLIENT", "REPLY", "OFF"], 0),
            // Real credentials, so the direct connection's identity stays the same.
            Step::cmd_n(&["AUTH", USERNAME, PASSWORD], 0),
            Step::cmd_n(&["HELLO", "3", "AUTH", USERNAME, PASSWORD], 0),
            Step::cmd(&["CLIENT", "REPLY", "ON"]),
            Step::cmd(&["PING"]),
        ],
    );
    assert_eq!(transcript.last().unwrap(), "C< +PONG\\r\\n");
}

/// `CLIENT REPLY SKIP` applies to the next command even when redauth answers it itself: the
/// command after it must get its reply.
#[test]
fn client_reply_skip_before_an_intercepted_auth_skips_only_the_auth() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd_n(&["CLIENT", "REPLY", "SKIP"], 0),
            Step::cmd_n(&["AUTH", USERNAME, PASSWORD], 0),
            Step::cmd(&["PING"]),
            Step::cmd(&["INCR", "n"]),
        ],
    );
    assert_eq!(transcript.last().unwrap(), "C< :1\\r\\n");
}

/// With the *right* credentials, a client's AUTH/HELLO AUTH succeeds directly too, so a
/// conversation must look exactly the same through redauth — in transactions, behind a blocked
/// command, in RESP3 subscribed mode, around WATCH.
/// (AUTH racing a push already sent is covered separately below.)
#[test]
fn auth_with_the_real_credentials_is_indistinguishable_from_direct() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let auth = cmd(&["AUTH", USERNAME, PASSWORD]);
    let hello_auth = cmd(&["HELLO", "3", "AUTH", USERNAME, PASSWORD]);
    let scripts: Vec<Vec<Step>> = vec![
        // Inside MULTI: queued, and its +OK lands in the EXEC array.
        vec![
            Step::cmd(&["MULTI"]),
            Step::raw(&auth, 1),
            Step::cmd(&["INCR", "n"]),
            Step::cmd(&["EXEC"]),
        ],
        vec![
            Step::cmd(&["MULTI"]),
            Step::raw(&auth, 1),
            Step::cmd(&["NOSUCHCOMMAND"]),
            Step::cmd(&["EXEC"]),
            Step::cmd(&["PING"]),
        ],
        vec![
            Step::cmd(&["MULTI"]),
            Step::raw(&auth, 1),
            Step::cmd(&["DISCARD"]),
            Step::cmd(&["PING"]),
        ],
        vec![
            Step::cmd(&["MULTI"]),
            Step::raw(&hello_auth, 1),
            Step::cmd(&["EXEC"]),
            Step::cmd(&["GET", "missing"]),
        ],
        // Pipelined behind a blocked command: answered after it, in order.
        vec![
            Step::raw(
                &[
                    cmd(&["BLPOP", "q", "30"]),
                    auth.clone(),
                    hello_auth.clone(),
                    cmd(&["PING"]),
                ]
                .concat(),
                0,
            ),
            Step::WaitBlocked(1),
            Step::side(&["RPUSH", "q", "x"]),
            Step::read(4),
        ],
        // RESP3 subscribed mode.
        vec![
            Step::cmd(&["HELLO", "3"]),
            Step::cmd(&["SUBSCRIBE", "a"]),
            Step::raw(&[cmd(&["PING"]), auth.clone(), cmd(&["PING"])].concat(), 3),
        ],
        // AUTH between WATCH and MULTI does not disturb the transaction.
        vec![Step::raw(
            &[
                cmd(&["WATCH", "k"]),
                auth.clone(),
                cmd(&["MULTI"]),
                cmd(&["SET", "k", "1"]),
                cmd(&["EXEC"]),
            ]
            .concat(),
            5,
        )],
        // Inline, with quoting.
        vec![Step::raw(
            format!("AUTH \"{USERNAME}\" '{PASSWORD}'\r\nPING\r\n").as_bytes(),
            2,
        )],
    ];
    for script in scripts {
        assert_same_as_direct(&redis, &redauth, &script);
    }
}

/// A push that redis-server sent before it received the client's AUTH must reach the client
/// before the AUTH's `+OK`, as it does directly: client-side caching relies on an invalidation
/// arriving before any later reply. The ordering is a race in a relay that answers AUTH locally
/// as soon as no reply is outstanding, so each scenario is repeated; a correct relay never
/// diverges, a racy one diverges in a good share of runs.
#[test]
fn a_local_auth_reply_never_overtakes_a_push_already_sent() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let auth = cmd(&["AUTH", USERNAME, PASSWORD]);
    // Each run gets its own channel: a subscriber left by the previous run's
    // connection (still closing) must not change PUBLISH's receiver count.
    let pubsub = |channel: &str| {
        vec![
            Step::cmd(&["HELLO", "3"]),
            Step::cmd(&["SUBSCRIBE", channel]),
            Step::side(&["PUBLISH", channel, "m"]),
            Step::raw(&auth, 2),
        ]
    };
    let tracking = vec![
        Step::cmd(&["HELLO", "3"]),
        Step::cmd(&["CLIENT", "TRACKING", "ON"]),
        Step::cmd(&["GET", "cached"]),
        Step::side(&["SET", "cached", "new"]),
        Step::raw(&auth, 2),
    ];
    for name in ["pub/sub message", "tracking invalidation"] {
        for run in 1..=20 {
            let script = match name {
                "pub/sub message" => pubsub(&format!("chan-{run}")),
                _ => tracking.clone(),
            };
            let (direct, relayed) = run_both(&redis, &redauth, &script);
            if direct != relayed {
                eprintln!("{name}: run {run} diverged");
                assert_same(&direct, &relayed);
            }
        }
    }
}
