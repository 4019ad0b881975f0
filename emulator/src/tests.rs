//! End to end: a whole [`Cloud`] with a real redis-server, driven over TLS
//! with raw RESP. Skipped (with a note) when redis-server or openssl is
//! missing. The helpers here (certificate, connector, RESP client) serve the
//! cluster's tests too.

use super::{Cloud, CloudConfig};
use bytes::BytesMut;
use redauth::resp::{encode, ReplyScanner};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub(crate) const OID: &str = "00000000-0000-4000-8000-00000000d3e0";

pub(crate) fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
        || Command::new(program).arg("version").output().is_ok()
}

/// A self-signed certificate for localhost / 127.0.0.1: (cert PEM, key PEM).
pub(crate) fn certificate() -> (String, String) {
    let dir = std::env::temp_dir().join(format!("redauth-emu-certs-{}", super::random::secret()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl failed");
    let pems = (
        std::fs::read_to_string(&cert).unwrap(),
        std::fs::read_to_string(&key).unwrap(),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    pems
}

/// A cloud on free ports, plus a TLS connector that trusts it; `None` (after
/// a note) when redis-server or openssl is not installed.
async fn cloud(lifetime: Duration) -> Option<(Cloud, TlsConnector)> {
    for program in ["redis-server", "openssl"] {
        if !have(program) {
            eprintln!("skipping: {program} is not installed");
            return None;
        }
    }
    let (cert_pem, key_pem) = certificate();
    let connector = connector(&cert_pem);
    let cloud = Cloud::start(CloudConfig {
        oid: OID.into(),
        token_lifetime: lifetime,
        front_listen: "127.0.0.1:0".parse().unwrap(),
        identity_listen: "127.0.0.1:0".parse().unwrap(),
        cert_pem,
        key_pem,
        redis_server: PathBuf::from("redis-server"),
    })
    .await
    .unwrap();
    Some((cloud, connector))
}

/// A TLS connector that trusts `cert_pem` only.
pub(crate) fn connector(cert_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(client))
}

/// A raw RESP client over TLS.
pub(crate) struct Client {
    stream: TlsStream<TcpStream>,
    buf: BytesMut,
}

impl Client {
    async fn connect(cloud: &Cloud, connector: &TlsConnector) -> Client {
        Client::connect_to(cloud.front().addr(), connector).await
    }

    /// Connects to a front at `addr`, checking its certificate for `localhost`.
    pub(crate) async fn connect_to(addr: SocketAddr, connector: &TlsConnector) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Writes raw bytes (a pipeline).
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub(crate) async fn send(&mut self, args: &[&str]) {
        self.stream.write_all(&encode::command(args)).await.unwrap();
    }

    /// The next frame, or `None` if the connection closed first.
    pub(crate) async fn frame(&mut self) -> Option<String> {
        let read = async {
            let mut scanner = ReplyScanner::default();
            let mut scanned = 0;
            loop {
                let progress = scanner.advance(&self.buf[scanned..]).unwrap();
                scanned += progress.consumed;
                if progress.done {
                    let frame = self.buf.split_to(scanned);
                    return Some(String::from_utf8_lossy(&frame).into_owned());
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("no reply within 5s")
    }

    pub(crate) async fn call(&mut self, args: &[&str]) -> String {
        self.send(args).await;
        self.frame().await.expect("connection closed")
    }
}

/// Sleeps until `at` less `early`.
async fn sleep_until(at: SystemTime, early: Duration) {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(left.saturating_sub(early)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_close_at_expiry_unless_a_fresh_auth_succeeded() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(2)).await else {
        return;
    };
    let first = cloud.issuer().mint();

    // Expires: authenticated once, never again.
    let mut stale = Client::connect(&cloud, &connector).await;
    assert_eq!(stale.call(&["AUTH", OID, &first.token]).await, "+OK\r\n");
    assert_eq!(
        stale.call(&["ACL", "WHOAMI"]).await,
        format!("${}\r\n{OID}\r\n", OID.len())
    );

    // Survives: re-authenticates before expiry.
    let mut renewed = Client::connect(&cloud, &connector).await;
    assert_eq!(renewed.call(&["AUTH", OID, &first.token]).await, "+OK\r\n");

    // Expires: its second AUTH is refused in RESP2 subscribed mode.
    let mut subscribed = Client::connect(&cloud, &connector).await;
    assert_eq!(
        subscribed.call(&["AUTH", OID, &first.token]).await,
        "+OK\r\n"
    );
    let confirmation = subscribed.call(&["SUBSCRIBE", "news"]).await;
    assert!(confirmation.contains("subscribe"), "{confirmation}");

    // Expires: its second AUTH is only queued (and EXEC runs it too late to count).
    let mut queued = Client::connect(&cloud, &connector).await;
    assert_eq!(queued.call(&["AUTH", OID, &first.token]).await, "+OK\r\n");

    sleep_until(first.expires_at, Duration::from_millis(900)).await;
    let fresh = cloud.issuer().mint();
    assert_eq!(renewed.call(&["AUTH", OID, &fresh.token]).await, "+OK\r\n");
    let refused = subscribed.call(&["AUTH", OID, &fresh.token]).await;
    assert!(refused.starts_with("-ERR"), "{refused}");
    assert_eq!(queued.call(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(
        queued.call(&["AUTH", OID, &fresh.token]).await,
        "+QUEUED\r\n"
    );
    assert_eq!(queued.call(&["EXEC"]).await, "*1\r\n+OK\r\n");
    assert_eq!(stale.call(&["PING"]).await, "+PONG\r\n", "closed too early");

    // The front closes at the deadline; give it a moment.
    tokio::time::sleep(
        first
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, client) in [
        ("stale", &mut stale),
        ("subscribed", &mut subscribed),
        ("queued", &mut queued),
    ] {
        assert_eq!(client.frame().await, None, "{name} is still open");
    }
    assert_eq!(renewed.call(&["PING"]).await, "+PONG\r\n");
    assert_eq!(
        renewed.call(&["ACL", "WHOAMI"]).await,
        format!("${}\r\n{OID}\r\n", OID.len())
    );

    let stats = cloud.front().stats();
    assert_eq!(stats.connections, 4);
    assert_eq!(stats.auth_ok, 5);
    assert_eq!(stats.auth_rejected, 0);
    assert_eq!(stats.expired_closes, 3);
    // Each close is reported with what the connection did, and no token.
    let closes = cloud.front().expired_reports();
    // None of them had an AUTH stuck behind the server: each let its token lapse.
    assert!(closes
        .iter()
        .all(|c| !c.stalled_behind_server(Duration::ZERO)));
    let reports: Vec<String> = closes.iter().map(ToString::to_string).collect();
    assert_eq!(reports.len(), 3, "{reports:#?}");
    let has = |parts: &[&str]| reports.iter().any(|r| parts.iter().all(|p| r.contains(p)));
    assert!(
        has(&["the last EXEC", "2 verified AUTHs sent", "1 confirmed"]),
        "{reports:#?}"
    );
    assert!(
        has(&["the last AUTH", "subscriptions 1/0/0"]),
        "{reports:#?}"
    );
    for report in &reports {
        assert!(!report.contains(&first.token) && !report.contains(&fresh.token));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_wrongpass_from_the_backend_in_order() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(30)).await else {
        return;
    };
    let good = cloud.issuer().mint();
    let mut client = Client::connect(&cloud, &connector).await;
    // Pipelined: each reply must come back in its place.
    let mut pipeline = Vec::new();
    pipeline.extend(encode::command(&["AUTH", "someone-else", &good.token]));
    pipeline.extend(encode::command(&["AUTH", &good.token]));
    pipeline.extend(encode::command(&["AUTH", OID, "not.a.token"]));
    pipeline.extend(encode::command(&["PING"]));
    pipeline.extend(format!("AUTH {OID} {}\r\n", good.token).into_bytes());
    client.stream.write_all(&pipeline).await.unwrap();
    for _ in 0..3 {
        let reply = client.frame().await.unwrap();
        assert!(reply.starts_with("-WRONGPASS"), "{reply}");
    }
    assert!(client.frame().await.unwrap().starts_with("-NOAUTH"));
    assert_eq!(client.frame().await.unwrap(), "+OK\r\n");

    let hello = client
        .call(&["HELLO", "3", "AUTH", OID, &good.token, "SETNAME", "emu"])
        .await;
    assert!(hello.starts_with('%'), "{hello}");
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, "$3\r\nemu\r\n");

    let stats = cloud.front().stats();
    assert_eq!((stats.auth_ok, stats.auth_rejected), (2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_endpoint_serves_tokens_over_http() {
    let Some((cloud, _)) = cloud(Duration::from_secs(30)).await else {
        return;
    };
    let endpoint = cloud.env_vars();
    assert_eq!(endpoint[0].0, "IDENTITY_ENDPOINT");
    let url = url::Url::parse(&endpoint[0].1).unwrap();
    let get = |header: String| {
        let addr = cloud.identity().addr();
        let path = format!(
            "{}?api-version=2019-08-01&resource=https://redis.azure.com",
            url.path()
        );
        async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nMetadata: true\r\n{header}Connection: close\r\n\r\n"
            );
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            tcp.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let response = get(format!("X-IDENTITY-HEADER: {}\r\n", endpoint[1].1)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let token = body["access_token"].as_str().unwrap();
    let claims = cloud.issuer().verify(token, SystemTime::now()).unwrap();
    assert_eq!(claims.oid, OID);
    assert_eq!(body["expires_on"], claims.exp.to_string());

    assert!(get(String::new()).await.starts_with("HTTP/1.1 401"));
    cloud.identity().fail_next(1);
    let failed = get(format!("X-IDENTITY-HEADER: {}\r\n", endpoint[1].1)).await;
    assert!(failed.starts_with("HTTP/1.1 500"), "{failed}");
    assert_eq!(cloud.identity().requests(), 3);
}
