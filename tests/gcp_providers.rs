//! `--auth gcp-iam`'s Application Default Credentials kinds other than the metadata server
//! (tests/gcp_iam.rs runs that one), each in a redauth child process with
//! `GOOGLE_APPLICATION_CREDENTIALS` naming a file of that kind, all offline:
//!
//! - gcloud's user credentials (`authorized_user`) and an external account (workload identity
//!   federation, a subject token from a file) run end to end: the file's `token_uri` /
//!   `token_url` points at a stand-in of Google's token endpoint and STS
//!   (`redauth_emulator::standins::google_oauth`) that issues the emulated GCP's own tokens, so
//!   the front verifies the AUTH;
//! - a service account key is signed into a self-signed JWT by `google-cloud-auth` itself (no
//!   token exchange at all); the emulated front does not verify such JWTs, so the test shows the
//!   token is made, with the JWT's own expiry, and never shown.
//!
//! No secret of any file (refresh token, client secret, subject token, private key) and no token
//! shows in the logs.

mod support;

use redauth_emulator::standins::google_oauth::{self, Expected};
use std::time::Duration;
use support::gcp::{GcpTiming, TestGcp};
use support::*;

/// Tokens from these files are Google's usual hour.
const HOUR_TOKENS: GcpTiming = GcpTiming {
    token_lifetime: Duration::from_secs(3600),
    auth_rate_limit: None,
};

fn expected() -> Expected {
    Expected {
        refresh_token: "1//refresh-token-SECRET-0a9b8c7d".into(),
        subject_token: "subject-token-SECRET-eyJhbGciOi".into(),
    }
}

fn write(dir: &tempfile::TempDir, name: &str, json: serde_json::Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, json.to_string()).unwrap();
    path.display().to_string()
}

/// Runs redauth with `file` as the ADC file, has one client PING through the emulated front, and
/// returns the logs.
fn ping_through(gcp: &TestGcp, file: &str, kind: &str) -> String {
    let redauth = gcp
        .redauth_cmd()
        .env("GOOGLE_APPLICATION_CREDENTIALS", file)
        .args(["--log-level", "trace"])
        .start();
    let mut c = redauth.connect();
    assert_eq!(c.request(&["PING"]), b"+PONG\r\n", "{}", redauth.logs());
    let stats = gcp.stats();
    assert!(
        stats.tokens_verified > 0 && stats.auth_rejected == 0,
        "{stats:?}"
    );
    assert_eq!(
        gcp.cloud().iam().metadata().served(),
        0,
        "the metadata server was asked: the file was not used"
    );
    let logs = redauth.stop();
    assert!(
        logs.contains(&format!("gcp-iam ({kind})")),
        "the kind is logged:\n{logs}"
    );
    for token in gcp.secrets() {
        assert!(!logs.contains(&token), "a token shows");
    }
    let secrets = expected();
    assert!(!logs.contains(&secrets.refresh_token) && !logs.contains(&secrets.subject_token));
    assert!(!logs.contains("SECRET"), "a secret from the file shows");
    logs
}

#[test]
fn gclouds_user_credentials_are_refreshed_at_their_token_uri() {
    let gcp = TestGcp::start(HOUR_TOKENS);
    let oauth = gcp
        .runtime()
        .block_on(google_oauth::start(
            expected(),
            gcp.cloud().iam().tokens().clone(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "application_default_credentials.json",
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "764086051850-test.apps.googleusercontent.com",
            "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty-client-SECRET",
            "refresh_token": expected().refresh_token,
            "token_uri": format!("{}/token", oauth.url()),
        }),
    );
    ping_through(&gcp, &file, "authorized-user");
    assert!(
        oauth.requests().iter().any(|r| r == "POST /token"),
        "{:?}",
        oauth.requests()
    );
}

#[test]
fn an_external_account_exchanges_its_subject_token_at_its_token_url() {
    let gcp = TestGcp::start(HOUR_TOKENS);
    let oauth = gcp
        .runtime()
        .block_on(google_oauth::start(
            expected(),
            gcp.cloud().iam().tokens().clone(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let subject = dir.path().join("subject-token");
    std::fs::write(&subject, expected().subject_token).unwrap();
    let file = write(
        &dir,
        "wif.json",
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/pool/providers/provider",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/v1/token", oauth.url()),
            "credential_source": { "file": subject.display().to_string() },
        }),
    );
    ping_through(&gcp, &file, "external-account");
    assert!(
        oauth.requests().iter().any(|r| r == "POST /v1/token"),
        "{:?}",
        oauth.requests()
    );
}

#[test]
fn a_service_account_key_makes_a_self_signed_jwt_offline() {
    let gcp = TestGcp::start(HOUR_TOKENS);
    let dir = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gcp-service-account-test-key.pem"
    ))
    .unwrap();
    let file = write(
        &dir,
        "key.json",
        serde_json::json!({
            "type": "service_account",
            "project_id": "redauth-emulated-project",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": key,
            "client_email": "redauth@redauth-emulated-project.iam.gserviceaccount.com",
            "client_id": "100000000000000000001",
            // Never reached: the library signs its own JWT instead of exchanging one.
            "token_uri": "http://127.0.0.1:9/token",
        }),
    );
    let redauth = gcp
        .redauth_cmd()
        .env("GOOGLE_APPLICATION_CREDENTIALS", &file)
        .args(["--log-level", "trace"])
        .start_until("token refreshed");
    std::thread::sleep(Duration::from_millis(200));
    let logs = redauth.stop();
    let refreshed: Vec<_> = log_events(&logs, "token refreshed");
    let event = refreshed.first().expect("a token refreshed event");
    assert_eq!(
        event["fields"]["source"], "gcp-iam (service-account-key)",
        "{event}"
    );
    // The JWT's own exp: an hour, not the 3-minute lease of an opaque token.
    let valid_for = event["fields"]["valid_for"].as_str().unwrap_or_default();
    assert!(
        valid_for.starts_with("59m") || valid_for.starts_with("1h"),
        "{event}"
    );
    assert_eq!(gcp.cloud().iam().metadata().served(), 0);
    assert!(!logs.contains("PRIVATE KEY") && !logs.contains(&key[40..80]));
    // A JWT starts with the base64 of `{"`: no token shows.
    assert!(!logs.contains("eyJ"), "a JWT shows");
}
