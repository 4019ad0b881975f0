//! The admin endpoints of the real binary: probes, `/metrics` after real traffic through a TLS
//! redis-server, readiness following the Entra credential (none yet, held, expired while the
//! identity endpoint fails), and `POST /quitquitquit`.

mod support;

use std::time::Duration;
use support::cloud::{whoami, TestCloud, OID};
use support::http::{self, sample};
use support::*;

/// No access token (JWTs start with base64url of `{"`) or listed secret in `text`.
fn assert_no_secret(text: &str, secrets: &[&str]) {
    assert!(!text.contains("eyJ"), "something JWT-shaped:\n{text}");
    for secret in secrets {
        assert!(!text.contains(secret), "a secret shows:\n{text}");
    }
}

#[test]
fn probes_and_unknown_paths() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let admin = redauth.admin_addr();

    let live = http::get(admin, "/livez");
    assert_eq!((live.status, live.body.as_str()), (200, "ok\n"));
    let started = http::get(admin, "/startupz");
    assert_eq!((started.status, started.body.as_str()), (200, "ok\n"));
    let ready = http::get(admin, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok\n"));

    assert_eq!(http::get(admin, "/").status, 404);
    assert_eq!(http::get(admin, "/readyz/extra").status, 404);
    assert_eq!(http::post(admin, "/readyz").status, 405);
    let wrong = http::get(admin, "/quitquitquit");
    assert_eq!(wrong.status, 405);
    assert!(
        wrong.headers.to_ascii_lowercase().contains("allow: post"),
        "{wrong:?}"
    );
    // None of that stopped anything.
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    assert_eq!(http::get(admin, "/readyz").status, 200);
}

