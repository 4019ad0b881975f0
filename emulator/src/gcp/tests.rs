//! End to end: a whole [`GcpCloud`] with a real redis-server, driven over
//! TLS with raw RESP. Skipped (with a note) when redis-server or openssl is
//! missing.

use super::{GcpCloud, GcpCloudConfig};
use crate::front::IAM_RATE_LIMITED;
use crate::tests::{certificate, connector, have, Client};
use redauth::resp::encode;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A GCP instance on free ports whose tokens live `lifetime`, admitting
/// `rate` AUTHs a second, plus a TLS connector that trusts it; `None`
/// (after a note) without redis-server or openssl.
async fn cloud(lifetime: Duration, rate: Option<u32>) -> Option<(GcpCloud, TlsConnector)> {
    for program in ["redis-server", "openssl"] {
        if !have(program) {
            eprintln!("skipping: {program} is not installed");
            return None;
        }
    }
    let (cert_pem, key_pem) = certificate();
    let connector = connector(&cert_pem);
    let mut config = GcpCloudConfig::new(cert_pem, key_pem);
    config.token_lifetime = lifetime;
    config.auth_rate_limit = rate;
    Some((GcpCloud::start(config).await.unwrap(), connector))
}

/// A raw HTTP/1.1 GET of `path` on `addr` with `headers`; the whole response.
async fn http_get(addr: std::net::SocketAddr, path: &str, headers: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_works_and_connections_outlive_their_tokens() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(2), None).await else {
        return;
    };
    let connect = || Client::connect_to(cloud.front().addr(), &connector);
    let token = cloud.iam().tokens().issue(None);

    let mut bare = connect().await;
    assert_eq!(bare.call(&["AUTH", &token.token]).await, "+OK\r\n");
    assert_eq!(bare.call(&["ACL", "WHOAMI"]).await, "$7\r\ndefault\r\n");
    let mut hello = connect().await;
    let reply = hello
        .call(&["HELLO", "3", "AUTH", "default", &token.token])
        .await;
    assert!(reply.starts_with('%'), "{reply}");
    let mut named = connect().await;
    assert_eq!(
        named.call(&["AUTH", "default", &token.token]).await,
        "+OK\r\n"
    );

    // Refused: the backend's own WRONGPASS, in order, nothing forwarded.
    let mut refused = connect().await;
    let mut pipeline = Vec::new();
    for args in [
        &["AUTH", "ya29.not-issued-here"][..],
        &["AUTH", "someone", &token.token],
        &["HELLO", "3", "AUTH", "admin", &token.token],
        &["PING"],
    ] {
        pipeline.extend_from_slice(&encode::command(args));
    }
    refused.write(&pipeline).await;
    for _ in 0..3 {
        let reply = refused.frame().await.unwrap();
        assert!(reply.starts_with("-WRONGPASS"), "{reply}");
    }
    assert!(refused.frame().await.unwrap().starts_with("-NOAUTH"));

    // Past the token's expiry every authenticated connection still works.
    let left = token
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(600)).await;
    assert_eq!(bare.call(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(hello.call(&["GET", "k"]).await, "$1\r\nv\r\n");
    assert_eq!(named.call(&["PING"]).await, "+PONG\r\n");
    // The expired token no longer authenticates, and a failed AUTH leaves
    // the connection as it was.
    let expired = bare.call(&["AUTH", &token.token]).await;
    assert!(expired.starts_with("-WRONGPASS"), "{expired}");
    assert_eq!(bare.call(&["PING"]).await, "+PONG\r\n");
    let mut late = connect().await;
    assert!(late
        .call(&["AUTH", &token.token])
        .await
        .starts_with("-WRONGPASS"));
    // A fresh token does.
    let fresh = cloud.iam().tokens().issue(None);
    assert_eq!(late.call(&["AUTH", &fresh.token]).await, "+OK\r\n");

    let stats = cloud.stats();
    assert_eq!(stats.auth_ok, 4);
    assert_eq!(stats.tokens_verified, 4);
    assert_eq!(stats.auth_rejected, 5);
    assert_eq!((stats.expired_closes, stats.auth_rate_limited), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auths_over_the_rate_limit_are_answered_with_the_iam_error() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(60), Some(2)).await else {
        return;
    };
    let connect = || Client::connect_to(cloud.front().addr(), &connector);
    let token = cloud.iam().tokens().issue(None).token;
    let limited = String::from_utf8_lossy(IAM_RATE_LIMITED).into_owned();

    let mut first = connect().await;
    let mut second = connect().await;
    let mut third = connect().await;
    assert_eq!(first.call(&["AUTH", &token]).await, "+OK\r\n");
    // An unknown token takes no permit.
    assert!(third
        .call(&["AUTH", "ya29.unknown"])
        .await
        .starts_with("-WRONGPASS"));
    assert_eq!(second.call(&["AUTH", &token]).await, "+OK\r\n");
    // Pipelined: the front's error in its place, the backend never asked.
    let pipeline = [
        encode::command(&["PING"]),
        encode::command(&["AUTH", &token]),
        encode::command(&["PING"]),
    ]
    .concat();
    third.write(&pipeline).await;
    assert!(third.frame().await.unwrap().starts_with("-NOAUTH"));
    assert_eq!(third.frame().await.unwrap(), limited);
    assert!(third.frame().await.unwrap().starts_with("-NOAUTH"));
    assert_eq!(cloud.stats().auth_rate_limited, 1);

    // A moment later the bucket has a permit again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(third.call(&["AUTH", &token]).await, "+OK\r\n");
    assert_eq!(third.call(&["PING"]).await, "+PONG\r\n");

    let stats = cloud.stats();
    assert_eq!(stats.auth_ok, 3);
    assert_eq!(stats.tokens_verified, 3);
    assert_eq!(stats.auth_rejected, 1);
    assert_eq!(stats.auth_rate_limited, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_server_serves_tokens_the_front_accepts() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(60), None).await else {
        return;
    };
    let env = cloud.env_vars();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].0, "GCE_METADATA_HOST");
    let addr = cloud.iam().metadata().addr();
    assert_eq!(env[0].1, addr.to_string());
    let path = "/computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform";
    let response = http_get(addr, path, "Metadata-Flavor: Google\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("metadata-flavor: google"),
        "{response}"
    );
    let body: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() >= 59);
    let token = body["access_token"].as_str().unwrap();
    let mut client = Client::connect_to(cloud.front().addr(), &connector).await;
    assert_eq!(client.call(&["AUTH", token]).await, "+OK\r\n");

    let refused = http_get(addr, path, "").await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let ping = http_get(addr, "/", "").await;
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    let project = http_get(
        addr,
        "/computeMetadata/v1/project/project-id",
        "Metadata-Flavor: Google\r\n",
    )
    .await;
    assert!(project.ends_with(super::DEFAULT_PROJECT_ID), "{project}");
    cloud.iam().metadata().fail_next(1);
    let failed = http_get(addr, path, "Metadata-Flavor: Google\r\n").await;
    assert!(failed.starts_with("HTTP/1.1 500"), "{failed}");
    assert_eq!(cloud.iam().metadata().requests(), 2);
    assert_eq!(cloud.iam().metadata().served(), 1);
    // Nothing printed a token.
    let shown = format!("{cloud:?}");
    assert!(!shown.contains(token), "{shown}");
}
