//! How the real binary stops and turns clients away: SIGTERM drains (readiness fails at once, a
//! client blocked in BLPOP is still served), the exit statuses (143, 0 with
//! `--exit-zero-on-sigterm` or on SIGINT, 3 when the drain runs out, 1 when a port cannot be
//! bound), `--min-shutdown-delay`, `--max-connections` answering Redis's own error, and what
//! systemd hears (`READY=1` once serving with a first credential, `STOPPING=1` at the drain).

mod support;

use std::net::TcpListener;
use std::time::Duration;
use support::cloud::TestCloud;
use support::http;
use support::*;

/// Waits until redis-server shows a client blocked in `command`.
fn wait_blocked(redis: &TlsRedis, redauth: &Redauth, command: &str) {
    let mut direct = redis.direct();
    let needle = format!("cmd={command}");
    eventually(redauth, Duration::from_secs(10), "a blocked client", || {
        let list = direct.request(&["CLIENT", "LIST"]);
        String::from_utf8_lossy(&list)
            .contains(&needle)
            .then_some(())
    });
}

#[test]
fn sigterm_serves_a_blocked_client_to_the_end_then_exits_143() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--max-shutdown-delay", "60s"]);
    let admin = redauth.admin_addr();
    let mut blocked = redauth.connect();
    blocked.send(&cmd(&["BLPOP", "drain:list", "3"]));
    wait_blocked(&redis, &redauth, "blpop");

    redauth.signal("TERM");
    let ready = eventually(&redauth, Duration::from_secs(10), "draining", || {
        let ready = http::get(admin, "/readyz");
        (ready.status == 503).then_some(ready)
    });
    assert_eq!(ready.body, "draining\n");
    // Still alive while draining.
    assert_eq!(http::get(admin, "/livez").status, 200);

    // Once redauth has stopped accepting (with this session still open, as logged below), the
    // client is served during the drain: by the push, or by its own timeout if the push came
    // too late.
    eventually(
        &redauth,
        Duration::from_secs(10),
        "stopped accepting",
        || {
            redauth
                .logs()
                .contains("stopped accepting clients; waiting for open sessions to finish")
                .then_some(())
        },
    );
    let mut direct = redis.direct();
    direct.request(&["RPUSH", "drain:list", "served"]);
    let reply = blocked.read_reply();
    let pushed = b"*2\r\n$10\r\ndrain:list\r\n$6\r\nserved\r\n".to_vec();
    assert!(
        reply == pushed || reply == b"*-1\r\n",
        "the blocked client got {}",
        show(&reply)
    );
    drop(blocked);

    let exited = redauth.wait_exit(Duration::from_secs(30));
    assert_eq!(exited.status.code(), Some(143), "{}", exited.stderr);
    for phase in [
        "draining: /readyz now fails",
        "stopped accepting clients; waiting for open sessions to finish",
        "every session has finished; exiting",
    ] {
        assert_eq!(
            log_events(&exited.stderr, phase).len(),
            1,
            "{phase}\n{}",
            exited.stderr
        );
    }
    let stopped = &log_events(
        &exited.stderr,
        "stopped accepting clients; waiting for open sessions to finish",
    )[0];
    assert_eq!(stopped["fields"]["sessions"], 1, "{stopped}");
    assert_eq!(stopped["level"], "INFO");
}

#[test]
fn min_shutdown_delay_keeps_accepting_and_exit_zero_on_sigterm() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--min-shutdown-delay", "3s", "--exit-zero-on-sigterm"]);
    let admin = redauth.admin_addr();
    assert_eq!(http::get(admin, "/readyz").status, 200);

    redauth.signal("TERM");
    eventually(&redauth, Duration::from_secs(10), "draining", || {
        (http::get(admin, "/readyz").status == 503).then_some(())
    });
    // Not ready, but still accepting for the minimum delay.
    let mut late = redauth.connect();
    assert_eq!(late.request(&["PING"]), b"+PONG\r\n");
    drop(late);

    let exited = redauth.wait_exit(Duration::from_secs(30));
    assert_eq!(exited.status.code(), Some(0), "{}", exited.stderr);
}

#[test]
fn sigint_exits_zero() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    redauth.signal("INT");
    let exited = redauth.wait_exit(Duration::from_secs(30));
    assert_eq!(exited.status.code(), Some(0), "{}", exited.stderr);
    let draining = log_events(&exited.stderr, "draining: /readyz now fails");
    assert_eq!(
        draining[0]["fields"]["reason"], "SIGINT",
        "{}",
        exited.stderr
    );
}

#[test]
fn a_drain_that_runs_out_cuts_the_rest_and_exits_3() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--max-shutdown-delay", "500ms"]);
    let mut idle = redauth.connect();
    assert_eq!(idle.request(&["PING"]), b"+PONG\r\n");

    redauth.signal("TERM");
    let exited = redauth.wait_exit(Duration::from_secs(30));
    assert_eq!(exited.status.code(), Some(3), "{}", exited.stderr);
    let cut = log_events(
        &exited.stderr,
        "the drain period ran out: closing the sessions still open",
    );
    assert_eq!(cut.len(), 1, "{}", exited.stderr);
    assert_eq!(cut[0]["fields"]["sessions"], 1);
    idle.expect_eof();
}

