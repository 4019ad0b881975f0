//! The IAM side of the emulated GCP, shared by a single instance and a
//! cluster: the token issuer, the metadata server handing its tokens out,
//! and the verifier every front checks them with.

use super::metadata::{MetadataServer, ServiceAccount};
use super::tokens::AccessTokens;
use super::verifier::GcpVerifier;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Tokens out, tokens checked. Dropping it stops the metadata server.
#[derive(Debug)]
pub struct GcpIam {
    metadata: MetadataServer,
    verifier: Arc<GcpVerifier>,
}

impl GcpIam {
    /// Starts the metadata server on `listen` for `account`, issuing tokens
    /// valid for `lifetime`, and a verifier that trusts them and lets each
    /// front admit `auth_rate_limit` verified AUTHs a second.
    pub async fn start(
        account: ServiceAccount,
        lifetime: Duration,
        auth_rate_limit: Option<u32>,
        listen: SocketAddr,
    ) -> std::io::Result<GcpIam> {
        let tokens = Arc::new(AccessTokens::new(lifetime));
        let metadata = MetadataServer::start(tokens.clone(), account, listen).await?;
        let verifier = Arc::new(GcpVerifier::new(tokens, auth_rate_limit));
        Ok(GcpIam { metadata, verifier })
    }

    /// The metadata server (failure injection, counts).
    pub fn metadata(&self) -> &MetadataServer {
        &self.metadata
    }

    /// The verifier every front shares.
    pub fn verifier(&self) -> &Arc<GcpVerifier> {
        &self.verifier
    }

    /// The token issuer (issue tokens directly, change the lifetime).
    pub fn tokens(&self) -> &Arc<AccessTokens> {
        self.verifier.tokens()
    }

    /// `GCE_METADATA_HOST`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.metadata.env_vars()
    }
}