#[test]
fn metrics_after_traffic() {
    let redis = TlsRedis::start();
    // No warm pool, so every upstream connection is one a client asked for.
    let redauth = redis.redauth(&["--pool-size", "0"]);
    let admin = redauth.admin_addr();

    let mut client = redauth.connect();
    assert_eq!(client.request(&["SET", "metrics:k", "v"]), b"+OK\r\n");
    assert_eq!(client.request(&["GET", "metrics:k"]), bulk("v"));
    let mut second = redauth.connect();
    assert_eq!(second.request(&["PING"]), b"+PONG\r\n");

    let response = http::get(admin, "/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .headers
            .contains("application/openmetrics-text; version=1.0.0"),
        "{}",
        response.headers
    );
    let text = &response.body;
    assert!(text.ends_with("# EOF\n"), "{text}");
    for series in [
        "redauth_client_connections",
        "redauth_client_connections_accepted_total",
        "redauth_client_connections_rejected_total",
        "redauth_commands_total",
        "redauth_bytes_total{direction=\"client_to_upstream\"}",
        "redauth_bytes_total{direction=\"upstream_to_client\"}",
        "redauth_upstream_connect_seconds_count",
        "redauth_upstream_connect_seconds_sum",
        "redauth_upstream_connect_seconds_bucket{le=\"+Inf\"}",
        "redauth_upstream_errors_total{kind=\"connect\"}",
        "redauth_upstream_errors_total{kind=\"tls\"}",
        "redauth_upstream_errors_total{kind=\"auth\"}",
        "redauth_upstream_errors_total{kind=\"timeout\"}",
        "redauth_upstream_errors_total{kind=\"io\"}",
        "redauth_upstream_errors_total{kind=\"closed\"}",
        "redauth_token_refresh_total{result=\"ok\"}",
        "redauth_token_refresh_total{result=\"failed\"}",
        "redauth_reauth_total{result=\"ok\"}",
        "redauth_reauth_total{result=\"failed\"}",
        "redauth_reauth_total{result=\"deferred\"}",
        "redauth_reauth_total{result=\"injected\"}",
    ] {
        let value = sample(text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!(
            value.is_finite() && value >= 0.0,
            "{series} = {value}\n{text}"
        );
    }
    // Two clients open, two upstream connections made, nothing failed.
    assert_eq!(
        sample(text, "redauth_client_connections"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(text, "redauth_client_connections_accepted_total"),
        Some(2.0)
    );
    assert_eq!(
        sample(text, "redauth_upstream_connect_seconds_count"),
        Some(2.0)
    );
    // SET, GET, PING; and exactly their replies: +OK, $1 v, +PONG.
    assert_eq!(sample(text, "redauth_commands_total"), Some(3.0), "{text}");
    assert_eq!(
        sample(
            text,
            "redauth_bytes_total{direction=\"upstream_to_client\"}"
        ),
        Some(19.0),
        "{text}"
    );
    let sent: usize = [
        cmd(&["SET", "metrics:k", "v"]),
        cmd(&["GET", "metrics:k"]),
        cmd(&["PING"]),
    ]
    .iter()
    .map(Vec::len)
    .sum();
    assert_eq!(
        sample(
            text,
            "redauth_bytes_total{direction=\"client_to_upstream\"}"
        ),
        Some(sent as f64),
        "{text}"
    );
    let connect_seconds = sample(text, "redauth_upstream_connect_seconds_sum").unwrap();
    assert!(connect_seconds > 0.0, "{text}");
    assert_eq!(
        sample(text, "redauth_upstream_errors_total{kind=\"tls\"}"),
        Some(0.0)
    );
    // A static password never expires: no expiry gauge, and no token was fetched.
    assert!(!text.contains("redauth_token_expiry_seconds "), "{text}");
    assert_eq!(
        sample(text, "redauth_token_refresh_total{result=\"ok\"}"),
        Some(0.0)
    );
    assert_no_secret(text, &[PASSWORD]);

    // Closed clients leave the gauge.
    drop(client);
    drop(second);
    eventually(&redauth, Duration::from_secs(10), "the gauge at 0", || {
        let text = http::get(admin, "/metrics").body;
        (sample(&text, "redauth_client_connections") == Some(0.0)).then_some(())
    });
}

#[test]
fn readiness_follows_the_entra_credential() {
    let cloud = TestCloud::start(Duration::from_secs(4));
    let secret = cloud.identity().header_secret().to_string();
    cloud.identity().set_failing(true);
    let redauth = cloud.redauth_cmd("managed-identity").start();
    let admin = redauth.admin_addr();

    // No token yet: alive, not started, not ready, and the reason says so.
    assert_eq!(http::get(admin, "/livez").status, 200);
    let startup = http::get(admin, "/startupz");
    assert_eq!(startup.status, 503, "{startup:?}");
    assert!(
        startup.body.starts_with("no credential yet: "),
        "{startup:?}"
    );
    let ready = http::get(admin, "/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.starts_with("no credential yet: "), "{ready:?}");
    assert_eq!(ready.body.lines().count(), 1, "{ready:?}");

    // The endpoint comes back: started and ready, with the token's time left in the metrics.
    cloud.identity().set_failing(false);
    eventually(&redauth, Duration::from_secs(30), "readiness", || {
        (http::get(admin, "/readyz").status == 200).then_some(())
    });
    assert_eq!(http::get(admin, "/startupz").status, 200);
    assert_eq!(whoami(&mut redauth.connect()), bulk(OID));
    let text = http::get(admin, "/metrics").body;
    let left = sample(&text, "redauth_token_expiry_seconds")
        .unwrap_or_else(|| panic!("no expiry gauge:\n{text}"));
    // The endpoint states expiry in whole seconds.
    assert!(left > 0.0 && left <= 5.0, "{left}\n{text}");
    assert!(
        sample(&text, "redauth_token_refresh_total{result=\"ok\"}").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "redauth_token_refresh_total{result=\"failed\"}").unwrap() >= 1.0,
        "{text}"
    );

    // The endpoint fails again and the token runs out: not ready, and the reason says why.
    cloud.identity().set_failing(true);
    let expired = eventually(&redauth, Duration::from_secs(30), "unreadiness", || {
        let ready = http::get(admin, "/readyz");
        (ready.status == 503).then_some(ready.body)
    });
    assert!(
        expired.starts_with("the credential expired at ")
            || expired.starts_with("no valid credential: the last token expired at "),
        "{expired}"
    );
    assert_eq!(expired.lines().count(), 1, "{expired}");
    // Started stays started; alive stays alive.
    assert_eq!(http::get(admin, "/startupz").status, 200);
    assert_eq!(http::get(admin, "/livez").status, 200);

    let text = http::get(admin, "/metrics").body;
    let logs = redauth.stop();
    assert_no_secret(
        &format!("{startup:?}{ready:?}{expired}{text}{logs}"),
        &[&secret],
    );
}

#[test]
fn quitquitquit_drains_and_exits_zero() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let admin = redauth.admin_addr();
    let mut client = redauth.connect();
    assert_eq!(client.request(&["PING"]), b"+PONG\r\n");

    let quit = http::post(admin, "/quitquitquit");
    assert_eq!(quit.status, 200, "{quit:?}");
    // Draining: not ready, while the open client is still served.
    let ready = http::get(admin, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (503, "draining\n"));
    assert_eq!(client.request(&["PING"]), b"+PONG\r\n");
    drop(client);

    let exited = redauth.wait_exit(Duration::from_secs(30));
    assert_eq!(exited.status.code(), Some(0), "{}", exited.stderr);
    let draining = log_events(&exited.stderr, "draining: /readyz now fails");
    assert_eq!(draining.len(), 1, "{}", exited.stderr);
    assert_eq!(draining[0]["fields"]["reason"], "POST /quitquitquit");
}

/// Runs `redauth wait` with `args` to its end.
fn redauth_wait(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redauth"))
        .arg("wait")
        .args(args)
        .env_remove("REDAUTH_ADMIN_LISTEN")
        .output()
        .expect("running redauth wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn redauth_wait_returns_once_started_and_gives_up_with_the_reason() {
    // Nothing there at all.
    let nobody = format!("127.0.0.1:{}", free_port());
    let (status, said) = redauth_wait(&["--admin", &nobody, "--timeout", "1s"]);
    assert_eq!(status, Some(1), "{said}");
    assert!(said.contains("did not answer 200 within 1s"), "{said}");
    assert!(said.contains("connecting to"), "{said}");

    // A redauth that has no token yet: not started.
    let cloud = TestCloud::start(Duration::from_secs(30));
    cloud.identity().set_failing(true);
    let redauth = cloud.redauth_cmd("managed-identity").start();
    let admin = redauth.admin_addr().to_string();
    let (status, said) = redauth_wait(&["--admin", &admin, "--timeout", "1s"]);
    assert_eq!(status, Some(1), "{said}");
    assert!(said.contains("last: 503 no credential yet"), "{said}");

    // The token comes: started.
    cloud.identity().set_failing(false);
    let (status, said) = redauth_wait(&["--admin", &admin, "--timeout", "30s"]);
    assert_eq!(status, Some(0), "{said}");
    assert!(said.starts_with("redauth wait: started"), "{said}");
    assert_eq!(http::get(redauth.admin_addr(), "/startupz").status, 200);
}

#[test]
fn the_version_and_commit_show_in_the_flag_the_startup_line_and_the_metrics() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redauth"))
        .arg("--version")
        .output()
        .expect("running redauth --version");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // `redauth 0.1.0 (abc123def456)`.
    let (name_and_version, commit) = version
        .strip_suffix(')')
        .and_then(|v| v.split_once(" ("))
        .unwrap_or_else(|| panic!("{version:?}"));
    assert_eq!(
        name_and_version,
        concat!("redauth ", env!("CARGO_PKG_VERSION"))
    );
    assert!(!commit.is_empty() && !commit.contains(' '), "{version:?}");

    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    let series = format!(
        "redauth_build_info{{version=\"{}\",commit=\"{commit}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&scrape, &series), Some(1.0), "{series}\n{scrape}");
    let started = eventually(
        &redauth,
        Duration::from_secs(10),
        "the startup line",
        || log_events(&redauth.logs(), "redauth started").pop(),
    );
    assert_eq!(started["fields"]["commit"], commit);
}
