//! Verifies ElastiCache/MemoryDB IAM authentication tokens the way AWS
//! does: recomputes the SigV4 signature of the presigned URL and checks
//! every field against the emulated cache.
//!
//! A token is a presigned `GET http://<cache>/?Action=connect&User=<user>`
//! without its scheme: `<cache>/?Action=connect&User=<user>[&ResourceType=
//! ServerlessCache]&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=…
//! &X-Amz-Date=…&X-Amz-Expires=900&X-Amz-Security-Token=…
//! &X-Amz-SignedHeaders=host&X-Amz-Signature=<hex>`, parameters in any
//! order. [`AwsVerifier::verify`] parses it (never comparing strings whole),
//! looks the access key up in the [`CredentialIssuer`], checks the session
//! token and the signature (both in constant time), then the host, action,
//! user, resource type, region, service, signing time and the credentials'
//! expiry. A refusal is a [`Rejection`] that names what was wrong and never
//! holds the token, the secret or the session token.

use super::credentials::{CredentialIssuer, Credentials};
use super::sigv4;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The longest `X-Amz-Expires` an IAM auth token may carry (15 minutes).
pub const MAX_EXPIRES: u64 = 900;

/// How far in the future a token's `X-Amz-Date` may lie (clock skew).
pub const SKEW: Duration = Duration::from_secs(5);

/// The `ResourceType` of a serverless cache's tokens.
pub const SERVERLESS: &str = "ServerlessCache";

/// Which AWS service the cache belongs to (the service in the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    /// ElastiCache (Redis OSS / Valkey), service name `elasticache`.
    ElastiCache,
    /// MemoryDB, service name `memorydb`.
    MemoryDb,
}

impl AwsService {
    /// The service name in the credential scope.
    pub fn name(self) -> &'static str {
        match self {
            AwsService::ElastiCache => "elasticache",
            AwsService::MemoryDb => "memorydb",
        }
    }
}

impl std::str::FromStr for AwsService {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "elasticache" => Ok(AwsService::ElastiCache),
            "memorydb" => Ok(AwsService::MemoryDb),
            other => Err(format!(
                "the service is elasticache or memorydb, not {other:?}"
            )),
        }
    }
}

/// The emulated cache, as its tokens must name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCache {
    /// The cache (or MemoryDB cluster) name: the host of the presigned URL.
    pub name: String,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// `elasticache` or `memorydb`.
    pub service: AwsService,
    /// A serverless cache: tokens carry `ResourceType=ServerlessCache`.
    pub serverless: bool,
    /// The IAM-enabled user's id, which ElastiCache requires to equal its
    /// name: the Redis username.
    pub user_id: String,
    /// How long an authenticated connection lives without a fresh AUTH
    /// (AWS: 12 hours).
    pub connection_limit: Duration,
}

/// What a good token told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key that signed it.
    pub access_key_id: String,
    /// Its `X-Amz-Date`.
    pub signed_at: SystemTime,
    /// When it stops being good for a new AUTH (`X-Amz-Date + X-Amz-Expires`).
    pub valid_until: SystemTime,
}

/// Why a token was refused. The texts never include the token, the secret
/// key or the session token, only the expected values and times.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("malformed token: no {0} parameter")]
    MissingParameter(&'static str),
    #[error("the token is not signed with {}", sigv4::ALGORITHM)]
    WrongAlgorithm,
    #[error("the token's signed headers are not exactly host")]
    WrongSignedHeaders,
    #[error("the token's access key id was never issued by this emulator")]
    UnknownAccessKey,
    #[error("the token has no X-Amz-Security-Token (temporary credentials need one)")]
    MissingSecurityToken,
    #[error("the token's session token is not the one issued with its access key")]
    WrongSecurityToken,
    #[error("bad signature: the token was altered or signed with another secret")]
    BadSignature,
    #[error("the token is for another host, not {expected:?}")]
    WrongHost { expected: String },
    #[error("the token's Action is not connect")]
    WrongAction,
    #[error("the token's User is not the user name given to AUTH")]
    WrongUser,
    #[error("the user name is not the cache's IAM user {expected:?}")]
    UnknownUser { expected: String },
    #[error("the token's ResourceType is wrong: this cache {}", if *.serverless { "is serverless (ResourceType=ServerlessCache)" } else { "is not serverless (no ResourceType)" })]
    WrongResourceType { serverless: bool },
    #[error("the token is signed for another region, not {expected:?}")]
    WrongRegion { expected: String },
    #[error("the token is signed for another service, not {expected:?}")]
    WrongService { expected: &'static str },
    #[error("the token's X-Amz-Expires is {0}, over {MAX_EXPIRES}")]
    ExpiresTooLong(u64),
    #[error("the token is signed in the future ({})", crate::issuer::rfc3339(*.0))]
    NotYetValid(SystemTime),
    #[error("the token expired at {}", crate::issuer::rfc3339(*.0))]
    Expired(SystemTime),
    #[error("the credentials that signed the token expired at {}", crate::issuer::rfc3339(*.0))]
    CredentialsExpired(SystemTime),
}

/// A token split into its host and its decoded query parameters.
struct Presigned<'a> {
    host: &'a str,
    params: HashMap<String, String>,
}

