//! GCP IAM tokens for Memorystore for Redis Cluster and Memorystore for
//! Valkey (`--auth gcp-iam`).
//!
//! [`build`] settles Application Default Credentials in Google's order and
//! returns a [`GcpIamSource`]:
//!
//! 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names (a service account key,
//!    an external account for workload identity federation, an impersonated
//!    service account, gcloud's user credentials);
//! 2. gcloud's own file (`gcloud auth application-default login`:
//!    `$CLOUDSDK_CONFIG/application_default_credentials.json`, by default under
//!    `~/.config/gcloud`);
//! 3. the metadata server (GCE, GKE Workload Identity, Cloud Run), at
//!    `GCE_METADATA_HOST` when set ([`gcp_metadata`](super::gcp_metadata)).
//!
//! A file is handed to Google's `google-cloud-auth`, which knows every kind.
//! That library does not tell a token's expiry; what it does promise is to
//! replace a token four minutes before it expires. So a token from a file is
//! taken to expire at its JWT `exp` claim when it is one (a service account
//! key makes self-signed JWTs), else [`LEASE`] after it was last handed out,
//! and never later than an hour after it was first seen (Google's access
//! tokens live an hour). The metadata server is asked directly, and its
//! `expires_in` is the expiry.
//!
//! Memorystore keeps a connection open after the token it authenticated with
//! expires, so by default ([`Reauth::Never`]) a token only has to be good for
//! the AUTH of a new connection ([`ConnectionLimit::None`]);
//! `--reauth always` re-authenticates live connections before each token
//! expires, as for Entra ID. The credential kind is logged; no token is.

use super::gcp_metadata::MetadataServer;
use super::jwt;
use super::source::{FetchError, Token, TokenSource};
use super::{ConnectionLimit, Secret};
use crate::environment::Environment;
use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The scope Memorystore's IAM authentication asks for.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long a token from a credentials file is taken to stay good after the
/// library last handed it out: less than the four minutes before expiry at
/// which the library replaces it.
pub const LEASE: Duration = Duration::from_secs(180);

/// The longest a token from a credentials file is taken to live (Google's
/// access tokens: an hour).
const LONGEST_LIFE: Duration = Duration::from_secs(3600);

/// Bound on one fetch from a credentials file (its token exchange).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The variable naming the ADC file.
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// Whether live connections re-authenticate when a new token is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauth {
    /// Before each token expires (Entra ID, AWS: the server closes or
    /// refuses a connection whose token is gone).
    Always,
    /// Never: the server keeps an authenticated connection (Memorystore).
    Never,
}

impl std::str::FromStr for Reauth {
    type Err = String;
    fn from_str(text: &str) -> Result<Reauth, String> {
        match text {
            "always" => Ok(Reauth::Always),
            "never" => Ok(Reauth::Never),
            other => Err(format!("{other:?} is neither always nor never")),
        }
    }
}

/// Everything `--auth gcp-iam` was configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpIamConfig {
    /// `--gcp-scope`.
    pub scope: String,
    /// `--reauth` [default: never].
    pub reauth: Reauth,
}

/// Where the credentials come from.
enum Adc {
    /// A credentials file, through `google-cloud-auth`.
    File {
        kind: String,
        credentials: AccessTokenCredentials,
        /// The token last handed out, and when it was first seen.
        seen: Mutex<Option<(String, SystemTime)>>,
    },
    MetadataServer(MetadataServer),
}

/// Fetches Memorystore tokens with Application Default Credentials.
pub struct GcpIamSource {
    adc: Adc,
    limit: ConnectionLimit,
}

impl fmt::Debug for GcpIamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpIamSource")
            .field("kind", &self.kind())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Finds the credentials (see the module's order). Fails on a credentials
/// file that cannot be read or is of no kind the library knows; tokens
/// themselves are first fetched by the refresher.
pub fn build(config: &GcpIamConfig, env: &dyn Environment) -> Result<GcpIamSource, String> {
    // The library signs (service account keys) and reqwest dials with the
    // process's rustls provider: ring, as for the upstream TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let limit = match config.reauth {
        Reauth::Always => ConnectionLimit::TokenExpiry,
        Reauth::Never => ConnectionLimit::None,
    };
    let adc = match credentials_file(env)? {
        Some(path) => {
            let kind = file_kind(&path)?;
            let credentials = Builder::default()
                .with_scopes([config.scope.clone()])
                .build_access_token_credentials()
                .map_err(|e| format!("--auth gcp-iam: {}: {e}", path.display()))?;
            tracing::info!(credential = %kind, file = %path.display(), scope = %config.scope, "GCP credentials file found");
            Adc::File {
                kind,
                credentials,
                seen: Mutex::new(None),
            }
        }
        None => {
            let server = MetadataServer::new(env, &config.scope)
                .map_err(|e| format!("--auth gcp-iam: {e}"))?;
            tracing::info!(host = %server.host(), scope = %config.scope, "no GCP credentials file: using the metadata server");
            Adc::MetadataServer(server)
        }
    };
    Ok(GcpIamSource { adc, limit })
}

