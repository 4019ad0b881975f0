//! The verifier against fixed vectors from a real signer (botocore) and
//! against tokens signed here, each field tampered with in turn.

use super::*;
use std::time::UNIX_EPOCH;

const USER: &str = "iam-user-01";

/// 2026-03-01T12:00:00Z, when the botocore vectors were signed.
fn signed_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_772_366_400)
}

fn cache(name: &str, region: &str, service: AwsService, serverless: bool) -> AwsCache {
    AwsCache {
        name: name.into(),
        region: region.into(),
        service,
        serverless,
        user_id: USER.into(),
        connection_limit: Duration::from_secs(12 * 3600),
    }
}

fn default_cache() -> AwsCache {
    cache("my-cache", "us-east-1", AwsService::ElastiCache, false)
}

/// The credentials the botocore vectors were signed with.
fn botocore_credentials() -> Credentials {
    Credentials {
        access_key_id: "ASIAEMULATOREXAMPLE1".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        session_token: "IQoJb3JpZ2luX2VjEXAMPLE/session+token==".into(),
        expires_at: signed_at() + Duration::from_secs(3600),
    }
}

/// Made with botocore 1.44.8: `SigV4QueryAuth(Credentials(<the above>),
/// service, region, expires=900).add_auth(AWSRequest("GET",
/// "http://<cache>/", params={"Action": "connect", "User": USER
/// [, "ResourceType": "ServerlessCache"]}))` with `get_current_datetime`
/// frozen at 2026-03-01T12:00:00, the URL's `http://` removed.
const BOTOCORE: [(&str, &str, AwsService, bool, &str); 3] = [
    (
        "my-cache",
        "us-east-1",
        AwsService::ElastiCache,
        false,
        "my-cache/?Action=connect&User=iam-user-01&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEMULATOREXAMPLE1%2F20260301%2Fus-east-1%2Felasticache%2Faws4_request&X-Amz-Date=20260301T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Fsession%2Btoken%3D%3D&X-Amz-Signature=0bb05c1edf70a1ab33a86ddd983a64442bba108c942cc3c0357cecb3bf24338f",
    ),
    (
        "my-serverless",
        "eu-west-1",
        AwsService::ElastiCache,
        true,
        "my-serverless/?Action=connect&User=iam-user-01&ResourceType=ServerlessCache&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEMULATOREXAMPLE1%2F20260301%2Feu-west-1%2Felasticache%2Faws4_request&X-Amz-Date=20260301T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Fsession%2Btoken%3D%3D&X-Amz-Signature=21088647c4b7cc50ce38439ae1aa594b32988949e3a0c4f413a11d83ac120593",
    ),
    (
        "my-memorydb",
        "us-west-2",
        AwsService::MemoryDb,
        false,
        "my-memorydb/?Action=connect&User=iam-user-01&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEMULATOREXAMPLE1%2F20260301%2Fus-west-2%2Fmemorydb%2Faws4_request&X-Amz-Date=20260301T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Fsession%2Btoken%3D%3D&X-Amz-Signature=58b584edb29dd5e56eb2d24157ed24d71b90351966a134defd150842fe302990",
    ),
];

fn verifier_with(cache: AwsCache, credentials: Credentials) -> AwsVerifier {
    let issuer = Arc::new(CredentialIssuer::new(Duration::from_secs(60)));
    issuer.remember(credentials);
    AwsVerifier::new(cache, issuer)
}

#[test]
fn botocore_presigned_tokens_verify() {
    for (name, region, service, serverless, token) in BOTOCORE {
        let verifier = verifier_with(
            cache(name, region, service, serverless),
            botocore_credentials(),
        );
        let now = signed_at() + Duration::from_secs(10);
        let verified = verifier.verify(USER.as_bytes(), token, now).unwrap();
        assert_eq!(verified.access_key_id, "ASIAEMULATOREXAMPLE1");
        assert_eq!(verified.signed_at, signed_at());
        assert_eq!(verified.valid_until, signed_at() + Duration::from_secs(900));
        // Signing here gives the same token, up to parameter order.
        let ours = verifier.token(&botocore_credentials(), USER, signed_at());
        let sorted = |t: &str| {
            let mut parts: Vec<String> = t.split(['?', '&']).map(String::from).collect();
            parts.sort();
            parts
        };
        assert_eq!(sorted(&ours), sorted(token), "{name}");
    }
}

#[test]
fn a_token_is_good_for_its_fifteen_minutes_only() {
    let (name, region, service, serverless, token) = BOTOCORE[0];
    let verifier = verifier_with(
        cache(name, region, service, serverless),
        botocore_credentials(),
    );
    let verify = |now| verifier.verify(USER.as_bytes(), token, now);
    let end = signed_at() + Duration::from_secs(900);
    assert!(verify(end).is_ok());
    assert_eq!(
        verify(end + Duration::from_secs(1)),
        Err(Rejection::Expired(end))
    );
    assert!(verify(signed_at() - SKEW).is_ok(), "within the clock skew");
    assert_eq!(
        verify(signed_at() - SKEW - Duration::from_secs(1)),
        Err(Rejection::NotYetValid(signed_at()))
    );
}

