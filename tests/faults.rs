//! Faults on the upstream side: a server restarted mid-run, a name that does not resolve, an
//! expired certificate, a server that never answers. Clients get one clear `-ERR redauth: …` line
//! naming the cause; redauth keeps running and serves again as soon as the upstream is back.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use support::*;

/// Everything a client gets for one PING before redauth closes the connection.
fn first_reply(redauth: &Redauth) -> String {
    let mut client = redauth.connect();
    client.send(&cmd(&["PING"]));
    String::from_utf8(client.read_to_eof()).expect("UTF-8 reply")
}

#[test]
fn a_server_restarted_mid_run_is_reported_then_served_again() {
    let mut redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut before = redauth.connect();
    assert_eq!(before.request(&["SET", "faults:k", "v"]), b"+OK\r\n");

    redis.kill();
    // The open client's connection went with the server's: it is closed, not left hanging.
    // (EOF, or a reset when the GET was still unread as it closed.)
    before.send(&cmd(&["GET", "faults:k"]));
    let mut socket = before.writer();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    match std::io::Read::read(&mut socket, &mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the client was not closed: {other:?}"),
    }
    // New clients are told why, in one line.
    let reply = first_reply(&redauth);
    assert!(
        reply.starts_with("-ERR redauth: upstream unreachable (127.0.0.1:")
            && reply.ends_with("\r\n")
            && reply.matches("\r\n").count() == 1,
        "{reply:?}"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = redauth.connect();
        let reply = c.request(&["PING"]);
        if reply == b"+PONG\r\n" {
            assert_eq!(c.request(&["ACL", "WHOAMI"]), whoami_reply());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not served again: {}",
            show(&reply)
        );
        thread::sleep(Duration::from_millis(200));
    }
    // Still the same process.
    assert!(redauth.logs().contains("listening"));
}

#[test]
fn a_name_that_does_not_resolve_is_reported() {
    let redauth = RedauthCmd::new()
        .args([
            "--upstream",
            "rediss://redauth-test-no-such-host.invalid:6380",
            "--auth",
            "none",
        ])
        .start();
    let reply = first_reply(&redauth);
    assert!(
        reply.starts_with(
            "-ERR redauth: upstream unreachable (redauth-test-no-such-host.invalid:6380): "
        ),
        "{reply:?}"
    );
    // And keeps serving (the same answer) rather than exiting.
    assert_eq!(first_reply(&redauth), reply);
}

/// `openssl s_server` presenting `cert`, on a free port.
fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> (Child, u16) {
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-accept", &port.to_string(), "-cert"])
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl on PATH");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

#[test]
fn an_expired_certificate_is_a_tls_error_naming_it() {
    let redis = TlsRedis::start();
    let certs = redis.certs();
    let (mut server, port) = tls_server(&certs.expired_cert, &certs.expired_key);
    let redauth = RedauthCmd::new()
        .args([
            "--upstream",
            &format!("rediss://127.0.0.1:{port}"),
            "--ca-file",
            &certs.ca.display().to_string(),
            "--auth",
            "none",
        ])
        .start();
    let reply = first_reply(&redauth);
    let _ = server.kill();
    assert!(
        reply.starts_with(&format!(
            "-ERR redauth: TLS handshake with upstream failed (127.0.0.1:{port}): "
        )) && reply.contains("xpired"),
        "{reply:?}"
    );
}

#[test]
fn a_server_that_never_answers_times_out_clearly() {
    // Accepts connections (the kernel does) but never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let redauth = RedauthCmd::new()
        .args([
            "--upstream",
            &format!("rediss://127.0.0.1:{port}"),
            "--auth",
            "none",
            "--connect-timeout",
            "1s",
            "--pool-size",
            "0",
        ])
        .start();
    let reply = first_reply(&redauth);
    assert_eq!(
        reply,
        format!("-ERR redauth: upstream connection timed out (127.0.0.1:{port}): no answer within 1s\r\n")
    );
    drop(silent);
}
