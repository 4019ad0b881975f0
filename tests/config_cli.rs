//! Configuration sources and their precedence: flags > `REDAUTH_*` environment > `--config`
//! TOML file > defaults, observed from outside — which listen address redauth logs, which upstream
//! it dials (named in its error line), which user it authenticates as — plus startup refusals.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::*;

/// Writes a complete TOML config for `redis` with the given `listen` and `upstream` values.
fn config_file(redis: &TlsRedis, listen: &str, upstream: &str, username: &str) -> PathBuf {
    let path = redis.dir().join("redauth.toml");
    let toml = format!(
        "upstream = {upstream:?}\n\
         listen = [{listen:?}]\n\
         ca_file = {ca:?}\n\
         auth = \"password\"\n\
         username = {username:?}\n\
         password_file = {pw:?}\n\
         log_format = \"json\"\n",
        ca = redis.certs().ca.display().to_string(),
        pw = redis.password_file().display().to_string(),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn ip_of(redauth: &Redauth) -> String {
    redauth.addr().ip().to_string()
}

/// Waits until redauth serves a request, then returns every TCP address it logged.
fn tcp_listeners_after_serving(redauth: &Redauth) -> Vec<std::net::SocketAddr> {
    assert_eq!(
        redauth.connect().request(&["PING"]),
        b"+PONG\r\n",
        "{}",
        redauth.output()
    );
    redauth
        .listeners()
        .into_iter()
        .filter_map(|l| match l {
            Listener::Tcp(addr) => Some(addr),
            Listener::Unix(_) => None,
        })
        .collect()
}

#[test]
fn listen_address_precedence_is_flag_then_env_then_file() {
    let redis = TlsRedis::start();
    let file = config_file(&redis, "127.0.0.2:0", &redis.upstream_url(), USERNAME);
    let base = || {
        RedauthCmd::new()
            .bare()
            .args(["--config", file.to_str().unwrap()])
    };

    let from_file = base().start();
    assert_eq!(ip_of(&from_file), "127.0.0.2", "{}", from_file.output());
    assert_eq!(tcp_listeners_after_serving(&from_file).len(), 1);

    let from_env = base().env("REDAUTH_LISTEN", "127.0.0.3:0").start();
    assert_eq!(ip_of(&from_env), "127.0.0.3", "{}", from_env.output());
    assert_eq!(
        tcp_listeners_after_serving(&from_env).len(),
        1,
        "{}",
        from_env.output()
    );

    let from_flag = base()
        .env("REDAUTH_LISTEN", "127.0.0.3:0")
        .args(["--listen", "127.0.0.1:0"])
        .start();
    assert_eq!(ip_of(&from_flag), "127.0.0.1", "{}", from_flag.output());
    assert_eq!(
        tcp_listeners_after_serving(&from_flag).len(),
        1,
        "{}",
        from_flag.output()
    );
}

#[test]
fn upstream_precedence_is_flag_then_env_then_file() {
    let redis = TlsRedis::start();
    let file_upstream = format!("127.0.0.1:{}", free_port());
    let env_upstream = format!("127.0.0.1:{}", free_port());
    let file = config_file(
        &redis,
        "127.0.0.1:0",
        &format!("rediss://{file_upstream}"),
        USERNAME,
    );
    let base = || {
        RedauthCmd::new()
            .bare()
            .args(["--config", file.to_str().unwrap()])
    };
    let first_reply = |redauth: &Redauth| {
        let mut client = redauth.connect();
        String::from_utf8_lossy(&client.request(&["ACL", "WHOAMI"])).into_owned()
    };

    let from_file = base().start();
    let reply = first_reply(&from_file);
    assert!(
        reply.starts_with("-ERR redauth: ") && reply.contains(&file_upstream),
        "{reply:?}"
    );

    let from_env = base()
        .env("REDAUTH_UPSTREAM", format!("rediss://{env_upstream}"))
        .start();
    let reply = first_reply(&from_env);
    assert!(
        reply.starts_with("-ERR redauth: ") && reply.contains(&env_upstream),
        "{reply:?}"
    );

    let from_flag = base()
        .env("REDAUTH_UPSTREAM", format!("rediss://{env_upstream}"))
        .args(["--upstream", &redis.upstream_url()])
        .start();
    assert_eq!(first_reply(&from_flag).as_bytes(), whoami_reply());
}

#[test]
fn username_precedence_is_flag_then_env_then_file() {
    let redis = TlsRedis::start();
    let file = config_file(&redis, "127.0.0.1:0", &redis.upstream_url(), USERNAME);
    let base = || {
        RedauthCmd::new()
            .bare()
            .args(["--config", file.to_str().unwrap()])
    };

    let from_file = base().start();
    assert_eq!(
        from_file.connect().request(&["ACL", "WHOAMI"]),
        whoami_reply()
    );

    // The environment overrides the file: an unknown user is rejected upstream.
    let from_env = base().env("REDAUTH_USERNAME", "nobody").start();
    let mut client = from_env.connect();
    client.send(&cmd(&["ACL", "WHOAMI"]));
    let reply = String::from_utf8_lossy(&client.read_to_eof()).into_owned();
    assert!(
        reply.starts_with("-ERR redauth: "),
        "env username not used: {reply:?}"
    );

    // The flag overrides the environment.
    let from_flag = base()
        .env("REDAUTH_USERNAME", "nobody")
        .args(["--username", USERNAME])
        .start();
    assert_eq!(
        from_flag.connect().request(&["ACL", "WHOAMI"]),
        whoami_reply()
    );
}

#[test]
fn every_setting_can_come_from_the_environment() {
    let redis = TlsRedis::start();
    let redauth = RedauthCmd::new()
        .bare()
        .env("REDAUTH_LISTEN", "127.0.0.1:0")
        .env("REDAUTH_LOG_FORMAT", "json")
        .env("REDAUTH_UPSTREAM", redis.upstream_url())
        .env("REDAUTH_CA_FILE", redis.certs().ca.display().to_string())
        .env("REDAUTH_AUTH", "password")
        .env("REDAUTH_USERNAME", USERNAME)
        .env(
            "REDAUTH_PASSWORD_FILE",
            redis.password_file().display().to_string(),
        )
        .env("REDAUTH_CONNECT_TIMEOUT", "5s")
        .start();
    assert_eq!(
        redauth.connect().request(&["ACL", "WHOAMI"]),
        whoami_reply()
    );
}

#[test]
fn password_can_come_from_redauth_password() {
    let redis = TlsRedis::start();
    let mut args = redis.redauth_args();
    let at = args.iter().position(|a| a == "--password-file").unwrap();
    args.drain(at..at + 2);
    let redauth = RedauthCmd::new()
        .args(args)
        .env("REDAUTH_PASSWORD", PASSWORD)
        .start();
    assert_eq!(
        redauth.connect().request(&["ACL", "WHOAMI"]),
        whoami_reply()
    );
}

#[test]
fn several_listen_flags_all_serve() {
    let redis = TlsRedis::start();
    let redauth = redis
        .redauth_cmd()
        .args(["--listen", "127.0.0.2:0", "--connect-timeout", "10s"])
        .listeners(2)
        .start();
    let addrs = tcp_listeners_after_serving(&redauth);
    assert_eq!(addrs.len(), 2, "{}", redauth.output());
    for addr in addrs {
        let mut client = RespConn::connect_addr(addr);
        assert_eq!(
            client.request(&["ACL", "WHOAMI"]),
            whoami_reply(),
            "via {addr}"
        );
    }
}

#[test]
fn a_missing_config_file_is_refused_at_startup() {
    let redis = TlsRedis::start();
    let missing = redis.dir().join("does-not-exist.toml");
    let exited = RedauthCmd::new()
        .args(["--config", missing.to_str().unwrap()])
        .run_to_exit(Duration::from_secs(20));
    assert!(!exited.status.success(), "{exited:?}");
    assert!(
        exited.stderr.contains("does-not-exist.toml"),
        "stderr does not name the file:\n{}",
        exited.stderr
    );
}

#[test]
fn an_invalid_config_file_is_refused_at_startup() {
    let redis = TlsRedis::start();
    let bad = redis.dir().join("bad.toml");
    std::fs::write(&bad, "upstream = [not toml\n").unwrap();
    let exited = RedauthCmd::new()
        .args(["--config", bad.to_str().unwrap()])
        .run_to_exit(Duration::from_secs(20));
    assert!(!exited.status.success(), "{exited:?}");
    assert!(!exited.stderr.trim().is_empty(), "no error on stderr");
}

#[test]
fn an_unknown_auth_mode_is_refused_at_startup() {
    let redis = TlsRedis::start();
    let exited = RedauthCmd::new()
        .args(redis.redauth_args_with("--auth", "telepathy"))
        .run_to_exit(Duration::from_secs(20));
    assert!(!exited.status.success(), "{exited:?}");
    assert!(
        exited.stderr.contains("telepathy"),
        "stderr does not name the bad value:\n{}",
        exited.stderr
    );
}

/// Runs redauth with `cmd` expecting a refused configuration: exit status 2.
fn refused(cmd: RedauthCmd) -> String {
    let exited = cmd.run_to_exit(Duration::from_secs(20));
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    exited.stderr
}

fn assert_says(stderr: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            stderr.lines().any(|l| l.contains(line)),
            "stderr lacks {line:?}:\n{stderr}"
        );
    }
}

