//! Test PKI generated in-process with `rcgen`: a CA, a server certificate for `localhost` and
//! `127.0.0.1` signed by it, a client certificate signed by it (for mutual TLS), and a second,
//! unrelated CA that must never validate the server. Everything is written as PEM files into a
//! directory the caller owns (normally the `TempDir` of a [`super::TlsRedis`]).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// Paths of the PEM files making up the test PKI.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// An unrelated CA: a client trusting only this one must reject the server.
    pub other_ca: PathBuf,
    /// Server certificate, SANs `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate for mutual TLS, signed by [`Certs::ca`].
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A server certificate like [`Certs::server_cert`] but expired (2020), signed by the same CA.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
}

impl Certs {
    /// Generates a fresh PKI and writes it under `dir`.
    pub fn generate(dir: &Path) -> Certs {
        let (ca, ca_key) = new_ca("redauth test CA");
        let (other_ca, _) = new_ca("redauth unrelated CA");
        let (server, server_key) = new_leaf(
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
            &ca_key,
        );
        let (client, client_key) = new_leaf(
            "redauth test client",
            vec!["redauth-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
            &ca_key,
        );

        let (expired, expired_key) = {
            let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("valid subject alt names");
            params.distinguished_name = dn("localhost (expired)");
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
            let key = KeyPair::generate().expect("generating leaf key");
            let cert = params.signed_by(&key, &ca, &ca_key).expect("signing leaf");
            (cert, key)
        };
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
            path
        };
        Certs {
            ca: write("ca.pem", ca.pem()),
            other_ca: write("other-ca.pem", other_ca.pem()),
            server_cert: write("server.pem", server.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            expired_cert: write("expired.pem", expired.pem()),
            expired_key: write("expired.key", expired_key.serialize_pem()),
        }
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn new_ca(common_name: &str) -> (Certificate, KeyPair) {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().expect("generating CA key");
    let cert = params.self_signed(&key).expect("self-signing CA");
    (cert, key)
}

fn new_leaf(
    common_name: &str,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> (Certificate, KeyPair) {
    let mut params = CertificateParams::new(sans).expect("valid subject alt names");
    params.distinguished_name = dn(common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("generating leaf key");
    let cert = params.signed_by(&key, ca, ca_key).expect("signing leaf");
    (cert, key)
}
