//! AWS IAM tokens for ElastiCache and MemoryDB (`--auth aws-iam`).
//!
//! [`build`] loads the standard AWS configuration (`aws-config`'s default
//! chain: environment variables, the shared profile files with SSO and
//! `credential_process`, web identity (EKS IRSA), the container endpoint (ECS,
//! EKS Pod Identity), the EC2 instance metadata service), settles the region
//! (`--aws-region`, else the SDK's own lookup) and returns an [`AwsIamSource`].
//! Its HTTP client is rustls with the ring provider, as everywhere in redauth.
//!
//! Each [`TokenSource::fetch`] signs a fresh token ([`aws_token::presign`])
//! with the credentials held. The chain itself does not cache (an SDK client
//! would put its lazy identity cache in front; calling the provider directly
//! bypasses it), so the source keeps the credentials until they come near
//! their expiry ([`fresh_enough`]) and only then asks the chain again: a token
//! is never signed with credentials about to expire. A token is valid for new
//! connections 15 minutes or until its credentials expire, whichever is
//! sooner; a connection it authenticated is closed by the server
//! `--aws-connection-limit` (12 hours) after that AUTH, or when the
//! credentials expire (see [`ConnectionLimit::AfterAuth`]).
//!
//! The provider the chain settled on (`EnvironmentVariable`, `ProfileFile`,
//! `WebIdentityToken`, `EcsContainer`, `IMDSv2`, …) is logged; no key is.

use super::aws_token::{self, Service, Target, TOKEN_LIFETIME};
use super::source::{FetchError, Token, TokenSource};
use super::ConnectionLimit;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::error::Error;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The server's limit on a connection after its last AUTH (ElastiCache and
/// MemoryDB: 12 hours).
pub const DEFAULT_CONNECTION_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// Bound on one trip through the credential chain.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials are asked for again this long before they expire (less for
/// short-lived ones, see [`fresh_enough`]): more than a token's lifetime, so
/// a connection re-authenticating near the credentials' expiry gets a token
/// signed with their successors.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(20 * 60);

/// Everything `--auth aws-iam` was configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsIamConfig {
    /// `--aws-cache-name`: replication group id, serverless cache name or
    /// MemoryDB cluster name.
    pub cache: String,
    /// `--aws-service`.
    pub service: Service,
    /// `--aws-serverless`.
    pub serverless: bool,
    /// `--aws-region`; `None`: the SDK's lookup (`AWS_REGION`, the profile, IMDS).
    pub region: Option<String>,
    /// `--aws-connection-limit`: the server's limit, shortened only in tests.
    pub connection_limit: Duration,
}

/// Loads the AWS configuration and builds the source signing tokens for
/// `user`. Fails when no region can be found or there is no credential
/// chain; credentials themselves are first fetched by the refresher.
pub async fn build(config: &AwsIamConfig, user: &str) -> Result<AwsIamSource, String> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err("--auth aws-iam: no AWS region: give --aws-region, or set AWS_REGION or a region in the AWS profile".into());
    };
    let Some(provider) = sdk.credentials_provider() else {
        return Err("--auth aws-iam: the AWS configuration has no credential provider".into());
    };
    Ok(AwsIamSource {
        target: Target {
            cache: config.cache.clone(),
            user: user.to_string(),
            region,
            service: config.service,
            serverless: config.serverless,
        },
        max_age: config.connection_limit,
        provider,
        held: Mutex::new(None),
    })
}

/// Signs ElastiCache/MemoryDB tokens with credentials from the AWS chain.
pub struct AwsIamSource {
    target: Target,
    max_age: Duration,
    provider: SharedCredentialsProvider,
    held: Mutex<Option<Held>>,
}

/// Credentials from the chain, and what is logged about them.
struct Held {
    credentials: Credentials,
    obtained: SystemTime,
    provider: String,
}

impl fmt::Debug for AwsIamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsIamSource")
            .field("target", &self.target)
            .field("max_age", &self.max_age)
            .field("provider", &self.provider_name())
            .finish_non_exhaustive()
    }
}