/// A verifier of [`default_cache`] with freshly issued credentials.
fn fresh() -> (AwsVerifier, Credentials) {
    let issuer = Arc::new(CredentialIssuer::new(Duration::from_secs(600)));
    let credentials = issuer.issue();
    (AwsVerifier::new(default_cache(), issuer), credentials)
}

/// Replaces the value of parameter `name` in `token` (not re-signing).
fn with_param(token: &str, name: &str, value: &str) -> String {
    let (host, query) = token.split_once("/?").unwrap();
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{host}/?{}", parts.join("&"))
}

fn without_param(token: &str, name: &str) -> String {
    let (host, query) = token.split_once("/?").unwrap();
    let parts: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |p| p.0) != name)
        .collect();
    format!("{host}/?{}", parts.join("&"))
}

#[test]
fn a_fresh_token_verifies() {
    let (verifier, credentials) = fresh();
    let now = SystemTime::now();
    let token = verifier.token(&credentials, USER, now);
    let verified = verifier.verify(USER.as_bytes(), &token, now).unwrap();
    assert_eq!(verified.access_key_id, credentials.access_key_id);
    // Upper-case host and lower-case percent escapes are the same URL.
    let upper = token.replacen("my-cache", "MY-CACHE", 1);
    assert!(
        verifier.verify(USER.as_bytes(), &upper, now).is_err(),
        "the host is signed as sent"
    );
    let lower = token.replace("%2F", "%2f");
    assert!(verifier.verify(USER.as_bytes(), &lower, now).is_ok());
}

