//! The real AWS credential chain (`aws-config`'s default chain) through redauth's
//! `--auth aws-iam` token source, one provider at a time, without the network:
//! environment variables, the shared profile files (static keys and `credential_process`),
//! web identity (EKS IRSA) against an STS stand-in, IAM Identity Center (SSO) against an SSO
//! portal stand-in, and IMDSv2 against a metadata stand-in (emulator/src/standins/). Each
//! test asserts which provider the chain settled on and that the token redauth signed
//! carries that provider's access key id.
//!
//! The chain reads the process environment, which is global: each test runs its case in a
//! child process, this same test binary run for that one test with an environment of the
//! test's making (`env_clear`, `HOME` an empty directory), so the developer's own AWS
//! configuration never leaks in and the tests can run in parallel.

use redauth::credentials::aws::{self, AwsIamConfig, DEFAULT_CONNECTION_LIMIT};
use redauth::credentials::aws_token::Service;
use redauth::credentials::{ConnectionLimit, TokenSource};
use redauth_emulator::standins::{self, Issued};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Set in the child: run the case, print what it found.
const CHILD: &str = "REDAUTH_TEST_AWS_CHILD";
/// In the child: the `--aws-region` to give, if any.
const REGION: &str = "REDAUTH_TEST_AWS_REGION";

/// What the child found: the source's `kind()` (naming the provider) and the access key
/// id in the token, or the error.
#[derive(Debug)]
struct Found {
    kind: String,
    key: String,
    region: String,
    session_token: bool,
    error: String,
}

/// The child's work: build the source as `redauth` does and fetch one token.
async fn child_main() {
    // The test harness has written `test NAME ... ` without a line end.
    println!();
    let config = AwsIamConfig {
        cache: "my-cache".into(),
        service: Service::ElastiCache,
        serverless: false,
        region: std::env::var(REGION).ok(),
        connection_limit: DEFAULT_CONNECTION_LIMIT,
    };
    let source = match aws::build(&config, "app-user").await {
        Ok(source) => source,
        Err(e) => {
            println!("ERROR={e}");
            return;
        }
    };
    match source.fetch().await {
        Ok(token) => {
            let text = token.secret.expose();
            let credential = text
                .split('&')
                .find_map(|p| p.strip_prefix("X-Amz-Credential="))
                .unwrap_or_default();
            let mut scope = credential.split("%2F");
            let key = scope.next().unwrap_or_default();
            let region = scope.nth(1).unwrap_or_default();
            println!("KIND={}", source.kind());
            println!("KEY={key}");
            println!("REGION={region}");
            println!("SESSION_TOKEN={}", text.contains("X-Amz-Security-Token="));
            let ConnectionLimit::AfterAuth { max_age, .. } = token.limit else {
                panic!("an AWS token limits connections by age")
            };
            assert_eq!(max_age, DEFAULT_CONNECTION_LIMIT);
            assert!(token.expires_at <= SystemTime::now() + Duration::from_secs(900));
        }
        Err(e) => println!("ERROR={e}"),
    }
}

/// Runs `test` of this binary in a child with only `vars` (and a `PATH`) set, `HOME` an
/// empty directory and no AWS files, and reads what it found.
fn run_child(test: &str, home: &Path, vars: &[(&str, String)]) -> Found {
    let empty = home.join("none");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env(CHILD, "1");
    for (k, v) in vars {
        command.env(k, v);
    }
    let out = command.output().expect("running the child");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_string()
    };
    Found {
        kind: line("KIND"),
        key: line("KEY"),
        region: line("REGION"),
        session_token: line("SESSION_TOKEN") == "true",
        error: line("ERROR"),
    }
}

/// In a child, runs the case and returns true; in the parent, false.
fn as_child() -> bool {
    if std::env::var_os(CHILD).is_none() {
        return false;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(child_main());
    true
}

/// Variables that keep the chain off the instance metadata service, where a case does
/// not mean to reach it (off EC2 it would only cost time).
fn no_imds() -> (&'static str, String) {
    ("AWS_EC2_METADATA_DISABLED", "true".into())
}

fn region(r: &str) -> (&'static str, String) {
    (REGION, r.into())
}

#[test]
fn environment_variables() {
    if as_child() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let found = run_child(
        "environment_variables",
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
            ("AWS_REGION", "eu-central-1".into()),
            no_imds(),
        ],
    );
    assert_eq!(found.error, "");
    assert_eq!(found.kind, "aws-iam (EnvironmentVariable)");
    assert_eq!(found.key, "AKIAENVIRONMENT00001");
    assert_eq!(found.region, "eu-central-1", "the region from AWS_REGION");
    assert!(!found.session_token);
}

