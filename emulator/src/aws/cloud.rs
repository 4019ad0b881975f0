//! [`AwsCloud`]: one emulated ElastiCache (or MemoryDB) cache with IAM
//! authentication — backend, credentials endpoint and TLS front together.

use super::iam::AwsIam;
use super::verifier::{AwsCache, AwsService, AwsVerifier};
use crate::backend::Backend;
use crate::front::{Checker, ExpiredClose, Front, FrontConfig, FrontStats};
use crate::CloudError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The cache name [`AwsCloudConfig::new`] uses.
pub const DEFAULT_CACHE_NAME: &str = "redauth-emulated-cache";

/// The region [`AwsCloudConfig::new`] uses.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The IAM user id (and name) [`AwsCloudConfig::new`] uses.
pub const DEFAULT_USER_ID: &str = "redauth-iam-user";

/// What [`AwsCloud::start`] needs.
#[derive(Clone)]
pub struct AwsCloudConfig {
    /// The cache name: the host of the presigned connect URL (lower case).
    pub cache_name: String,
    /// The region tokens must be signed for.
    pub region: String,
    /// ElastiCache or MemoryDB (the service tokens must be signed for).
    pub service: AwsService,
    /// A serverless ElastiCache cache (tokens carry `ResourceType=ServerlessCache`).
    pub serverless: bool,
    /// The IAM-enabled user's id (ElastiCache wants it equal to its name):
    /// the Redis username.
    pub user_id: String,
    /// Lifetime of each credential set the endpoint hands out.
    pub credentials_lifetime: Duration,
    /// How long a connection lives after its last good AUTH (AWS: 12 hours).
    pub connection_limit: Duration,
    /// Where the TLS front listens (port 0 picks a free one).
    pub front_listen: SocketAddr,
    /// Where the credentials endpoint listens (port 0 picks a free one).
    pub credentials_listen: SocketAddr,
    /// The front's certificate chain, PEM.
    pub cert_pem: String,
    /// The front's private key, PEM.
    pub key_pem: String,
    /// The `redis-server` binary: a path, or a name looked up in `PATH`.
    pub redis_server: PathBuf,
}

impl std::fmt::Debug for AwsCloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloudConfig")
            .field("cache", &self.cache())
            .field("credentials_lifetime", &self.credentials_lifetime)
            .field("front_listen", &self.front_listen)
            .field("credentials_listen", &self.credentials_listen)
            .field("redis_server", &self.redis_server)
            .finish_non_exhaustive()
    }
}

impl AwsCloudConfig {
    /// A non-serverless ElastiCache cache [`DEFAULT_CACHE_NAME`] in
    /// [`DEFAULT_REGION`] for [`DEFAULT_USER_ID`], credentials living 30 s,
    /// AWS's 12-hour connection limit, both servers on free loopback ports.
    pub fn new(cert_pem: String, key_pem: String) -> AwsCloudConfig {
        AwsCloudConfig {
            cache_name: DEFAULT_CACHE_NAME.into(),
            region: DEFAULT_REGION.into(),
            service: AwsService::ElastiCache,
            serverless: false,
            user_id: DEFAULT_USER_ID.into(),
            credentials_lifetime: Duration::from_secs(30),
            connection_limit: Duration::from_secs(12 * 3600),
            front_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert_pem,
            key_pem,
            redis_server: PathBuf::from("redis-server"),
        }
    }

    /// The cache the verifier checks tokens against.
    pub fn cache(&self) -> AwsCache {
        AwsCache {
            name: self.cache_name.to_ascii_lowercase(),
            region: self.region.clone(),
            service: self.service,
            serverless: self.serverless,
            user_id: self.user_id.clone(),
            connection_limit: self.connection_limit,
        }
    }

    /// Every problem with the settings, at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let plain = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !plain(&self.cache_name) {
            problems.push("the cache name must be letters, digits, '-', '_' or '.'".into());
        }
        if !plain(&self.region) {
            problems.push("the region must be a region name such as us-east-1".into());
        }
        if self.user_id.is_empty() || self.user_id.bytes().any(|b| b.is_ascii_whitespace()) {
            problems.push("the user id must be non-empty without spaces".into());
        }
        if self.serverless && self.service == AwsService::MemoryDb {
            problems.push("MemoryDB has no serverless caches".into());
        }
        if self.credentials_lifetime < Duration::from_secs(1) {
            problems.push("the credentials lifetime must be at least 1s".into());
        }
        if self.connection_limit < Duration::from_secs(1) {
            problems.push("the connection limit must be at least 1s".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The whole emulated AWS cache. Dropping it stops everything (connections
/// first, the redis-server last).
#[derive(Debug)]
pub struct AwsCloud {
    front: Front,
    iam: AwsIam,
    backend: Backend,
}

impl AwsCloud {
    /// Validates `config`, then starts the backend (with the IAM user), the
    /// credentials endpoint and the front.
    pub async fn start(config: AwsCloudConfig) -> Result<AwsCloud, CloudError> {
        config
            .validate()
            .map_err(|problems| CloudError::Config(problems.join("; ")))?;
        let backend = Backend::start(&config.redis_server, &config.user_id).await?;
        let iam = AwsIam::start(
            config.cache(),
            config.credentials_lifetime,
            config.credentials_listen,
        )
        .await
        .map_err(CloudError::Credentials)?;
        let front = Front::start(FrontConfig {
            listen: config.front_listen,
            cert_pem: config.cert_pem,
            key_pem: config.key_pem,
            backend: backend.addr(),
            backend_password: backend.user_password().to_string(),
            checker: Checker::Aws(iam.verifier().clone()),
        })
        .await
        .map_err(CloudError::Front)?;
        tracing::info!(
            front = %front.addr(),
            credentials = %iam.endpoint().url(),
            cache = ?iam.verifier().cache(),
            "emulator: AWS cache ready"
        );
        Ok(AwsCloud {
            front,
            iam,
            backend,
        })
    }

    /// The TLS front (its address, its counters).
    pub fn front(&self) -> &Front {
        &self.front
    }

    /// The front's counters ([`FrontStats`]).
    pub fn stats(&self) -> FrontStats {
        self.front.stats()
    }

    /// The connections closed for a passed connection limit, with what each
    /// had done.
    pub fn expired_reports(&self) -> Vec<ExpiredClose> {
        self.front.expired_reports()
    }

    /// The credentials endpoint, issuer and verifier.
    pub fn iam(&self) -> &AwsIam {
        &self.iam
    }

    /// The token verifier (its cache; [`AwsVerifier::token`] makes tokens).
    pub fn verifier(&self) -> &Arc<AwsVerifier> {
        self.iam.verifier()
    }

    /// The plain redis-server behind the front.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`, for the process that runs the
    /// AWS credential chain.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.iam.env_vars()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let mut config = AwsCloudConfig::new(String::new(), String::new());
        assert_eq!(config.validate(), Ok(()));
        config.cache_name = "my cache/".into();
        config.user_id = String::new();
        config.service = AwsService::MemoryDb;
        config.serverless = true;
        config.connection_limit = Duration::ZERO;
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn debug_hides_the_key() {
        let config = AwsCloudConfig::new("CERT".into(), "PRIVATE KEY".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains(DEFAULT_CACHE_NAME));
    }
}
