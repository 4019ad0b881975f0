//! [`GcpCloud`]: one emulated Memorystore instance with IAM authentication
//! — backend, metadata server and TLS front together.

use super::iam::GcpIam;
use super::metadata::ServiceAccount;
use super::verifier::{GcpVerifier, IAM_USER};
use crate::backend::Backend;
use crate::front::{Checker, Front, FrontConfig, FrontStats};
use crate::CloudError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The project [`GcpCloudConfig::new`] uses.
pub const DEFAULT_PROJECT_ID: &str = "redauth-emulated-project";

/// What [`GcpCloud::start`] needs.
#[derive(Clone)]
pub struct GcpCloudConfig {
    /// The project (and with it the service account's email) the metadata
    /// server reports.
    pub project_id: String,
    /// Lifetime of each access token the metadata server hands out
    /// (Google: about an hour).
    pub token_lifetime: Duration,
    /// Verified IAM AUTHs each front admits per second; `None` (or 0): no
    /// limit. Over the limit the front answers [`crate::IAM_RATE_LIMITED`].
    pub auth_rate_limit: Option<u32>,
    /// Where the TLS front listens (port 0 picks a free one).
    pub front_listen: SocketAddr,
    /// Where the metadata server listens (port 0 picks a free one).
    pub metadata_listen: SocketAddr,
    /// The front's certificate chain, PEM (each instance has its own CA).
    pub cert_pem: String,
    /// The front's private key, PEM.
    pub key_pem: String,
    /// The `redis-server` binary: a path, or a name looked up in `PATH`.
    pub redis_server: PathBuf,
}

impl std::fmt::Debug for GcpCloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpCloudConfig")
            .field("project_id", &self.project_id)
            .field("token_lifetime", &self.token_lifetime)
            .field("auth_rate_limit", &self.auth_rate_limit)
            .field("front_listen", &self.front_listen)
            .field("metadata_listen", &self.metadata_listen)
            .field("redis_server", &self.redis_server)
            .finish_non_exhaustive()
    }
}

impl GcpCloudConfig {
    /// [`DEFAULT_PROJECT_ID`], tokens living 30 s, no AUTH rate limit, both
    /// servers on free loopback ports.
    pub fn new(cert_pem: String, key_pem: String) -> GcpCloudConfig {
        GcpCloudConfig {
            project_id: DEFAULT_PROJECT_ID.into(),
            token_lifetime: Duration::from_secs(30),
            auth_rate_limit: None,
            front_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metadata_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert_pem,
            key_pem,
            redis_server: PathBuf::from("redis-server"),
        }
    }

    /// The service account the metadata server speaks for.
    pub fn account(&self) -> ServiceAccount {
        ServiceAccount::in_project(&self.project_id)
    }

    /// Every problem with the settings, at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let project = &self.project_id;
        if project.is_empty()
            || !project
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            problems.push("the project id must be lower-case letters, digits or '-'".into());
        }
        if self.token_lifetime < Duration::from_secs(1) {
            problems.push("the token lifetime must be at least 1s".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Starts the metadata server and the verifier of this configuration.
    pub(crate) async fn start_iam(&self) -> Result<GcpIam, CloudError> {
        self.validate()
            .map_err(|problems| CloudError::Config(problems.join("; ")))?;
        GcpIam::start(
            self.account(),
            self.token_lifetime,
            self.auth_rate_limit,
            self.metadata_listen,
        )
        .await
        .map_err(CloudError::Metadata)
    }
}

/// The whole emulated Memorystore instance. Dropping it stops everything
/// (connections first, the redis-server last).
#[derive(Debug)]
pub struct GcpCloud {
    front: Front,
    iam: GcpIam,
    backend: Backend,
}

impl GcpCloud {
    /// Validates `config`, then starts the backend (whose `default` user
    /// gets a password only the front knows), the metadata server and the
    /// front.
    pub async fn start(config: GcpCloudConfig) -> Result<GcpCloud, CloudError> {
        let iam = config.start_iam().await?;
        let backend = Backend::start(&config.redis_server, IAM_USER).await?;
        let front = Front::start(FrontConfig {
            listen: config.front_listen,
            cert_pem: config.cert_pem,
            key_pem: config.key_pem,
            backend: backend.addr(),
            backend_password: backend.user_password().to_string(),
            checker: Checker::Gcp(iam.verifier().clone()),
        })
        .await
        .map_err(CloudError::Front)?;
        tracing::info!(
            front = %front.addr(),
            metadata = %iam.metadata().addr(),
            project = %config.project_id,
            "emulator: GCP Memorystore instance ready"
        );
        Ok(GcpCloud {
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

    /// The metadata server, issuer and verifier.
    pub fn iam(&self) -> &GcpIam {
        &self.iam
    }

    /// The token verifier.
    pub fn verifier(&self) -> &Arc<GcpVerifier> {
        self.iam.verifier()
    }

    /// The plain redis-server behind the front.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `GCE_METADATA_HOST`, for the process that runs Google's auth library.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.iam.env_vars()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let mut config = GcpCloudConfig::new(String::new(), String::new());
        assert_eq!(config.validate(), Ok(()));
        config.project_id = "My Project".into();
        config.token_lifetime = Duration::from_millis(10);
        assert_eq!(config.validate().unwrap_err().len(), 2);
    }

    #[test]
    fn debug_hides_the_key() {
        let config = GcpCloudConfig::new("CERT".into(), "PRIVATE KEY".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains(DEFAULT_PROJECT_ID));
    }
}
