//! End to end: a whole [`AwsCloud`] with a real redis-server, driven over
//! TLS with raw RESP. Skipped (with a note) when redis-server or openssl is
//! missing.

use super::{AwsCloud, AwsCloudConfig};
use crate::front::{DeadlineKind, AUTH_IN_MULTI};
use crate::tests::{certificate, connector, have, Client};
use redauth::resp::encode;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const USER: &str = "iam-user-01";

/// An AWS cloud on free ports whose connections live `limit`, plus a TLS
/// connector that trusts it; `None` (after a note) without redis-server or
/// openssl.
async fn cloud(limit: Duration) -> Option<(AwsCloud, TlsConnector)> {
    for program in ["redis-server", "openssl"] {
        if !have(program) {
            eprintln!("skipping: {program} is not installed");
            return None;
        }
    }
    let (cert_pem, key_pem) = certificate();
    let connector = connector(&cert_pem);
    let mut config = AwsCloudConfig::new(cert_pem, key_pem);
    config.cache_name = "my-cache".into();
    config.user_id = USER.into();
    config.connection_limit = limit;
    config.credentials_lifetime = Duration::from_secs(60);
    Some((AwsCloud::start(config).await.unwrap(), connector))
}

/// A fresh token: new credentials from the issuer, signed now.
fn token(cloud: &AwsCloud) -> String {
    let credentials = cloud.iam().credentials().issue();
    cloud
        .verifier()
        .token(&credentials, USER, SystemTime::now())
}

