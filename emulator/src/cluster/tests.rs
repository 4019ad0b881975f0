//! End to end: a whole [`ClusterCloud`] (real redis-server nodes on
//! 127.0.0.2, token-checking fronts on 127.0.0.1), driven over TLS with raw
//! RESP through the fronts. Skipped (with a note) when redis-server,
//! redis-cli or openssl is missing, or 127.0.0.2 cannot be bound.

use super::{ClusterCloud, ClusterShape, NODE_IP};
use crate::tests::{certificate, connector, have, Client, OID};
use crate::CloudConfig;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio_rustls::TlsConnector;

/// A cluster of the default shape on free ports, and a connector that trusts
/// its fronts; `None` (after a note) when something it needs is missing.
async fn cluster(lifetime: Duration) -> Option<(ClusterCloud, TlsConnector)> {
    for program in ["redis-server", "redis-cli", "openssl"] {
        if !have(program) {
            eprintln!("skipping: {program} is not installed");
            return None;
        }
    }
    if std::net::TcpListener::bind((NODE_IP, 0)).is_err() {
        eprintln!("skipping: {NODE_IP} cannot be bound here");
        return None;
    }
    let (cert_pem, key_pem) = certificate();
    let connector = connector(&cert_pem);
    let started = Instant::now();
    let config = CloudConfig {
        oid: OID.into(),
        token_lifetime: lifetime,
        front_listen: "127.0.0.1:0".parse().unwrap(),
        identity_listen: "127.0.0.1:0".parse().unwrap(),
        cert_pem,
        key_pem,
        redis_server: PathBuf::from("redis-server"),
    };
    let cloud = ClusterCloud::start(config, ClusterShape::default())
        .await
        .unwrap();
    eprintln!("the cluster started in {:?}", started.elapsed());
    Some((cloud, connector))
}

/// An authenticated client of the front at `addr`.
async fn authenticated(cloud: &ClusterCloud, addr: SocketAddr, tls: &TlsConnector) -> Client {
    let mut client = Client::connect_to(addr, tls).await;
    let token = cloud.issuer().unwrap().mint().token;
    assert_eq!(client.call(&["AUTH", OID, &token]).await, "+OK\r\n");
    client
}

/// A RESP2 reply as a tree (enough for CLUSTER SLOTS).
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Int(i64),
    Text(String),
    Array(Vec<Reply>),
}

impl Reply {
    fn parse(text: &str) -> Reply {
        let mut lines = text.split("\r\n");
        Reply::next(&mut lines)
    }

    fn next<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Reply {
        let line = lines.next().expect("a reply line");
        let (kind, rest) = line.split_at(1);
        match kind {
            ":" => Reply::Int(rest.parse().unwrap()),
            "+" => Reply::Text(rest.to_string()),
            "$" => Reply::Text(lines.next().unwrap().to_string()),
            "*" => Reply::Array(
                (0..rest.parse().unwrap())
                    .map(|_| Reply::next(lines))
                    .collect(),
            ),
            _ => panic!("unexpected reply line {line:?}"),
        }
    }

    fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }
}

/// One range of a `CLUSTER SLOTS` reply.
#[derive(Debug)]
struct SlotRange {
    first: i64,
    last: i64,
    /// (endpoint, port) of each node serving it, the primary first.
    nodes: Vec<(String, u16)>,
}

impl SlotRange {
    fn primary_port(&self) -> u16 {
        self.nodes[0].1
    }
}

