//! Plain relaying: commands through redauth reach the real TLS redis-server as the configured
//! user, and every reply is byte-identical to talking to redis-server directly — RESP2, RESP3
//! (every type, via `DEBUG PROTOCOL`), inline commands, small pipelines, fragmented writes — and
//! real clients (`redis` crate, `redis-cli`, a unix socket) work through it.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn set_get_whoami_through_redauth_reach_the_tls_server_as_configured_user() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();

    assert_eq!(client.request(&["SET", "greeting", "hello"]), b"+OK\r\n");
    assert_eq!(client.request(&["GET", "greeting"]), bulk("hello"));
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());

    // The write really landed in this redis-server, over its TLS port.
    assert_eq!(redis.direct().request(&["GET", "greeting"]), bulk("hello"));
    let info = String::from_utf8(client.request(&["CLIENT", "INFO"])).unwrap();
    let laddr = format!(" laddr=127.0.0.1:{} ", redis.tls_port());
    assert!(
        info.contains(&laddr),
        "upstream connection is not on the TLS port: {info}"
    );
}

#[test]
fn resp2_replies_of_every_kind_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let binary = "a\r\nb\0c\u{7f}";
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            Step::cmd(&["PING"]),
            Step::cmd(&["PING", "hello"]),
            Step::cmd(&["SET", "k", binary]),
            Step::cmd(&["GET", "k"]),
            Step::cmd(&["GET", "missing"]),
            Step::cmd(&["INCR", "k"]),
            Step::cmd(&["INCRBY", "n", "41"]),
            Step::cmd(&["INCRBYFLOAT", "f", "1.5"]),
            Step::cmd(&["HSET", "h", "f1", "v1", "f2", "v2"]),
            Step::cmd(&["HGETALL", "h"]),
            Step::cmd(&["RPUSH", "l", "a", "b", "c"]),
            Step::cmd(&["LRANGE", "l", "0", "-1"]),
            Step::cmd(&["SADD", "s", "1", "2", "3"]),
            Step::cmd(&["SMEMBERS", "s"]),
            Step::cmd(&["ZADD", "z", "1.5", "x", "2", "y"]),
            Step::cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
            Step::cmd(&["ZSCORE", "z", "x"]),
            Step::cmd(&["MGET", "k", "missing", "n"]),
            Step::cmd(&["TYPE", "h"]),
            Step::cmd(&["EXISTS", "k", "h", "nope"]),
            Step::cmd(&["NOSUCHCOMMAND", "x"]),
            Step::cmd(&["GET"]),
            Step::cmd(&["SCAN", "0", "MATCH", "nothing*"]),
            Step::cmd(&["DEL", "k", "h", "l"]),
            Step::cmd(&["DEBUG", "PROTOCOL", "map"]),
            Step::cmd(&["DEBUG", "PROTOCOL", "null"]),
        ],
    );
    // Guard against a vacuous pass (e.g. both sides answering NOAUTH).
    assert!(
        transcript.contains(&format!("C< {}", escape(&bulk(binary)))),
        "{transcript:#?}"
    );
    assert!(
        transcript.contains(&"C< :41\\r\\n".to_string()),
        "{transcript:#?}"
    );
}

#[test]
fn resp3_replies_of_every_type_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut steps = vec![
        Step::cmd(&["HELLO", "3"]),
        Step::cmd(&["HSET", "h", "f1", "v1"]),
        Step::cmd(&["HGETALL", "h"]),
        Step::cmd(&["SADD", "s", "m"]),
        Step::cmd(&["SMEMBERS", "s"]),
        Step::cmd(&["ZADD", "z", "1.5", "x"]),
        Step::cmd(&["ZSCORE", "z", "x"]),
        Step::cmd(&["GET", "missing"]),
        Step::cmd(&["CONFIG", "GET", "maxmemory-policy"]),
    ];
    for kind in [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push",
        "verbatim", "true", "false",
    ] {
        // `DEBUG PROTOCOL push` sends a push frame and then its reply.
        let replies = if kind == "push" { 2 } else { 1 };
        steps.push(Step::cmd_n(&["DEBUG", "PROTOCOL", kind], replies));
    }
    steps.push(Step::cmd(&["PING"]));
    let transcript = assert_same_as_direct(&redis, &redauth, &steps);

    let all = transcript.join("\n");
    for marker in [
        "C< %7", "C< %1", "C< ~1", "C< ,1.5", "C< _", "C< (", "C< |1", "C< >", "C< =", "C< #t",
    ] {
        assert!(all.contains(marker), "no {marker:?} in transcript:\n{all}");
    }
}