#[test]
fn every_config_error_is_reported_at_once_naming_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redauth.toml");
    std::fs::write(
        &file,
        "upstrem = \"rediss://x:1\"\npool_size = \"four\"\npassword = \"hunter2\"\nlog_level = \"warning\"\n",
    )
    .unwrap();
    let f = file.display();
    let stderr = refused(
        RedauthCmd::new()
            .bare()
            .args([
                "--config",
                &f.to_string(),
                "--upstream",
                "rediss://cache:6380",
            ])
            .args(["--ca-file", "/nonexistent/ca.pem", "--auth", "none"])
            .args([
                "--client-cert",
                dir.path().to_str().unwrap(),
                "--client-key",
                &f.to_string(),
            ])
            .env("REDAUTH_THREADS", "many")
            .env("REDAUTH_ALLOW_REMOTE_CLIENTS", "maybe")
            .env("REDAUTH_LISTEN", "nowhere")
            .env("REDAUTH_UPSTREM", "x"),
    );
    assert_says(
        &stderr,
        &[
            &format!("upstrem in {f}: not a setting (did you mean upstream?)"),
            &format!("pool_size in {f}: expected a whole number (0 or more), got a string"),
            &format!("password in {f}: a password does not go in the config file: use password_file, or the REDAUTH_PASSWORD variable"),
            &format!("log_level in {f}: \"warning\" is not a log level (did you mean warn?): use trace, debug, info, warn, error or off"),
            "REDAUTH_THREADS: expected a whole number (0 or more), got \"many\"",
            "REDAUTH_ALLOW_REMOTE_CLIENTS: expected true or false, got \"maybe\"",
            "REDAUTH_LISTEN: \"nowhere\" has no port",
            "--ca-file /nonexistent/ca.pem: no such file",
            &format!("--client-cert {}: is a directory, not a file", dir.path().display()),
            "warning: REDAUTH_UPSTREM is not a redauth setting and is ignored (did you mean REDAUTH_UPSTREAM?)",
        ],
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn unknown_log_levels_are_refused_and_directives_accepted() {
    for (flag, shown) in [
        ("verbose", "\"verbose\""),
        (
            "warning",
            "\"warning\" is not a log level (did you mean warn?)",
        ),
    ] {
        let stderr = refused(
            RedauthCmd::new()
                .args(["--upstream", "rediss://127.0.0.1:1", "--auth", "none"])
                .args(["--log-level", flag]),
        );
        assert_says(&stderr, &[&format!("--log-level: {shown}")]);
    }
    let redauth = RedauthCmd::new()
        .args(["--upstream", "rediss://127.0.0.1:1", "--auth", "none"])
        .args(["--log-level", "redauth=debug,info"])
        .start();
    // Logged at DEBUG just after the listeners: the directive took effect.
    eventually(
        &redauth,
        std::time::Duration::from_secs(10),
        "a DEBUG line",
        || {
            redauth
                .logs()
                .contains("relay threads started")
                .then_some(())
        },
    );
}

#[test]
fn missing_secret_files_name_their_flag() {
    let stderr = refused(
        RedauthCmd::new()
            .args(["--upstream", "rediss://127.0.0.1:1"])
            .args(["--password-file", "/nonexistent/pw"])
            .args(["--client-password-file", "/nonexistent/client-pw"]),
    );
    assert_says(
        &stderr,
        &[
            "--password-file /nonexistent/pw: no such file",
            "--client-password-file /nonexistent/client-pw: no such file",
        ],
    );
}

#[test]
fn addresses_in_use_are_config_errors_naming_their_flags() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = refused(
        RedauthCmd::new()
            .bare()
            .args(["--upstream", "rediss://127.0.0.1:1", "--auth", "none"])
            .args(["--listen", &addr, "--admin-listen", &addr]),
    );
    assert_says(
        &stderr,
        &[
            &format!("--listen {addr}: cannot bind: Address already in use"),
            &format!("--admin-listen {addr}: cannot bind: Address already in use"),
        ],
    );
}

#[test]
fn a_bare_port_listens_on_loopback_and_host_names_resolve() {
    let port = free_port();
    let redauth = RedauthCmd::new()
        .bare()
        .args(["--upstream", "rediss://127.0.0.1:1", "--auth", "none"])
        .args(["--listen", &port.to_string(), "--log-format", "json"])
        .start();
    assert_eq!(
        redauth.addr(),
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    );
    drop(redauth);
    let by_name = RedauthCmd::new()
        .bare()
        .args(["--upstream", "rediss://127.0.0.1:1", "--auth", "none"])
        .args(["--listen", "localhost:0", "--log-format", "json"])
        .start();
    assert!(by_name.addr().ip().is_loopback(), "{}", by_name.output());
}

#[test]
fn no_auth_and_no_password_hints_at_entra() {
    let stderr = refused(RedauthCmd::new().args(["--upstream", "rediss://127.0.0.1:1"]));
    assert_says(
        &stderr,
        &["no upstream password and no --auth: for Entra ID tokens, did you mean --auth entra?"],
    );
}
