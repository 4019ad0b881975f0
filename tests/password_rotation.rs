//! A static password that changes while redauth runs, against a real TLS redis-server, as a
//! Kubernetes Secret changes under a mounted volume (a `..data` symlink swapped for a new
//! directory): readiness says whether the server takes the password redauth holds, a fixed
//! password file makes it ready again without a restart, a rotation re-authenticates every live
//! connection (a RESP2 subscriber and a blocked client among them) and closes none, and a new
//! password the server refuses is held back while the old one still works. Also
//! `--run-connection-test`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::http::{self, sample};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A Secret volume as the kubelet lays it out: `<dir>/password -> ..data/password`, `..data ->`
/// a directory per version. [`SecretVolume::update`] swaps `..data` atomically.
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(parent: &Path, password: &str) -> SecretVolume {
        let dir = parent.join("secret-volume");
        std::fs::create_dir(&dir).unwrap();
        let mut volume = SecretVolume { dir, version: 0 };
        volume.write_version(password);
        std::os::unix::fs::symlink("..v0", volume.dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/password", volume.dir.join("password")).unwrap();
        volume
    }

    fn write_version(&mut self, password: &str) {
        let version = self.dir.join(format!("..v{}", self.version));
        std::fs::create_dir(&version).unwrap();
        let file = version.join("password");
        std::fs::write(&file, password).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }

    fn update(&mut self, password: &str) {
        self.version += 1;
        self.write_version(password);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{}", self.version), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }

    fn path(&self) -> PathBuf {
        self.dir.join("password")
    }
}

fn readyz(redauth: &Redauth) -> http::Response {
    http::get(redauth.admin_addr(), "/readyz")
}

fn reauth_ok(redauth: &Redauth) -> f64 {
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    sample(&scrape, "redauth_reauth_total{result=\"ok\"}").unwrap_or(0.0)
}

fn start(redis: &TlsRedis, volume: &SecretVolume, extra: &[&str]) -> Redauth {
    let args = redis.redauth_args_with("--password-file", &volume.path().display().to_string());
    RedauthCmd::new()
        .args(args)
        .args(extra.iter().copied())
        .start()
}

#[test]
fn a_wrong_password_makes_redauth_unready_until_the_file_is_fixed() {
    let redis = TlsRedis::start();
    let mut volume = SecretVolume::new(redis.dir(), "not-the-password");
    // No warm pool: readiness must find out without any client or pool dialing.
    let redauth = start(&redis, &volume, &["--pool-size", "0"]);

    let unready = eventually(&redauth, WAIT, "/readyz failing", || {
        let r = readyz(&redauth);
        (r.status == 503).then_some(r.body)
    });
    assert!(
        unready.starts_with("upstream rejected the credential (127.0.0.1:"),
        "{unready}"
    );
    assert!(unready.contains("WRONGPASS"), "{unready}");
    assert_eq!(http::get(redauth.admin_addr(), "/startupz").status, 200);
    let refused = redauth.connect().request(&["PING"]);
    assert!(refused.starts_with(b"-"), "{}", show(&refused));

    volume.update(PASSWORD);
    eventually(&redauth, WAIT, "/readyz answering 200 again", || {
        (readyz(&redauth).status == 200).then_some(())
    });
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    let logs = redauth.stop();
    assert!(!logs.contains(PASSWORD), "the password was logged:\n{logs}");
    assert!(!logs.contains("not-the-password"), "{logs}");
}

#[test]
fn a_rotated_password_reauthenticates_every_live_connection_and_closes_none() {
    let redis = TlsRedis::start();
    let mut volume = SecretVolume::new(redis.dir(), PASSWORD);
    let redauth = start(&redis, &volume, &["--pool-size", "0"]);

    let mut plain = redauth.connect();
    assert_eq!(plain.request(&["SET", "rot:k", "v1"]), b"+OK\r\n");
    let plain_id = plain.request(&["CLIENT", "ID"]);
    let mut subscriber = redauth.connect();
    let confirmed = subscriber.request(&["SUBSCRIBE", "rot:ch"]);
    assert!(confirmed.starts_with(b"*3\r\n"), "{}", show(&confirmed));
    let mut blocked = redauth.connect();
    blocked.send(&cmd(&["BLPOP", "rot:q", "0"]));
    // The BLPOP has reached the server before the rotation starts.
    wait_for("the BLPOP to block", WAIT, || {
        let info = redis.direct().request(&["INFO", "clients"]);
        String::from_utf8_lossy(&info).contains("blocked_clients:1")
    });
    let before = reauth_ok(&redauth);

    // The server takes both passwords while the rotation is under way, as ElastiCache RBAC
    // users may; then the file changes, then the old one is withdrawn.
    let mut admin = redis.direct();
    assert_eq!(
        admin.request(&["ACL", "SETUSER", USERNAME, ">rotated-pw-2"]),
        b"+OK\r\n"
    );
    volume.update("rotated-pw-2");
    // The plain client and the subscriber re-authenticate at once; the blocked client's
    // connection cannot take an AUTH while it is blocked.
    eventually(&redauth, WAIT, "two re-authentications", || {
        (reauth_ok(&redauth) >= before + 2.0).then_some(())
    });
    assert_eq!(
        admin.request(&["ACL", "SETUSER", USERNAME, &format!("<{PASSWORD}")]),
        b"+OK\r\n"
    );

    // Every connection is still the one it was, and works.
    assert_eq!(plain.request(&["CLIENT", "ID"]), plain_id);
    assert_eq!(plain.request(&["GET", "rot:k"]), bulk("v1"));
    assert_eq!(
        admin.request(&["PUBLISH", "rot:ch", "after"]),
        b":1\r\n",
        "the subscriber is still subscribed"
    );
    let message = subscriber.read_reply();
    assert!(
        message.ends_with(b"$6\r\nrot:ch\r\n$5\r\nafter\r\n"),
        "{}",
        show(&message)
    );
    assert_eq!(admin.request(&["RPUSH", "rot:q", "x"]), b":1\r\n");
    let popped = blocked.read_reply();
    assert_eq!(
        popped,
        b"*2\r\n$5\r\nrot:q\r\n$1\r\nx\r\n",
        "{}",
        show(&popped)
    );
    // Unblocked, it takes its re-authentication before its next command.
    assert_eq!(blocked.request(&["PING"]), b"+PONG\r\n");
    eventually(
        &redauth,
        WAIT,
        "the blocked client's re-authentication",
        || (reauth_ok(&redauth) >= before + 3.0).then_some(()),
    );
    // New connections use the new password (the old one is gone from the server).
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    let scrape = http::get(redauth.admin_addr(), "/metrics").body;
    assert_eq!(
        sample(&scrape, "redauth_reauth_total{result=\"failed\"}"),
        Some(0.0)
    );
    drop((plain, subscriber, blocked, admin));
    let logs = redauth.stop();
    assert!(
        !logs.contains("rotated-pw-2"),
        "the password was logged:\n{logs}"
    );
    assert!(
        logs.contains("the password file changed"),
        "the change is logged:\n{logs}"
    );
}

#[test]
fn a_new_password_the_server_refuses_is_held_back_while_the_old_one_works() {
    let redis = TlsRedis::start();
    let mut volume = SecretVolume::new(redis.dir(), PASSWORD);
    let redauth = start(&redis, &volume, &[]);
    let mut client = redauth.connect();
    assert_eq!(client.request(&["PING"]), b"+PONG\r\n");

    volume.update("typo-in-the-new-secret");
    let body = eventually(
        &redauth,
        WAIT,
        "/readyz to mention the refused password",
        || {
            let r = readyz(&redauth);
            (r.status == 200 && r.body.contains("refused")).then_some(r.body)
        },
    );
    assert!(body.starts_with("ok, but the new password in "), "{body}");
    assert!(body.contains("still using the previous one"), "{body}");
    assert!(!body.contains("typo"), "{body}");
    // Old connections and new ones keep working on the old password.
    assert_eq!(client.request(&["PING"]), b"+PONG\r\n");
    for _ in 0..3 {
        assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    }
    // Once the server takes it, redauth does too, without a restart.
    assert_eq!(
        redis
            .direct()
            .request(&["ACL", "SETUSER", USERNAME, ">typo-in-the-new-secret"]),
        b"+OK\r\n"
    );
    eventually(
        &redauth,
        WAIT,
        "the held-back password to be taken up",
        || (readyz(&redauth).body == "ok\n").then_some(()),
    );
    drop(client);
    let logs = redauth.stop();
    assert!(!logs.contains("typo-in-the-new-secret"), "{logs}");
    assert!(
        logs.contains("the upstream refused the new password"),
        "{logs}"
    );
}

#[test]
fn the_connection_test_passes_or_stops_redauth_with_the_reason() {
    let redis = TlsRedis::start();
    let passed = redis.redauth(&["--run-connection-test"]);
    eventually(&passed, WAIT, "the connection test to pass", || {
        let logs = passed.logs();
        (!log_events(&logs, "connection test passed: dial, TLS, AUTH and PING").is_empty())
            .then_some(())
    });
    assert_eq!(passed.connect().request(&["PING"]), b"+PONG\r\n");
    drop(passed);

    let wrong = redis.dir().join("wrong-password");
    std::fs::write(&wrong, "nope").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let exited = RedauthCmd::new()
        .args(redis.redauth_args_with("--password-file", &wrong.display().to_string()))
        .arg("--run-connection-test")
        .run_to_exit(WAIT);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
    let failed = log_events(&exited.stderr, "connection test failed; exiting");
    assert_eq!(failed.len(), 1, "{}", exited.stderr);
    let reason = failed[0]["fields"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("upstream rejected the credential") && reason.contains("WRONGPASS"),
        "{reason}"
    );

    // Nothing listens where the upstream should be.
    let exited = RedauthCmd::new()
        .args(redis.redauth_args_with("--upstream", &format!("rediss://127.0.0.1:{}", free_port())))
        .arg("--run-connection-test")
        .run_to_exit(WAIT);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
    assert!(
        exited.stderr.contains("upstream unreachable"),
        "{}",
        exited.stderr
    );
}

#[test]
fn a_changed_client_password_is_asked_of_clients_from_then_on() {
    let redis = TlsRedis::start();
    let mut volume = SecretVolume::new(redis.dir(), "client-pw-1");
    let redauth = redis.redauth(&[
        "--client-password-file",
        &volume.path().display().to_string(),
    ]);
    let mut early = redauth.connect();
    assert_eq!(early.request(&["AUTH", "client-pw-1"]), b"+OK\r\n");

    volume.update("client-pw-2");
    eventually(
        &redauth,
        WAIT,
        "the new client password to be asked",
        || {
            let mut conn = redauth.connect();
            let reply = conn.request(&["AUTH", "client-pw-1"]);
            reply.starts_with(b"-WRONGPASS").then_some(())
        },
    );
    let mut late = redauth.connect();
    assert_eq!(late.request(&["AUTH", "client-pw-2"]), b"+OK\r\n");
    assert_eq!(late.request(&["PING"]), b"+PONG\r\n");
    // A client authenticated before the change stays authenticated; its next AUTH is
    // checked against the new password.
    assert_eq!(early.request(&["PING"]), b"+PONG\r\n");
    let again = early.request(&["AUTH", "client-pw-1"]);
    assert!(again.starts_with(b"-WRONGPASS"), "{}", show(&again));
    assert_eq!(early.request(&["AUTH", "client-pw-2"]), b"+OK\r\n");
    drop((early, late));
    let logs = redauth.stop();
    assert!(!logs.contains("client-pw-"), "{logs}");
}