impl Presigned<'_> {
    fn parse(token: &str) -> Result<Presigned<'_>, Rejection> {
        let (host, query) = token
            .split_once("/?")
            .ok_or(Rejection::Malformed("not <host>/?<query>"))?;
        if host.is_empty() || host.contains(['/', '?', '&', '=']) {
            return Err(Rejection::Malformed("no host before /?"));
        }
        let mut params = HashMap::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |text| sigv4::uri_decode(text).ok_or(Rejection::Malformed("bad percent-encoding"));
            if params.insert(decode(name)?, decode(value)?).is_some() {
                return Err(Rejection::Malformed("a query parameter appears twice"));
            }
        }
        Ok(Presigned { host, params })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    fn required(&self, name: &'static str) -> Result<&str, Rejection> {
        self.get(name).ok_or(Rejection::MissingParameter(name))
    }
}

/// The parts of `X-Amz-Credential`: `<key>/<date>/<region>/<service>/aws4_request`.
struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl Scope<'_> {
    fn parse(credential: &str) -> Result<Scope<'_>, Rejection> {
        let parts: Vec<&str> = credential.split('/').collect();
        match parts[..] {
            [access_key_id, date, region, service, sigv4::TERMINATOR]
                if !access_key_id.is_empty() =>
            {
                Ok(Scope {
                    access_key_id,
                    date,
                    region,
                    service,
                })
            }
            _ => Err(Rejection::Malformed(
                "X-Amz-Credential is not <key>/<date>/<region>/<service>/aws4_request",
            )),
        }
    }
}

/// Checks tokens for one emulated cache against the credentials one
/// [`CredentialIssuer`] handed out.
pub struct AwsVerifier {
    cache: AwsCache,
    credentials: Arc<CredentialIssuer>,
}

impl std::fmt::Debug for AwsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsVerifier")
            .field("cache", &self.cache)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl AwsVerifier {
    /// A verifier for `cache` trusting the sets `credentials` issued.
    pub fn new(cache: AwsCache, credentials: Arc<CredentialIssuer>) -> AwsVerifier {
        AwsVerifier { cache, credentials }
    }

    /// The cache tokens must name.
    pub fn cache(&self) -> &AwsCache {
        &self.cache
    }

    /// The issuer whose credentials are trusted.
    pub fn credentials(&self) -> &Arc<CredentialIssuer> {
        &self.credentials
    }

    /// How long a connection lives after its last good AUTH.
    pub fn connection_limit(&self) -> Duration {
        self.cache.connection_limit
    }

    /// Checks `token`, presented by `AUTH <user> <token>`, at `now`.
    pub fn verify(&self, user: &[u8], token: &str, now: SystemTime) -> Result<Verified, Rejection> {
        let presigned = Presigned::parse(token)?;
        let algorithm = presigned.required("X-Amz-Algorithm")?;
        let credential = presigned.required("X-Amz-Credential")?;
        let amz_date = presigned.required("X-Amz-Date")?;
        let expires = presigned.required("X-Amz-Expires")?;
        let signed_headers = presigned.required("X-Amz-SignedHeaders")?;
        let signature = presigned.required("X-Amz-Signature")?;
        if algorithm != sigv4::ALGORITHM {
            return Err(Rejection::WrongAlgorithm);
        }
        if signed_headers != "host" {
            return Err(Rejection::WrongSignedHeaders);
        }
        let scope = Scope::parse(credential)?;
        let signed_at = sigv4::parse_amz_date(amz_date)
            .ok_or(Rejection::Malformed("X-Amz-Date is not yyyymmddThhmmssZ"))?;
        if !amz_date.starts_with(scope.date) || scope.date.len() != 8 {
            return Err(Rejection::Malformed(
                "the credential scope's date is not X-Amz-Date's",
            ));
        }
        let signature = sigv4::unhex(signature)
            .filter(|s| s.len() == 32)
            .ok_or(Rejection::Malformed("X-Amz-Signature is not 64 hex digits"))?;
        let credentials = self
            .credentials
            .lookup(scope.access_key_id)
            .ok_or(Rejection::UnknownAccessKey)?;
        let session_token = presigned
            .get("X-Amz-Security-Token")
            .ok_or(Rejection::MissingSecurityToken)?;
        if !same(
            session_token.as_bytes(),
            credentials.session_token.as_bytes(),
        ) {
            return Err(Rejection::WrongSecurityToken);
        }
        check_signature(&presigned, &scope, amz_date, &credentials, &signature)?;
        self.check_fields(&presigned, &scope, user)?;
        let valid_until = check_times(signed_at, expires, now)?;
        if credentials.expires_at <= now {
            return Err(Rejection::CredentialsExpired(credentials.expires_at));
        }
        Ok(Verified {
            access_key_id: credentials.access_key_id,
            signed_at,
            valid_until,
        })
    }

    /// What the signature covers, checked against this cache.
    fn check_fields(
        &self,
        presigned: &Presigned<'_>,
        scope: &Scope<'_>,
        user: &[u8],
    ) -> Result<(), Rejection> {
        let cache = &self.cache;
        if !presigned.host.eq_ignore_ascii_case(&cache.name) {
            return Err(Rejection::WrongHost {
                expected: cache.name.to_ascii_lowercase(),
            });
        }
        if presigned.required("Action")? != "connect" {
            return Err(Rejection::WrongAction);
        }
        if presigned.required("User")?.as_bytes() != user {
            return Err(Rejection::WrongUser);
        }
        if user != cache.user_id.as_bytes() {
            return Err(Rejection::UnknownUser {
                expected: cache.user_id.clone(),
            });
        }
        let expected_type = cache.serverless.then_some(SERVERLESS);
        if presigned.get("ResourceType") != expected_type {
            return Err(Rejection::WrongResourceType {
                serverless: cache.serverless,
            });
        }
        if scope.region != cache.region {
            return Err(Rejection::WrongRegion {
                expected: cache.region.clone(),
            });
        }
        if scope.service != cache.service.name() {
            return Err(Rejection::WrongService {
                expected: cache.service.name(),
            });
        }
        Ok(())
    }

    /// A token as redauth sends it: `credentials` presigning this cache's
    /// connect URL for `user` at `at` (for tests that AUTH by hand).
    pub fn token(&self, credentials: &Credentials, user: &str, at: SystemTime) -> String {
        let cache = &self.cache;
        let mut params = vec![("Action", "connect"), ("User", user)];
        if cache.serverless {
            params.push(("ResourceType", SERVERLESS));
        }
        presign(
            &cache.name,
            &params,
            credentials,
            &cache.region,
            cache.service.name(),
            at,
            MAX_EXPIRES,
        )
    }
}

