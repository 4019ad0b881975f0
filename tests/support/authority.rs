//! An emulated Entra authority for the client-certificate credential: an HTTPS token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`) that, like Entra, accepts a `client_credentials` grant
//! only with a client assertion signed (RS256) by the registered certificate's key, naming its
//! thumbprint (`x5t`), for this token endpoint (`aud`) and client id (`iss`, `sub`), not expired;
//! and answers with a token of the test cloud's issuer. Requests it refused are counted with why.
//!
//! It serves TLS with the test CA's server certificate; redauth trusts that CA for this through
//! `SSL_CERT_FILE` (read by the platform verifier azure_identity's HTTP client uses).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use redauth_emulator::Issuer;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a client must prove.
struct Registered {
    tenant: String,
    client_id: String,
    /// The certificate's RSA public key (PKCS#1 `RSAPublicKey` DER).
    public_key: Vec<u8>,
    /// Base64url SHA-1 of the certificate.
    thumbprint: String,
    issuer: Arc<Issuer>,
    addr: SocketAddr,
    refusals: Mutex<Vec<String>>,
    issued: Mutex<u32>,
}

/// The running authority.
pub struct Authority {
    registered: Arc<Registered>,
}

impl Authority {
    /// Serves on `runtime` with `cert_pem`/`key_pem`; registers the certificate and key in
    /// `client_pem` for `client_id` in `tenant`.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        cert_pem: &str,
        key_pem: &str,
        client_pem: &str,
        tenant: &str,
        client_id: &str,
        issuer: Arc<Issuer>,
    ) -> Authority {
        let client_cert = CertificateDer::from_pem_slice(client_pem.as_bytes()).unwrap();
        let client_key = match PrivateKeyDer::from_pem_slice(client_pem.as_bytes()).unwrap() {
            PrivateKeyDer::Pkcs8(der) => {
                ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap()
            }
            other => panic!("the test certificate's key is PKCS#8: {other:?}"),
        };
        let sha1 = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            client_cert.as_ref(),
        );
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let registered = Arc::new(Registered {
            tenant: tenant.into(),
            client_id: client_id.into(),
            public_key: client_key.public().as_ref().to_vec(),
            thumbprint: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            issuer,
            addr: listener.local_addr().unwrap(),
            refusals: Mutex::new(Vec::new()),
            issued: Mutex::new(0),
        });
        let shared = registered.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(respond(&shared, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Authority { registered }
    }

    /// `https://127.0.0.1:PORT`, for `AZURE_AUTHORITY_HOST`.
    pub fn url(&self) -> String {
        format!("https://{}", self.registered.addr)
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u32 {
        *self.registered.issued.lock().unwrap()
    }

    /// Why requests were refused, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.registered.refusals.lock().unwrap().clone()
    }
}

async fn respond(
    shared: &Registered,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body".into()),
    };
    match check(shared, &path, &body) {
        Ok(()) => {
            *shared.issued.lock().unwrap() += 1;
            let minted = shared.issuer.mint();
            let expires_in = minted
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs();
            let answer = serde_json::json!({
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": minted.token,
            });
            reply(StatusCode::OK, answer.to_string())
        }
        Err(why) => {
            shared.refusals.lock().unwrap().push(why.clone());
            let answer = serde_json::json!({"error": "invalid_client", "error_description": why});
            reply(StatusCode::UNAUTHORIZED, answer.to_string())
        }
    }
}

/// Entra's checks of a client-credentials request with a certificate assertion.
fn check(shared: &Registered, path: &str, body: &[u8]) -> Result<(), String> {
    let expected_path = format!("/{}/oauth2/v2.0/token", shared.tenant);
    if path != expected_path {
        return Err(format!("unknown path {path}"));
    }
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return Err(format!("grant_type {:?}", field("grant_type")));
    }
    if field("client_id") != shared.client_id {
        return Err("unknown client_id".into());
    }
    if field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err("no jwt-bearer client assertion".into());
    }
    let assertion = field("client_assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("the assertion is not a JWT".into());
    };
    let decode = |part: &str| -> Result<serde_json::Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header_json, claims_json) = (decode(header)?, decode(claims)?);
    if header_json["alg"] != "RS256" || header_json["x5t"] != shared.thumbprint.as_str() {
        return Err("the assertion does not name the registered certificate".into());
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &shared.public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "bad assertion signature".to_string())?;
    let audience = format!("https://{}{expected_path}", shared.addr);
    if claims_json["aud"] != audience.as_str() {
        return Err(format!("aud {} is not {audience}", claims_json["aud"]));
    }
    if claims_json["iss"] != shared.client_id.as_str()
        || claims_json["sub"] != shared.client_id.as_str()
    {
        return Err("iss/sub is not the client id".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims_json["exp"].as_u64().unwrap_or(0) <= now {
        return Err("the assertion has expired".into());
    }
    Ok(())
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