fn slot_ranges(reply: &str) -> Vec<SlotRange> {
    let parsed = Reply::parse(reply);
    parsed
        .items()
        .iter()
        .map(|range| {
            let items = range.items();
            let (Reply::Int(first), Reply::Int(last)) = (&items[0], &items[1]) else {
                panic!("a slot range: {range:?}");
            };
            let nodes = items[2..]
                .iter()
                .map(|node| match node.items() {
                    [Reply::Text(host), Reply::Int(port), ..] => (host.clone(), *port as u16),
                    other => panic!("a node: {other:?}"),
                })
                .collect();
            SlotRange {
                first: *first,
                last: *last,
                nodes,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_is_reached_through_its_fronts_with_tokens() {
    let Some((cloud, tls)) = cluster(Duration::from_secs(30)).await else {
        return;
    };
    let fronts = cloud.fronts();
    assert_eq!(fronts.len(), 6);
    assert_eq!(cloud.seed(), fronts[0]);
    for (front, node) in fronts.iter().zip(cloud.node_backends()) {
        assert_eq!(front.ip(), Ipv4Addr::LOCALHOST);
        assert_eq!(node.ip(), NODE_IP);
        assert_eq!(front.port(), node.port(), "a front shares its node's port");
    }

    let mut refused = Client::connect_to(fronts[1], &tls).await;
    let wrongpass = refused.call(&["AUTH", OID, "not.a.token"]).await;
    assert!(wrongpass.starts_with("-WRONGPASS"), "{wrongpass}");
    let noauth = refused.call(&["GET", "k"]).await;
    assert!(noauth.starts_with("-NOAUTH"), "{noauth}");

    // Every node is announced as localhost:<its front's port>.
    let mut seed = authenticated(&cloud, cloud.seed(), &tls).await;
    let ranges = slot_ranges(&seed.call(&["CLUSTER", "SLOTS"]).await);
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(
        ranges.iter().map(|r| r.last - r.first + 1).sum::<i64>(),
        16384
    );
    let mut announced: Vec<u16> = Vec::new();
    for range in &ranges {
        assert_eq!(range.nodes.len(), 2, "a primary and its replica: {range:?}");
        for (host, port) in &range.nodes {
            assert_eq!(host, "localhost");
            announced.push(*port);
        }
    }
    announced.sort_unstable();
    let mut ports: Vec<u16> = fronts.iter().map(|a| a.port()).collect();
    ports.sort_unstable();
    assert_eq!(announced, ports);

    // A key of another shard: -MOVED to the owner's front.
    let key = "user:1";
    let slot = match Reply::parse(&seed.call(&["CLUSTER", "KEYSLOT", key]).await) {
        Reply::Int(slot) => slot,
        other => panic!("{other:?}"),
    };
    let owner = ranges
        .iter()
        .find(|r| (r.first..=r.last).contains(&slot))
        .map(SlotRange::primary_port)
        .unwrap();
    let other = ranges
        .iter()
        .map(SlotRange::primary_port)
        .find(|&port| port != owner)
        .unwrap();
    let mut elsewhere = authenticated(&cloud, (Ipv4Addr::LOCALHOST, other).into(), &tls).await;
    assert_eq!(
        elsewhere.call(&["GET", key]).await,
        format!("-MOVED {slot} localhost:{owner}\r\n")
    );
    let mut at_owner = authenticated(&cloud, (Ipv4Addr::LOCALHOST, owner).into(), &tls).await;
    assert_eq!(at_owner.call(&["SET", key, "alice"]).await, "+OK\r\n");
    assert_eq!(at_owner.call(&["GET", key]).await, "$5\r\nalice\r\n");

    let stats = cloud.stats();
    assert_eq!((stats.auth_ok, stats.auth_rejected), (3, 1));
    assert_eq!(stats.connections, 4);

    let debug = format!("{cloud:?}");
    assert!(debug.contains("127.0.0.2"), "{debug}");
    assert!(!debug.contains(&cloud.admin_password), "{debug}");
    for node in &cloud.nodes {
        assert!(!debug.contains(node.backend.user_password()), "{debug}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_close_connections_on_every_front() {
    let Some((mut cloud, tls)) = cluster(Duration::from_secs(3)).await else {
        return;
    };
    // A new primary takes slots; its front serves them and the others point to it.
    let new = cloud.add_primary().await.unwrap();
    assert_eq!(cloud.fronts().len(), 7);
    let donor = cloud.seed().port();
    cloud.reshard(donor, new.port(), 10).await.unwrap();
    let mut seed = authenticated(&cloud, cloud.seed(), &tls).await;
    let ranges = slot_ranges(&seed.call(&["CLUSTER", "SLOTS"]).await);
    assert!(
        ranges
            .iter()
            .any(|r| r.nodes[0] == ("localhost".into(), new.port())),
        "{ranges:?}"
    );
    drop(seed);

    let minted = cloud.issuer().unwrap().mint();
    let mut clients = Vec::new();
    for front in [cloud.seed(), new] {
        let mut client = Client::connect_to(front, &tls).await;
        assert_eq!(client.call(&["AUTH", OID, &minted.token]).await, "+OK\r\n");
        clients.push(client);
    }
    let left = minted
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(300)).await;
    for client in &mut clients {
        assert_eq!(client.frame().await, None, "still open after expiry");
    }
    assert_eq!(cloud.stats().expired_closes, 2);
}

#[tokio::test]
async fn too_few_primaries_are_refused_before_anything_starts() {
    let shape = ClusterShape {
        primaries: 2,
        ..ClusterShape::default()
    };
    let config = CloudConfig {
        oid: OID.into(),
        token_lifetime: Duration::from_secs(30),
        front_listen: "127.0.0.1:0".parse().unwrap(),
        identity_listen: "127.0.0.1:0".parse().unwrap(),
        cert_pem: String::new(),
        key_pem: String::new(),
        redis_server: PathBuf::from("/nonexistent/redis-server"),
    };
    let error = ClusterCloud::start(config, shape).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "forming the cluster: a cluster needs at least 3 primaries, not 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_cluster_checks_sigv4_tokens_on_every_front() {
    for program in ["redis-server", "redis-cli", "openssl"] {
        if !have(program) {
            eprintln!("skipping: {program} is not installed");
            return;
        }
    }
    if std::net::TcpListener::bind((NODE_IP, 0)).is_err() {
        eprintln!("skipping: {NODE_IP} cannot be bound here");
        return;
    }
    let (cert_pem, key_pem) = certificate();
    let tls = connector(&cert_pem);
    let mut config = crate::AwsCloudConfig::new(cert_pem, key_pem);
    config.connection_limit = Duration::from_secs(3);
    let user = config.user_id.clone();
    let shape = ClusterShape {
        replicas_per_primary: 0,
        ..ClusterShape::default()
    };
    let cloud = ClusterCloud::start_aws(config, shape).await.unwrap();
    assert!(cloud.issuer().is_none() && cloud.identity().is_none());
    let iam = cloud.aws().expect("an AWS cluster");
    assert_eq!(cloud.env_vars()[0].0, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let token = iam
        .verifier()
        .token(&iam.credentials().issue(), &user, SystemTime::now());
    let mut clients = Vec::new();
    for front in cloud.fronts() {
        let mut client = Client::connect_to(front, &tls).await;
        assert_eq!(client.call(&["AUTH", &user, &token]).await, "+OK\r\n");
        assert_eq!(client.call(&["MULTI"]).await, "+OK\r\n");
        let refused = client.call(&["AUTH", &user, &token]).await;
        assert_eq!(refused.as_bytes(), crate::AUTH_IN_MULTI);
        assert_eq!(client.call(&["DISCARD"]).await, "+OK\r\n");
        clients.push(client);
    }
    let stats = cloud.stats();
    assert_eq!((stats.tokens_verified, stats.auth_ok), (3, 3));
    assert_eq!(stats.auth_refused_in_multi, 3);
    // Every front closes its connection at the limit.
    tokio::time::sleep(Duration::from_millis(3400)).await;
    for client in &mut clients {
        assert_eq!(client.frame().await, None);
    }
    assert_eq!(cloud.stats().expired_closes, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcp_cluster_accepts_access_tokens_on_every_front_and_outlives_them() {
    for program in ["redis-server", "redis-cli", "openssl"] {
        if !have(program) {
            eprintln!("skipping: {program} is not installed");
            return;
        }
    }
    if std::net::TcpListener::bind((NODE_IP, 0)).is_err() {
        eprintln!("skipping: {NODE_IP} cannot be bound here");
        return;
    }
    let (cert_pem, key_pem) = certificate();
    let tls = connector(&cert_pem);
    let mut config = crate::GcpCloudConfig::new(cert_pem, key_pem);
    config.token_lifetime = Duration::from_secs(2);
    config.auth_rate_limit = Some(1);
    let shape = ClusterShape {
        replicas_per_primary: 0,
        ..ClusterShape::default()
    };
    let cloud = ClusterCloud::start_gcp(config, shape).await.unwrap();
    assert!(cloud.issuer().is_none() && cloud.aws().is_none());
    let iam = cloud.gcp().expect("a GCP cluster");
    assert_eq!(cloud.env_vars()[0].0, "GCE_METADATA_HOST");
    let token = iam.tokens().issue(None);
    let mut clients = Vec::new();
    for front in cloud.fronts() {
        let mut client = Client::connect_to(front, &tls).await;
        assert_eq!(client.call(&["AUTH", &token.token]).await, "+OK\r\n");
        // Each front keeps its own limit: one a second here.
        let mut second = Client::connect_to(front, &tls).await;
        let limited = second.call(&["AUTH", &token.token]).await;
        assert_eq!(limited.as_bytes(), crate::IAM_RATE_LIMITED);
        clients.push(client);
    }
    let stats = cloud.stats();
    assert_eq!((stats.tokens_verified, stats.auth_ok), (3, 3));
    assert_eq!(stats.auth_rate_limited, 3);
    // The token expires; no front closes its connection.
    let left = token
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(500)).await;
    for client in &mut clients {
        assert_eq!(client.call(&["PING"]).await, "+PONG\r\n");
    }
    assert_eq!(cloud.stats().expired_closes, 0);
}
