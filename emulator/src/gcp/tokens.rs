//! The emulated Google OAuth2 token service: opaque `ya29.` access tokens
//! for the emulated service account, remembered with their expiry and the
//! scopes they were asked for.
//!
//! [`AccessTokens::issue`] makes a new token every time, valid for the
//! current lifetime (seconds in tests; Google's are about an hour).
//! [`AccessTokens::verify`] tells a token it issued and that is still valid
//! from an unknown or expired one, and checks it carries the
//! `cloud-platform` scope Memorystore wants. Tokens that expired over
//! [`FORGET_AFTER`] ago are dropped (and are then simply unknown).
//!
//! Tokens are secrets: they never appear in a log line or a `Debug` output.

use crate::random;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The scope Memorystore IAM authentication needs, and the scope tokens
/// carry when the client asks for none (the service account's default).
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long an expired token is still recognised (as expired).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One access token as the metadata server hands it out.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// `ya29.` and random URL-safe characters: a secret.
    pub token: String,
    /// When it stops being valid.
    pub expires_at: SystemTime,
    /// The scopes it was issued for.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &crate::issuer::rfc3339(self.expires_at))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why a token was refused. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("unknown access token (not issued by the emulated metadata server)")]
    Unknown,
    #[error("the access token expired")]
    Expired,
    #[error("the access token lacks the cloud-platform scope")]
    Scope,
}

/// Issues access tokens and checks them.
pub struct AccessTokens {
    /// Lifetime of new tokens, in milliseconds; changeable while running.
    lifetime_ms: AtomicU64,
    /// By token.
    issued: Mutex<HashMap<String, AccessToken>>,
    count: AtomicU64,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("lifetime", &self.lifetime())
            .field("issued", &self.issued())
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    /// An issuer of tokens valid for `lifetime`.
    pub fn new(lifetime: Duration) -> AccessTokens {
        AccessTokens {
            lifetime_ms: AtomicU64::new(millis(lifetime)),
            issued: Mutex::new(HashMap::new()),
            count: AtomicU64::new(0),
        }
    }

    /// How long new tokens are valid.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms.load(Ordering::Relaxed))
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_ms.store(millis(lifetime), Ordering::Relaxed);
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A new token valid from now, for `scopes` (none asked: the default
    /// scope, `cloud-platform`).
    pub fn issue(&self, scopes: Option<Vec<String>>) -> AccessToken {
        self.issue_at(scopes, SystemTime::now())
    }

    /// A new token valid from `now` for the current lifetime.
    pub fn issue_at(&self, scopes: Option<Vec<String>>, now: SystemTime) -> AccessToken {
        let token = AccessToken {
            token: format!("ya29.{}", URL_SAFE_NO_PAD.encode(random::bytes::<96>())),
            expires_at: now + self.lifetime(),
            scopes: scopes.unwrap_or_else(|| vec![CLOUD_PLATFORM_SCOPE.to_string()]),
        };
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, t| t.expires_at + FORGET_AFTER > now);
        issued.insert(token.token.clone(), token.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        token
    }

    /// The token as issued, if it was issued here, is valid at `now` and
    /// carries the `cloud-platform` scope.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<AccessToken, Rejection> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let known = issued.get(token).ok_or(Rejection::Unknown)?;
        if known.expires_at <= now {
            return Err(Rejection::Expired);
        }
        if !known.scopes.iter().any(|s| s == CLOUD_PLATFORM_SCOPE) {
            return Err(Rejection::Scope);
        }
        Ok(known.clone())
    }

    /// Every token still remembered (issued less than [`FORGET_AFTER`]
    /// past its expiry): for tests that check none of them was logged.
    pub fn all(&self) -> Vec<AccessToken> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.values().cloned().collect()
    }

    /// The token's record, valid or not (if still known): for tests that
    /// check the scopes a client asked for.
    pub fn lookup(&self, token: &str) -> Option<AccessToken> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.get(token).cloned()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn tokens_rotate_and_verify_until_they_expire() {
        let tokens = AccessTokens::new(Duration::from_secs(2));
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let a = tokens.issue_at(None, now);
        let b = tokens.issue_at(None, now);
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with("ya29.") && a.token.len() > 100);
        assert_eq!(a.expires_at, now + Duration::from_secs(2));
        assert_eq!(a.scopes, vec![CLOUD_PLATFORM_SCOPE.to_string()]);
        assert_eq!(tokens.verify(&a.token, now), Ok(a.clone()));
        let later = now + Duration::from_secs(2);
        assert_eq!(tokens.verify(&a.token, later), Err(Rejection::Expired));
        assert_eq!(tokens.verify("ya29.guess", now), Err(Rejection::Unknown));
        assert_eq!(tokens.issued(), 2);
        // Long expired tokens are forgotten at the next issue.
        tokens.issue_at(None, a.expires_at + FORGET_AFTER);
        assert_eq!(tokens.lookup(&a.token), None);
    }

    #[test]
    fn scopes_are_remembered_and_cloud_platform_is_needed() {
        let tokens = AccessTokens::new(Duration::from_secs(60));
        let now = SystemTime::now();
        let asked = vec![
            "https://www.googleapis.com/auth/userinfo.email".to_string(),
            CLOUD_PLATFORM_SCOPE.to_string(),
        ];
        let good = tokens.issue_at(Some(asked.clone()), now);
        assert_eq!(tokens.verify(&good.token, now).unwrap().scopes, asked);
        let narrow = vec!["https://www.googleapis.com/auth/devstorage.read_only".to_string()];
        let bad = tokens.issue_at(Some(narrow), now);
        assert_eq!(tokens.verify(&bad.token, now), Err(Rejection::Scope));
    }

    #[test]
    fn debug_hides_the_token() {
        let token = AccessTokens::new(Duration::from_secs(60)).issue(None);
        let shown = format!("{token:?}");
        assert!(!shown.contains(&token.token), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