#[test]
fn shared_profile_files() {
    if as_child() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let credentials = home.path().join("credentials");
    std::fs::write(&config, "[profile app]\nregion = ap-northeast-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[app]\naws_access_key_id = AKIAPROFILEFILE00001\naws_secret_access_key = profile-secret\naws_session_token = profile-session\n",
    )
    .unwrap();
    let found = run_child(
        "shared_profile_files",
        home.path(),
        &[
            ("AWS_CONFIG_FILE", config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_PROFILE", "app".into()),
            no_imds(),
        ],
    );
    assert_eq!(found.error, "");
    assert_eq!(found.kind, "aws-iam (ProfileFile)");
    assert_eq!(found.key, "AKIAPROFILEFILE00001");
    assert_eq!(found.region, "ap-northeast-1", "the profile's region");
    assert!(found.session_token);
}

#[test]
fn credential_process() {
    if as_child() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("creds.sh");
    let expiry = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS000000001\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"process-session\", \"Expiration\": \"{expiry}\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = sa-east-1\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let found = run_child(
        "credential_process",
        home.path(),
        &[("AWS_CONFIG_FILE", config.display().to_string()), no_imds()],
    );
    assert_eq!(found.error, "");
    assert_eq!(found.kind, "aws-iam (CredentialProcess)");
    assert_eq!(found.key, "ASIAPROCESS000000001");
    assert!(found.session_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_against_an_sts_stand_in() {
    if std::env::var_os(CHILD).is_some() {
        // A runtime cannot start inside this one: the child's work on a thread of its own.
        std::thread::spawn(as_child).join().unwrap();
        return;
    }
    let issued = Issued::new("STS", Duration::from_secs(3600));
    let sts = standins::sts::start("the-projected-token".into(), issued.clone())
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "the-projected-token").unwrap();
    let vars = [
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/redauth".into(),
        ),
        ("AWS_ROLE_SESSION_NAME", "redauth-test".into()),
        ("AWS_ENDPOINT_URL_STS", sts.url()),
        region("us-east-2"),
        no_imds(),
    ];
    let home_path = home.path().to_path_buf();
    let found = tokio::task::spawn_blocking(move || {
        run_child("web_identity_against_an_sts_stand_in", &home_path, &vars)
    })
    .await
    .unwrap();
    assert_eq!(found.error, "", "requests: {:?}", sts.requests());
    assert_eq!(found.kind, "aws-iam (WebIdentityToken)");
    assert_eq!(found.key, issued.access_key_id);
    assert_eq!(found.region, "us-east-2", "--aws-region");
    assert!(found.session_token);
    assert_eq!(sts.requests(), vec!["POST /".to_string()]);
}

/// The account, role and access token of the SSO cases.
const SSO_ACCOUNT: &str = "123456789012";
const SSO_ROLE: &str = "RedauthReader";
const SSO_TOKEN: &str = "the-sso-access-token";

/// An SSO case: the profile in `config` (naming [`SSO_ACCOUNT`] and [`SSO_ROLE`]) with
/// `cached_token` in the cache file `aws sso login` would have left under `identifier` (the
/// `sso_session` name, or a legacy profile's `sso_start_url`), against an SSO portal stand-in
/// reached through `AWS_ENDPOINT_URL_SSO` that accepts only [`SSO_TOKEN`]. Returns what the
/// child found, the credentials the stand-in hands out and the requests it saw.
async fn sso_case(
    test: &'static str,
    config: &str,
    identifier: &str,
    cached_token: &str,
) -> (Found, Issued, Vec<String>) {
    let issued = Issued::new("SSO", Duration::from_secs(3600));
    let expected = standins::sso::Expected {
        access_token: SSO_TOKEN.into(),
        account_id: SSO_ACCOUNT.into(),
        role_name: SSO_ROLE.into(),
    };
    let sso = standins::sso::start(expected, issued.clone())
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let expires_at = SystemTime::now() + Duration::from_secs(3600);
    standins::sso::write_cached_token(home.path(), identifier, cached_token, expires_at).unwrap();
    let config_file = home.path().join("config");
    std::fs::write(&config_file, config).unwrap();
    let vars = [
        ("AWS_CONFIG_FILE", config_file.display().to_string()),
        ("AWS_ENDPOINT_URL_SSO", sso.url()),
        no_imds(),
    ];
    let home_path = home.path().to_path_buf();
    let found = tokio::task::spawn_blocking(move || run_child(test, &home_path, &vars))
        .await
        .unwrap();
    (found, issued, sso.requests())
}

/// The request the SSO provider makes of the portal.
fn sso_request() -> String {
    format!("GET /federation/credentials?role_name={SSO_ROLE}&account_id={SSO_ACCOUNT}")
}

