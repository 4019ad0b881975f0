//! Microsoft Entra ID tokens through `azure_identity` 1.x.
//!
//! `--entra-credential` picks one credential type, or `default`, which is
//! redauth's own chain (azure_identity 1.x no longer ships one). The chain
//! considers, in this order, the credentials that can work where redauth runs:
//!
//! 1. **client-secret** — a service principal from the environment, when
//!    `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and a client secret
//!    (`AZURE_CLIENT_SECRET` or `--entra-client-secret-file`) are all set;
//!    **client-certificate** — the same with `AZURE_CLIENT_CERTIFICATE_PATH`
//!    (a PEM certificate and key; see [`super::entra_certificate`]);
//! 2. **workload-identity** — Kubernetes workload identity, when
//!    `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` are set;
//! 3. **managed-identity** — App Service / Functions / Container Apps when
//!    `IDENTITY_ENDPOINT` is set, otherwise the VM metadata service (IMDS),
//!    probed with a short timeout;
//! 4. **developer-tools** — the Azure CLI (`az`), then the Azure Developer CLI (`azd`).
//!
//! The first that yields a token is kept for the life of the process and
//! logged; if none does, the error lists what each one said. Retries are the
//! refresher's job, so the HTTP pipelines here do not retry on their own.

use super::source::{FetchError, Token, TokenSource};
use super::{ConnectionLimit, Secret};
use crate::environment::Environment;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// The scope of Azure Cache for Redis and Azure Managed Redis.
pub const DEFAULT_SCOPE: &str = "https://redis.azure.com/.default";

/// Bound on one token request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on probing the VM metadata service inside the default chain, where
/// off Azure it would otherwise hang until the connect timeout.
const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which credential type `--entra-credential` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraKind {
    Default,
    ManagedIdentity,
    WorkloadIdentity,
    ClientSecret,
    ClientCertificate,
    AzureCli,
    DeveloperTools,
}

impl EntraKind {
    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            EntraKind::Default => "default",
            EntraKind::ManagedIdentity => "managed-identity",
            EntraKind::WorkloadIdentity => "workload-identity",
            EntraKind::ClientSecret => "client-secret",
            EntraKind::ClientCertificate => "client-certificate",
            EntraKind::AzureCli => "azure-cli",
            EntraKind::DeveloperTools => "developer-tools",
        }
    }

    const ALL: [EntraKind; 7] = [
        EntraKind::Default,
        EntraKind::ManagedIdentity,
        EntraKind::WorkloadIdentity,
        EntraKind::ClientSecret,
        EntraKind::ClientCertificate,
        EntraKind::AzureCli,
        EntraKind::DeveloperTools,
    ];
}

impl FromStr for EntraKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        EntraKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = EntraKind::ALL.iter().map(|k| k.name()).collect();
                format!("entra_credential: {s:?} is not one of {}", names.join(", "))
            })
    }
}

/// Everything `--auth entra` was configured with.
#[derive(Debug, Clone)]
pub struct EntraConfig {
    pub kind: EntraKind,
    /// `--entra-client-id`: a user-assigned managed identity or app registration.
    pub client_id: Option<String>,
    /// `--entra-tenant-id`.
    pub tenant_id: Option<String>,
    /// `--entra-scope`.
    pub scope: String,
    /// From `--entra-client-secret-file`; `AZURE_CLIENT_SECRET` is read at build time.
    pub client_secret: Option<Secret>,
}

/// Builds the token source for `config`, reading the standard `AZURE_*` and
/// `IDENTITY_*` variables from `env`. Errors are configuration errors.
pub fn build(config: &EntraConfig, env: &dyn Environment) -> Result<Arc<dyn TokenSource>, String> {
    // reqwest is built on rustls without a provider of its own: use ring, as
    // the upstream TLS does. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inputs = Inputs::read(config, env);
    if config.kind != EntraKind::Default {
        return Ok(Arc::new(member(config.kind, &inputs, config)?));
    }
    let mut members = Vec::new();
    let mut skipped = Vec::new();
    for kind in [
        EntraKind::ClientSecret,
        EntraKind::ClientCertificate,
        EntraKind::WorkloadIdentity,
        EntraKind::ManagedIdentity,
        EntraKind::DeveloperTools,
    ] {
        match inputs.missing_for(kind) {
            None => members.push(member(kind, &inputs, config)?),
            Some(why) => skipped.push(format!("{}: {why}", kind.name())),
        }
    }
    Ok(Arc::new(DefaultChain {
        members,
        skipped,
        chosen: OnceLock::new(),
    }))
}

/// The settings and variables the credential types draw on.
struct Inputs {
    client_id: Option<String>,
    tenant_id: Option<String>,
    client_secret: Option<Secret>,
    federated_token_file: Option<String>,
    identity_endpoint: bool,
    certificate_path: Option<String>,
    /// `AZURE_CLIENT_CERTIFICATE_PASSWORD` is set (an encrypted key: refused).
    certificate_password: bool,
    /// `AZURE_AUTHORITY_HOST`, or the public cloud.
    authority: String,
}