impl AwsIamSource {
    /// What is signed for: cache, user, region, service.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The provider of the credentials held, once there are some.
    pub fn provider_name(&self) -> Option<String> {
        self.lock().as_ref().map(|h| h.provider.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The credentials to sign with: those held while [`fresh_enough`],
    /// else new ones from the chain.
    async fn credentials(&self, now: SystemTime) -> Result<Credentials, FetchError> {
        if let Some(held) = self.lock().as_ref() {
            if fresh_enough(now, held.obtained, held.credentials.expiry()) {
                return Ok(held.credentials.clone());
            }
        }
        let credentials =
            match tokio::time::timeout(FETCH_TIMEOUT, self.provider.provide_credentials()).await {
                Ok(Ok(credentials)) => credentials,
                Ok(Err(e)) => return Err(FetchError(format!("aws-iam: {}", explain(&e)))),
                Err(_) => {
                    return Err(FetchError(format!(
                        "aws-iam: the AWS credential chain did not answer within {}",
                        humantime::format_duration(FETCH_TIMEOUT)
                    )))
                }
            };
        let provider = provider_name(&credentials);
        let obtained = SystemTime::now();
        if let Some(expiry) = credentials.expiry() {
            if expiry <= obtained + super::USABLE_MARGIN {
                return Err(FetchError(format!(
                    "aws-iam: the credentials from {provider} expired at {}",
                    humantime::format_rfc3339_seconds(expiry)
                )));
            }
        }
        let mut held = self.lock();
        let expires = credentials.expiry().map_or("never".to_string(), |t| {
            humantime::format_rfc3339_seconds(t).to_string()
        });
        match held.as_ref() {
            Some(before) if before.provider == provider => tracing::debug!(
                %provider, expires_at = %expires, "AWS credentials renewed"
            ),
            _ => tracing::info!(
                %provider,
                expires_at = %expires,
                region = %self.target.region,
                cache = %self.target.cache,
                user = %self.target.user,
                "AWS credentials obtained"
            ),
        }
        *held = Some(Held {
            credentials: credentials.clone(),
            obtained,
            provider,
        });
        Ok(credentials)
    }
}

#[async_trait::async_trait]
impl TokenSource for AwsIamSource {
    fn kind(&self) -> String {
        match self.provider_name() {
            Some(provider) => format!("aws-iam ({provider})"),
            None => "aws-iam".into(),
        }
    }

    async fn fetch(&self) -> Result<Token, FetchError> {
        let credentials = self.credentials(SystemTime::now()).await?;
        let now = SystemTime::now();
        let secret = aws_token::presign(&credentials, &self.target, now)
            .map_err(|e| FetchError(format!("aws-iam: {e}")))?;
        let lifetime_end = now + TOKEN_LIFETIME;
        Ok(Token {
            secret,
            expires_at: credentials
                .expiry()
                .map_or(lifetime_end, |t| t.min(lifetime_end)),
            limit: ConnectionLimit::AfterAuth {
                max_age: self.max_age,
                until: credentials.expiry(),
            },
        })
    }
}

/// Whether credentials obtained at `obtained` and expiring at `expiry` may
/// still sign at `now`: more than [`CREDENTIALS_MARGIN`] left, or, for
/// credentials that live less than twice that, more than half their life.
/// Credentials without expiry always may.
pub fn fresh_enough(now: SystemTime, obtained: SystemTime, expiry: Option<SystemTime>) -> bool {
    let Some(expiry) = expiry else { return true };
    let lifetime = expiry.duration_since(obtained).unwrap_or_default();
    let margin = CREDENTIALS_MARGIN.min(lifetime / 2);
    expiry
        .duration_since(now)
        .is_ok_and(|left| left > margin && !left.is_zero())
}

/// The name of the provider that made `credentials` (`aws-credential-types`
/// shows it only in their `Debug`, which redacts the secret key).
pub fn provider_name(credentials: &Credentials) -> String {
    let shown = format!("{credentials:?}");
    shown
        .split_once("provider_name: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| "unknown".to_string(), |(name, _)| name.to_string())
}

/// The chain's error on one line: when no provider had credentials, the
/// SDK lists each with why it had none, a line each.
fn explain(e: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    for part in chain(e).lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line
}

/// An error and its sources, one line (the chain's own words say which
/// providers were tried and why each said no).
fn chain(e: &(dyn Error + 'static)) -> String {
    super::cause::with_causes(e.to_string(), e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn hour_long_credentials_are_renewed_twenty_minutes_before_expiry() {
        let obtained = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expiry = Some(obtained + 60 * MIN);
        assert!(fresh_enough(obtained, obtained, expiry));
        assert!(fresh_enough(obtained + 39 * MIN, obtained, expiry));
        assert!(!fresh_enough(obtained + 40 * MIN, obtained, expiry));
        assert!(!fresh_enough(obtained + 61 * MIN, obtained, expiry));
        assert!(fresh_enough(obtained + 1000 * MIN, obtained, None));
    }

    #[test]
    fn short_lived_credentials_are_renewed_at_half_their_life() {
        let obtained = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expiry = Some(obtained + Duration::from_secs(20));
        assert!(fresh_enough(
            obtained + Duration::from_secs(9),
            obtained,
            expiry
        ));
        assert!(!fresh_enough(
            obtained + Duration::from_secs(10),
            obtained,
            expiry
        ));
    }

    #[test]
    fn the_provider_name_is_read_without_the_secret() {
        let c = Credentials::new("AKID", "very-secret", None, None, "ProfileFile");
        assert_eq!(provider_name(&c), "ProfileFile");
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    fn source(credentials: Credentials) -> AwsIamSource {
        AwsIamSource {
            target: Target {
                cache: "c".into(),
                user: "u".into(),
                region: "us-east-1".into(),
                service: Service::ElastiCache,
                serverless: false,
            },
            max_age: DEFAULT_CONNECTION_LIMIT,
            provider: SharedCredentialsProvider::new(credentials),
            held: Mutex::new(None),
        }
    }

    #[tokio::test]
    async fn a_token_lives_15_minutes_or_until_its_credentials_expire() {
        let far = SystemTime::now() + 6 * 60 * MIN;
        let c = Credentials::new("AKID", "s", Some("t".into()), Some(far), "Static");
        let token = source(c).fetch().await.unwrap();
        let left = token.expires_at.duration_since(SystemTime::now()).unwrap();
        assert!(left > 14 * MIN && left <= 15 * MIN, "{left:?}");
        assert_eq!(
            token.limit,
            ConnectionLimit::AfterAuth {
                max_age: DEFAULT_CONNECTION_LIMIT,
                until: Some(far)
            }
        );

        let soon = SystemTime::now() + 5 * MIN;
        let c = Credentials::new("AKID", "s", Some("t".into()), Some(soon), "Static");
        let s = source(c);
        let token = s.fetch().await.unwrap();
        assert_eq!(token.expires_at, soon);
        assert_eq!(s.kind(), "aws-iam (Static)");

        let gone = SystemTime::now() - MIN;
        let c = Credentials::new("AKID", "s", None, Some(gone), "Static");
        let e = source(c).fetch().await.unwrap_err();
        assert!(e.0.contains("expired"), "{e}");
    }

    #[tokio::test]
    async fn credentials_are_held_until_near_their_expiry() {
        // The provider hands back the same credentials every time: what
        // matters is how often it is asked, seen through `obtained`.
        let far = SystemTime::now() + 6 * 60 * MIN;
        let c = Credentials::new("AKID", "s", None, Some(far), "Static");
        let s = source(c);
        s.fetch().await.unwrap();
        let first = s.lock().as_ref().unwrap().obtained;
        s.fetch().await.unwrap();
        assert_eq!(s.lock().as_ref().unwrap().obtained, first, "held");
        // Pretend they were obtained long ago: near expiry now, so renewed.
        let long_ago = SystemTime::now() - 6 * 60 * MIN;
        s.lock().as_mut().unwrap().obtained = long_ago;
        let near = SystemTime::now() + 10 * MIN;
        *s.lock().as_mut().unwrap().credentials.expiry_mut() = Some(near);
        s.fetch().await.unwrap();
        assert!(s.lock().as_ref().unwrap().obtained > long_ago, "renewed");
    }
}
