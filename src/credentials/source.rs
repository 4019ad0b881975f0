//! The interface every token source implements (Entra ID, AWS IAM, GCP
//! IAM), and the token it hands back.

use super::{ConnectionLimit, Secret};
use std::fmt;
use std::time::SystemTime;

/// An access token as a source returned it.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token text; redacted in `Debug`.
    pub secret: Secret,
    /// When the server stops accepting it.
    pub expires_at: SystemTime,
    /// How long a connection authenticated with it stays authenticated.
    pub limit: ConnectionLimit,
}

/// Why a fetch failed, phrased for logs and clients, naming the source
/// (`managed-identity (App Service endpoint): …`). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Something that can fetch a fresh access token.
///
/// One fetch at a time: the refresher owns the source and never calls it
/// concurrently. Implementations may hand back the token they returned last
/// (identity stacks cache tokens); the refresher copes with that.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// What the source is, for logs: `managed-identity`, `azure-cli`, …
    /// A chain names the member it settled on.
    fn kind(&self) -> String;

    /// Fetches a token.
    async fn fetch(&self) -> Result<Token, FetchError>;
}
