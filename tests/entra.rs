//! `--auth entra` end to end: the real `azure_identity` credentials (managed identity over the
//! App Service protocol, the Azure CLI through a fake `az`, redauth's default chain) fetching
//! tokens from the emulated cloud, and redauth authenticating through the token-checking TLS
//! front as the token's `oid`.

mod support;

use std::time::{Duration, SystemTime};
use support::cloud::{whoami, TestCloud, OID};
use support::*;

/// JWTs start with base64url of `{"`: any `eyJ` in the output is a token (or part of one).
fn assert_no_token_text(output: &str, cloud_secrets: &[&str]) {
    assert!(
        !output.contains("eyJ"),
        "something JWT-shaped appears in redauth's output:\n{output}"
    );
    for secret in cloud_secrets {
        assert!(
            !output.contains(secret),
            "a secret appears in redauth's output:\n{output}"
        );
    }
}

#[test]
fn managed_identity_authenticates_as_the_token_oid_and_never_shows_a_token() {
    let cloud = TestCloud::start(Duration::from_secs(4));
    let redauth = cloud
        .redauth_cmd("managed-identity")
        .args(["--log-level", "trace"])
        .start();
    let mut client = redauth.connect();
    assert_eq!(whoami(&mut client), bulk(OID));
    assert_eq!(client.request(&["SET", "entra:k", "v"]), b"+OK\r\n");
    assert_eq!(client.request(&["GET", "entra:k"]), bulk("v"));

    // Tokens rotate: wait for two more refreshes; a connection opened after them authenticates
    // with the newest token (the front accepts only unexpired ones).
    eventually(
        &redauth,
        Duration::from_secs(20),
        "three token refreshes",
        || (log_events(&redauth.logs(), "token refreshed").len() >= 3).then_some(()),
    );
    let mut later = redauth.connect();
    assert_eq!(whoami(&mut later), bulk(OID));
    assert_eq!(later.request(&["GET", "entra:k"]), bulk("v"));

    let refreshes = log_events(&redauth.logs(), "token refreshed");
    let expiries: Vec<&str> = refreshes
        .iter()
        .map(|e| e["fields"]["expires_at"].as_str().unwrap())
        .collect();
    let mut sorted = expiries.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, expiries,
        "each published token expires later than the one before"
    );
    assert_eq!(refreshes[0]["fields"]["username"], OID);
    assert!(
        refreshes[0]["fields"]["source"]
            .as_str()
            .unwrap()
            .starts_with("managed-identity (App Service endpoint)"),
        "{}",
        refreshes[0]
    );

    let header = cloud.identity().header_secret().to_string();
    assert_no_token_text(&redauth.stop(), &[&header]);
}

#[test]
fn a_token_handed_back_again_is_kept_and_the_next_one_is_fetched_in_time() {
    // 10-second tokens: redauth's first refresh is due 6–7 s after issue, 3–4 s before expiry.
    // The endpoint hands back the token it already gave while more than 2.75 s of it remain
    // (as IMDS and azure_identity's cache do, scaled down), so that refresh gets the same token;
    // redauth must keep it, ask again, and get the new one before its last safe moment (2.5 s
    // before expiry).
    let cloud = TestCloud::start(Duration::from_secs(10));
    cloud
        .identity()
        .set_reuse_while_remaining(Duration::from_millis(2750));
    let redauth = cloud
        .redauth_cmd("managed-identity")
        .args(["--log-level", "info,redauth=debug"])
        .start();
    eventually(&redauth, Duration::from_secs(20), "a second token", || {
        (log_events(&redauth.logs(), "token refreshed").len() >= 2).then_some(())
    });
    let logs = redauth.logs();
    let same = log_events(
        &logs,
        "the identity returned the token already held; asking again later",
    );
    assert!(
        !same.is_empty(),
        "the endpoint never handed back the same token:\n{logs}"
    );
    assert!(
        cloud.identity().requests() >= 3,
        "{}",
        cloud.identity().requests()
    );
    // The second token came before the first expired: a new connection authenticates.
    // (Failed once in CI, not since: "connection failed during AUTH", the front closing the
    // connection. What the front and redauth saw is shown if it happens again.)
    let answer = whoami(&mut redauth.connect());
    assert!(
        answer == bulk(OID),
        "{}\nfront's expiry closes: {:#?}\n{}",
        String::from_utf8_lossy(&answer),
        cloud.expired_reports(),
        redauth.logs()
    );
    let refreshes = log_events(&logs, "token refreshed");
    assert_ne!(
        refreshes[0]["fields"]["expires_at"],
        refreshes[1]["fields"]["expires_at"]
    );
}

