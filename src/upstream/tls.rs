//! The rustls client configuration, built once at startup.
//!
//! Trust starts from an empty root store: the system roots (unless turned off)
//! plus any configured CA file; an empty store is an error. A client
//! certificate and key are loaded as a pair for mutual TLS. TLS 1.2 is the
//! minimum. There is no switch here to skip verification.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the TLS configuration is built from.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Extra trusted roots (PEM).
    pub ca_file: Option<PathBuf>,
    /// Whether to trust the operating system's roots too.
    pub system_roots: bool,
    /// Client certificate chain (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} from {path}: {cause}")]
    Read {
        what: &'static str,
        path: PathBuf,
        cause: String,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(PathBuf),
    #[error("no trusted root certificates: the system has none and no --ca-file was given")]
    NoRoots,
    #[error("client certificate and key do not form a usable pair: {0}")]
    ClientAuth(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |cause: String| TlsError::Read {
        what,
        path: path.to_path_buf(),
        cause,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn root_store(settings: &TlsSettings) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if settings.system_roots {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "skipping an unreadable system certificate");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "loaded system root certificates");
    }
    if let Some(path) = &settings.ca_file {
        for cert in read_certs(path, "CA certificates")? {
            roots.add(cert).map_err(|e| TlsError::Read {
                what: "CA certificates",
                path: path.clone(),
                cause: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

/// TLS sessions remembered for resumption (one upstream, so a few suffice;
/// servers send two TLS 1.3 tickets per connection, each usable once).
const RESUMPTION_CACHE: usize = 256;

/// Builds the client configuration used for every upstream connection.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(root_store(settings)?);
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let certs = read_certs(cert_path, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Read {
                what: "client key",
                path: key_path.clone(),
                cause: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::ClientAuth(e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    // Later dials resume a session from an earlier one (TLS 1.3 tickets, or
    // TLS 1.2 ids), skipping certificate checks and the server's signature.
    let mut config = config;
    config.resumption = rustls::client::Resumption::in_memory_sessions(RESUMPTION_CACHE);
    Ok(Arc::new(config))
}
