//! What the front asks of the emulated GCP: is this the IAM access token of
//! the user `default`, issued by the metadata stand-in and still valid, and
//! how many IAM authentications per second does each front admit.

use super::tokens::{AccessToken, AccessTokens, Rejection};
use std::sync::Arc;
use std::time::SystemTime;

/// The only user Memorystore IAM authentication accepts.
pub const IAM_USER: &str = "default";

/// Why a GCP AUTH was refused. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcpRefusal {
    #[error("{0}")]
    Token(#[from] Rejection),
    #[error("IAM authentication takes the user name `default`")]
    NotDefault,
}

/// Checks access tokens for every front of one emulated instance.
#[derive(Debug)]
pub struct GcpVerifier {
    tokens: Arc<AccessTokens>,
    auth_rate_limit: Option<u32>,
}

impl GcpVerifier {
    /// Trusts the tokens of `tokens`; each front admits at most
    /// `auth_rate_limit` verified AUTHs a second (`None`: no limit).
    pub fn new(tokens: Arc<AccessTokens>, auth_rate_limit: Option<u32>) -> GcpVerifier {
        GcpVerifier {
            tokens,
            auth_rate_limit: auth_rate_limit.filter(|&n| n > 0),
        }
    }

    /// The token issuer (issue tokens directly, change the lifetime).
    pub fn tokens(&self) -> &Arc<AccessTokens> {
        &self.tokens
    }

    /// Verified AUTHs a second each front admits, if limited.
    pub fn auth_rate_limit(&self) -> Option<u32> {
        self.auth_rate_limit
    }

    /// The token's record if `user` (absent for `AUTH <token>`) is
    /// `default` and the token is good at `now`.
    pub fn verify(
        &self,
        user: Option<&[u8]>,
        token: &str,
        now: SystemTime,
    ) -> Result<AccessToken, GcpRefusal> {
        if user.is_some_and(|u| u != IAM_USER.as_bytes()) {
            return Err(GcpRefusal::NotDefault);
        }
        Ok(self.tokens.verify(token, now)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_or_no_user_with_a_good_token() {
        let tokens = Arc::new(AccessTokens::new(Duration::from_secs(60)));
        let verifier = GcpVerifier::new(tokens.clone(), Some(0));
        assert_eq!(verifier.auth_rate_limit(), None);
        let good = tokens.issue(None);
        let now = SystemTime::now();
        assert!(verifier.verify(None, &good.token, now).is_ok());
        assert!(verifier.verify(Some(b"default"), &good.token, now).is_ok());
        assert_eq!(
            verifier.verify(Some(b"admin"), &good.token, now),
            Err(GcpRefusal::NotDefault)
        );
        assert_eq!(
            verifier.verify(None, "ya29.nope", now),
            Err(GcpRefusal::Token(Rejection::Unknown))
        );
        assert_eq!(
            verifier.verify(None, &good.token, good.expires_at),
            Err(GcpRefusal::Token(Rejection::Expired))
        );
    }
}
