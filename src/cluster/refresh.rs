//! Keeping the [`Directory`] current: reading the topology from the seed
//! endpoint (or, when it cannot be reached, from any node known), giving new
//! nodes local ports, and telling the listeners what changed before any
//! client can be told of a new port.
//!
//! A refresh runs at startup, every `--cluster-refresh-interval`, and when a
//! session asks for one (a reply named a node not known yet, a `-MOVED` was
//! relayed, a node could not be dialed); requests that come while one runs
//! are served by the next, and refreshes are at least [`MIN_GAP`] apart, so a
//! storm of redirects during a resharding costs one `CLUSTER SLOTS` a second.

use super::directory::Directory;
use super::discover::{discover, DiscoverError, Discovery};
use super::node::NodeAddr;
use super::ports::Changes;
use super::topology::{Node, Topology};
use crate::credentials::CredentialFeed;
use crate::metrics;
use crate::upstream::{Connector, Endpoint};
use rustls::pki_types::ServerName;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The least time between two refreshes.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// The longest wait between attempts while refreshes keep failing.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// What the listeners must do before the new map is published: open a
/// listener for each added node, close those of departed ones; `done` once
/// the new listeners are bound.
#[derive(Debug)]
pub struct Update {
    pub changes: Changes,
    pub done: oneshot::Sender<()>,
}

/// Makes the connector for a node: TLS verified against the node's host
/// name, or, for a node announced by IP only, against `ip_name` (the seed's
/// name or `--cluster-tls-server-name`).
#[derive(Clone)]
pub struct NodeDialer {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub ip_name: String,
    pub timeout: Duration,
}

impl NodeDialer {
    pub fn connector(&self, node: &NodeAddr) -> Connector {
        let host = String::from_utf8_lossy(&node.host).into_owned();
        let name = if host.parse::<IpAddr>().is_ok() {
            self.ip_name.clone()
        } else {
            host.clone()
        };
        let tls = self.tls.as_ref().and_then(|config| {
            let name = ServerName::try_from(name)
                .or_else(|_| ServerName::try_from(self.ip_name.clone()))
                .ok()?;
            Some((config.clone(), name))
        });
        let endpoint = Endpoint {
            host,
            port: node.port,
            tls: self.tls.is_some(),
        };
        Connector::new(endpoint, tls, self.timeout)
    }
}

/// The refresher's parts.
pub struct Refresher {
    pub directory: Arc<Directory>,
    /// The seed endpoint (`--upstream`).
    pub seed: Connector,
    pub dialer: NodeDialer,
    pub credentials: CredentialFeed,
    pub interval: Duration,
    /// `--cluster on`: a single endpoint is an error, not a mode.
    pub required: bool,
    pub listeners: mpsc::UnboundedSender<Update>,
}

/// How one refresh went.
enum Outcome {
    Read,
    /// The upstream is not a cluster.
    Single,
    /// The seed answered, but not with a topology (`NOPERM`, an unknown
    /// command, a reply that is no `CLUSTER SLOTS`): why.
    Refused(String),
    Failed(String),
}

impl Refresher {
    /// Runs until the listeners are gone, or the upstream turns out to be a
    /// single endpoint under `--cluster auto`.
    pub async fn run(self) {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let outcome = self.once().await;
            metrics::cluster_refresh(matches!(outcome, Outcome::Read));
            self.directory.refreshed();
            let wait = match outcome {
                Outcome::Read => {
                    failures = 0;
                    self.interval
                }
                Outcome::Single if !self.required && !self.directory.known() => {
                    tracing::info!(upstream = %self.seed.endpoint(), "the upstream is not a cluster: relaying to it as a single endpoint");
                    self.directory.set_single();
                    return;
                }
                Outcome::Refused(why) if !self.required && !self.directory.known() => {
                    tracing::info!(upstream = %self.seed.endpoint(), reason = %why, "the upstream does not tell its cluster topology: relaying to it as a single endpoint (--cluster on insists)");
                    self.directory.set_single();
                    return;
                }
                Outcome::Single => {
                    failures += 1;
                    tracing::error!(upstream = %self.seed.endpoint(), "--cluster on, but the upstream answers that cluster support is disabled");
                    backoff(failures)
                }
                Outcome::Refused(why) => {
                    failures += 1;
                    tracing::warn!(error = %why, "reading the cluster topology failed; the last one known stays in use");
                    backoff(failures).min(self.interval)
                }
                Outcome::Failed(why) => {
                    failures += 1;
                    tracing::warn!(error = %why, "reading the cluster topology failed; the last one known stays in use");
                    backoff(failures).min(self.interval)
                }
            };
            if self.listeners.is_closed() {
                return;
            }
            tokio::select! {
                _ = self.directory.wanted() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            tokio::time::sleep_until(started + MIN_GAP).await;
        }
    }

