//! The IAM side of the emulated AWS, shared by a single cache and a
//! cluster: the credential issuer, the container-credentials endpoint
//! serving its sets, and the verifier that trusts them.

use super::credentials::CredentialIssuer;
use super::credentials_endpoint::CredentialsEndpoint;
use super::verifier::{AwsCache, AwsVerifier};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Credentials out, tokens checked. Dropping it stops the endpoint.
#[derive(Debug)]
pub struct AwsIam {
    endpoint: CredentialsEndpoint,
    verifier: Arc<AwsVerifier>,
}

impl AwsIam {
    /// Starts the credentials endpoint on `listen`, issuing sets valid for
    /// `lifetime`, and a verifier for `cache` that trusts them.
    pub async fn start(
        cache: AwsCache,
        lifetime: Duration,
        listen: SocketAddr,
    ) -> std::io::Result<AwsIam> {
        let credentials = Arc::new(CredentialIssuer::new(lifetime));
        let endpoint = CredentialsEndpoint::start(credentials.clone(), listen).await?;
        let verifier = Arc::new(AwsVerifier::new(cache, credentials));
        Ok(AwsIam { endpoint, verifier })
    }

    /// The container-credentials endpoint (failure injection, counts).
    pub fn endpoint(&self) -> &CredentialsEndpoint {
        &self.endpoint
    }

    /// The token verifier every front shares.
    pub fn verifier(&self) -> &Arc<AwsVerifier> {
        &self.verifier
    }

    /// The credential issuer (issue sets directly, change the lifetime).
    pub fn credentials(&self) -> &Arc<CredentialIssuer> {
        self.verifier.credentials()
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.endpoint.env_vars()
    }
}
