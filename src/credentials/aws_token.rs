//! The ElastiCache/MemoryDB IAM token: a pure function of the signing
//! credentials, the cache, the user, the region and the time.
//!
//! The token is a SigV4-presigned `GET http://<cache>/?Action=connect&User=<user>`
//! (with `&ResourceType=ServerlessCache` for an ElastiCache serverless cache),
//! for service `elasticache` or `memorydb`, valid [`TOKEN_LIFETIME`], signing
//! only the `host` header and the hash of the empty payload; a session token
//! is part of the signed query (`X-Amz-Security-Token`). The password is that
//! URL without `http://`. The query is written in the order AWS's own SDKs
//! write it (botocore's `generate_presigned_url`: the operation's parameters,
//! then the authentication parameters, the signature last), so the token is
//! byte for byte the one botocore makes (tests/aws_token_botocore.rs checks).
//!
//! Nothing here fetches credentials or logs; an error never holds a secret.

use super::Secret;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// How long a token is accepted for new connections (AWS's 15 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Which AWS service the cache belongs to: the signing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    ElastiCache,
    MemoryDb,
}

impl Service {
    /// The SigV4 signing name, also the `--aws-service` value.
    pub fn name(self) -> &'static str {
        match self {
            Service::ElastiCache => "elasticache",
            Service::MemoryDb => "memorydb",
        }
    }
}

impl std::str::FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "elasticache" => Ok(Service::ElastiCache),
            "memorydb" => Ok(Service::MemoryDb),
            other => Err(format!("{other:?} is neither elasticache nor memorydb")),
        }
    }
}

/// What a token is for: everything but the credentials and the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The replication group id or serverless cache name (ElastiCache), or
    /// the cluster name (MemoryDB); lower-cased when signed.
    pub cache: String,
    /// The IAM-enabled user's id (ElastiCache: equal to its name).
    pub user: String,
    pub region: String,
    pub service: Service,
    /// An ElastiCache serverless cache (`ResourceType=ServerlessCache`).
    pub serverless: bool,
}

/// Why a token could not be signed (a malformed region or cache name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing the IAM token: {0}")]
pub struct SignError(String);

/// The token for `target`, signed with `credentials` at `time`.
pub fn presign(
    credentials: &Credentials,
    target: &Target,
    time: SystemTime,
) -> Result<Secret, SignError> {
    let host = target.cache.to_ascii_lowercase();
    let mut query = format!("Action=connect&User={}", encode(&target.user));
    if target.serverless {
        query.push_str("&ResourceType=ServerlessCache");
    }
    let url = format!("http://{host}/?{query}");

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.region)
        .name(target.service.name())
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| SignError(format!("{host:?} is not a usable cache name: {e}")))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let (_, added) = instructions.into_parts();
    let param = |name: &str| {
        added
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.as_ref())
    };
    let mut token = format!("{host}/?{query}");
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        if let Some(value) = param(name) {
            let _ = write!(token, "&{name}={}", encode(value));
        }
    }
    if param("X-Amz-Signature").is_none() {
        return Err(SignError("the signer returned no signature".into()));
    }
    Ok(Secret::new(token))
}

/// SigV4's URI encoding of a query value: every byte but `A-Za-z0-9-_.~`
/// as `%XX`, upper-case hex.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-06T07:08:09Z.
    fn time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_979_289)
    }

    fn target(service: Service, serverless: bool) -> Target {
        Target {
            cache: "My-Cache".into(),
            user: "iam-user-01".into(),
            region: "eu-west-1".into(),
            service,
            serverless,
        }
    }

    fn temporary() -> Credentials {
        Credentials::new(
            "ASIAEXAMPLEKEYID0001",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjE+example/session=token".into()),
            None,
            "test",
        )
    }

    #[test]
    fn a_temporary_credential_signs_its_session_token_into_the_query() {
        let token = presign(&temporary(), &target(Service::ElastiCache, false), time()).unwrap();
        let token = token.expose();
        assert!(
            token.starts_with("my-cache/?Action=connect&User=iam-user-01&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLEKEYID0001%2F20240506%2Feu-west-1%2Felasticache%2Faws4_request&X-Amz-Date=20240506T070809Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2Bexample%2Fsession%3Dtoken&X-Amz-Signature="),
            "{token}"
        );
        // The signature botocore computes for the same inputs (see tests/aws_token_botocore.rs).
        let signature = token.rsplit_once("X-Amz-Signature=").unwrap().1;
        assert_eq!(
            signature,
            "7215421824403f02232ce56b7698e82c3a1e1c9a8a6f8be31daa0879f2aebbef"
        );
        assert!(!token.contains("ResourceType"));
        assert!(
            !token.contains("wJalr"),
            "the secret key is never in the token"
        );
    }

    #[test]
    fn signatures_differ_by_every_input_and_repeat_for_the_same() {
        let signature = |creds: &Credentials, t: &Target, at: SystemTime| {
            let token = presign(creds, t, at).unwrap();
            token.expose().rsplit_once('=').unwrap().1.to_string()
        };
        let base = target(Service::ElastiCache, false);
        let first = signature(&temporary(), &base, time());
        assert_eq!(first, signature(&temporary(), &base, time()));
        let serverless = target(Service::ElastiCache, true);
        let memorydb = target(Service::MemoryDb, false);
        let later = time() + Duration::from_secs(1);
        let long_term = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let others = [
            signature(&temporary(), &serverless, time()),
            signature(&temporary(), &memorydb, time()),
            signature(&temporary(), &base, later),
            signature(&long_term, &base, time()),
        ];
        for other in &others {
            assert_ne!(&first, other);
        }
    }

    #[test]
    fn serverless_and_memorydb_tokens() {
        let serverless =
            presign(&temporary(), &target(Service::ElastiCache, true), time()).unwrap();
        assert!(serverless
            .expose()
            .starts_with("my-cache/?Action=connect&User=iam-user-01&ResourceType=ServerlessCache&X-Amz-Algorithm="));
        let memorydb = presign(&temporary(), &target(Service::MemoryDb, false), time()).unwrap();
        assert!(memorydb
            .expose()
            .contains("%2Feu-west-1%2Fmemorydb%2Faws4_request&"));
        assert!(memorydb.expose().ends_with(
            "&X-Amz-Signature=5c62947a3b3f4584da4776c6e0e8e461972df4a78302d8b50b1546489fb51267"
        ));
        let long_term = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let plain = presign(&long_term, &target(Service::MemoryDb, false), time()).unwrap();
        assert!(!plain.expose().contains("Security-Token"));
    }

    #[test]
    fn query_values_are_sigv4_encoded() {
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("a b/c+d=é"), "a%20b%2Fc%2Bd%3D%C3%A9");
    }

    #[test]
    fn services_by_name() {
        assert_eq!("memorydb".parse(), Ok(Service::MemoryDb));
        assert_eq!("elasticache".parse(), Ok(Service::ElastiCache));
        assert!("redis".parse::<Service>().is_err());
    }
}
