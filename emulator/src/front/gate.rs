//! The front's token check, one per cloud: which tokens may stand for the
//! backend user's password, and until when the connection may then live.
//!
//! - [`Checker::Entra`]: a JWT the [`Issuer`] minted, whose `oid` is the
//!   user name; the connection lives until the token's `exp`.
//! - [`Checker::Aws`]: a SigV4-presigned connect URL the [`AwsVerifier`]
//!   accepts; the connection lives [`AwsVerifier::connection_limit`] from
//!   the AUTH, and AUTH inside MULTI is refused.

use crate::aws::{self, AwsVerifier};
use crate::issuer::{self, Issuer};
use std::sync::Arc;
use std::time::SystemTime;

/// How the front checks tokens.
#[derive(Debug, Clone)]
pub enum Checker {
    /// Azure: Entra ID tokens from this issuer.
    Entra(Arc<Issuer>),
    /// AWS: ElastiCache/MemoryDB IAM auth tokens, checked by this verifier.
    Aws(Arc<AwsVerifier>),
}

impl From<Arc<Issuer>> for Checker {
    fn from(issuer: Arc<Issuer>) -> Checker {
        Checker::Entra(issuer)
    }
}

impl From<Arc<AwsVerifier>> for Checker {
    fn from(verifier: Arc<AwsVerifier>) -> Checker {
        Checker::Aws(verifier)
    }
}

/// What a connection's deadline is, for the close report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineKind {
    /// The expiry of the token of the last successful AUTH (Azure).
    TokenExpiry,
    /// A fixed time after the last successful AUTH (AWS's 12 hours).
    ConnectionLimit,
}

/// The error a cloud that refuses AUTH inside MULTI answers with.
pub const AUTH_IN_MULTI: &[u8] = b"-ERR IAM authentication is not allowed inside MULTI\r\n";

/// Decides whether a token may stand for the backend user's password.
pub(crate) struct Gate {
    pub(crate) checker: Checker,
    /// The backend password of the user named after the identity.
    pub(crate) backend_password: String,
    /// A password no backend user has.
    pub(crate) invalid_password: String,
}

/// Why a token was not let through. Never holds the token, nor the user
/// name (a client that swapped its arguments would have put a token there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("{0}")]
    Token(#[from] issuer::Rejection),
    #[error("{0}")]
    Aws(#[from] aws::Rejection),
    #[error("the token's oid is not the user name given")]
    WrongUser,
    #[error("AUTH with a token needs the user name (the identity's object id)")]
    NoUser,
    #[error("malformed token: not UTF-8")]
    NotUtf8,
}

impl Gate {
    /// The connection's new deadline if `token` is valid at `now` for `user`.
    pub(crate) fn check(
        &self,
        user: &[u8],
        token: &[u8],
        now: SystemTime,
    ) -> Result<SystemTime, Refusal> {
        let token = std::str::from_utf8(token).map_err(|_| Refusal::NotUtf8)?;
        match &self.checker {
            Checker::Entra(issuer) => {
                let claims = issuer.verify(token, now)?;
                if claims.oid.as_bytes() != user {
                    return Err(Refusal::WrongUser);
                }
                Ok(claims.expires_at())
            }
            Checker::Aws(verifier) => {
                verifier.verify(user, token, now)?;
                Ok(now + verifier.connection_limit())
            }
        }
    }

    /// The reply to an AUTH (or HELLO … AUTH) inside MULTI when this cloud
    /// answers it itself instead of letting the backend queue it.
    pub(crate) fn auth_in_multi_reply(&self) -> Option<&'static [u8]> {
        match self.checker {
            Checker::Entra(_) => None,
            Checker::Aws(_) => Some(AUTH_IN_MULTI),
        }
    }

    /// What the deadline a good AUTH sets is.
    pub(crate) fn deadline_kind(&self) -> DeadlineKind {
        match self.checker {
            Checker::Entra(_) => DeadlineKind::TokenExpiry,
            Checker::Aws(_) => DeadlineKind::ConnectionLimit,
        }
    }
}
