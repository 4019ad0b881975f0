//! An emulated Azure Managed Redis with the OSS clustering policy: a real
//! redis cluster (primaries with replicas), every node behind its own
//! token-checking TLS front, and all of them announced to clients under one
//! host name on different ports, as AMR announces its shards.
//!
//! Each node is a plain `redis-server` on the second loopback address,
//! `127.0.0.2:P`, and its front listens on `127.0.0.1:P`, the same port.
//! The nodes announce `cluster-announce-hostname` (default `localhost`) as
//! their preferred endpoint, so `CLUSTER SLOTS` and `-MOVED` name
//! `localhost:P` — the front — while the cluster bus and replication use the
//! nodes' own address. Every node has the same `default` password (replicas
//! authenticate to their primary with it) and the ACL user named after the
//! identity's oid, whose password only the fronts know.
//!
//! [`ClusterCloud::start_aws`] is the AWS flavour (an ElastiCache cache with
//! cluster mode enabled): the same nodes and fronts, the ACL user named
//! after the IAM user id, and every front checking SigV4 tokens with one
//! shared [`AwsVerifier`](crate::AwsVerifier) against one credentials
//! endpoint. (Real ElastiCache announces per-node DNS names; here every node
//! is `localhost:<port>` as for Azure.)
//!
//! [`ClusterCloud::start_gcp`] is the GCP flavour (Memorystore for Redis
//! Cluster, always clustered): every node's `default` user gets a password
//! of its own that only its front knows, and every front accepts the
//! metadata server's access tokens through one shared
//! [`GcpVerifier`](crate::GcpVerifier), never closes a connection for its
//! token's expiry, and keeps its own AUTH rate limit.
//!
//! [`ClusterCloud`] also changes the topology for tests (`add_primary`,
//! `reshard`, `failover`, `admin`); it does not restart or kill nodes.

mod view;

#[cfg(test)]
mod tests;

use crate::aws::{AwsCloudConfig, AwsIam};
use crate::backend::{Backend, BackendError, Shape};
use crate::front::{Checker, ExpiredClose, Front, FrontConfig, FrontStats};
use crate::gcp::{GcpCloudConfig, GcpIam, IAM_USER};
use crate::identity::IdentityEndpoint;
use crate::issuer::Issuer;
use crate::{random, CloudConfig, CloudError};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use view::NodeView;

/// Where the nodes themselves listen; the fronts take the same ports on 127.0.0.1.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long the cluster gets to form.
const FORMING: Duration = Duration::from_secs(60);

/// `redis-cli --cluster create` refuses fewer primaries.
pub const MIN_PRIMARIES: usize = 3;

/// The cluster's shape.
#[derive(Debug, Clone)]
pub struct ClusterShape {
    /// Primaries (shards) the slots are split between: at least [`MIN_PRIMARIES`].
    pub primaries: usize,
    /// Replicas of each primary.
    pub replicas_per_primary: usize,
    /// The host name every node announces (the fronts' certificate must cover it).
    pub announce_host: String,
}

impl Default for ClusterShape {
    fn default() -> Self {
        ClusterShape {
            primaries: 3,
            replicas_per_primary: 1,
            announce_host: "localhost".into(),
        }
    }
}

/// One node and its front.
#[derive(Debug)]
struct Node {
    front: Front,
    backend: Backend,
}

/// Who hands out credentials and checks tokens.
#[derive(Debug)]
enum Authority {
    /// Azure: the managed-identity endpoint and its token issuer.
    Entra {
        issuer: Arc<Issuer>,
        identity: IdentityEndpoint,
    },
    /// AWS: the credentials endpoint and the SigV4 verifier.
    Aws(AwsIam),
    /// GCP: the metadata server and the access-token verifier.
    Gcp(GcpIam),
}

/// What every node is started with.
#[derive(Clone)]
struct NodeSetup {
    redis_server: PathBuf,
    /// The ACL user (the Entra oid, the AWS user id; GCP: `default`).
    user: String,
    cert_pem: String,
    key_pem: String,
    checker: Checker,
}

/// The emulated clustered cache. Dropping it stops every front and node.
pub struct ClusterCloud {
    nodes: Vec<Node>,
    authority: Authority,
    setup: NodeSetup,
    shape: ClusterShape,
    admin_password: String,
}

