//! Logs: JSON lines on stderr, and secrets never in them — not the configured password (from a
//! file or from `REDAUTH_PASSWORD`), not a password a client sends in AUTH/HELLO — even at
//! `--log-level trace` and across re-authentication (RESET) and graceful shutdown.

mod support;

use support::*;

const CLIENT_PASSWORD: &str = "client-side-secret-Kx93";

/// Drives a session that exercises every path where a credential is handled.
fn exercise(redauth: &Redauth) {
    let mut client = redauth.connect();
    assert_eq!(client.request(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(
        client.request(&["AUTH", "someone", CLIENT_PASSWORD]),
        b"+OK\r\n"
    );
    let hello = client.request(&["HELLO", "3", "AUTH", "someone", CLIENT_PASSWORD]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    assert_eq!(client.request(&["RESET"]), b"+RESET\r\n");
    assert_eq!(client.request(&["ACL", "WHOAMI"]), whoami_reply());
    assert_eq!(client.request(&["QUIT"]), b"+OK\r\n");
}

fn assert_no_secrets(logs: &str) {
    assert!(
        !logs.contains(PASSWORD),
        "configured password appears in the logs:\n{logs}"
    );
    assert!(
        !logs.contains(CLIENT_PASSWORD),
        "client AUTH password appears in the logs:\n{logs}"
    );
}

#[test]
fn password_from_file_never_appears_in_trace_logs() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--log-level", "trace"]);
    exercise(&redauth);
    assert_no_secrets(&redauth.stop());
}

#[test]
fn password_from_env_never_appears_in_trace_logs() {
    let redis = TlsRedis::start();
    let mut args = redis.redauth_args();
    let at = args.iter().position(|a| a == "--password-file").unwrap();
    args.drain(at..at + 2);
    let redauth = RedauthCmd::new()
        .args(args)
        .args(["--log-level", "trace"])
        .env("REDAUTH_PASSWORD", PASSWORD)
        .start();
    exercise(&redauth);
    assert_no_secrets(&redauth.stop());
}

#[test]
fn trace_level_logs_connection_activity() {
    let redis = TlsRedis::start();
    let quiet = redis.redauth(&["--log-level", "info"]);
    exercise(&quiet);
    let quiet_logs = quiet.stop();
    let verbose = redis.redauth(&["--log-level", "trace"]);
    exercise(&verbose);
    let verbose_logs = verbose.stop();

    let levels = |logs: &str| -> Vec<String> {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["level"].as_str().map(str::to_string))
            .collect()
    };
    let quiet_levels = levels(&quiet_logs);
    assert!(
        quiet_levels
            .iter()
            .all(|l| !matches!(l.as_str(), "DEBUG" | "TRACE")),
        "--log-level info still logged debug/trace:\n{quiet_logs}"
    );
    assert!(
        levels(&verbose_logs)
            .iter()
            .any(|l| matches!(l.as_str(), "DEBUG" | "TRACE")),
        "--log-level trace logged nothing below INFO for a whole session:\n{verbose_logs}"
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--log-level", "debug"]);
    exercise(&redauth);
    let logs = redauth.stop();
    assert!(!logs.trim().is_empty());
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nfull log:\n{logs}"));
        assert!(
            event["level"].is_string() && event["fields"].is_object(),
            "odd event: {line}"
        );
    }
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_and_start_with_a_summary_line() {
    let redis = TlsRedis::start();
    // Text format, stderr a pipe (as under journald or `kubectl logs`), NO_COLOR unset.
    let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    args.extend(redis.redauth_args());
    let redauth = RedauthCmd::new()
        .bare()
        .args(args)
        .env("NO_COLOR", "")
        .start_until("redauth started");
    let logs = redauth.stop();
    assert!(
        !logs.contains("\x1b["),
        "ANSI escapes in a piped log:\n{logs}"
    );
    let started = logs
        .lines()
        .find(|l| l.contains("redauth started"))
        .unwrap_or_else(|| panic!("no startup line:\n{logs}"));
    for field in [
        "version=",
        &format!("auth=password for user {USERNAME}"),
        "upstream=127.0.0.1:",
        "tls_server_name=127.0.0.1",
        "listen=[127.0.0.1:",
        "admin=127.0.0.1:",
    ] {
        assert!(started.contains(field), "{field} missing: {started}");
    }
    assert!(!logs.contains(PASSWORD), "{logs}");
}

/// `redauth 2>&1 | head`: once the reader of stderr is gone, log lines are dropped and redauth
/// serves on. (The log formatter used to report the failed write with `eprintln!` to the same
/// closed stderr, which panicked: exit status 101 on the next log line.)
#[test]
fn a_closed_stderr_costs_the_log_lines_not_the_process() {
    use std::io::{BufRead, BufReader};
    let server = TlsRedis::start();
    let port = free_port();
    let mut child = server
        .redauth_cmd()
        .bare()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "debug",
        ])
        .command()
        .spawn()
        .expect("spawning redauth");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("redauth started") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("reading stderr") > 0,
            "redauth ended before it started"
        );
    }
    drop(stderr);
    // Each client logs lines at debug level, now into the closed pipe.
    for _ in 0..3 {
        let mut client = RespConn::connect(port);
        assert_eq!(client.request(&["PING"]), b"+PONG\r\n");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "redauth exited after its stderr closed"
    );
    let _ = child.kill();
    let _ = child.wait();
}
