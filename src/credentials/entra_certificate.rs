//! Entra ID with a service principal's certificate, without OpenSSL.
//!
//! `azure_identity`'s own `ClientCertificateCredential` needs its OpenSSL
//! feature; redauth links no OpenSSL (rustls and ring only, and the image has
//! no libssl). So the certificate is used the way Entra's protocol defines
//! it, through `azure_identity`'s `ClientAssertionCredential`: each token
//! request carries a fresh client assertion, a JWT naming the certificate by
//! its SHA-1 thumbprint (`x5t`) and signed RS256 with its private key
//! (Microsoft identity platform, "certificate credentials"), built here with
//! ring.
//!
//! The file is the `AZURE_CLIENT_CERTIFICATE_PATH` convention: one PEM file
//! holding the certificate and its unencrypted RSA private key (PKCS#8 or
//! PKCS#1). Encrypted keys (`AZURE_CLIENT_CERTIFICATE_PASSWORD`) and PKCS#12
//! are refused with the conversion to use. The key never leaves this type:
//! its `Debug` shows the thumbprint only.

use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long an assertion is valid (Entra accepts up to about 10 minutes).
const LIFETIME_SECS: u64 = 600;

/// Entra's public cloud, unless `AZURE_AUTHORITY_HOST` names another.
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Signs client assertions with a certificate's key.
pub struct CertificateAssertion {
    client_id: String,
    /// The token endpoint: the assertion's audience.
    audience: String,
    /// Base64url SHA-1 of the certificate's DER (the `x5t` header).
    thumbprint: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    /// Reads the certificate and key from `path`, for `client_id` in
    /// `tenant_id` at `authority` (`https://login.microsoftonline.com`).
    /// Errors name the file, never its content.
    pub fn load(
        path: &Path,
        tenant_id: &str,
        client_id: &str,
        authority: &str,
    ) -> Result<CertificateAssertion, String> {
        let at = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("reading the client certificate {at}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading the client certificate {at}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{at} holds no PEM certificate (a PKCS#12 file? convert it: openssl pkcs12 -in cert.pfx -nodes -out cert.pem)"));
        }
        let key = match PrivateKeyDer::from_pem_file(path) {
            Ok(PrivateKeyDer::Pkcs8(der)) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            Ok(PrivateKeyDer::Pkcs1(der)) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            Ok(_) => return Err(format!("the private key in {at} is not an RSA key")),
            Err(_) => {
                return Err(format!(
                    "{at} holds no unencrypted private key (PKCS#8 or PKCS#1 PEM) after the certificate"
                ))
            }
        }
        .map_err(|e| format!("the private key in {at} is not a usable RSA key: {e}"))?;
        // The certificate is the one whose public key is the key's: its DER holds the key's
        // RSAPublicKey as is (inside the subjectPublicKeyInfo), so a chain in any order works
        // and a key for another certificate is refused here, not by Entra at the first fetch.
        let public = key.public().as_ref();
        let cert = certs
            .iter()
            .find(|c| c.as_ref().windows(public.len()).any(|w| w == public))
            .ok_or_else(|| {
                format!("the private key in {at} belongs to none of its certificates")
            })?;
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref());
        Ok(CertificateAssertion {
            client_id: client_id.to_string(),
            audience: format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// A fresh signed assertion, valid from `now` for ten minutes.
    pub fn assertion(&self, now: SystemTime) -> Result<String, String> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut id = [0u8; 16];
        self.rng
            .fill(&mut id)
            .map_err(|_| "no randomness for the assertion id".to_string())?;
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint});
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": URL_SAFE_NO_PAD.encode(id),
            "nbf": now,
            "iat": now,
            "exp": now + LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.assertion(SystemTime::now()).map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use std::path::PathBuf;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/entra-client-certificate.pem")
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_names_the_certificate_and_is_signed_by_its_key() {
        let source = CertificateAssertion::load(
            &fixture(),
            "tenant-1",
            "client-1",
            "https://login.example/",
        )
        .unwrap();
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let jwt = source.assertion(now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);

        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        let cert = CertificateDer::pem_file_iter(fixture())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref());
        assert_eq!(header["x5t"], URL_SAFE_NO_PAD.encode(sha1.as_ref()));

        let claims = decode(parts[1]);
        assert_eq!(
            claims["aud"],
            "https://login.example/tenant-1/oauth2/v2.0/token"
        );
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["nbf"], 1_800_000_000u64);
        assert_eq!(claims["exp"], 1_800_000_600u64);
        assert_ne!(
            claims["jti"],
            decode(source.assertion(now).unwrap().split('.').nth(1).unwrap())["jti"],
            "every assertion has its own id"
        );

        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, source.key.public().as_ref())
            .verify(signed.as_bytes(), &signature)
            .expect("a valid RS256 signature");
        let mut tampered = signed.into_bytes();
        tampered[0] ^= 1;
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, source.key.public().as_ref())
                .verify(&tampered, &signature)
                .is_err()
        );
    }

    #[test]
    fn files_without_a_certificate_or_key_are_clear_errors_that_show_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            CertificateAssertion::load(&path, "t", "c", PUBLIC_AUTHORITY).unwrap_err()
        };
        let full = std::fs::read_to_string(fixture()).unwrap();
        let (cert, key) = full.split_at(full.find("-----BEGIN PRIVATE KEY").unwrap());
        let no_cert = load("key-only.pem", key);
        assert!(no_cert.contains("holds no PEM certificate"), "{no_cert}");
        let no_key = load("cert-only.pem", cert);
        assert!(
            no_key.contains("holds no unencrypted private key"),
            "{no_key}"
        );
        // The fixture's key with another certificate: refused at load.
        let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
        let mismatched = load("mismatched.pem", &format!("{}{key}", other.cert.pem()));
        assert!(
            mismatched.contains("belongs to none of its certificates"),
            "{mismatched}"
        );
        let missing =
            CertificateAssertion::load(&dir.path().join("nope"), "t", "c", PUBLIC_AUTHORITY)
                .unwrap_err();
        assert!(
            missing.starts_with("reading the client certificate"),
            "{missing}"
        );
        let shown = format!(
            "{:?}",
            CertificateAssertion::load(&fixture(), "t", "c", PUBLIC_AUTHORITY).unwrap()
        );
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("thumbprint"), "{shown}");
    }
}
