//! redauth's ElastiCache/MemoryDB IAM tokens against botocore's, AWS's own signer
//! (tests/clients/botocore_presign.py, in the virtualenv tests/clients/install.sh makes):
//! the same credentials, cache, user, region and time must give byte-identical tokens, with
//! and without a session token, provisioned and serverless ElastiCache, and MemoryDB.
//!
//! botocore is installed from PyPI on first use; if it cannot be, the test fails: it never
//! passes without having compared anything.

use aws_credential_types::Credentials;
use redauth::credentials::aws_token::{presign, Service, Target};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

struct Case {
    access_key: &'static str,
    secret_key: &'static str,
    session_token: Option<&'static str>,
    cache: &'static str,
    user: &'static str,
    region: &'static str,
    service: Service,
    serverless: bool,
    unix_time: u64,
}

const CASES: [Case; 5] = [
    Case {
        access_key: "AKIAIOSFODNN7EXAMPLE",
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: None,
        cache: "my-cache",
        user: "app-user",
        region: "us-east-1",
        service: Service::ElastiCache,
        serverless: false,
        unix_time: 1_714_979_289,
    },
    Case {
        access_key: "ASIAEXAMPLETEMPORARY",
        secret_key: "tEmPoRaRy+SeCrEt/KeY=0123456789abcdefghij",
        session_token: Some(
            "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+example/token==",
        ),
        cache: "my-cache",
        user: "app-user",
        region: "eu-west-1",
        service: Service::ElastiCache,
        serverless: false,
        unix_time: 1_700_000_000,
    },
    Case {
        access_key: "ASIAEXAMPLETEMPORARY",
        secret_key: "tEmPoRaRy+SeCrEt/KeY=0123456789abcdefghij",
        session_token: Some("FwoGZXIvYXdzEBYaDK+another/session+token"),
        cache: "Serverless-Cache-01",
        user: "iam-user-7",
        region: "ap-southeast-2",
        service: Service::ElastiCache,
        serverless: true,
        unix_time: 1_735_689_599,
    },
    Case {
        access_key: "AKIAIOSFODNN7EXAMPLE",
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: None,
        cache: "my-memorydb-cluster",
        user: "memorydb.user",
        region: "us-west-2",
        service: Service::MemoryDb,
        serverless: false,
        unix_time: 1_714_979_289,
    },
    Case {
        access_key: "ASIAEXAMPLETEMPORARY",
        secret_key: "tEmPoRaRy+SeCrEt/KeY=0123456789abcdefghij",
        session_token: Some(
            "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+example/token==",
        ),
        cache: "my-memorydb-cluster",
        user: "user_with~odd.chars",
        region: "us-west-2",
        service: Service::MemoryDb,
        serverless: false,
        unix_time: 1_714_979_289,
    },
];

fn redauth_token(case: &Case) -> String {
    let credentials = Credentials::new(
        case.access_key,
        case.secret_key,
        case.session_token.map(String::from),
        None,
        "test",
    );
    let target = Target {
        cache: case.cache.into(),
        user: case.user.into(),
        region: case.region.into(),
        service: case.service,
        serverless: case.serverless,
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(case.unix_time);
    presign(&credentials, &target, at)
        .expect("signs")
        .expose()
        .to_string()
}

fn botocore_tokens(cases: &[Case]) -> Vec<String> {
    let install = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/install.sh");
    let out = Command::new(install)
        .arg("python")
        .stderr(Stdio::inherit())
        .output()
        .expect("running tests/clients/install.sh");
    assert!(
        out.status.success(),
        "installing botocore failed (PyPI unreachable?): this test cannot compare without it"
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let input = serde_json::Value::Array(
        cases
            .iter()
            .map(|c| {
                serde_json::json!({
                    "access_key": c.access_key,
                    "secret_key": c.secret_key,
                    "session_token": c.session_token,
                    "cache": c.cache,
                    "user": c.user,
                    "region": c.region,
                    "service": c.service.name(),
                    "serverless": c.serverless,
                    "unix_time": c.unix_time,
                })
            })
            .collect(),
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/botocore_presign.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting botocore_presign.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore_presign.py failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn tokens_are_byte_identical_to_botocores() {
    let theirs = botocore_tokens(&CASES);
    assert_eq!(theirs.len(), CASES.len(), "one token per case: {theirs:?}");
    for (case, theirs) in CASES.iter().zip(&theirs) {
        let ours = redauth_token(case);
        assert_eq!(
            &ours,
            theirs,
            "{} {} {} serverless={} session token: {}",
            case.service.name(),
            case.cache,
            case.region,
            case.serverless,
            case.session_token.is_some()
        );
    }
    // Not vacuous: the cases give distinct tokens.
    let mut distinct = theirs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), CASES.len());
}