/// Recomputes the signature over every parameter but `X-Amz-Signature`.
fn check_signature(
    presigned: &Presigned<'_>,
    scope: &Scope<'_>,
    amz_date: &str,
    credentials: &Credentials,
    signature: &[u8],
) -> Result<(), Rejection> {
    let query = sigv4::canonical_query(
        presigned
            .params
            .iter()
            .filter(|(name, _)| name.as_str() != "X-Amz-Signature")
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    let request =
        sigv4::canonical_request("/", &query, presigned.host, sigv4::EMPTY_PAYLOAD_SHA256);
    let scope_text = sigv4::scope(scope.date, scope.region, scope.service);
    let to_sign = sigv4::string_to_sign(amz_date, &scope_text, &request);
    let key = sigv4::signing_key(
        &credentials.secret_access_key,
        scope.date,
        scope.region,
        scope.service,
    );
    if sigv4::signature_matches(&key, &to_sign, signature) {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

/// The signing time against `now`: not in the future (beyond [`SKEW`]),
/// `X-Amz-Expires` at most [`MAX_EXPIRES`], not past. When it stops being good.
fn check_times(
    signed_at: SystemTime,
    expires: &str,
    now: SystemTime,
) -> Result<SystemTime, Rejection> {
    if signed_at > now + SKEW {
        return Err(Rejection::NotYetValid(signed_at));
    }
    let expires: u64 = expires
        .parse()
        .map_err(|_| Rejection::Malformed("X-Amz-Expires is not a number of seconds"))?;
    if expires > MAX_EXPIRES {
        return Err(Rejection::ExpiresTooLong(expires));
    }
    let valid_until = signed_at + Duration::from_secs(expires);
    if now > valid_until {
        return Err(Rejection::Expired(valid_until));
    }
    Ok(valid_until)
}

/// Compares two byte strings without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Presigns `GET http://<host>/?<params>` for `expires` seconds with
/// `credentials` at `at`, the way AWS's signers do; the URL without `http://`.
pub(crate) fn presign(
    host: &str,
    params: &[(&str, &str)],
    credentials: &Credentials,
    region: &str,
    service: &str,
    at: SystemTime,
    expires: u64,
) -> String {
    let amz_date = sigv4::amz_date(at);
    let date = &amz_date[..8];
    let scope = sigv4::scope(date, region, service);
    let credential = format!("{}/{scope}", credentials.access_key_id);
    let expires = expires.to_string();
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.extend([
        ("X-Amz-Algorithm", sigv4::ALGORITHM),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &amz_date),
        ("X-Amz-Expires", &expires),
        ("X-Amz-Security-Token", &credentials.session_token),
        ("X-Amz-SignedHeaders", "host"),
    ]);
    let query = sigv4::canonical_query(all.iter().copied());
    let request = sigv4::canonical_request("/", &query, host, sigv4::EMPTY_PAYLOAD_SHA256);
    let to_sign = sigv4::string_to_sign(&amz_date, &scope, &request);
    let key = sigv4::signing_key(&credentials.secret_access_key, date, region, service);
    format!(
        "{host}/?{query}&X-Amz-Signature={}",
        sigv4::sign(&key, &to_sign)
    )
}

#[cfg(test)]
mod tests;