/// A default profile with the `corp` SSO session, its region `ca-central-1`.
fn sso_session_config() -> String {
    format!(
        "[default]\nregion = ca-central-1\nsso_session = corp\nsso_account_id = {SSO_ACCOUNT}\nsso_role_name = {SSO_ROLE}\n\n[sso-session corp]\nsso_region = us-west-2\nsso_start_url = https://d-0000000000.awsapps.com/start\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_session_against_an_sso_stand_in() {
    if std::env::var_os(CHILD).is_some() {
        std::thread::spawn(as_child).join().unwrap();
        return;
    }
    let config = sso_session_config();
    let (found, issued, requests) = sso_case(
        "sso_session_against_an_sso_stand_in",
        &config,
        "corp",
        SSO_TOKEN,
    )
    .await;
    assert_eq!(found.error, "", "requests: {requests:?}");
    assert_eq!(found.kind, "aws-iam (SSO)");
    assert_eq!(found.key, issued.access_key_id);
    assert_eq!(
        found.region, "ca-central-1",
        "the profile's region, not sso_region"
    );
    assert!(found.session_token);
    assert_eq!(requests, vec![sso_request()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sso_profile_against_an_sso_stand_in() {
    if std::env::var_os(CHILD).is_some() {
        std::thread::spawn(as_child).join().unwrap();
        return;
    }
    let start_url = "https://d-1111111111.awsapps.com/start";
    let config = format!(
        "[default]\nregion = eu-north-1\nsso_start_url = {start_url}\nsso_region = eu-west-1\nsso_account_id = {SSO_ACCOUNT}\nsso_role_name = {SSO_ROLE}\n"
    );
    let (found, issued, requests) = sso_case(
        "legacy_sso_profile_against_an_sso_stand_in",
        &config,
        start_url,
        SSO_TOKEN,
    )
    .await;
    assert_eq!(found.error, "", "requests: {requests:?}");
    assert_eq!(found.kind, "aws-iam (SSO)");
    assert_eq!(found.key, issued.access_key_id);
    assert_eq!(found.region, "eu-north-1");
    assert!(found.session_token);
    assert_eq!(requests, vec![sso_request()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_with_a_token_the_portal_refuses_is_an_error() {
    if std::env::var_os(CHILD).is_some() {
        std::thread::spawn(as_child).join().unwrap();
        return;
    }
    let config = sso_session_config();
    let (found, _, requests) = sso_case(
        "sso_with_a_token_the_portal_refuses_is_an_error",
        &config,
        "corp",
        "a-stale-sso-access-token",
    )
    .await;
    assert!(found.error.starts_with("aws-iam: "), "{found:?}");
    // The portal's refusal, as the SSO client read it; not the token.
    assert!(found.error.contains("UnauthorizedException"), "{found:?}");
    assert!(found.kind.is_empty(), "{found:?}");
    assert!(
        !found.error.contains("a-stale-sso-access-token"),
        "{found:?}"
    );
    assert_eq!(requests, vec![sso_request()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_v2_against_a_metadata_stand_in() {
    if std::env::var_os(CHILD).is_some() {
        std::thread::spawn(as_child).join().unwrap();
        return;
    }
    let issued = Issued::new("IMDS", Duration::from_secs(6 * 3600));
    let imds = standins::imds::start(issued.clone()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let vars = [
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()),
        region("eu-west-3"),
    ];
    let home_path = home.path().to_path_buf();
    let found = tokio::task::spawn_blocking(move || {
        run_child("imds_v2_against_a_metadata_stand_in", &home_path, &vars)
    })
    .await
    .unwrap();
    assert_eq!(found.error, "", "requests: {:?}", imds.requests());
    assert_eq!(found.kind, "aws-iam (IMDSv2)");
    assert_eq!(found.key, issued.access_key_id);
    assert!(found.session_token);
    let requests = imds.requests();
    assert_eq!(
        requests.first().map(String::as_str),
        Some("PUT /latest/api/token")
    );
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /latest/meta-data/iam/security-credentials/redauth-test-role"),
        "{requests:?}"
    );
}

#[test]
fn no_region_anywhere_is_an_error_at_start() {
    if as_child() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let found = run_child(
        "no_region_anywhere_is_an_error_at_start",
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
            no_imds(),
        ],
    );
    assert!(found.error.contains("no AWS region"), "{found:?}");
    assert!(found.error.contains("--aws-region"), "{found:?}");
}

#[test]
fn no_credentials_anywhere_says_what_was_tried() {
    if as_child() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let found = run_child(
        "no_credentials_anywhere_says_what_was_tried",
        home.path(),
        &[region("us-east-1"), no_imds()],
    );
    assert!(found.error.starts_with("aws-iam: "), "{found:?}");
    // One line, naming every provider the chain tried.
    for provider in [
        "Environment",
        "Profile",
        "WebIdentityToken",
        "EcsContainer",
        "Ec2InstanceMetadata",
    ] {
        assert!(found.error.contains(&format!("{provider}: ")), "{found:?}");
    }
    assert!(found.kind.is_empty(), "{found:?}");
}
