//! The emulated Entra ID token issuer: mints and verifies JWT-shaped tokens.
//!
//! A token is `base64url(header).base64url(claims).base64url(signature)`
//! without padding, like a real access token, so code that reads the `oid` and
//! `exp` claims out of a JWT works on it unchanged. The signature is
//! HMAC-SHA256 under a random key that lives only in this process: a token is
//! good for the [`Issuer`] that minted it and for nothing else. Real tokens
//! are RS256-signed by Microsoft; nothing here tries to look like that.
//!
//! Token text never appears in an error, a log line or a `Debug` output.

use super::random;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The audience of a token for Azure Cache for Redis / Azure Managed Redis.
pub const AUDIENCE: &str = "https://redis.azure.com";

/// The emulated tenant (directory) id.
pub const TENANT_ID: &str = "00000000-0000-4000-8000-0000000e7e17";

/// The JOSE header every token carries.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a token, as in an Entra ID access token (a subset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// Issuer: `https://sts.windows.net/<tenant>/`.
    pub iss: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Not before, unix seconds.
    pub nbf: u64,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Object id of the identity: the Redis username.
    pub oid: String,
    /// Tenant id.
    pub tid: String,
    /// Token id, unique per issuer.
    pub jti: String,
}

impl Claims {
    /// When the token stops being valid.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

/// A freshly minted token.
#[derive(Clone)]
pub struct Minted {
    /// The token text: a secret.
    pub token: String,
    /// Its `exp` claim (a whole second).
    pub expires_at: SystemTime,
    /// Its `jti` claim, safe to log.
    pub jti: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("token", &"<redacted>")
            .field("expires_at", &rfc3339(self.expires_at))
            .field("jti", &self.jti)
            .finish()
    }
}

/// Why a token was refused. The texts never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("bad signature: the token was not issued by this emulator, or was altered")]
    BadSignature,
    #[error("token expired at {}", rfc3339(*.0))]
    Expired(SystemTime),
    #[error("token not valid before {}", rfc3339(*.0))]
    NotYetValid(SystemTime),
    #[error("token is for audience {0:?}, not {AUDIENCE:?}")]
    WrongAudience(String),
}

/// Formats a time as RFC 3339 to the second, for messages and logs.
pub(crate) fn rfc3339(t: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(t)
}

