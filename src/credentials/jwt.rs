//! Reading the claims redauth needs out of an access token.
//!
//! Entra ID access tokens are JWTs: `header.payload.signature`, each part
//! base64url. redauth decodes the payload only to learn the Redis username
//! (`oid`, the identity's object id) and the issue and expiry times; it does
//! not verify the signature — the Redis server does that. Nothing here ever
//! puts token text into an error.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// The claims redauth reads; all optional, as not every token has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Object id of the identity: the Redis username on Azure.
    pub oid: Option<String>,
    /// Tenant id.
    pub tid: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: Option<u64>,
    /// Expires at, Unix seconds.
    pub exp: Option<u64>,
}

impl Claims {
    /// `iat` as a time.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.iat.map(unix)
    }

    /// `exp` as a time.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.exp.map(unix)
    }
}

fn unix(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Why a token's claims could not be read. Never contains token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the access token is not a JWT (expected three dot-separated parts)")]
    NotAJwt,
    #[error("the access token's payload is not base64url")]
    Base64,
    #[error("the access token's payload is not a JSON object of claims")]
    Json,
}

/// Decodes the payload of `token` without verifying it.
pub fn claims(token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotAJwt);
    };
    // Tolerate padding, which some issuers leave in.
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_oid_and_times() {
        let t = token(
            r#"{"aud":"https://redis.azure.com","oid":"3f1c-a9","tid":"t","iat":1700000000,"exp":1700004500,"roles":["x"]}"#,
        );
        let c = claims(&t).unwrap();
        assert_eq!(c.oid.as_deref(), Some("3f1c-a9"));
        assert_eq!(c.tid.as_deref(), Some("t"));
        assert_eq!(
            c.expires_at()
                .unwrap()
                .duration_since(c.issued_at().unwrap())
                .ok(),
            Some(Duration::from_secs(4500))
        );
    }

    #[test]
    fn a_token_without_oid_has_none() {
        let c = claims(&token(r#"{"exp":1}"#)).unwrap();
        assert_eq!(c.oid, None);
        assert_eq!(c.exp, Some(1));
    }

    #[test]
    fn padded_payloads_are_accepted() {
        let payload = base64::engine::general_purpose::URL_SAFE.encode(r#"{"oid":"o"}"#);
        assert!(payload.ends_with('='), "{payload}");
        let c = claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c.oid.as_deref(), Some("o"));
    }

    #[test]
    fn malformed_tokens_are_clear_errors_without_the_token() {
        let secretish = "opaque-SECRET-value";
        for (t, want) in [
            (secretish.to_string(), JwtError::NotAJwt),
            (format!("a.{secretish}.b.c"), JwtError::NotAJwt),
            (format!("a.{secretish}!.b"), JwtError::Base64),
            (
                format!("a.{}.b", URL_SAFE_NO_PAD.encode("[1]")),
                JwtError::Json,
            ),
        ] {
            let e = claims(&t).unwrap_err();
            assert_eq!(e, want);
            assert!(!e.to_string().contains("SECRET"));
        }
    }
}
