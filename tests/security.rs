//! Secure defaults: loopback unless told otherwise, a local client password checked like Redis's
//! `requirepass`, warnings for secret files others can read, and a bulk-length limit that can be
//! set. No secret shows in logs or replies along the way, nor, with `--auth aws-iam`, an AWS
//! secret key, session token or IAM token, nor, with `--auth gcp-iam`, a GCP access token.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use support::*;

const CLIENT_PASSWORD: &str = "local-Pa55-redauth";

/// A file holding `text`, with permissions `mode`.
fn secret_file(dir: &tempfile::TempDir, name: &str, text: &str, mode: u32) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, CLIENT_PASSWORD] {
        assert!(!text.contains(secret), "a secret shows:\n{text}");
    }
}

#[test]
fn a_network_address_needs_an_explicit_flag() {
    let redis = TlsRedis::start();
    let exited = RedauthCmd::new()
        .bare()
        .args(redis.redauth_args())
        .args(["--listen", "0.0.0.0:0", "--log-format", "json"])
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(
        exited
            .stderr
            .contains("0.0.0.0:0 is not a loopback address")
            && exited.stderr.contains("--allow-remote-clients"),
        "{}",
        exited.stderr
    );

    // Allowed, it serves, and without a client password it warns.
    let redauth = RedauthCmd::new()
        .bare()
        .args(redis.redauth_args())
        .args(["--listen", "0.0.0.0:0", "--log-format", "json"])
        .args(["--allow-remote-clients"])
        .start();
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
    let logs = redauth.stop();
    assert!(
        logs.contains(
            "without --client-password-file: anyone who can reach it uses redauth's identity"
        ),
        "{logs}"
    );
}