/// Mints tokens for one identity and verifies them.
pub struct Issuer {
    key: hmac::Key,
    oid: String,
    /// Token lifetime in milliseconds; changeable while running.
    lifetime_ms: AtomicU64,
    /// Tokens minted so far; the next `jti`.
    minted: AtomicU64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("oid", &self.oid)
            .field("lifetime", &self.lifetime())
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer for the identity `oid`, minting tokens valid for `lifetime`,
    /// under a new random key.
    pub fn new(oid: String, lifetime: Duration) -> Issuer {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &random::bytes::<32>());
        Issuer {
            key,
            oid,
            lifetime_ms: AtomicU64::new(millis(lifetime)),
            minted: AtomicU64::new(0),
        }
    }

    /// The object id every token names.
    pub fn oid(&self) -> &str {
        &self.oid
    }

    /// How long newly minted tokens are valid.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms.load(Ordering::Relaxed))
    }

    /// Changes the lifetime of tokens minted from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_ms.store(millis(lifetime), Ordering::Relaxed);
    }

    /// Mints a token valid from now for the current lifetime. `exp` is rounded
    /// up to a whole second, so a token lives at least its lifetime.
    pub fn mint(&self) -> Minted {
        self.mint_at(SystemTime::now())
    }

    fn mint_at(&self, now: SystemTime) -> Minted {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let iat = since_epoch.as_secs();
        let end = since_epoch + self.lifetime();
        let exp = end.as_secs() + u64::from(end.subsec_nanos() > 0);
        let jti = (self.minted.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let claims = Claims {
            aud: AUDIENCE.to_string(),
            iss: format!("https://sts.windows.net/{TENANT_ID}/"),
            iat,
            nbf: iat,
            exp,
            oid: self.oid.clone(),
            tid: TENANT_ID.to_string(),
            jti: jti.clone(),
        };
        let payload = serde_json::to_vec(&claims).expect("claims always serialize");
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = hmac::sign(&self.key, signed.as_bytes());
        Minted {
            token: format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())),
            expires_at: claims.expires_at(),
            jti,
        }
    }

    /// Checks a token's shape, signature (in constant time), audience and
    /// validity period at `now`, and returns its claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, Rejection> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed("not three dot-separated parts"));
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part);
        let header_json =
            decode(header).map_err(|_| Rejection::Malformed("header is not base64url"))?;
        let signature =
            decode(signature).map_err(|_| Rejection::Malformed("signature is not base64url"))?;
        let signed_len = header.len() + 1 + payload.len();
        hmac::verify(&self.key, &token.as_bytes()[..signed_len], &signature)
            .map_err(|_| Rejection::BadSignature)?;
        if header_json != HEADER.as_bytes() {
            return Err(Rejection::Malformed("unexpected header"));
        }
        let payload =
            decode(payload).map_err(|_| Rejection::Malformed("claims are not base64url"))?;
        let claims: Claims = serde_json::from_slice(&payload)
            .map_err(|_| Rejection::Malformed("claims are not the expected JSON"))?;
        if claims.aud != AUDIENCE {
            return Err(Rejection::WrongAudience(claims.aud));
        }
        let not_before = UNIX_EPOCH + Duration::from_secs(claims.nbf);
        if now < not_before {
            return Err(Rejection::NotYetValid(not_before));
        }
        if claims.expires_at() <= now {
            return Err(Rejection::Expired(claims.expires_at()));
        }
        Ok(claims)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "00000000-0000-4000-8000-00000000d3e0";

    fn issuer(lifetime: Duration) -> Issuer {
        Issuer::new(OID.into(), lifetime)
    }

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let issuer = issuer(Duration::from_secs(60));
        let now = SystemTime::now();
        let minted = issuer.mint_at(now);
        let claims = issuer.verify(&minted.token, now).unwrap();
        assert_eq!(claims.oid, OID);
        assert_eq!(claims.tid, TENANT_ID);
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.iss, format!("https://sts.windows.net/{TENANT_ID}/"));
        assert_eq!(claims.expires_at(), minted.expires_at);
        assert_eq!(claims.jti, minted.jti);
        let lived = minted.expires_at.duration_since(now).unwrap();
        assert!(lived >= Duration::from_secs(60) && lived <= Duration::from_secs(61));
        assert_eq!(minted.token.matches('.').count(), 2);
        assert!(!minted.token.contains('='));
    }

    #[test]
    fn short_lifetimes_round_up_to_whole_seconds() {
        let issuer = issuer(Duration::from_millis(1500));
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000_250);
        let minted = issuer.mint_at(now);
        assert_eq!(
            minted.expires_at,
            UNIX_EPOCH + Duration::from_secs(1_000_002)
        );
        issuer.set_lifetime(Duration::from_secs(2));
        let exact = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let minted = issuer.mint_at(exact);
        assert_eq!(minted.expires_at, exact + Duration::from_secs(2));
        assert_eq!(issuer.lifetime(), Duration::from_secs(2));
    }

    #[test]
    fn tokens_minted_together_differ() {
        let issuer = issuer(Duration::from_secs(5));
        let now = SystemTime::now();
        let (a, b) = (issuer.mint_at(now), issuer.mint_at(now));
        assert_ne!(a.token, b.token);
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn expiry_is_enforced() {
        let issuer = issuer(Duration::from_secs(2));
        let now = SystemTime::now();
        let minted = issuer.mint_at(now);
        let at = minted.expires_at;
        assert!(issuer
            .verify(&minted.token, at - Duration::from_millis(1))
            .is_ok());
        assert_eq!(
            issuer.verify(&minted.token, at),
            Err(Rejection::Expired(at))
        );
        let text = issuer
            .verify(&minted.token, at + Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("token expired at "), "{text}");
        assert!(!text.contains(&minted.token));
    }

    #[test]
    fn tampering_is_detected() {
        let issuer = issuer(Duration::from_secs(60));
        let now = SystemTime::now();
        let token = issuer.mint_at(now).token;
        let parts: Vec<&str> = token.split('.').collect();

        // Another identity's claims under the original signature.
        let mut claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims.oid = "someone-else".into();
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(issuer.verify(&forged, now), Err(Rejection::BadSignature));

        // A flipped signature character.
        let mut sig = parts[2].to_string();
        let flipped = if sig.ends_with('A') { "B" } else { "A" };
        sig.replace_range(sig.len() - 1.., flipped);
        let altered = format!("{}.{}.{sig}", parts[0], parts[1]);
        assert!(issuer.verify(&altered, now).is_err());

        // Another issuer's key.
        let other = Issuer::new(OID.into(), Duration::from_secs(60));
        assert_eq!(other.verify(&token, now), Err(Rejection::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_them() {
        let issuer = issuer(Duration::from_secs(60));
        let now = SystemTime::now();
        for bad in ["", "abc", "a.b", "a.b.c.d", "a.b.!!!", "password123"] {
            let err = issuer.verify(bad, now).unwrap_err();
            assert!(
                matches!(err, Rejection::Malformed(_) | Rejection::BadSignature),
                "{bad:?}: {err:?}"
            );
            if bad.len() > 3 {
                assert!(!err.to_string().contains(bad));
            }
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let minted = issuer(Duration::from_secs(60)).mint();
        let shown = format!("{minted:?}");
        assert!(!shown.contains(&minted.token));
        assert!(shown.contains("redacted"));
    }
}