fn reply_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_inside_multi_is_answered_by_the_front_and_the_transaction_goes_on() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(60)).await else {
        return;
    };
    let token = token(&cloud);
    let mut client = Client::connect_to(cloud.front().addr(), &connector).await;
    assert_eq!(client.call(&["AUTH", USER, &token]).await, "+OK\r\n");
    assert_eq!(
        client.call(&["ACL", "WHOAMI"]).await,
        format!("${}\r\n{USER}\r\n", USER.len())
    );
    let refused = reply_text(AUTH_IN_MULTI);

    // One command at a time: the refusal has no backend reply to ride on.
    assert_eq!(client.call(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(client.call(&["SET", "k", "v"]).await, "+QUEUED\r\n");
    assert_eq!(client.call(&["AUTH", USER, &token]).await, refused);
    assert_eq!(
        client.call(&["HELLO", "3", "AUTH", USER, &token]).await,
        refused
    );
    assert_eq!(client.call(&["AUTH", &token]).await, refused);
    assert_eq!(client.call(&["GET", "k"]).await, "+QUEUED\r\n");
    assert_eq!(client.call(&["EXEC"]).await, "*2\r\n+OK\r\n$1\r\nv\r\n");

    // Pipelined: every reply in its place.
    let mut pipeline = Vec::new();
    for args in [
        &["MULTI"][..],
        &["INCR", "n"],
        &["AUTH", USER, &token],
        &["INCR", "n"],
        &["EXEC"],
        &["AUTH", USER, &token],
        &["MULTI"],
        &["AUTH", USER, &token],
        &["DISCARD"],
        &["GET", "n"],
    ] {
        pipeline.extend_from_slice(&encode::command(args));
    }
    client.write(&pipeline).await;
    let mut replies = Vec::new();
    for _ in 0..10 {
        replies.push(client.frame().await.expect("connection closed"));
    }
    let expected = [
        "+OK\r\n",
        "+QUEUED\r\n",
        &refused,
        "+QUEUED\r\n",
        "*2\r\n:1\r\n:2\r\n",
        "+OK\r\n",
        "+OK\r\n",
        &refused,
        "+OK\r\n",
        "$1\r\n2\r\n",
    ];
    assert_eq!(replies, expected);

    // Outside MULTI, HELLO … AUTH goes through.
    let hello = client.call(&["HELLO", "3", "AUTH", USER, &token]).await;
    assert!(hello.starts_with('%'), "{hello}");

    let stats = cloud.stats();
    assert_eq!(stats.auth_refused_in_multi, 5);
    assert_eq!(stats.tokens_verified, 3);
    assert_eq!(stats.auth_ok, 3);
    assert_eq!(stats.auth_rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_close_at_the_connection_limit_unless_they_authenticate_again() {
    let limit = Duration::from_secs(2);
    let Some((cloud, connector)) = cloud(limit).await else {
        return;
    };
    let connect = || Client::connect_to(cloud.front().addr(), &connector);
    let first = token(&cloud);

    let mut stale = connect().await;
    assert_eq!(stale.call(&["AUTH", USER, &first]).await, "+OK\r\n");
    let mut renewed = connect().await;
    assert_eq!(renewed.call(&["AUTH", USER, &first]).await, "+OK\r\n");
    // Never authenticated: no deadline (the backend refuses its commands).
    let mut anonymous = connect().await;
    let authed_at = std::time::Instant::now();

    // Refused tokens become WRONGPASS from the backend and move no deadline.
    let mut refused = connect().await;
    let other_user = cloud.verifier().token(
        &cloud.iam().credentials().issue(),
        "someone-else",
        SystemTime::now(),
    );
    for args in [
        &["AUTH", "someone-else", &other_user][..],
        &["AUTH", &first],
        &["AUTH", USER, "not-a-token"],
    ] {
        let reply = refused.call(args).await;
        assert!(reply.starts_with("-WRONGPASS"), "{reply}");
    }

    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Rotated credentials, a new token: the limit counts from this AUTH.
    assert_eq!(
        renewed.call(&["AUTH", USER, &token(&cloud)]).await,
        "+OK\r\n"
    );
    assert_eq!(stale.call(&["PING"]).await, "+PONG\r\n", "closed too early");

    let close_due = authed_at + limit + Duration::from_millis(400);
    tokio::time::sleep(close_due.saturating_duration_since(std::time::Instant::now())).await;
    assert_eq!(stale.frame().await, None, "stale is still open");
    assert_eq!(renewed.call(&["PING"]).await, "+PONG\r\n");
    let noauth = anonymous.call(&["PING"]).await;
    assert!(noauth.starts_with("-NOAUTH"), "{noauth}");
    assert!(refused.call(&["PING"]).await.starts_with("-NOAUTH"));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(renewed.frame().await, None, "renewed outlived its limit");

    let stats = cloud.stats();
    assert_eq!(stats.connections, 4);
    assert_eq!(stats.auth_ok, 3);
    assert_eq!(stats.tokens_verified, 3);
    assert_eq!(stats.auth_rejected, 3);
    assert_eq!(stats.expired_closes, 2);
    let closes = cloud.expired_reports();
    assert_eq!(closes.len(), 2);
    for close in &closes {
        assert_eq!(close.kind, DeadlineKind::ConnectionLimit);
        let text = close.to_string();
        assert!(text.contains("its connection limit ran out at"), "{text}");
        assert!(!text.contains(&first), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_endpoint_serves_sets_that_sign_good_tokens() {
    let Some((cloud, connector)) = cloud(Duration::from_secs(60)).await else {
        return;
    };
    let env = cloud.env_vars();
    assert_eq!(env[0].0, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    assert_eq!(env[1].0, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    let url = url::Url::parse(&env[0].1).unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    let get = |header: String| {
        let addr = cloud.iam().endpoint().addr();
        let path = url.path().to_string();
        async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{header}Connection: close\r\n\r\n"
            );
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            tcp.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let response = get(format!("Authorization: {}\r\n", env[1].1)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let credentials = super::Credentials {
        access_key_id: body["AccessKeyId"].as_str().unwrap().into(),
        secret_access_key: body["SecretAccessKey"].as_str().unwrap().into(),
        session_token: body["Token"].as_str().unwrap().into(),
        expires_at: humantime::parse_rfc3339(body["Expiration"].as_str().unwrap()).unwrap(),
    };
    let token = cloud
        .verifier()
        .token(&credentials, USER, SystemTime::now());
    let mut client = Client::connect_to(cloud.front().addr(), &connector).await;
    assert_eq!(client.call(&["AUTH", USER, &token]).await, "+OK\r\n");

    assert!(get(String::new()).await.starts_with("HTTP/1.1 401"));
    assert!(get("Authorization: guess\r\n".into())
        .await
        .starts_with("HTTP/1.1 403"));
    cloud.iam().endpoint().fail_next(1);
    let failed = get(format!("Authorization: {}\r\n", env[1].1)).await;
    assert!(failed.starts_with("HTTP/1.1 500"), "{failed}");
    assert_eq!(cloud.iam().endpoint().requests(), 4);
    assert_eq!(cloud.iam().endpoint().served(), 1);
}
