//! What a client sees when things go wrong.
//!
//! Upstream failures (unreachable, untrusted certificate, wrong server name, missing client
//! certificate, rejected credentials) answer the client's first command with exactly one line
//! `-ERR redauth: <what failed> (<host:port>): <cause>` and then close; redauth keeps serving.
//! Malformed RESP from a client gets redis-server's own protocol error, byte for byte, then close,
//! without disturbing other clients. A `redis://` upstream is refused at startup unless allowed.

mod support;

use std::time::Duration;

use support::*;

/// Sends a PING and returns everything the client receives before redauth closes the connection.
fn first_command_reply(redauth: &Redauth) -> String {
    let mut client = redauth.connect();
    client.send(&cmd(&["PING"]));
    String::from_utf8(client.read_to_eof()).expect("error reply is UTF-8")
}

/// Asserts `reply` is one `-ERR redauth: … (<upstream>): …` line, and returns it.
fn assert_upstream_error(reply: &str, upstream: &str) -> String {
    assert!(
        reply.starts_with("-ERR redauth: "),
        "not a redauth error line: {reply:?}"
    );
    assert!(
        reply.ends_with("\r\n") && reply.matches("\r\n").count() == 1,
        "expected exactly one line, got {reply:?}"
    );
    assert!(
        reply.contains(&format!("({upstream}): ")),
        "error does not name ({upstream}): {reply:?}"
    );
    reply.to_string()
}

#[test]
fn unreachable_upstream_gives_one_error_line_then_close() {
    let redis = TlsRedis::start();
    let closed = format!("127.0.0.1:{}", free_port());
    let redauth =
        Redauth::start(redis.redauth_args_with("--upstream", &format!("rediss://{closed}")));

    assert_upstream_error(&first_command_reply(&redauth), &closed);
    // redauth is still up and answers the next client the same way.
    assert_upstream_error(&first_command_reply(&redauth), &closed);
}

#[test]
fn untrusted_server_certificate_is_a_tls_error() {
    let redis = TlsRedis::start();
    let other_ca = redis.certs().other_ca.display().to_string();
    let redauth = Redauth::start(redis.redauth_args_with("--ca-file", &other_ca));
    let upstream = format!("127.0.0.1:{}", redis.tls_port());

    let line = assert_upstream_error(&first_command_reply(&redauth), &upstream).to_lowercase();
    assert!(
        line.contains("tls") || line.contains("certificate"),
        "no TLS cause: {line:?}"
    );
}

#[test]
fn server_name_mismatch_is_a_tls_error_and_matching_name_works() {
    let redis = TlsRedis::start();
    let upstream = format!("127.0.0.1:{}", redis.tls_port());

    let wrong = redis.redauth(&["--tls-server-name", "not-the-server.example"]);
    let line = assert_upstream_error(&first_command_reply(&wrong), &upstream).to_lowercase();
    assert!(
        line.contains("tls") || line.contains("certificate"),
        "no TLS cause: {line:?}"
    );

    let right = redis.redauth(&["--tls-server-name", "localhost"]);
    assert_eq!(right.connect().request(&["ACL", "WHOAMI"]), whoami_reply());
}

#[test]
fn wrong_password_gives_one_error_line_without_the_password() {
    let redis = TlsRedis::start();
    let bad = redis.dir().join("bad-password");
    let bad_password = "not-the-right-one-Zq81";
    std::fs::write(&bad, bad_password).unwrap();
    let redauth = Redauth::start(redis.redauth_args_with("--password-file", bad.to_str().unwrap()));
    let upstream = format!("127.0.0.1:{}", redis.tls_port());

    let reply = first_command_reply(&redauth);
    let line = assert_upstream_error(&reply, &upstream);
    assert!(
        line.to_lowercase().contains("auth") || line.contains("WRONGPASS"),
        "cause does not say authentication failed: {line:?}"
    );
    assert!(
        !line.contains(bad_password),
        "error line shows the password: {line:?}"
    );
    let logs = redauth.stop();
    assert!(
        !logs.contains(bad_password),
        "logs show the password:\n{logs}"
    );
}

#[test]
fn unknown_username_gives_one_error_line() {
    let redis = TlsRedis::start();
    let redauth = Redauth::start(redis.redauth_args_with("--username", "nobody"));
    assert_upstream_error(
        &first_command_reply(&redauth),
        &format!("127.0.0.1:{}", redis.tls_port()),
    );
}

