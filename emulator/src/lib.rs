//! Emulated clouds (Azure, AWS, GCP), for tests and the demo — never for production:
//! a crate of the workspace of its own, so nothing of it is in the `redauth`
//! binary. It depends on `redauth` only for its RESP scanners.
//!
//! Only the cloud is faked; redauth's own code, the real `azure_identity`
//! `ManagedIdentityCredential` and a real `redis-server` all run as they
//! would against Azure. [`Cloud::start`] brings up four pieces:
//!
//! - [`issuer`]: mints HMAC-signed, JWT-shaped tokens carrying the identity's
//!   `oid` and a short `exp` (seconds, so rotations happen during a test);
//! - [`identity`]: an HTTP endpoint speaking the App Service managed-identity
//!   protocol (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, see
//!   [`Cloud::env_vars`]), with failure injection and optional token reuse;
//! - [`backend`]: a plain `redis-server` on loopback with an ACL user named
//!   after the `oid`;
//! - [`front`]: the TLS endpoint clients dial, which swaps valid tokens for
//!   the backend user's password and, like Azure, closes every connection
//!   whose token expired without a fresh successful AUTH.
//!
//! [`cluster`] is the same cloud with an OSS-clustered cache (Azure Managed
//! Redis's default policy): a redis cluster, each node behind its own front.
//!
//! [`aws`] is the AWS counterpart, [`AwsCloud::start`]: a container-credentials
//! endpoint issuing rotating temporary credentials, and the same front
//! checking SigV4-presigned IAM auth tokens instead of Entra ID tokens
//! ([`Checker`]), closing connections a set time after their last AUTH and
//! refusing AUTH inside MULTI. [`ClusterCloud::start_aws`] clusters it.
//!
//! [`gcp`] is the GCP counterpart, [`GcpCloud::start`]: a metadata-server
//! stand-in issuing short-lived `ya29.` access tokens, and the same front
//! accepting them on `AUTH <token>` (user `default`), never closing a
//! connection for its token's expiry, and limiting IAM AUTHs per second
//! ([`Checker::Gcp`]). [`ClusterCloud::start_gcp`] clusters it.
//!
//! [`cli`] runs the same thing as `redauth-emulator` for the demo.
//!
//! Secrets (tokens, passwords, the identity header) are never logged, and the
//! `Debug` output of every type here redacts them.

pub mod aws;
pub mod backend;
pub mod cli;
pub mod cluster;
pub mod front;
pub mod gcp;
mod http;
pub mod identity;
pub mod issuer;
mod random;
pub mod standins;

#[cfg(test)]
mod tests;

pub use aws::{AwsCloud, AwsCloudConfig, AwsService, AwsVerifier, CredentialsEndpoint};
pub use backend::{Backend, BackendError};
pub use cluster::{ClusterCloud, ClusterShape};
pub use front::{
    Checker, DeadlineKind, ExpiredClose, Front, FrontConfig, FrontStats, AUTH_IN_MULTI,
    IAM_RATE_LIMITED,
};
pub use gcp::{GcpCloud, GcpCloudConfig, GcpVerifier, MetadataServer};
pub use identity::IdentityEndpoint;
pub use issuer::{Claims, Issuer, Minted, Rejection};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What [`Cloud::start`] needs.
#[derive(Clone)]
pub struct CloudConfig {
    /// Object id of the emulated managed identity: the Redis username.
    pub oid: String,
    /// Lifetime of each token the identity endpoint hands out.
    pub token_lifetime: Duration,
    /// Where the TLS front listens (port 0 picks a free one).
    pub front_listen: SocketAddr,
    /// Where the identity endpoint listens (port 0 picks a free one).
    pub identity_listen: SocketAddr,
    /// The front's certificate chain, PEM.
    pub cert_pem: String,
    /// The front's private key, PEM.
    pub key_pem: String,
    /// The `redis-server` binary: a path, or a name looked up in `PATH`.
    pub redis_server: PathBuf,
}

impl std::fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("oid", &self.oid)
            .field("token_lifetime", &self.token_lifetime)
            .field("front_listen", &self.front_listen)
            .field("identity_listen", &self.identity_listen)
            .field("redis_server", &self.redis_server)
            .finish_non_exhaustive()
    }
}

/// Why the emulated cloud could not start.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("starting the redis-server backend: {0}")]
    Backend(#[from] BackendError),
    #[error("starting the identity endpoint: {0}")]
    Identity(#[source] std::io::Error),
    #[error("starting the TLS front: {0}")]
    Front(#[source] std::io::Error),
    #[error("forming the cluster: {0}")]
    Cluster(String),
    #[error("invalid settings: {0}")]
    Config(String),
    #[error("starting the credentials endpoint: {0}")]
    Credentials(#[source] std::io::Error),
    #[error("starting the metadata server: {0}")]
    Metadata(#[source] std::io::Error),
}

/// The whole emulated cloud. Dropping it stops everything (connections
/// first, the redis-server last).
#[derive(Debug)]
pub struct Cloud {
    front: Front,
    identity: IdentityEndpoint,
    backend: Backend,
    issuer: Arc<Issuer>,
}

impl Cloud {
    /// Starts the backend, the issuer, the identity endpoint and the front.
    pub async fn start(config: CloudConfig) -> Result<Cloud, CloudError> {
        let backend = Backend::start(&config.redis_server, &config.oid).await?;
        let issuer = Arc::new(Issuer::new(config.oid, config.token_lifetime));
        let identity = IdentityEndpoint::start(issuer.clone(), config.identity_listen)
            .await
            .map_err(CloudError::Identity)?;
        let front = Front::start(FrontConfig {
            listen: config.front_listen,
            cert_pem: config.cert_pem,
            key_pem: config.key_pem,
            backend: backend.addr(),
            backend_password: backend.user_password().to_string(),
            checker: Checker::Entra(issuer.clone()),
        })
        .await
        .map_err(CloudError::Front)?;
        Ok(Cloud {
            front,
            identity,
            backend,
            issuer,
        })
    }

    /// The token issuer (mint tokens directly, change the lifetime).
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// The managed-identity endpoint (failure injection, request counts).
    pub fn identity(&self) -> &IdentityEndpoint {
        &self.identity
    }

    /// The TLS front (its address, its counters).
    pub fn front(&self) -> &Front {
        &self.front
    }

    /// The plain redis-server behind the front.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, for the process (or child
    /// process) that runs `ManagedIdentityCredential`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.identity.env_vars()
    }
}

/// Accepts connections on `listener` and serves each on its own task.
/// Aborting the task running this drops the [`tokio::task::JoinSet`] and with
/// it every connection. `what` names the server in logs.
async fn serve_each<F, Fut>(listener: tokio::net::TcpListener, what: &'static str, serve: F)
where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve(stream, peer));
                }
                Err(error) => {
                    tracing::warn!(%error, "{what}: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