impl Inputs {
    fn read(config: &EntraConfig, env: &dyn Environment) -> Inputs {
        let var = |k: &str| env.var(k).filter(|v| !v.is_empty());
        Inputs {
            client_id: config.client_id.clone().or_else(|| var("AZURE_CLIENT_ID")),
            tenant_id: config.tenant_id.clone().or_else(|| var("AZURE_TENANT_ID")),
            client_secret: config
                .client_secret
                .clone()
                .or_else(|| var("AZURE_CLIENT_SECRET").map(Secret::new)),
            federated_token_file: var("AZURE_FEDERATED_TOKEN_FILE"),
            identity_endpoint: var("IDENTITY_ENDPOINT").is_some(),
            certificate_path: var("AZURE_CLIENT_CERTIFICATE_PATH"),
            certificate_password: var("AZURE_CLIENT_CERTIFICATE_PASSWORD").is_some(),
            authority: var("AZURE_AUTHORITY_HOST")
                .unwrap_or_else(|| super::entra_certificate::PUBLIC_AUTHORITY.into()),
        }
    }

    /// Why `kind` cannot work here, if it cannot.
    fn missing_for(&self, kind: EntraKind) -> Option<String> {
        let mut missing = Vec::new();
        let mut need = |present: bool, what: &str| {
            if !present {
                missing.push(what.to_string());
            }
        };
        match kind {
            EntraKind::ClientSecret => {
                need(self.tenant_id.is_some(), "AZURE_TENANT_ID");
                need(self.client_id.is_some(), "AZURE_CLIENT_ID");
                need(self.client_secret.is_some(), "AZURE_CLIENT_SECRET");
            }
            EntraKind::ClientCertificate => {
                need(self.tenant_id.is_some(), "AZURE_TENANT_ID");
                need(self.client_id.is_some(), "AZURE_CLIENT_ID");
                need(
                    self.certificate_path.is_some(),
                    "AZURE_CLIENT_CERTIFICATE_PATH",
                );
            }
            EntraKind::WorkloadIdentity => {
                need(
                    self.federated_token_file.is_some(),
                    "AZURE_FEDERATED_TOKEN_FILE",
                );
                need(self.client_id.is_some(), "AZURE_CLIENT_ID");
                need(self.tenant_id.is_some(), "AZURE_TENANT_ID");
            }
            _ => {}
        }
        (!missing.is_empty()).then(|| format!("{} not set", missing.join(", ")))
    }
}

/// Client options for every credential: no retries of its own.
fn client_options() -> ClientOptions {
    ClientOptions {
        retry: RetryOptions::none(),
        ..ClientOptions::default()
    }
}

/// Builds one credential type.
fn member(kind: EntraKind, inputs: &Inputs, config: &EntraConfig) -> Result<Member, String> {
    if let Some(why) = inputs.missing_for(kind) {
        return Err(format!("--entra-credential {}: {why}", kind.name()));
    }
    let built: azure_core::Result<Arc<dyn TokenCredential>> = match kind {
        EntraKind::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: inputs.client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options(),
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        EntraKind::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options(),
                },
                client_id: inputs.client_id.clone(),
                tenant_id: inputs.tenant_id.clone(),
                token_file_path: None,
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        EntraKind::ClientSecret => {
            let secret = inputs
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_string());
            ClientSecretCredential::new(
                inputs.tenant_id.as_deref().unwrap_or_default(),
                inputs.client_id.clone().unwrap_or_default(),
                azure_core::credentials::Secret::new(secret.unwrap_or_default()),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(),
                }),
            )
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        EntraKind::ClientCertificate => {
            if inputs.certificate_password {
                return Err("--entra-credential client-certificate: AZURE_CLIENT_CERTIFICATE_PASSWORD is set, but encrypted keys are not supported (redauth links no OpenSSL); give a PEM with an unencrypted key (openssl pkcs12 -in cert.pfx -nodes -out cert.pem) and keep it readable by redauth only".into());
            }
            let (tenant, client) = (
                inputs.tenant_id.clone().unwrap_or_default(),
                inputs.client_id.clone().unwrap_or_default(),
            );
            let path = inputs.certificate_path.clone().unwrap_or_default();
            let assertion = super::entra_certificate::CertificateAssertion::load(
                std::path::Path::new(&path),
                &tenant,
                &client,
                &inputs.authority,
            )
            .map_err(|e| format!("--entra-credential client-certificate: {e}"))?;
            ClientAssertionCredential::new(
                tenant,
                client,
                assertion,
                Some(ClientAssertionCredentialOptions {
                    client_options: client_options(),
                }),
            )
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        EntraKind::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: inputs.tenant_id.clone(),
            ..Default::default()
        }))
        .map(|c| c as Arc<dyn TokenCredential>),
        EntraKind::DeveloperTools => {
            DeveloperToolsCredential::new(None).map(|c| c as Arc<dyn TokenCredential>)
        }
        EntraKind::Default => unreachable!("the default chain is not a member of itself"),
    };
    let credential = built.map_err(|e| format!("--entra-credential {}: {e}", kind.name()))?;
    let (name, chain_timeout) = match kind {
        EntraKind::ManagedIdentity if inputs.identity_endpoint => {
            ("managed-identity (App Service endpoint)", FETCH_TIMEOUT)
        }
        EntraKind::ManagedIdentity => {
            ("managed-identity (VM metadata service)", IMDS_PROBE_TIMEOUT)
        }
        other => (other.name(), FETCH_TIMEOUT),
    };
    Ok(Member {
        name,
        credential,
        scope: config.scope.clone(),
        chain_timeout,
    })
}