#[test]
fn client_certificate_is_presented_when_configured() {
    let redis = TlsRedis::start_with(ClientCerts::Required);
    let upstream = format!("127.0.0.1:{}", redis.tls_port());

    let without = redis.redauth(&[]);
    assert_upstream_error(&first_command_reply(&without), &upstream);

    let certs = redis.certs();
    let with = redis.redauth(&[
        "--client-cert",
        certs.client_cert.to_str().unwrap(),
        "--client-key",
        certs.client_key.to_str().unwrap(),
    ]);
    let mut client = with.connect();
    assert_eq!(client.request(&["SET", "mtls", "ok"]), b"+OK\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
}

#[test]
fn plaintext_upstream_is_refused_at_startup() {
    let redis = TlsRedis::start();
    let plain = format!("redis://127.0.0.1:{}", redis.plain_port());
    let exited = RedauthCmd::new()
        .args(redis.redauth_args_with("--upstream", &plain))
        .run_to_exit(Duration::from_secs(20));
    assert!(
        !exited.status.success(),
        "redis:// upstream was accepted: {exited:?}"
    );
    let stderr = exited.stderr.to_lowercase();
    assert!(
        stderr.contains("plaintext") || stderr.contains("redis://") || stderr.contains("tls"),
        "stderr does not explain the refusal:\n{}",
        exited.stderr
    );
    assert!(
        !stderr.contains("\"message\":\"listening\""),
        "redauth listened before refusing:\n{}",
        exited.stderr
    );
}

#[test]
fn plaintext_upstream_works_when_explicitly_allowed() {
    let redis = TlsRedis::start();
    let plain = format!("redis://127.0.0.1:{}", redis.plain_port());
    let redauth = RedauthCmd::new()
        .args(redis.redauth_args_with("--upstream", &plain))
        .arg("--allow-plaintext-upstream")
        .start();
    let mut client = redauth.connect();
    assert_eq!(client.request(&["SET", "plain", "yes"]), b"+OK\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    // The upstream connection really is on the plaintext port.
    let info = String::from_utf8(client.request(&["CLIENT", "INFO"])).unwrap();
    let laddr = format!(" laddr=127.0.0.1:{} ", redis.plain_port());
    assert!(
        info.contains(&laddr),
        "redauth's connection is not on the plaintext port: {info}"
    );
}

/// Each malformed input, alone and after a valid command, checked against redis-server itself.
#[test]
fn malformed_resp_gets_redis_protocol_error_then_close_like_direct() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let inline_too_big = vec![b'a'; 70 * 1024];
    let cases: [(&[u8], &[u8]); 7] = [
        (
            b"*1\r\n$600000000\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            b"-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            &inline_too_big,
            b"-ERR Protocol error: too big inline request\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-1\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"PING \"a\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"PING\r\n*3000000000\r\n",
            b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    // A client connected all along, before and after, is not disturbed.
    let mut bystander = redauth.connect();
    assert_eq!(bystander.request(&["SET", "bystander", "1"]), b"+OK\r\n");

    for (input, expected) in cases {
        let mut direct = redis.direct();
        direct.send(input);
        let direct_bytes = direct.read_to_eof();
        assert_eq!(
            direct_bytes,
            expected,
            "redis-server itself answered {}",
            show(input)
        );

        let mut client = redauth.connect();
        client.send(input);
        let relayed = client.read_to_eof();
        assert!(
            relayed == expected,
            "input {}\n  direct:  {}\n  relayed: {}",
            show(input),
            show(expected),
            show(&relayed)
        );
        assert_eq!(
            bystander.request(&["INCR", "bystander"]).first(),
            Some(&b':')
        );
    }
    assert_eq!(bystander.request(&["GET", "bystander"]), bulk("8"));
}

#[test]
fn megabytes_of_random_bytes_close_that_client_only() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut bystander = redauth.connect();
    assert_eq!(bystander.request(&["SET", "bystander", "1"]), b"+OK\r\n");
    // A fixed pseudo-random stream (xorshift), 4 MiB, several times over.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..5 {
        let garbage: Vec<u8> = (0..4 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let client = redauth.connect();
        let mut writer = client.writer();
        // redauth may close before all of it is written: that is the point.
        let _ = std::io::Write::write_all(&mut writer, &garbage);
        let _ = writer.shutdown(std::net::Shutdown::Write);
        let mut socket = client.writer();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        // Whatever errors the garbage earned, the connection ends (EOF or reset), promptly.
        match std::io::Read::read_to_end(&mut socket, &mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "round {round}"
            ),
        }
        assert_eq!(
            bystander.request(&["INCR", "bystander"]),
            format!(":{}\r\n", round + 2).into_bytes()
        );
    }
}

#[test]
fn a_client_vanishing_mid_command_does_not_disturb_others() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut bystander = redauth.connect();
    assert_eq!(bystander.request(&["PING"]), b"+PONG\r\n");
    {
        let mut quitter = redauth.connect();
        quitter.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nonly part");
    }
    {
        let mut blocked = redauth.connect();
        blocked.send(&cmd(&["BLPOP", "nothing", "0"]));
    }
    assert_eq!(bystander.request(&["SET", "k", "fine"]), b"+OK\r\n");
    assert_eq!(bystander.request(&["GET", "k"]), bulk("fine"));
}