#[test]
fn an_admin_address_in_use_is_a_config_error_naming_the_flag() {
    let redis = TlsRedis::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let exited = redis
        .redauth_cmd()
        .args(["--admin-listen", addr.as_str()])
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(
        exited
            .stderr
            .contains(&format!("--admin-listen {addr}: cannot bind")),
        "{}",
        exited.stderr
    );
}

#[test]
fn beyond_max_connections_a_client_gets_redis_error_and_is_closed() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--max-connections", "2"]);
    let admin = redauth.admin_addr();
    let mut first = redauth.connect();
    let mut second = redauth.connect();
    assert_eq!(first.request(&["PING"]), b"+PONG\r\n");
    assert_eq!(second.request(&["PING"]), b"+PONG\r\n");

    let mut third = redauth.connect();
    assert_eq!(
        third.read_reply(),
        b"-ERR max number of clients reached\r\n"
    );
    third.expect_eof();
    // The ones already served are untouched.
    assert_eq!(first.request(&["PING"]), b"+PONG\r\n");

    // A slot frees when a client leaves.
    drop(second);
    eventually(&redauth, Duration::from_secs(10), "a free slot", || {
        let mut next = redauth.connect();
        next.send(&cmd(&["PING"]));
        (next.read_reply() == b"+PONG\r\n").then_some(())
    });

    let text = http::get(admin, "/metrics").body;
    assert!(
        http::sample(&text, "redauth_client_connections_rejected_total").unwrap() >= 1.0,
        "{text}"
    );
    let logs = redauth.stop();
    assert!(
        !log_events(
            &logs,
            "max number of clients reached: turning new clients away \
             (logged at most every 10 s; see redauth_client_connections_rejected_total)"
        )
        .is_empty(),
        "{logs}"
    );
}

#[test]
fn idle_clients_are_closed_but_blocked_and_subscribed_ones_are_not() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--idle-timeout", "1s"]);
    let mut idle = redauth.connect();
    assert_eq!(idle.request(&["PING"]), b"+PONG\r\n");
    let mut subscriber = redauth.connect();
    assert_eq!(
        subscriber.request(&["SUBSCRIBE", "idle:ch"]),
        b"*3\r\n$9\r\nsubscribe\r\n$7\r\nidle:ch\r\n:1\r\n"
    );
    let mut blocked = redauth.connect();
    blocked.send(&cmd(&["BLPOP", "idle:list", "0"]));
    let mut busy = redauth.connect();

    // The idle client is closed, silently, as Redis does; a client that keeps talking is not.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        assert_eq!(busy.request(&["PING"]), b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    idle.expect_eof();

    // Subscribed and blocked clients stay.
    assert_eq!(busy.request(&["PUBLISH", "idle:ch", "hi"]), b":1\r\n");
    assert_eq!(
        subscriber.read_reply(),
        b"*3\r\n$7\r\nmessage\r\n$7\r\nidle:ch\r\n$2\r\nhi\r\n"
    );
    assert_eq!(busy.request(&["RPUSH", "idle:list", "x"]), b":1\r\n");
    assert_eq!(
        blocked.read_reply(),
        b"*2\r\n$9\r\nidle:list\r\n$1\r\nx\r\n"
    );
}

#[test]
fn systemd_hears_ready_only_once_a_first_token_is_held() {
    let cloud = TestCloud::start(Duration::from_secs(30));
    cloud.identity().set_failing(true);
    let dir = tempfile::tempdir().expect("a scratch directory");
    let socket_path = dir.path().join("notify.sock");
    let systemd =
        std::os::unix::net::UnixDatagram::bind(&socket_path).expect("binding NOTIFY_SOCKET");
    let redauth = cloud
        .redauth_cmd("managed-identity")
        .env("NOTIFY_SOCKET", socket_path.display().to_string())
        .start();
    // Listening, but the token endpoint fails: not ready yet.
    systemd
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut message = [0u8; 256];
    if let Ok(n) = systemd.recv(&mut message) {
        panic!(
            "{:?} before any token",
            String::from_utf8_lossy(&message[..n])
        );
    }
    assert_eq!(http::get(redauth.admin_addr(), "/startupz").status, 503);

    cloud.identity().set_failing(false);
    systemd
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let n = systemd
        .recv(&mut message)
        .expect("READY=1 once a token comes");
    assert_eq!(&message[..n], b"READY=1\n");
    assert_eq!(http::get(redauth.admin_addr(), "/startupz").status, 200);
}

#[test]
fn systemd_hears_ready_once_serving_and_stopping_when_the_drain_begins() {
    let redis = TlsRedis::start();
    let socket_path = redis.dir().join("notify.sock");
    let systemd =
        std::os::unix::net::UnixDatagram::bind(&socket_path).expect("binding NOTIFY_SOCKET");
    systemd
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let redauth = redis
        .redauth_cmd()
        .env("NOTIFY_SOCKET", socket_path.display().to_string())
        .start();
    let mut message = [0u8; 256];
    let n = systemd.recv(&mut message).expect("READY=1 within 20 s");
    assert_eq!(&message[..n], b"READY=1\n");
    // Ready means serving.
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    redauth.signal("TERM");
    let n = systemd.recv(&mut message).expect("STOPPING=1 within 20 s");
    assert_eq!(&message[..n], b"STOPPING=1\n");
    assert_eq!(
        redauth.wait_exit(Duration::from_secs(20)).status.code(),
        Some(143)
    );
}