#[test]
fn an_identity_endpoint_outage_is_ridden_out_and_reported_clearly() {
    let cloud = TestCloud::start(Duration::from_secs(4));
    let redauth = cloud.redauth_cmd("managed-identity").start();
    assert_eq!(whoami(&mut redauth.connect()), bulk(OID));

    // The endpoint goes down. The token in hand keeps new connections working until it expires.
    cloud.identity().set_failing(true);
    assert_eq!(whoami(&mut redauth.connect()), bulk(OID));

    // Once it has expired, new clients are told why, at once, instead of hanging.
    let error = eventually(
        &redauth,
        Duration::from_secs(15),
        "a no-credential error",
        || {
            let reply = redauth.connect().request(&["PING"]);
            reply.starts_with(b"-").then_some(reply)
        },
    );
    let text = String::from_utf8_lossy(&error);
    assert!(
        text.starts_with("-ERR redauth: no valid credential: the last token expired at "),
        "{text}"
    );
    assert!(
        text.contains(" and fetching a new one failed: managed-identity (App Service endpoint): "),
        "{text}"
    );
    assert_eq!(text.matches("managed-identity").count(), 1, "{text}");

    // The endpoint recovers; so does redauth, without a restart.
    cloud.identity().set_failing(false);
    eventually(&redauth, Duration::from_secs(40), "recovery", || {
        (whoami(&mut redauth.connect()) == bulk(OID)).then_some(())
    });
    let logs = redauth.stop();
    let failures = log_events(&logs, "token refresh failed");
    assert!(!failures.is_empty(), "{logs}");
    assert!(failures[0]["fields"]["error"]
        .as_str()
        .unwrap()
        .starts_with("managed-identity (App Service endpoint): "));
    let states: Vec<&str> = failures
        .iter()
        .map(|f| f["fields"]["current_token"].as_str().unwrap())
        .collect();
    assert!(states[0].starts_with("in use until "), "{states:?}");
    assert_no_token_text(&logs, &[cloud.identity().header_secret()]);
}

#[test]
fn clients_connecting_before_the_first_token_wait_then_get_the_reason() {
    let cloud = TestCloud::start(Duration::from_secs(60));
    cloud.identity().set_failing(true);
    // Listeners come up although no token can be had.
    let redauth = cloud
        .redauth_cmd("managed-identity")
        .args(["--connect-timeout", "2s"])
        .start();
    let reply = redauth.connect().request(&["PING"]);
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("-ERR redauth: no valid credential: managed-identity"),
        "{text}"
    );
    cloud.identity().set_failing(false);
    eventually(&redauth, Duration::from_secs(10), "the first token", || {
        (whoami(&mut redauth.connect()) == bulk(OID)).then_some(())
    });
}

#[test]
fn azure_cli_credential_through_a_fake_az() {
    let cloud = TestCloud::start(Duration::from_secs(600));
    let az = cloud.fake_az();
    let minted = cloud.issuer().mint();
    az.answer(&minted.token, minted.expires_at);
    let redauth = cloud
        .redauth_cmd("azure-cli")
        .env("PATH", az.path())
        .start();
    assert_eq!(whoami(&mut redauth.connect()), bulk(OID));
    assert!(az.calls() >= 1);
    let logs = redauth.stop();
    assert_eq!(
        log_events(&logs, "token refreshed")[0]["fields"]["source"],
        "azure-cli"
    );
    assert_no_token_text(&logs, &[]);
}

#[test]
fn the_default_chain_skips_what_is_not_configured_and_settles_on_the_cli() {
    let cloud = TestCloud::start(Duration::from_secs(600));
    let az = cloud.fake_az();
    let minted = cloud.issuer().mint();
    az.answer(&minted.token, minted.expires_at);
    // No IDENTITY_ENDPOINT: managed identity means the VM metadata service, which is not here.
    let redauth = RedauthCmd::new()
        .args(cloud.redauth_args("default"))
        .env("PATH", az.path())
        .start();
    assert_eq!(whoami(&mut redauth.connect()), bulk(OID));
    let logs = redauth.stop();
    let chose = log_events(&logs, "entra: the default chain chose developer-tools");
    assert_eq!(chose.len(), 1, "{logs}");
    let passed_over = chose[0]["fields"]["passed_over"].as_str().unwrap();
    for skipped in [
        "client-secret: AZURE_TENANT_ID",
        "workload-identity: AZURE_FEDERATED_TOKEN_FILE",
        "managed-identity (VM metadata service)",
    ] {
        assert!(
            passed_over.contains(skipped),
            "{skipped} missing from {passed_over}"
        );
    }
}

