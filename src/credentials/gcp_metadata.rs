//! The GCE metadata server's token endpoint, asked directly: what Google
//! Compute Engine, GKE (Workload Identity), Cloud Run and the other
//! serverless platforms give a workload, and the last member of Application
//! Default Credentials.
//!
//! One GET of `http://HOST/computeMetadata/v1/instance/service-accounts/default/token?scopes=S`
//! with `Metadata-Flavor: Google`, answered with `{"access_token", "expires_in",
//! "token_type"}`. HOST is `GCE_METADATA_HOST` when set (as every Google
//! library reads it), else `metadata.google.internal`. `google-cloud-auth`
//! speaks the same protocol, but hands out a token without its expiry and
//! keeps a cache of its own that refreshes four minutes before expiry (or every
//! ten seconds below that); asking here keeps the token's real `expires_in`,
//! so the refresher's schedule is the only one. This module neither caches
//! nor retries (the refresher does both).

use super::source::FetchError;
use super::Secret;
use crate::environment::Environment;
use std::time::{Duration, SystemTime};

/// The variable Google's libraries read the metadata server's `host[:port]` from.
pub const HOST_VAR: &str = "GCE_METADATA_HOST";

/// The metadata server's name on GCP.
pub const DEFAULT_HOST: &str = "metadata.google.internal";

/// Bound on one token request (the server answers from memory).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one metadata server.
#[derive(Debug, Clone)]
pub struct MetadataServer {
    host: String,
    scope: String,
    http: reqwest::Client,
}

/// A token as the metadata server issued it.
pub struct Issued {
    pub secret: Secret,
    pub expires_at: SystemTime,
}

#[derive(serde::Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: u64,
}

impl MetadataServer {
    /// The server `GCE_METADATA_HOST` names, or GCP's own; tokens for `scope`.
    pub fn new(env: &dyn Environment, scope: &str) -> Result<MetadataServer, String> {
        let host = env
            .var(HOST_VAR)
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        // reqwest is built without a provider of its own: the process's
        // (ring), installed here by whoever builds a client first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // The metadata server is never reached through a proxy.
            .no_proxy()
            .build()
            .map_err(|e| format!("building the metadata-server client: {e}"))?;
        Ok(MetadataServer {
            host,
            scope: scope.to_string(),
            http,
        })
    }

    /// `host[:port]` of the server asked.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn token_url(&self) -> String {
        format!(
            "http://{}/computeMetadata/v1/instance/service-accounts/default/token?scopes={}",
            self.host,
            url::form_urlencoded::byte_serialize(self.scope.as_bytes()).collect::<String>()
        )
    }

    /// Asks for an access token.
    pub async fn token(&self) -> Result<Issued, FetchError> {
        let fail =
            |what: String| FetchError(format!("gcp-iam (metadata server {}): {what}", self.host));
        let reply = self
            .http
            .get(self.token_url())
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| fail(format!("requesting a token: {}", without_url(&e))))?;
        let status = reply.status();
        if !status.is_success() {
            // The body says why (an unknown scope, no service account); it holds no token.
            let body = reply.text().await.unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            return Err(fail(format!(
                "the token request was answered {status}: {body}"
            )));
        }
        let now = SystemTime::now();
        let parsed: TokenReply = reply
            .json()
            .await
            .map_err(|e| fail(format!("reading the token reply: {}", without_url(&e))))?;
        if parsed.access_token.is_empty() || parsed.expires_in == 0 {
            return Err(fail("the reply holds no usable token".into()));
        }
        Ok(Issued {
            secret: Secret::new(parsed.access_token),
            expires_at: now + Duration::from_secs(parsed.expires_in),
        })
    }
}

/// reqwest's error without the URL (which carries only the host and the
/// scope, but reads badly twice in one line).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "");
    }
    super::cause::with_causes(text, std::error::Error::source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_host_comes_from_gce_metadata_host_and_the_scope_is_encoded() {
        let scope = "https://www.googleapis.com/auth/cloud-platform";
        let none: HashMap<String, String> = HashMap::new();
        let server = MetadataServer::new(&none, scope).unwrap();
        assert_eq!(server.host(), DEFAULT_HOST);
        let set: HashMap<String, String> =
            HashMap::from([(HOST_VAR.into(), "127.0.0.1:8099".into())]);
        let server = MetadataServer::new(&set, scope).unwrap();
        assert_eq!(
            server.token_url(),
            "http://127.0.0.1:8099/computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
        );
    }
}
