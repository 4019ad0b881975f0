//! A real Redis cluster for one test, shaped like ElastiCache's "cluster mode enabled" in
//! password mode: TLS only (clients, replication and the cluster bus), the `default` user off,
//! one ACL user, three primaries with a replica each. The cluster bus always asks for a client
//! certificate, so nodes present the test client certificate to each other. Nodes announce the host name `localhost`,
//! which the test certificate covers. Dropping the [`TlsCluster`] kills every node.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::certs::Certs;
use super::redis_server::{free_port, PASSWORD, USERNAME};

pub struct TlsCluster {
    nodes: Vec<(u16, Child)>,
    dir: TempDir,
    certs: Certs,
}

impl TlsCluster {
    /// Starts 3 primaries and 3 replicas and waits until every node sees the whole cluster.
    pub fn start() -> TlsCluster {
        let dir = tempfile::Builder::new()
            .prefix("redauth-cluster-")
            .tempdir()
            .expect("creating temp dir");
        let certs = Certs::generate(dir.path());
        let mut cluster = TlsCluster {
            nodes: Vec::new(),
            dir,
            certs,
        };
        for _ in 0..6 {
            cluster.spawn_node();
        }
        let mut create: Vec<String> = vec!["--cluster".into(), "create".into()];
        create.extend(cluster.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
        let args: Vec<&str> = create.iter().map(String::as_str).collect();
        let port = cluster.nodes[0].0;
        cluster
            .cli(port, &args)
            .unwrap_or_else(|| panic!("redis-cli --cluster create failed:\n{}", cluster.logs()));
        let ports: Vec<u16> = cluster.ports();
        cluster.wait_for("every node to see all 6 nodes serving all slots", |c| {
            ports.iter().all(|&p| {
                let info = c.cli(p, &["CLUSTER", "INFO"]).unwrap_or_default();
                let slots = c.cli(p, &["CLUSTER", "SLOTS"]).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_known_nodes:6")
                    && ports
                        .iter()
                        .all(|q| slots.lines().any(|l| l.trim() == q.to_string()))
            })
        });
        cluster
    }

    /// Starts one more node, not yet part of the cluster, once it answers; its port.
    fn spawn_node(&mut self) -> u16 {
        let port = cluster_port();
        let node_dir = self.dir.path().join(port.to_string());
        std::fs::create_dir(&node_dir).expect("node dir");
        let conf = node_dir.join("redis.conf");
        std::fs::write(&conf, config(&node_dir, &self.certs, port)).expect("redis.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server (is it on PATH?)");
        self.nodes.push((port, child));
        self.wait_for(&format!("node {port} to answer"), |c| {
            c.cli(port, &["PING"])
                .is_some_and(|out| out.trim() == "PONG")
        });
        port
    }

    /// A node's id.
    pub fn id(&self, port: u16) -> String {
        self.cli(port, &["CLUSTER", "MYID"])
            .unwrap_or_else(|| panic!("CLUSTER MYID on {port}\n{}", self.logs()))
            .trim()
            .to_string()
    }

    /// Whether the node is a primary now.
    pub fn is_primary(&self, port: u16) -> bool {
        self.cli(port, &["ROLE"])
            .is_some_and(|r| r.starts_with("master"))
    }

    /// The primaries' ports, and for each the port of a replica of it.
    pub fn primaries_and_replicas(&self) -> Vec<(u16, Option<u16>)> {
        let ids: Vec<(u16, String)> = self.ports().into_iter().map(|p| (p, self.id(p))).collect();
        let nodes = self
            .cli(self.ports()[0], &["CLUSTER", "NODES"])
            .unwrap_or_default();
        ids.iter()
            .filter(|(p, _)| self.is_primary(*p))
            .map(|(p, id)| {
                let replica = nodes
                    .lines()
                    .find(|l| l.split(' ').nth(3) == Some(id.as_str()))
                    .and_then(|l| l.split(' ').next())
                    .and_then(|rid| ids.iter().find(|(_, i)| i == rid).map(|(q, _)| *q));
                (*p, replica)
            })
            .collect()
    }

    /// Moves `slots` slots, with their keys, from one primary to another (`redis-cli --cluster
    /// reshard`: MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE), so clients meet `-ASK` during the
    /// move and `-MOVED` after it.
    pub fn reshard(&self, from: u16, to: u16, slots: u32) {
        let (from_id, to_id) = (self.id(from), self.id(to));
        let slots = slots.to_string();
        let seed = format!("127.0.0.1:{from}");
        let args = [
            "--cluster",
            "reshard",
            &seed,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &slots,
            "--cluster-yes",
        ];
        self.cli(from, &args)
            .unwrap_or_else(|| panic!("redis-cli --cluster reshard failed\n{}", self.logs()));
        self.wait_until_consistent();
    }

    /// Promotes a replica in place of its primary (`CLUSTER FAILOVER`, coordinated: nothing is
    /// lost), and waits until every node agrees.
    pub fn failover(&self, replica: u16) {
        // A manual failover gives up after 5 s if the replica has not caught up with a busy
        // primary: ask again every 10 s.
        let asked = std::cell::Cell::new(None::<Instant>);
        self.wait_for(&format!("{replica} to be a primary"), |c| {
            if asked
                .get()
                .is_none_or(|at| at.elapsed() > Duration::from_secs(10))
            {
                c.cli(replica, &["CLUSTER", "FAILOVER"]);
                asked.set(Some(Instant::now()));
            }
            c.is_primary(replica)
        });
        self.wait_until_consistent();
    }

    /// Starts a new node and adds it as a primary without slots; its port.
    pub fn add_primary(&mut self) -> u16 {
        let port = self.spawn_node();
        let new = format!("127.0.0.1:{port}");
        let seed = format!("127.0.0.1:{}", self.nodes[0].0);
        self.cli(port, &["--cluster", "add-node", &new, &seed])
            .unwrap_or_else(|| panic!("redis-cli --cluster add-node failed\n{}", self.logs()));
        self.wait_until_consistent();
        port
    }

    /// Waits until every node sees every node, all slots served, and the same slot map.
    fn wait_until_consistent(&self) {
        let ports = self.ports();
        let known = format!("cluster_known_nodes:{}", ports.len());
        self.wait_for("every node to agree on the cluster", |c| {
            let maps: Vec<String> = ports
                .iter()
                .map(|&p| {
                    let info = c.cli(p, &["CLUSTER", "INFO"]).unwrap_or_default();
                    if !info.contains("cluster_state:ok") || !info.contains(&known) {
                        return String::new();
                    }
                    c.cli(p, &["CLUSTER", "NODES"])
                        .and_then(|n| slot_map(&n))
                        .unwrap_or_default()
                })
                .collect();
            !maps[0].is_empty() && maps.iter().all(|m| *m == maps[0])
        });
    }

    /// redauth in front of this cluster (its seed, the ACL user's password) on `port`, node
    /// ports after it, once it has read the topology.
    pub fn redauth(&self, port: u16) -> super::Redauth {
        super::RedauthCmd::cluster(port)
            .args(["--upstream", &self.seed_url(), "--username", USERNAME])
            .arg("--ca-file")
            .arg(self.certs.ca.display().to_string())
            .env("REDAUTH_PASSWORD", PASSWORD)
            .start_until("cluster topology")
    }

    /// The nodes' TLS ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }

    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// `rediss://localhost:<port>` of the first node: a seed, as a configuration endpoint is.
    pub fn seed_url(&self) -> String {
        format!("rediss://localhost:{}", self.nodes[0].0)
    }

    /// Runs `redis-cli` against one node over TLS as the ACL user, for at most a minute (its
    /// `--cluster create` waits for the nodes to join without end); its output if it succeeded.
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("timeout")
            .args(["60", "redis-cli", "--tls", "--cacert"])
            .arg(&self.certs.ca)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["--user", USERNAME, "--pass", PASSWORD, "--no-auth-warning"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running redis-cli");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every node's log, for a failure message.
    pub fn logs(&self) -> String {
        self.ports()
            .iter()
            .map(|p| {
                let log = self.dir.path().join(p.to_string()).join("redis.log");
                format!(
                    "--- node {p}\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .collect()
    }

    fn wait_for(&self, what: &str, done: impl Fn(&TlsCluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Each primary's id and slots from a `CLUSTER NODES` reply, for comparing nodes' views (a slot
/// being migrated counts as unsettled: `[5-<-id]`/`[5->-id]`).
fn slot_map(nodes: &str) -> Option<String> {
    let mut primaries: Vec<String> = nodes
        .lines()
        .filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("master")))
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            format!("{} {}", fields[0], fields[8..].join(" "))
        })
        .collect();
    if primaries.iter().any(|p| p.contains('[')) {
        return None;
    }
    primaries.sort();
    Some(primaries.join("\n"))
}

/// A port with `n` free ports after it (checked by binding them; another process may still take
/// one in between, which the test would report as a bind error in redauth's log).
pub fn free_ports(n: u16) -> u16 {
    // Below the kernel's ephemeral range (32768 and up by default): a port there can be taken at
    // any moment as the local end of an outgoing connection, and a node listener opened later in
    // the test would then fail to bind. (Production defaults, 6380 and up, are below it too.)
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    for attempt in 0..200u32 {
        let first = 20000 + ((seed.wrapping_add(attempt.wrapping_mul(7919))) % 12000) as u16;
        let held: Vec<_> = (first..=first + n)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) + 1 {
            return first;
        }
    }
    panic!("no run of {n} free ports found below 32768");
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55000 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn config(dir: &Path, certs: &Certs, port: u16) -> String {
    format!(
        "bind 127.0.0.1\n\
         port 0\n\
         tls-port {port}\n\
         tls-cert-file {cert}\n\
         tls-key-file {key}\n\
         tls-ca-cert-file {ca}\n\
         tls-auth-clients no\n\
         tls-client-cert-file {client_cert}\n\
         tls-client-key-file {client_key}\n\
         tls-cluster yes\n\
         tls-replication yes\n\
         cluster-enabled yes\n\
         cluster-config-file {dir}/nodes.conf\n\
         cluster-announce-hostname localhost\n\
         save \"\"\n\
         appendonly no\n\
         dir {dir}\n\
         logfile {dir}/redis.log\n\
         user default off\n\
         user {USERNAME} on >{PASSWORD} ~* &* +@all\n\
         masteruser {USERNAME}\n\
         masterauth {PASSWORD}\n",
        cert = certs.server_cert.display(),
        key = certs.server_key.display(),
        ca = certs.ca.display(),
        client_cert = certs.client_cert.display(),
        client_key = certs.client_key.display(),
        dir = dir.display(),
    )
}