#[test]
fn a_token_without_oid_is_a_clear_startup_error_unless_username_is_given() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let cloud = TestCloud::start(Duration::from_secs(600));
    let az = cloud.fake_az();
    let expires = SystemTime::now() + Duration::from_secs(600);
    let exp = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let no_oid = format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"aud":"https://redis.azure.com","exp":{exp}}}"#
        ))
    );
    az.answer(&no_oid, expires);
    let exited = cloud
        .redauth_cmd("azure-cli")
        .env("PATH", az.path())
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("no oid claim"), "{}", exited.stderr);
    assert!(exited.stderr.contains("--username"), "{}", exited.stderr);
    assert!(!exited.stderr.contains(&no_oid[20..]), "{}", exited.stderr);

    // With --username the same token is used as that user (the front then refuses it, as the
    // token's oid does not match: the error names the step, not the token).
    let redauth = cloud
        .redauth_cmd("azure-cli")
        .args(["--username", "someone-else"])
        .env("PATH", az.path())
        .start();
    let reply = redauth.connect().request(&["PING"]);
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("-ERR redauth: upstream rejected the credential"),
        "{text}"
    );
    assert_no_token_text(&redauth.stop(), &[]);
}

/// The certificate and key the client-certificate tests sign with (a throwaway test key).
fn test_certificate() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/entra-client-certificate.pem"
    )
    .to_string()
}

#[test]
fn a_client_certificate_is_used_to_ask_the_authority_for_tokens() {
    // The authority is a port nobody listens on: the credential is built from the certificate,
    // and its token request goes there (Entra's own endpoint is not reachable from a test).
    let port = free_port();
    let redauth = RedauthCmd::new()
        .args([
            "--upstream",
            "rediss://127.0.0.1:1",
            "--auth",
            "entra",
            "--entra-credential",
            "client-certificate",
            "--username",
            "app",
        ])
        .env("AZURE_TENANT_ID", "00000000-0000-0000-0000-0000000000aa")
        .env("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000bb")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", test_certificate())
        .env("AZURE_AUTHORITY_HOST", format!("https://127.0.0.1:{port}"))
        .start();
    let why = eventually(
        &redauth,
        Duration::from_secs(20),
        "a failed token request",
        || {
            let startup = support::http::get(redauth.admin_addr(), "/startupz");
            (startup.status == 503 && startup.body.contains("client-certificate"))
                .then_some(startup.body)
        },
    );
    assert!(
        why.contains(&format!("connection refused to 127.0.0.1:{port}")),
        "{why}"
    );
    let logs = redauth.stop();
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
    let key = std::fs::read_to_string(test_certificate()).unwrap();
    let key_body = key.lines().rev().nth(1).unwrap();
    assert!(!logs.contains(key_body), "{logs}");
}

#[test]
fn an_encrypted_or_missing_client_certificate_is_a_configuration_error() {
    let cmd = |extra: (&str, &str)| {
        RedauthCmd::new()
            .args([
                "--upstream",
                "rediss://127.0.0.1:1",
                "--auth",
                "entra",
                "--entra-credential",
                "client-certificate",
            ])
            .env("AZURE_TENANT_ID", "00000000-0000-0000-0000-0000000000aa")
            .env("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000bb")
            .env(extra.0, extra.1)
    };
    let encrypted = cmd(("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pw"))
        .env("AZURE_CLIENT_CERTIFICATE_PATH", test_certificate())
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(encrypted.status.code(), Some(2), "{}", encrypted.stderr);
    assert!(
        encrypted
            .stderr
            .contains("encrypted keys are not supported"),
        "{}",
        encrypted.stderr
    );
    let missing = cmd(("AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent/cert.pem"))
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(missing.status.code(), Some(2), "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("reading the client certificate /nonexistent/cert.pem"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_client_certificate_gets_tokens_from_an_entra_authority_and_authenticates() {
    const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
    const CLIENT: &str = "00000000-0000-0000-0000-0000000000bb";
    let cloud = TestCloud::start(Duration::from_secs(600));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let authority = support::authority::Authority::start(
        cloud.runtime(),
        &read(&cloud.certs().server_cert),
        &read(&cloud.certs().server_key),
        &read(std::path::Path::new(&test_certificate())),
        TENANT,
        CLIENT,
        cloud.shared_issuer(),
    );
    let redauth = RedauthCmd::new()
        .args(cloud.redauth_args("client-certificate"))
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT)
        .env("AZURE_CLIENT_CERTIFICATE_PATH", test_certificate())
        .env("AZURE_AUTHORITY_HOST", authority.url())
        // The authority's certificate is the test CA's, trusted for the token request.
        .env("SSL_CERT_FILE", cloud.certs().ca.display().to_string())
        .start();
    assert_eq!(whoami(&mut redauth.connect()), bulk(OID));
    assert!(authority.issued() >= 1);
    assert_eq!(authority.refusals(), Vec::<String>::new());
    let logs = redauth.stop();
    assert!(
        !logs.contains("PRIVATE KEY") && !logs.contains("eyJ"),
        "{logs}"
    );
}