    async fn once(&self) -> Outcome {
        let credential = match self.credentials.current(self.seed.timeout()).await {
            Ok(credential) => credential,
            Err(e) => return Outcome::Failed(format!("no credential to dial with: {e}")),
        };
        // The seed first; if it cannot answer, every node known, in turn.
        let mut errors = Vec::new();
        let known = self.directory.present();
        let fallbacks = known.iter().map(|(_, node)| &node.dial);
        let mut tries = std::iter::once(self.seed.clone())
            .chain(fallbacks.map(|addr| self.dialer.connector(addr)));
        let topology = loop {
            let Some(connector) = tries.next() else {
                return Outcome::Failed(errors.join("; "));
            };
            match discover(&connector, &credential).await {
                Ok(Discovery::Cluster(topology)) => break topology,
                Ok(Discovery::Single) => return Outcome::Single,
                // The seed itself answered: not something another node would mend.
                Err(e @ DiscoverError::Topology { .. }) if errors.is_empty() => {
                    return Outcome::Refused(e.to_string())
                }
                Err(e) => errors.push(e.to_string()),
            }
        };
        match self.follow(&topology).await {
            Ok(()) => Outcome::Read,
            Err(why) => Outcome::Failed(why),
        }
    }

    /// Gives new nodes ports, has their listeners opened, then publishes.
    async fn follow(&self, topology: &Topology) -> Result<(), String> {
        let mut ports = self.directory.snapshot();
        let first = !self.directory.known();
        let changes = ports.update(topology).map_err(|e| e.to_string())?;
        let changed = !changes.added.is_empty() || !changes.departed.is_empty();
        if changed {
            log_changes(&changes, first);
            let (done, bound) = oneshot::channel();
            self.listeners
                .send(Update { changes, done })
                .map_err(|_| "the listeners have stopped".to_string())?;
            let _ = bound.await;
        }
        let present: Vec<(u16, Node)> = ports.present().map(|(p, n)| (p, n.clone())).collect();
        self.directory.publish(ports);
        metrics::cluster_nodes(present.len());
        if first || changed {
            let primaries = present.iter().filter(|(_, n)| n.primary).count();
            let map: Vec<String> = present
                .iter()
                .map(|(port, node)| format!("{}→{port}", node.dial))
                .collect();
            tracing::info!(
                nodes = present.len(),
                primaries,
                covers_all_slots = topology.covers_all_slots(),
                map = %map.join(" "),
                "cluster topology: each node on its local port"
            );
        }
        Ok(())
    }
}

fn log_changes(changes: &Changes, first: bool) {
    for (port, node) in &changes.added {
        let role = if node.primary { "primary" } else { "replica" };
        if first {
            tracing::debug!(node = %node.dial, port, role, "cluster node");
        } else {
            tracing::info!(node = %node.dial, port, role, "cluster node joined");
        }
    }
    for port in &changes.departed {
        tracing::info!(
            port,
            "cluster node left: its port closes once its clients have left"
        );
    }
}

fn backoff(failures: u32) -> Duration {
    (MIN_GAP * 2u32.saturating_pow(failures.min(8))).min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_by_ip_are_verified_against_the_seed_name() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let config = Arc::new(config);
        let dialer = NodeDialer {
            tls: Some(config),
            ip_name: "cache.example".into(),
            timeout: Duration::from_secs(1),
        };
        let by_ip = dialer.connector(&NodeAddr::new("10.0.0.7", 6380));
        let by_name = dialer.connector(&NodeAddr::new("node-3.cache.example", 6381));
        let shown = |c: &Connector| format!("{c:?}");
        assert!(shown(&by_ip).contains("cache.example"), "{}", shown(&by_ip));
        assert!(!shown(&by_ip).contains("node-3"));
        assert!(shown(&by_name).contains("node-3.cache.example"));
        assert_eq!(by_ip.endpoint().port, 6380);
        assert!(by_ip.endpoint().tls);
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(20), BACKOFF_CAP);
    }
}