/// One `azure_identity` credential, asking for one scope.
struct Member {
    name: &'static str,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    /// Bound on a fetch while the default chain is still choosing.
    chain_timeout: Duration,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Member {
    async fn fetch_within(&self, timeout: Duration) -> Result<Token, FetchError> {
        let scopes = [self.scope.as_str()];
        let got = tokio::time::timeout(timeout, self.credential.get_token(&scopes, None))
            .await
            .map_err(|_| {
                FetchError(format!(
                    "{}: no answer within {}",
                    self.name,
                    humantime::format_duration(timeout)
                ))
            })?
            .map_err(|e| {
                let why =
                    super::cause::transport_failure(&e).unwrap_or_else(|| one_line(&e.to_string()));
                FetchError(format!("{}: {why}", self.name))
            })?;
        Ok(Token {
            secret: Secret::new(got.token.secret().to_string()),
            expires_at: SystemTime::from(got.expires_on),
            limit: ConnectionLimit::TokenExpiry,
        })
    }
}

#[async_trait::async_trait]
impl TokenSource for Member {
    fn kind(&self) -> String {
        self.name.to_string()
    }

    async fn fetch(&self) -> Result<Token, FetchError> {
        self.fetch_within(FETCH_TIMEOUT).await
    }
}

/// redauth's default chain: the first member to yield a token is kept.
#[derive(Debug)]
struct DefaultChain {
    members: Vec<Member>,
    /// Members left out because their settings are absent, with why.
    skipped: Vec<String>,
    chosen: OnceLock<usize>,
}

#[async_trait::async_trait]
impl TokenSource for DefaultChain {
    fn kind(&self) -> String {
        match self.chosen.get() {
            Some(&i) => format!("default: {}", self.members[i].name),
            None => "default".to_string(),
        }
    }

    async fn fetch(&self) -> Result<Token, FetchError> {
        if let Some(&i) = self.chosen.get() {
            return self.members[i].fetch().await;
        }
        let mut tried = self.skipped.clone();
        for (i, member) in self.members.iter().enumerate() {
            match member.fetch_within(member.chain_timeout).await {
                Ok(token) => {
                    let _ = self.chosen.set(i);
                    tracing::info!(
                        credential = member.name,
                        passed_over = tried.join("; "),
                        "entra: the default chain chose {}",
                        member.name
                    );
                    return Ok(token);
                }
                Err(e) => tried.push(e.0),
            }
        }
        Err(FetchError(format!(
            "no credential in the default chain worked: {}",
            tried.join("; ")
        )))
    }
}

/// Error texts from the identity stack can span lines; logs and RESP errors want one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(kind: EntraKind) -> EntraConfig {
        EntraConfig {
            kind,
            client_id: None,
            tenant_id: None,
            scope: DEFAULT_SCOPE.into(),
            client_secret: None,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kinds_parse_by_their_flag_names() {
        for kind in EntraKind::ALL {
            assert_eq!(kind.name().parse::<EntraKind>(), Ok(kind));
        }
        let e = "msi".parse::<EntraKind>().unwrap_err();
        assert!(e.contains("managed-identity"), "{e}");
    }

    #[test]
    fn explicit_client_secret_needs_its_three_inputs() {
        let e = build(&config(EntraKind::ClientSecret), &env(&[])).unwrap_err();
        assert!(e.contains("AZURE_TENANT_ID"), "{e}");
        assert!(e.contains("AZURE_CLIENT_SECRET"), "{e}");
        let ok = build(
            &config(EntraKind::ClientSecret),
            &env(&[
                ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                ("AZURE_CLIENT_ID", "app"),
                ("AZURE_CLIENT_SECRET", "shh-do-not-show"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.kind(), "client-secret");
        assert!(!format!("{ok:?}").contains("shh-do-not-show"));
    }

    #[test]
    fn the_default_chain_skips_what_the_environment_cannot_support() {
        let chain = build(&config(EntraKind::Default), &env(&[])).unwrap();
        assert_eq!(chain.kind(), "default");
        let shown = format!("{chain:?}");
        assert!(shown.contains("client-secret: AZURE_TENANT_ID"), "{shown}");
        assert!(
            shown.contains("client-certificate: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH not set"),
            "{shown}"
        );
        assert!(
            shown.contains("workload-identity: AZURE_FEDERATED_TOKEN_FILE"),
            "{shown}"
        );
        assert!(
            shown.contains("managed-identity (VM metadata service)"),
            "{shown}"
        );
        assert!(shown.contains("developer-tools"), "{shown}");
    }
}
