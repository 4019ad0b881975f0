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
            let port = cluster_port();
            let node_dir = cluster.dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).expect("node dir");
            let conf = node_dir.join("redis.conf");
            std::fs::write(&conf, config(&node_dir, &cluster.certs, port)).expect("redis.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server (is it on PATH?)");
            cluster.nodes.push((port, child));
        }
        for &(port, _) in &cluster.nodes {
            cluster.wait_for(&format!("node {port} to answer"), |c| {
                c.cli(port, &["PING"])
                    .is_some_and(|out| out.trim() == "PONG")
            });
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