impl std::fmt::Debug for ClusterCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCloud")
            .field("nodes", &self.nodes)
            .field("authority", &self.authority)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl ClusterCloud {
    /// Starts the identity endpoint and every node with its front, then
    /// forms the cluster. `config.front_listen` is not used: each front
    /// takes its node's port.
    pub async fn start(
        config: CloudConfig,
        shape: ClusterShape,
    ) -> Result<ClusterCloud, CloudError> {
        check_shape(&shape)?;
        let issuer = Arc::new(Issuer::new(config.oid.clone(), config.token_lifetime));
        let identity = IdentityEndpoint::start(issuer.clone(), config.identity_listen)
            .await
            .map_err(CloudError::Identity)?;
        let setup = NodeSetup {
            redis_server: config.redis_server,
            user: config.oid,
            cert_pem: config.cert_pem,
            key_pem: config.key_pem,
            checker: Checker::Entra(issuer.clone()),
        };
        ClusterCloud::form(setup, Authority::Entra { issuer, identity }, shape).await
    }

    /// The AWS flavour: starts the credentials endpoint and every node with
    /// a front checking SigV4 tokens, then forms the cluster.
    /// `config.front_listen` is not used: each front takes its node's port.
    pub async fn start_aws(
        config: AwsCloudConfig,
        shape: ClusterShape,
    ) -> Result<ClusterCloud, CloudError> {
        check_shape(&shape)?;
        config
            .validate()
            .map_err(|problems| CloudError::Config(problems.join("; ")))?;
        let iam = AwsIam::start(
            config.cache(),
            config.credentials_lifetime,
            config.credentials_listen,
        )
        .await
        .map_err(CloudError::Credentials)?;
        let setup = NodeSetup {
            redis_server: config.redis_server,
            user: config.user_id,
            cert_pem: config.cert_pem,
            key_pem: config.key_pem,
            checker: Checker::Aws(iam.verifier().clone()),
        };
        ClusterCloud::form(setup, Authority::Aws(iam), shape).await
    }

    /// The GCP flavour: starts the metadata server and every node with a
    /// front accepting its access tokens, then forms the cluster.
    /// `config.front_listen` is not used: each front takes its node's port.
    pub async fn start_gcp(
        config: GcpCloudConfig,
        shape: ClusterShape,
    ) -> Result<ClusterCloud, CloudError> {
        check_shape(&shape)?;
        let iam = config.start_iam().await?;
        let setup = NodeSetup {
            redis_server: config.redis_server,
            user: IAM_USER.to_string(),
            cert_pem: config.cert_pem,
            key_pem: config.key_pem,
            checker: Checker::Gcp(iam.verifier().clone()),
        };
        ClusterCloud::form(setup, Authority::Gcp(iam), shape).await
    }

    /// Starts every node with its front and forms the cluster.
    async fn form(
        setup: NodeSetup,
        authority: Authority,
        shape: ClusterShape,
    ) -> Result<ClusterCloud, CloudError> {
        let mut cloud = ClusterCloud {
            nodes: Vec::new(),
            authority,
            setup,
            shape: shape.clone(),
            admin_password: random::secret(),
        };
        let count = shape.primaries * (1 + shape.replicas_per_primary);
        for _ in 0..count {
            cloud.start_node().await?;
        }
        let mut create = vec!["--cluster".to_string(), "create".to_string()];
        create.extend(cloud.nodes.iter().map(|n| n.backend.addr().to_string()));
        create.extend([
            "--cluster-replicas".to_string(),
            shape.replicas_per_primary.to_string(),
            "--cluster-yes".to_string(),
        ]);
        cloud.redis_cli(&create).await?;
        cloud.wait_until_formed().await?;
        tracing::info!(
            nodes = count,
            seed = %cloud.seed(),
            "emulator: clustered cache ready"
        );
        Ok(cloud)
    }

    /// Starts one more node (not yet in the cluster) and its front; the
    /// node's own address.
    async fn start_node(&mut self) -> Result<SocketAddr, CloudError> {
        let port = free_port_pair().map_err(|e| {
            CloudError::Backend(BackendError::Io {
                doing: "finding a free port on 127.0.0.1 and 127.0.0.2".into(),
                source: e,
            })
        })?;
        let addr = SocketAddr::new(IpAddr::V4(NODE_IP), port);
        let extra_config = node_config(&self.shape.announce_host, &self.admin_password);
        let shape = Shape {
            addr,
            admin_password: self.admin_password.clone(),
            extra_config,
        };
        let setup = &self.setup;
        let backend = Backend::start_shaped(&setup.redis_server, &setup.user, shape).await?;
        let front = Front::start(FrontConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            cert_pem: setup.cert_pem.clone(),
            key_pem: setup.key_pem.clone(),
            backend: backend.addr(),
            backend_password: backend.user_password().to_string(),
            checker: setup.checker.clone(),
        })
        .await
        .map_err(CloudError::Front)?;
        self.nodes.push(Node { front, backend });
        Ok(addr)
    }

    /// Adds a node as a primary without slots; its front's address (same
    /// port as the node's).
    pub async fn add_primary(&mut self) -> Result<SocketAddr, CloudError> {
        let new = self.start_node().await?;
        let seed = self.nodes[0].backend.addr().to_string();
        self.redis_cli(&["--cluster".into(), "add-node".into(), new.to_string(), seed])
            .await?;
        self.wait_until_formed().await?;
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, new.port())))
    }

    /// Moves `slots` slots with their keys from the node behind front port
    /// `from` to the one behind `to`.
    pub async fn reshard(&self, from: u16, to: u16, slots: u32) -> Result<(), CloudError> {
        let id = |port: u16| async move {
            let reply = self.admin(port, &["CLUSTER", "MYID"]).await?;
            Ok::<_, CloudError>(bulk_text(&reply))
        };
        let (from_id, to_id) = (id(from).await?, id(to).await?);
        let seed = self.node(from)?.backend.addr().to_string();
        let args = [
            "--cluster",
            "reshard",
            &seed,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &slots.to_string(),
            "--cluster-yes",
        ]
        .map(String::from);
        self.redis_cli(&args).await?;
        self.wait_until_formed().await
    }

    /// `CLUSTER FAILOVER` on the replica behind front port `replica`. A
    /// manual failover gives up after 5 s if the replica has not caught up
    /// with its primary (a busy primary): it is asked again every 10 s.
    pub async fn failover(&self, replica: u16) -> Result<(), CloudError> {
        let started = Instant::now();
        let mut asked: Option<Instant> = None;
        while !self.admin(replica, &["ROLE"]).await?.contains("master") {
            if started.elapsed() > FORMING {
                return Err(forming("the failover did not complete"));
            }
            if asked.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                self.admin(replica, &["CLUSTER", "FAILOVER"]).await?;
                asked = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_until_formed().await
    }

    /// One admin command on the node behind front port `port` (RESP text).
    pub async fn admin(&self, port: u16, args: &[&str]) -> Result<String, CloudError> {
        Ok(self
            .node(port)?
            .backend
            .admin(args, "an admin command")
            .await?)
    }

    fn node(&self, port: u16) -> Result<&Node, CloudError> {
        self.nodes
            .iter()
            .find(|n| n.front.addr().port() == port)
            .ok_or_else(|| forming("no node behind that port"))
    }

    /// The first node's front: the seed clients are given.
    pub fn seed(&self) -> SocketAddr {
        self.nodes[0].front.addr()
    }

    /// Every front's address, in the order the nodes were started.
    pub fn fronts(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.front.addr()).collect()
    }

    /// Every node's own address (`127.0.0.2:P`), in the same order as
    /// [`ClusterCloud::fronts`].
    pub fn node_backends(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.backend.addr()).collect()
    }

    /// Every front's counters, added up.
    pub fn stats(&self) -> FrontStats {
        let mut total = FrontStats::default();
        for node in &self.nodes {
            total.add(&node.front.stats());
        }
        total
    }

    /// Every front's expiry-close reports ([`Front::expired_reports`]).
    pub fn expired_reports(&self) -> Vec<ExpiredClose> {
        self.nodes
            .iter()
            .flat_map(|n| n.front.expired_reports())
            .collect()
    }

    /// The token issuer all fronts share (Azure; `None` otherwise).
    pub fn issuer(&self) -> Option<&Arc<Issuer>> {
        match &self.authority {
            Authority::Entra { issuer, .. } => Some(issuer),
            Authority::Aws(_) | Authority::Gcp(_) => None,
        }
    }

    /// The managed-identity endpoint (Azure; `None` otherwise).
    pub fn identity(&self) -> Option<&IdentityEndpoint> {
        match &self.authority {
            Authority::Entra { identity, .. } => Some(identity),
            Authority::Aws(_) | Authority::Gcp(_) => None,
        }
    }

    /// The credentials endpoint and verifier all fronts share (AWS; `None`
    /// otherwise).
    pub fn aws(&self) -> Option<&AwsIam> {
        match &self.authority {
            Authority::Aws(iam) => Some(iam),
            Authority::Entra { .. } | Authority::Gcp(_) => None,
        }
    }

    /// The metadata server and verifier all fronts share (GCP; `None`
    /// otherwise).
    pub fn gcp(&self) -> Option<&GcpIam> {
        match &self.authority {
            Authority::Gcp(iam) => Some(iam),
            Authority::Entra { .. } | Authority::Aws(_) => None,
        }
    }

    /// Azure: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (see
    /// [`crate::Cloud::env_vars`]); AWS: `AWS_CONTAINER_CREDENTIALS_FULL_URI`
    /// and `AWS_CONTAINER_AUTHORIZATION_TOKEN` (see [`crate::AwsCloud::env_vars`]);
    /// GCP: `GCE_METADATA_HOST` (see [`crate::GcpCloud::env_vars`]).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        match &self.authority {
            Authority::Entra { identity, .. } => identity.env_vars(),
            Authority::Aws(iam) => iam.env_vars(),
            Authority::Gcp(iam) => iam.env_vars(),
        }
    }

    /// Runs `redis-cli -a <admin password> <args>` (the password through
    /// `REDISCLI_AUTH`, never on a command line), for at most [`FORMING`].
    async fn redis_cli(&self, args: &[String]) -> Result<(), CloudError> {
        let output = tokio::time::timeout(
            FORMING,
            tokio::process::Command::new("redis-cli")
                .args(args)
                .env("REDISCLI_AUTH", &self.admin_password)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| forming("redis-cli --cluster did not finish"))?
        .map_err(|e| {
            CloudError::Backend(BackendError::Io {
                doing: "running redis-cli (apt-get install redis-tools)".into(),
                source: e,
            })
        })?;
        if !output.status.success() {
            let out = String::from_utf8_lossy(&output.stdout);
            let tail: Vec<&str> = out.lines().rev().take(5).collect();
            return Err(forming(&format!(
                "redis-cli {} failed: {}",
                args[1],
                tail.join(" | ")
            )));
        }
        Ok(())
    }

    /// Waits until the cluster has formed as [`view::unformed`] judges it.
    async fn wait_until_formed(&self) -> Result<(), CloudError> {
        let started = Instant::now();
        loop {
            let mut views = Vec::with_capacity(self.nodes.len());
            for node in &self.nodes {
                views.push(node_view(&node.backend).await?);
            }
            let Some(why) = view::unformed(&views) else {
                return Ok(());
            };
            if started.elapsed() > FORMING {
                return Err(forming(&format!(
                    "the nodes did not agree on the cluster within {FORMING:?} ({why})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What `node` says about the cluster.
async fn node_view(node: &Backend) -> Result<NodeView, CloudError> {
    Ok(NodeView {
        info: node.admin(&["CLUSTER", "INFO"], "CLUSTER INFO").await?,
        nodes: node.admin(&["CLUSTER", "NODES"], "CLUSTER NODES").await?,
        slots: node.admin(&["CLUSTER", "SLOTS"], "CLUSTER SLOTS").await?,
        role: node.admin(&["ROLE"], "ROLE").await?,
    })
}

/// A node's `redis.conf` lines beyond a plain backend's. Replicas
/// authenticate to their primary as `default`. The primary pings its replicas
/// every second and nodes ping each other at least every 1.5 s
/// (node timeout / 2): a replica appears in `CLUSTER SLOTS` only once the
/// asked node has heard a non-zero replication offset for it, which would
/// otherwise take up to ten seconds.
fn node_config(announce_host: &str, admin_password: &str) -> String {
    format!(
        "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 3000\n\
         cluster-announce-ip {NODE_IP}\n\
         cluster-announce-hostname {announce_host}\ncluster-preferred-endpoint-type hostname\n\
         masterauth {admin_password}\n\
         repl-diskless-sync-delay 0\nrepl-ping-replica-period 1\n"
    )
}

/// Refuses a shape `redis-cli --cluster create` would.
fn check_shape(shape: &ClusterShape) -> Result<(), CloudError> {
    if shape.primaries < MIN_PRIMARIES {
        return Err(forming(&format!(
            "a cluster needs at least {MIN_PRIMARIES} primaries, not {}",
            shape.primaries
        )));
    }
    Ok(())
}

fn forming(what: &str) -> CloudError {
    CloudError::Cluster(what.to_string())
}

/// The text of a bulk-string reply.
fn bulk_text(reply: &str) -> String {
    reply.lines().nth(1).unwrap_or_default().trim().to_string()
}

/// A port free on both loopback addresses, and its cluster bus port (+10000) on the second.
fn free_port_pair() -> std::io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if port >= 55000 {
            continue;
        }
        let free = |ip: Ipv4Addr, p: u16| TcpListener::bind((ip, p)).is_ok();
        if free(NODE_IP, port) && free(NODE_IP, port + 10000) && free(Ipv4Addr::LOCALHOST, port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port pair",
    ))
}