#[test]
fn the_client_password_is_required_before_anything_is_dialed() {
    let redis = TlsRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(&dir, "client-password", CLIENT_PASSWORD, 0o600);
    let redauth = redis.redauth(&["--client-password-file", &file, "--pool-size", "0"]);
    let mut admin = RespConn::connect(redis.plain_port());
    assert_eq!(admin.request(&["AUTH", USERNAME, PASSWORD]), b"+OK\r\n");
    // Connections of the upstream user other than this admin one.
    let upstream = |admin: &mut RespConn| {
        let list = admin.request(&["CLIENT", "LIST", "TYPE", "normal"]);
        String::from_utf8_lossy(&list)
            .lines()
            .filter(|l| l.contains("user=") && !l.contains("cmd=client|list"))
            .count()
    };

    let mut c = redauth.connect();
    assert_eq!(
        c.request(&["PING"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        c.request(&["AUTH", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        c.request(&["AUTH", "someone", CLIENT_PASSWORD]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    let hello = c.request(&["HELLO", "3"]);
    assert!(
        hello.starts_with(b"-NOAUTH HELLO must be called"),
        "{}",
        show(&hello)
    );
    // Nothing was dialed for this client yet.
    assert_eq!(upstream(&mut admin), 0);

    assert_eq!(c.request(&["AUTH", CLIENT_PASSWORD]), b"+OK\r\n");
    assert_eq!(c.request(&["ACL", "WHOAMI"]), whoami_reply());
    assert_eq!(upstream(&mut admin), 1);
    // Authenticated, a wrong AUTH is refused and changes nothing, as in Redis.
    assert_eq!(
        c.request(&["AUTH", "default", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.request(&["AUTH", "default", CLIENT_PASSWORD]), b"+OK\r\n");
    assert_eq!(c.request(&["ACL", "WHOAMI"]), whoami_reply());

    // HELLO with AUTH authenticates and switches protocol in one go.
    let mut h = redauth.connect();
    let wrong = h.request(&["HELLO", "3", "AUTH", "default", "nope"]);
    assert!(wrong.starts_with(b"-WRONGPASS"), "{}", show(&wrong));
    let hello = h.request(&["HELLO", "3", "AUTH", "default", CLIENT_PASSWORD]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    assert_eq!(h.request(&["ACL", "WHOAMI"]), whoami_reply());

    // Unauthenticated clients are held to small commands, as by Redis.
    let mut big = redauth.connect();
    big.send(&cmd(&["AUTH", &"x".repeat(20_000)]));
    let reply = String::from_utf8(big.read_to_eof()).unwrap();
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");

    assert_no_secret(&redauth.stop());
}

#[test]
fn secret_files_others_can_read_draw_a_warning() {
    let redis = TlsRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let loose = secret_file(&dir, "client-password", CLIENT_PASSWORD, 0o644);
    let redauth = redis.redauth(&["--client-password-file", &loose]);
    let logs = redauth.stop();
    assert!(
        logs.contains("holds a secret and is readable by group or others (mode 0644)"),
        "{logs}"
    );
    assert_no_secret(&logs);
}

#[test]
fn the_bulk_length_limit_can_be_set() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--max-bulk-len", "1024"]);
    let mut c = redauth.connect();
    assert_eq!(c.request(&["SET", "k", &"v".repeat(1024)]), b"+OK\r\n");
    c.send(&cmd(&["SET", "k", &"v".repeat(1025)]));
    assert_eq!(
        c.read_to_eof(),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(redauth.connect().request(&["PING"]), b"+PONG\r\n");
}

#[test]
fn a_password_in_the_upstream_url_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rediss://{USERNAME}:{PASSWORD}@127.0.0.1:6380");
    let file = dir.path().join("redauth.toml");
    std::fs::write(&file, format!("upstream = {url:?}\n")).unwrap();
    let runs = [
        RedauthCmd::new().args(["--upstream", &url]),
        RedauthCmd::new().env("REDAUTH_UPSTREAM", url.clone()),
        RedauthCmd::new().args(["--config", file.to_str().unwrap()]),
        // Refused for another reason too: plaintext.
        RedauthCmd::new().args(["--upstream", &url.replace("rediss", "redis")]),
    ];
    for cmd in runs {
        let exited = cmd
            .args(["--auth", "none"])
            .run_to_exit(Duration::from_secs(20));
        assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
        assert!(
            exited
                .stderr
                .contains(&format!("{USERNAME}:***@127.0.0.1:6380"))
                && exited
                    .stderr
                    .contains("--password-file or REDAUTH_PASSWORD"),
            "{}",
            exited.stderr
        );
        assert_no_secret(&exited.stderr);
    }
}

/// `--auth aws-iam` at trace level, with credentials from an IMDSv2 stand-in (whose HTTP
/// answers carry the secret key and session token) and from the environment: the logs say
/// which provider was used and that tokens were signed, and show neither key material nor a
/// token (the upstream, a plain TLS redis, refuses the tokens, so refusals are logged too).
#[test]
fn aws_keys_and_iam_tokens_never_show_in_logs() {
    use redauth_emulator::standins::{self, Issued};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issued = Issued::new("SECURITY", Duration::from_secs(3600));
    let imds = runtime
        .block_on(standins::imds::start(issued.clone()))
        .unwrap();
    let redis = TlsRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none").display().to_string();
    let aws_args = |redis: &TlsRedis| {
        let mut args = redis.redauth_args_with("--auth", "aws-iam");
        let at = args.iter().position(|a| a == "--password-file").unwrap();
        args.drain(at..at + 2);
        args.extend(
            [
                "--aws-cache-name",
                "my-cache",
                "--aws-region",
                "eu-west-1",
                "--log-level",
                "trace",
            ]
            .map(String::from),
        );
        args
    };
    let check = |logs: &str, provider: &str, secrets: &[&str]| {
        assert!(
            logs.contains("AWS credentials obtained") && logs.contains(provider),
            "the provider is logged:\n{logs}"
        );
        assert!(logs.contains("token refreshed"), "{logs}");
        for secret in secrets {
            // As given, and as a query encodes it.
            let encoded = secret
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            assert!(!logs.contains(secret), "a secret shows:\n{logs}");
            assert!(!logs.contains(&encoded), "a secret shows, encoded:\n{logs}");
        }
        // No token, nor a piece of one.
        for part in [
            "Action=connect",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "X-Amz-Security-Token",
        ] {
            assert!(!logs.contains(part), "{part} shows:\n{logs}");
        }
    };

    let from_imds = RedauthCmd::new()
        .args(aws_args(&redis))
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
        .env("AWS_CONFIG_FILE", &none)
        .env("AWS_SHARED_CREDENTIALS_FILE", &none)
        .start_until("the upstream refused the credential");
    let mut c = from_imds.connect();
    let reply = c.request(&["PING"]);
    assert!(reply.starts_with(b"-"), "{}", show(&reply));
    check(
        &from_imds.stop(),
        "IMDSv2",
        &[&issued.secret_access_key, &issued.session_token],
    );

    let env_secret = "EnvSecretKey/Kx93+abcdefghijklmnopqrstuv";
    let env_session = "EnvSessionToken+/Zz01==";
    let from_env = RedauthCmd::new()
        .args(aws_args(&redis))
        .env("AWS_ACCESS_KEY_ID", "AKIASECURITYTEST0001")
        .env("AWS_SECRET_ACCESS_KEY", env_secret)
        .env("AWS_SESSION_TOKEN", env_session)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &none)
        .env("AWS_SHARED_CREDENTIALS_FILE", &none)
        .start_until("the upstream refused the credential");
    check(
        &from_env.stop(),
        "EnvironmentVariable",
        &[env_secret, env_session],
    );
}

/// `--auth gcp-iam` at trace level against the emulated GCP (tokens from its metadata server,
/// whose HTTP answers carry them, living 3 s so several are fetched and used): the logs name the
/// credential kind and the token refreshes, and show no token, nor any piece of one.
#[test]
fn gcp_access_tokens_never_show_in_logs() {
    use support::gcp::{GcpTiming, TestGcp};
    let gcp = TestGcp::start(GcpTiming {
        token_lifetime: Duration::from_secs(3),
        auth_rate_limit: None,
    });
    let redauth = gcp
        .redauth_cmd()
        .args(["--log-level", "trace", "--reauth", "always"])
        .start();
    let mut held = redauth.connect();
    for _ in 0..8 {
        assert_eq!(held.request(&["PING"]), b"+PONG\r\n");
        let mut fresh = redauth.connect();
        assert_eq!(fresh.request(&["PING"]), b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(1000));
    }
    let secrets = gcp.secrets();
    assert!(secrets.len() >= 3, "only {} tokens issued", secrets.len());
    let logs = redauth.stop();
    assert!(
        logs.contains("gcp-iam (metadata-server)"),
        "the kind is logged:\n{logs}"
    );
    assert!(logs.contains("token refreshed"), "{logs}");
    for secret in &secrets {
        // Whole, and the random part after the prefix.
        let body = secret.trim_start_matches("ya29.");
        assert!(!logs.contains(secret.as_str()), "a token shows");
        assert!(!logs.contains(&body[..24]), "a piece of a token shows");
    }
    assert!(!logs.contains("ya29."), "a token shows");
}
