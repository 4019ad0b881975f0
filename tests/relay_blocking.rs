//! Blocking commands through redauth: BLPOP/BZPOPMIN served by another connection, commands
//! pipelined behind a blocked one, timeouts, CLIENT UNBLOCK, and streams (XREAD BLOCK,
//! XREADGROUP BLOCK) in RESP2 and RESP3. Each step that unblocks first waits until redis-server
//! reports the client as blocked, so the test proves the command really blocked.

mod support;

use support::*;

#[test]
fn blpop_served_by_another_client_is_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd_n(&["BLPOP", "q", "30"], 0),
            Step::WaitBlocked(1),
            Step::side(&["RPUSH", "q", "x"]),
            Step::read(1),
            // A command pipelined behind a blocked one is answered after it.
            Step::raw(&[cmd(&["BZPOPMIN", "z", "30"]), cmd(&["PING"])].concat(), 0),
            Step::WaitBlocked(1),
            Step::side(&["ZADD", "z", "2.5", "member"]),
            Step::read(2),
            // Timing out returns a null array.
            Step::cmd(&["BLPOP", "empty", "0.05"]),
            Step::cmd(&["WAIT", "0", "0"]),
        ],
    );
    assert!(
        transcript.contains(&"C< *2\\r\\n$1\\r\\nq\\r\\n$1\\r\\nx\\r\\n".to_string()),
        "{transcript:#?}"
    );
    assert!(
        transcript.contains(&"C< *-1\\r\\n".to_string()),
        "{transcript:#?}"
    );
}

#[test]
fn client_unblock_releases_a_blocked_client() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    assert_eq!(
        client.request(&["CLIENT", "SETNAME", "blocked-one"]),
        b"+OK\r\n"
    );
    client.send(&cmd(&["BLPOP", "never", "0"]));

    let mut side = redis.direct();
    let id = poll_blocked_client_id(&mut side, "blocked-one");
    assert_eq!(side.request(&["CLIENT", "UNBLOCK", &id]), b":1\r\n");
    assert_eq!(client.read_reply(), b"*-1\r\n");
    assert_eq!(client.request(&["PING"]), b"+PONG\r\n");
}

/// The id of the client named `name` once it is blocked (CLIENT LIST shows flags `b`).
fn poll_blocked_client_id(side: &mut RespConn, name: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list = String::from_utf8(side.request(&["CLIENT", "LIST"])).unwrap();
        let line = list
            .lines()
            .find(|l| l.contains(&format!(" name={name} ")) && l.contains(" flags=b "));
        if let Some(line) = line {
            return line
                .split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .unwrap()
                .to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "client {name} never blocked: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn streams_with_blocking_reads_are_byte_identical_in_resp2_and_resp3() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    for hello in [false, true] {
        let mut steps = Vec::new();
        if hello {
            steps.push(Step::cmd(&["HELLO", "3"]));
        }
        steps.extend([
            Step::cmd(&["XADD", "s", "1-1", "f", "v1"]),
            Step::cmd_n(&["XREAD", "BLOCK", "30000", "STREAMS", "s", "$"], 0),
            Step::WaitBlocked(1),
            Step::side(&["XADD", "s", "2-1", "f", "v2"]),
            Step::read(1),
            Step::cmd(&["XRANGE", "s", "-", "+"]),
            Step::cmd(&["XREAD", "COUNT", "10", "STREAMS", "s", "0"]),
            Step::cmd(&["XGROUP", "CREATE", "s", "g", "0"]),
            Step::cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]),
            Step::cmd_n(
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "BLOCK",
                    "30000",
                    "STREAMS",
                    "s",
                    ">",
                ],
                0,
            ),
            Step::WaitBlocked(1),
            Step::side(&["XADD", "s", "3-1", "f", "v3"]),
            Step::read(1),
            Step::cmd(&["XPENDING", "s", "g"]),
            Step::cmd(&["XREAD", "BLOCK", "50", "STREAMS", "s", "$"]),
        ]);
        let transcript = assert_same_as_direct(&redis, &redauth, &steps);
        let all = transcript.join("\n");
        assert!(
            all.contains("$3\\r\\n2-1\\r\\n*2\\r\\n$1\\r\\nf\\r\\n$2\\r\\nv2"),
            "{all}"
        );
        assert!(
            all.contains("$3\\r\\n3-1\\r\\n*2\\r\\n$1\\r\\nf\\r\\n$2\\r\\nv3"),
            "{all}"
        );
    }
}
