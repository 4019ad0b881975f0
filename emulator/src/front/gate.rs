//! The front's token check, one per cloud: which tokens may stand for the
//! backend user's password, and until when the connection may then live.
//!
//! - [`Checker::Entra`]: a JWT the [`Issuer`] minted, whose `oid` is the
//!   user name; the connection lives until the token's `exp`.
//! - [`Checker::Aws`]: a SigV4-presigned connect URL the [`AwsVerifier`]
//!   accepts; the connection lives [`AwsVerifier::connection_limit`] from
//!   the AUTH, and AUTH inside MULTI is refused.
//! - [`Checker::Gcp`]: an access token the emulated metadata server issued,
//!   for the user `default` (or no user: `AUTH <token>`); the connection
//!   has no deadline, and each front admits at most so many verified AUTHs
//!   a second (its own [`AuthRateLimit`]), answering the rest with
//!   [`IAM_RATE_LIMITED`].

use crate::aws::{self, AwsVerifier};
use crate::gcp::{AuthRateLimit, GcpRefusal, GcpVerifier, IAM_USER};
use crate::issuer::{self, Issuer};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// How the front checks tokens.
#[derive(Debug, Clone)]
pub enum Checker {
    /// Azure: Entra ID tokens from this issuer.
    Entra(Arc<Issuer>),
    /// AWS: ElastiCache/MemoryDB IAM auth tokens, checked by this verifier.
    Aws(Arc<AwsVerifier>),
    /// GCP: Memorystore IAM access tokens, checked by this verifier.
    Gcp(Arc<GcpVerifier>),
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

impl From<Arc<GcpVerifier>> for Checker {
    fn from(verifier: Arc<GcpVerifier>) -> Checker {
        Checker::Gcp(verifier)
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

/// The error the GCP front answers an AUTH over its rate limit with: the
/// text Memorystore documents for its IAM backend's quota being exceeded
/// (its wording for the connection-rate limit itself is not published).
pub const IAM_RATE_LIMITED: &[u8] = b"-ERR (ERR_IAM_EXHAUSTED) Memorystore IAM authentication backend quota exceeded. See https://cloud.google.com/memorystore/docs/cluster/manage-iam-auth#error_messages.\r\n";

/// Decides whether a token may stand for the backend user's password.
pub(crate) struct Gate {
    pub(crate) checker: Checker,
    /// The backend password of the user named after the identity.
    pub(crate) backend_password: String,
    /// A password no backend user has.
    pub(crate) invalid_password: String,
    /// This front's limit on verified AUTHs a second, if its cloud has one.
    pub(crate) rate_limit: Option<Mutex<AuthRateLimit>>,
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
    #[error("{0}")]
    Gcp(#[from] GcpRefusal),
}

impl Gate {
    /// The gate of one front: its own rate limit, if the cloud has one.
    pub(crate) fn new(
        checker: Checker,
        backend_password: String,
        invalid_password: String,
    ) -> Gate {
        let rate_limit = match &checker {
            Checker::Gcp(verifier) => verifier
                .auth_rate_limit()
                .map(|n| Mutex::new(AuthRateLimit::new(n, Instant::now()))),
            Checker::Entra(_) | Checker::Aws(_) => None,
        };
        Gate {
            checker,
            backend_password,
            invalid_password,
            rate_limit,
        }
    }

    /// The connection's new deadline if `token` is valid at `now` for `user`.
    pub(crate) fn check(
        &self,
        user: &[u8],
        token: &[u8],
        now: SystemTime,
    ) -> Result<SystemTime, Refusal> {
        self.check_user(Some(user), token, now)
    }

    /// As [`Gate::check`]; `user` is `None` for the one-argument
    /// `AUTH <token>`, which only GCP accepts.
    pub(crate) fn check_user(
        &self,
        user: Option<&[u8]>,
        token: &[u8],
        now: SystemTime,
    ) -> Result<SystemTime, Refusal> {
        let token = std::str::from_utf8(token).map_err(|_| Refusal::NotUtf8)?;
        match (&self.checker, user) {
            (Checker::Gcp(verifier), user) => Ok(verifier.verify(user, token, now)?.expires_at),
            (_, None) => Err(Refusal::NoUser),
            (Checker::Entra(issuer), Some(user)) => {
                let claims = issuer.verify(token, now)?;
                if claims.oid.as_bytes() != user {
                    return Err(Refusal::WrongUser);
                }
                Ok(claims.expires_at())
            }
            (Checker::Aws(verifier), Some(user)) => {
                verifier.verify(user, token, now)?;
                Ok(now + verifier.connection_limit())
            }
        }
    }

    /// The user a one-argument `AUTH <token>` stands for, when the cloud
    /// accepts that form (GCP: `default`).
    pub(crate) fn bare_token_user(&self) -> Option<&'static [u8]> {
        match self.checker {
            Checker::Gcp(_) => Some(IAM_USER.as_bytes()),
            Checker::Entra(_) | Checker::Aws(_) => None,
        }
    }

    /// Takes one permit from this front's AUTH rate limit: `false` when
    /// the limit is reached (always `true` without a limit).
    pub(crate) fn admit(&self, now: Instant) -> bool {
        match &self.rate_limit {
            Some(limit) => limit.lock().unwrap_or_else(|e| e.into_inner()).admit(now),
            None => true,
        }
    }

    /// The deadline a successful AUTH whose check gave `checked` sets:
    /// none for GCP, where an authenticated connection outlives its token.
    pub(crate) fn deadline(&self, checked: SystemTime) -> Option<SystemTime> {
        match self.checker {
            Checker::Entra(_) | Checker::Aws(_) => Some(checked),
            Checker::Gcp(_) => None,
        }
    }

    /// The reply to an AUTH (or HELLO … AUTH) inside MULTI when this cloud
    /// answers it itself instead of letting the backend queue it.
    pub(crate) fn auth_in_multi_reply(&self) -> Option<&'static [u8]> {
        match self.checker {
            Checker::Entra(_) | Checker::Gcp(_) => None,
            Checker::Aws(_) => Some(AUTH_IN_MULTI),
        }
    }

    /// What the deadline a good AUTH sets is (GCP sets none).
    pub(crate) fn deadline_kind(&self) -> DeadlineKind {
        match self.checker {
            Checker::Entra(_) | Checker::Gcp(_) => DeadlineKind::TokenExpiry,
            Checker::Aws(_) => DeadlineKind::ConnectionLimit,
        }
    }
}