/// The ADC file: `GOOGLE_APPLICATION_CREDENTIALS` (which must exist when
/// set), else gcloud's if it exists.
fn credentials_file(env: &dyn Environment) -> Result<Option<PathBuf>, String> {
    if let Some(path) = env.var(CREDENTIALS_VAR).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!(
                "--auth gcp-iam: {CREDENTIALS_VAR} names {}, which is not a readable file",
                path.display()
            ));
        }
        return Ok(Some(path));
    }
    let gcloud = env
        .var("CLOUDSDK_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env.var("HOME")
                .map(|h| Path::new(&h).join(".config/gcloud"))
        });
    Ok(gcloud
        .map(|dir| dir.join("application_default_credentials.json"))
        .filter(|file| file.is_file()))
}

/// The file's `type`, named for logs: `service-account-key`,
/// `authorized-user`, `external-account`, … Its content is never shown.
fn file_kind(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--auth gcp-iam: reading {}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        format!(
            "--auth gcp-iam: {} is not a JSON credentials file",
            path.display()
        )
    })?;
    let kind = json.get("type").and_then(|t| t.as_str()).unwrap_or("");
    Ok(match kind {
        "service_account" => "service-account-key".into(),
        "authorized_user" => "authorized-user".into(),
        "" => {
            return Err(format!(
                "--auth gcp-iam: {} has no \"type\": not a Google credentials file",
                path.display()
            ))
        }
        other => other.replace('_', "-"),
    })
}

impl GcpIamSource {
    /// A token from the credentials file, with the expiry the module's
    /// rules give it.
    async fn from_file(
        credentials: &AccessTokenCredentials,
        seen: &Mutex<Option<(String, SystemTime)>>,
        kind: &str,
    ) -> Result<(Secret, SystemTime), FetchError> {
        let token = match tokio::time::timeout(FETCH_TIMEOUT, credentials.access_token()).await {
            Ok(Ok(token)) => token.token,
            Ok(Err(e)) => return Err(FetchError(format!("gcp-iam ({kind}): {e}"))),
            Err(_) => {
                return Err(FetchError(format!(
                    "gcp-iam ({kind}): no token within {}",
                    humantime::format_duration(FETCH_TIMEOUT)
                )))
            }
        };
        let now = SystemTime::now();
        let first_seen = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            match seen.as_ref() {
                Some((last, at)) if *last == token => *at,
                _ => {
                    *seen = Some((token.clone(), now));
                    now
                }
            }
        };
        let expires_at = match jwt::claims(&token).ok().and_then(|c| c.expires_at()) {
            Some(exp) => exp,
            None => lease_end(first_seen, now),
        };
        Ok((Secret::new(token), expires_at))
    }
}

/// When a token from a credentials file first seen at `first_seen`, handed
/// out again at `now`, is taken to expire (see the module).
pub fn lease_end(first_seen: SystemTime, now: SystemTime) -> SystemTime {
    (now + LEASE).min(first_seen + LONGEST_LIFE)
}

#[async_trait::async_trait]
impl TokenSource for GcpIamSource {
    fn kind(&self) -> String {
        match &self.adc {
            Adc::File { kind, .. } => format!("gcp-iam ({kind})"),
            Adc::MetadataServer(_) => "gcp-iam (metadata-server)".into(),
        }
    }

    async fn fetch(&self) -> Result<Token, FetchError> {
        let (secret, expires_at) = match &self.adc {
            Adc::File {
                kind,
                credentials,
                seen,
            } => Self::from_file(credentials, seen, kind).await?,
            Adc::MetadataServer(server) => {
                let issued = server.token().await?;
                (issued.secret, issued.expires_at)
            }
        };
        Ok(Token {
            secret,
            expires_at,
            limit: self.limit,
        })
    }
}

#[cfg(test)]
mod tests;
