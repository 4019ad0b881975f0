//! The emulated STS: issues temporary AWS credentials and remembers them.
//!
//! [`CredentialIssuer::issue`] makes a new set every time — access key id
//! (`ASIA…`), secret access key and session token all fresh — valid for the
//! current lifetime (seconds, so rotations happen during a test). Every set
//! is kept by its access key id, so the verifier can check a token signed
//! with any set still valid, and can tell an expired set from one that was
//! never issued. Sets that expired over [`FORGET_AFTER`] ago are dropped.
//!
//! Secrets (secret access keys, session tokens) never appear in a log line
//! or a `Debug` output.

use crate::random;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an expired set is still recognised (as expired).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One set of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `ASIA` and 16 upper-case hex characters; safe to log.
    pub access_key_id: String,
    /// A secret.
    pub secret_access_key: String,
    /// A secret: base64 with `/`, `+` and `=`, like a real session token.
    pub session_token: String,
    /// When the set stops being valid (a whole second).
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expires_at", &crate::issuer::rfc3339(self.expires_at))
            .finish()
    }
}

/// Issues credential sets and looks them up by access key id.
pub struct CredentialIssuer {
    /// Lifetime of new sets, in milliseconds; changeable while running.
    lifetime_ms: AtomicU64,
    issued: Mutex<HashMap<String, Credentials>>,
    count: AtomicU64,
}

impl std::fmt::Debug for CredentialIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialIssuer")
            .field("lifetime", &self.lifetime())
            .field("issued", &self.issued())
            .finish_non_exhaustive()
    }
}

impl CredentialIssuer {
    /// An issuer of sets valid for `lifetime`.
    pub fn new(lifetime: Duration) -> CredentialIssuer {
        CredentialIssuer {
            lifetime_ms: AtomicU64::new(millis(lifetime)),
            issued: Mutex::new(HashMap::new()),
            count: AtomicU64::new(0),
        }
    }

    /// How long new sets are valid.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms.load(Ordering::Relaxed))
    }

    /// Changes the lifetime of sets issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_ms.store(millis(lifetime), Ordering::Relaxed);
    }

    /// Sets issued so far.
    pub fn issued(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A new set valid from now for the current lifetime.
    pub fn issue(&self) -> Credentials {
        self.issue_at(SystemTime::now())
    }

    /// A new set valid from `now`; its expiry is rounded up to a whole
    /// second, so it lives at least the lifetime.
    pub fn issue_at(&self, now: SystemTime) -> Credentials {
        let end = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.lifetime();
        let expires_at =
            UNIX_EPOCH + Duration::from_secs(end.as_secs() + u64::from(end.subsec_nanos() > 0));
        let credentials = Credentials {
            access_key_id: format!("ASIA{}", sigv4_hex_upper(&random::bytes::<8>())),
            secret_access_key: STANDARD.encode(random::bytes::<30>()),
            session_token: format!(
                "IQoJb3JpZ2luX2Vj{}",
                STANDARD.encode(random::bytes::<100>())
            ),
            expires_at,
        };
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, c| c.expires_at + FORGET_AFTER > now);
        issued.insert(credentials.access_key_id.clone(), credentials.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        credentials
    }

    /// Trusts a set made elsewhere (a fixed test vector's).
    #[cfg(test)]
    pub(crate) fn remember(&self, credentials: Credentials) {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.insert(credentials.access_key_id.clone(), credentials);
    }

    /// Every set still known, for tests that check no secret leaked.
    pub fn all(&self) -> Vec<Credentials> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.values().cloned().collect()
    }

    /// The set with this access key id, expired or not (if still known).
    pub fn lookup(&self, access_key_id: &str) -> Option<Credentials> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.get(access_key_id).cloned()
    }
}

fn sigv4_hex_upper(bytes: &[u8]) -> String {
    super::sigv4::hex(bytes).to_ascii_uppercase()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_issue_rotates_every_part() {
        let issuer = CredentialIssuer::new(Duration::from_millis(1500));
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000_250);
        let a = issuer.issue_at(now);
        let b = issuer.issue_at(now);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret_access_key, b.secret_access_key);
        assert_ne!(a.session_token, b.session_token);
        assert_eq!(a.expires_at, UNIX_EPOCH + Duration::from_secs(1_000_002));
        assert!(a.access_key_id.starts_with("ASIA") && a.access_key_id.len() == 20);
        assert_eq!(a.secret_access_key.len(), 40);
        assert_eq!(issuer.lookup(&a.access_key_id), Some(a.clone()));
        assert_eq!(issuer.lookup(&b.access_key_id), Some(b));
        assert_eq!(issuer.lookup("ASIA0000000000000000"), None);
        assert_eq!(issuer.issued(), 2);
        // Long expired sets are forgotten at the next issue.
        issuer.issue_at(a.expires_at + FORGET_AFTER);
        assert_eq!(issuer.lookup(&a.access_key_id), None);
    }

    #[test]
    fn debug_hides_the_secrets() {
        let credentials = CredentialIssuer::new(Duration::from_secs(60)).issue();
        let shown = format!("{credentials:?}");
        assert!(shown.contains(&credentials.access_key_id));
        assert!(!shown.contains(&credentials.secret_access_key));
        assert!(!shown.contains(&credentials.session_token));
    }
}