#[test]
fn tampering_after_signing_breaks_the_signature() {
    let (verifier, credentials) = fresh();
    let now = SystemTime::now();
    let token = verifier.token(&credentials, USER, now);
    let date = sigv4::amz_date(now - Duration::from_secs(1));
    let altered = [
        with_param(&token, "X-Amz-Expires", "600"),
        with_param(&token, "X-Amz-Date", &date),
        with_param(&token, "Action", "Connect"),
        token.replacen("?Action=connect", "?Action=connect&Extra=1", 1),
        {
            let signature = token.rsplit_once('=').unwrap().1;
            let flipped = if signature.ends_with('0') { "1" } else { "0" };
            format!("{}{flipped}", &token[..token.len() - 1])
        },
    ];
    for (i, token) in altered.iter().enumerate() {
        let result = verifier.verify(USER.as_bytes(), token, now);
        assert_eq!(result, Err(Rejection::BadSignature), "alteration {i}");
    }
    // Another user's name, or another host, under the original signature.
    let other_user = with_param(&token, "User", "someone");
    assert_eq!(
        verifier.verify(b"someone", &other_user, now),
        Err(Rejection::BadSignature)
    );
    let other_host = token.replacen("my-cache", "other-cache", 1);
    assert_eq!(
        verifier.verify(USER.as_bytes(), &other_host, now),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn keys_and_session_tokens_must_be_the_issued_ones() {
    let (verifier, credentials) = fresh();
    let now = SystemTime::now();
    let token = verifier.token(&credentials, USER, now);
    let other = verifier.credentials().issue();
    let swapped = with_param(
        &token,
        "X-Amz-Security-Token",
        &sigv4::uri_encode(&other.session_token),
    );
    let cases = [
        (
            without_param(&token, "X-Amz-Security-Token"),
            Rejection::MissingSecurityToken,
        ),
        (swapped, Rejection::WrongSecurityToken),
        (
            token.replacen(&credentials.access_key_id, "ASIA0000000000000000", 1),
            Rejection::UnknownAccessKey,
        ),
        (
            // Signed with a secret that is not the key's.
            verifier.token(
                &Credentials {
                    secret_access_key: other.secret_access_key.clone(),
                    ..credentials.clone()
                },
                USER,
                now,
            ),
            Rejection::BadSignature,
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(verifier.verify(USER.as_bytes(), &token, now), Err(expected));
    }
}

#[test]
fn signed_tokens_for_something_else_are_refused_precisely() {
    let (verifier, credentials) = fresh();
    let now = SystemTime::now();
    let sign = |host: &str, params: &[(&str, &str)], region: &str, service: &str| {
        presign(
            host,
            params,
            &credentials,
            region,
            service,
            now,
            MAX_EXPIRES,
        )
    };
    let connect = [("Action", "connect"), ("User", USER)];
    let serverless = [
        ("Action", "connect"),
        ("User", USER),
        ("ResourceType", SERVERLESS),
    ];
    let cases: Vec<(&[u8], String, Rejection)> = vec![
        (
            USER.as_bytes(),
            sign("other-cache", &connect, "us-east-1", "elasticache"),
            Rejection::WrongHost {
                expected: "my-cache".into(),
            },
        ),
        (
            USER.as_bytes(),
            sign(
                "my-cache",
                &[("Action", "list"), ("User", USER)],
                "us-east-1",
                "elasticache",
            ),
            Rejection::WrongAction,
        ),
        (
            b"someone-else",
            sign("my-cache", &connect, "us-east-1", "elasticache"),
            Rejection::WrongUser,
        ),
        (
            b"someone-else",
            sign(
                "my-cache",
                &[("Action", "connect"), ("User", "someone-else")],
                "us-east-1",
                "elasticache",
            ),
            Rejection::UnknownUser {
                expected: USER.into(),
            },
        ),
        (
            USER.as_bytes(),
            sign("my-cache", &serverless, "us-east-1", "elasticache"),
            Rejection::WrongResourceType { serverless: false },
        ),
        (
            USER.as_bytes(),
            sign("my-cache", &connect, "eu-west-1", "elasticache"),
            Rejection::WrongRegion {
                expected: "us-east-1".into(),
            },
        ),
        (
            USER.as_bytes(),
            sign("my-cache", &connect, "us-east-1", "memorydb"),
            Rejection::WrongService {
                expected: "elasticache",
            },
        ),
        (
            USER.as_bytes(),
            sign("my-cache", &[("User", USER)], "us-east-1", "elasticache"),
            Rejection::MissingParameter("Action"),
        ),
    ];
    for (user, token, expected) in cases {
        assert_eq!(verifier.verify(user, &token, now), Err(expected));
    }
    // A serverless cache wants the ResourceType.
    let serverless_cache = AwsVerifier::new(
        AwsCache {
            serverless: true,
            ..default_cache()
        },
        verifier.credentials().clone(),
    );
    let plain = sign("my-cache", &connect, "us-east-1", "elasticache");
    assert_eq!(
        serverless_cache.verify(USER.as_bytes(), &plain, now),
        Err(Rejection::WrongResourceType { serverless: true })
    );
    let token = sign("my-cache", &serverless, "us-east-1", "elasticache");
    assert!(serverless_cache
        .verify(USER.as_bytes(), &token, now)
        .is_ok());
}

#[test]
fn expiry_of_tokens_and_of_credentials() {
    let issuer = Arc::new(CredentialIssuer::new(Duration::from_secs(2)));
    let verifier = AwsVerifier::new(default_cache(), issuer.clone());
    let now = SystemTime::now();
    let credentials = issuer.issue_at(now);
    let token = verifier.token(&credentials, USER, now);
    assert!(verifier.verify(USER.as_bytes(), &token, now).is_ok());
    assert_eq!(
        verifier.verify(USER.as_bytes(), &token, credentials.expires_at),
        Err(Rejection::CredentialsExpired(credentials.expires_at))
    );
    let long = presign(
        "my-cache",
        &[("Action", "connect"), ("User", USER)],
        &credentials,
        "us-east-1",
        "elasticache",
        now,
        3600,
    );
    assert_eq!(
        verifier.verify(USER.as_bytes(), &long, now),
        Err(Rejection::ExpiresTooLong(3600))
    );
    let future = verifier.token(&credentials, USER, now + Duration::from_secs(60));
    assert!(matches!(
        verifier.verify(USER.as_bytes(), &future, now),
        Err(Rejection::NotYetValid(_))
    ));
}

#[test]
fn malformed_tokens_are_refused_without_echoing_them() {
    let (verifier, credentials) = fresh();
    let now = SystemTime::now();
    let token = verifier.token(&credentials, USER, now);
    let bad = [
        String::new(),
        "password123".into(),
        "my-cache/".into(),
        "/?Action=connect".into(),
        "my-cache/?".into(),
        "my-cache/?%zz=1".into(),
        format!("{token}&Action=connect"),
        with_param(&token, "X-Amz-Algorithm", "AWS4-HMAC-SHA512"),
        with_param(&token, "X-Amz-SignedHeaders", "host%3Bx-amz-date"),
        with_param(&token, "X-Amz-Credential", "ASIA%2F20260301"),
        with_param(&token, "X-Amz-Date", "yesterday"),
        with_param(&token, "X-Amz-Date", "20000101T000000Z"),
        with_param(&token, "X-Amz-Signature", "abc"),
        without_param(&token, "X-Amz-Signature"),
        "a.b.c".into(),
    ];
    for text in &bad {
        let err = verifier.verify(USER.as_bytes(), text, now).unwrap_err();
        let shown = err.to_string();
        assert!(
            !matches!(
                err,
                Rejection::Expired(_) | Rejection::CredentialsExpired(_)
            ),
            "{text}: {err:?}"
        );
        assert!(!shown.contains(&credentials.secret_access_key), "{shown}");
        assert!(!shown.contains(&credentials.session_token), "{shown}");
        if text.len() > 12 {
            assert!(!shown.contains(text.as_str()), "{shown}");
        }
    }
    assert_eq!(
        verifier.verify(USER.as_bytes(), &bad[7], now),
        Err(Rejection::WrongAlgorithm)
    );
    assert_eq!(
        verifier.verify(USER.as_bytes(), &bad[8], now),
        Err(Rejection::WrongSignedHeaders)
    );
}