#[test]
fn inline_commands_and_empty_lines_are_byte_identical() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let transcript = assert_same_as_direct(
        &redis,
        &redauth,
        &[
            // Inline as the very first bytes of the connection.
            Step::raw(b"PING\r\n", 1),
            Step::raw(b"SET a \"b c\"\r\n", 1),
            Step::raw(b"GET a\r\n", 1),
            Step::raw(b"\r\n\r\nPING\r\n", 1),
            Step::raw(b"\n\nECHO 'x y'\n", 1),
            Step::raw(
                b"INCR n\r\nINCR n\r\n*2\r\n$3\r\nGET\r\n$1\r\nn\r\nPING\r\n",
                4,
            ),
        ],
    );
    assert_eq!(transcript[1], "C< +PONG\\r\\n");
    assert_eq!(transcript[5], format!("C< {}", escape(&bulk("b c"))));
}

#[test]
fn a_pipeline_in_one_write_is_answered_in_order() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend(cmd(&["RPUSH", "list", &i.to_string()]));
        pipeline.extend(cmd(&["LINDEX", "list", "-1"]));
    }
    let transcript = assert_same_as_direct(&redis, &redauth, &[Step::raw(&pipeline, 100)]);
    assert_eq!(
        transcript.last().unwrap(),
        &format!("C< {}", escape(&bulk("49")))
    );
}

#[test]
fn a_command_written_one_byte_at_a_time_is_relayed() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut client = redauth.connect();
    let bytes = [cmd(&["SET", "slow", "value"]), cmd(&["GET", "slow"])].concat();
    for byte in &bytes {
        client.send(&[*byte]);
    }
    assert_eq!(client.read_reply(), b"+OK\r\n");
    assert_eq!(client.read_reply(), bulk("value"));
}

#[test]
fn the_redis_crate_works_through_redauth_in_resp2_and_resp3() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let port = redauth.port();
    for url in [
        format!("redis://127.0.0.1:{port}/"),
        // Credentials in the URL make the crate send AUTH (RESP2) or HELLO 3 AUTH (RESP3); redauth
        // must swallow them and keep its own identity.
        format!("redis://someone:not-the-password@127.0.0.1:{port}/"),
        format!("redis://127.0.0.1:{port}/?protocol=resp3"),
        format!("redis://someone:not-the-password@127.0.0.1:{port}/?protocol=resp3"),
    ] {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{url}: {e}\n{}", redauth.output()));
        let _: () = redis::cmd("SET")
            .arg("crate-key")
            .arg(&url)
            .query(&mut con)
            .unwrap();
        let got: String = redis::cmd("GET").arg("crate-key").query(&mut con).unwrap();
        assert_eq!(got, url);
        let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut con).unwrap();
        assert_eq!(who, USERNAME, "{url}");
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("crate-counter")
            .cmd("INCR")
            .arg("crate-counter")
            .query(&mut con)
            .unwrap();
        assert_eq!(b, a + 1, "{url}");
    }
}

#[test]
fn redis_cli_works_through_redauth() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-cli not on PATH: skipping");
        return;
    }
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redauth.port().to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["SET", "cli-key", "cli value"]), "OK\n");
    assert_eq!(cli(&["GET", "cli-key"]), "cli value\n");
    assert_eq!(cli(&["ACL", "WHOAMI"]), format!("{USERNAME}\n"));
    // `-3` makes redis-cli open with `HELLO 3`.
    assert_eq!(cli(&["-3", "ACL", "WHOAMI"]), format!("{USERNAME}\n"));
}

#[test]
fn unix_socket_listener_relays_and_gets_the_requested_mode() {
    use std::os::unix::fs::PermissionsExt;
    let redis = TlsRedis::start();
    let path = redis.dir().join("redauth.sock");
    let redauth = redis
        .redauth_cmd()
        .args([
            "--unix-socket",
            path.to_str().unwrap(),
            "--unix-socket-mode",
            "0660",
        ])
        .listeners(2)
        .start();
    assert!(
        redauth.listeners().contains(&Listener::Unix(path.clone())),
        "no `listening` event with path {path:?}:\n{}",
        redauth.output()
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode is {mode:o}");

    let mut client = RespConn::connect_unix(&path);
    assert_eq!(client.request(&["SET", "via-unix", "1"]), b"+OK\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    // The TCP listener serves the same upstream.
    assert_eq!(redauth.connect().request(&["GET", "via-unix"]), bulk("1"));
}
