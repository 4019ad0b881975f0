//! The emulated GCP ([`redauth_emulator::GcpCloud`]) for one test: a plain redis-server behind a
//! TLS front that accepts `AUTH <token>` with an unexpired access token from the emulated
//! metadata server, keeps a connection open after its token expires (as Memorystore does), and
//! may rate-limit IAM AUTHs per second; and the metadata server, reached by redauth through
//! `GCE_METADATA_HOST`. All on a runtime of its own, so synchronous tests can drive redauth (a
//! child process) against it.

use std::time::Duration;

use redauth_emulator::{ClusterCloud, ClusterShape, FrontStats, GcpCloud, GcpCloudConfig};
use tempfile::TempDir;

use super::certs::Certs;
use super::redauth::RedauthCmd;

/// How the emulated instance is set up for a test.
#[derive(Debug, Clone, Copy)]
pub struct GcpTiming {
    /// Lifetime of each access token.
    pub token_lifetime: Duration,
    /// IAM AUTHs the front admits per second; `None`: no limit.
    pub auth_rate_limit: Option<u32>,
}

fn setup(
    prefix: &str,
    timing: GcpTiming,
) -> (TempDir, Certs, tokio::runtime::Runtime, GcpCloudConfig) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating temp dir");
    let certs = Certs::generate(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the emulated GCP");
    let mut config = GcpCloudConfig::new(
        std::fs::read_to_string(&certs.server_cert).unwrap(),
        std::fs::read_to_string(&certs.server_key).unwrap(),
    );
    config.token_lifetime = timing.token_lifetime;
    config.auth_rate_limit = timing.auth_rate_limit;
    (dir, certs, runtime, config)
}

/// The variables that point redauth's Application Default Credentials at the emulated metadata
/// server: `GCE_METADATA_HOST`, and an empty gcloud configuration directory, so a developer's own
/// `application_default_credentials.json` is not found first.
fn adc_env(cloud_vars: Vec<(String, String)>, dir: &TempDir) -> Vec<(String, String)> {
    let gcloud = dir.path().join("gcloud");
    std::fs::create_dir_all(&gcloud).expect("an empty gcloud config directory");
    let mut vars = cloud_vars;
    vars.push(("CLOUDSDK_CONFIG".into(), gcloud.display().to_string()));
    vars
}

/// One emulated Memorystore instance with IAM authentication.
pub struct TestGcp {
    cloud: GcpCloud,
    certs: Certs,
    dir: TempDir,
    // Last, so the servers above stop before their runtime does.
    runtime: tokio::runtime::Runtime,
}

impl TestGcp {
    pub fn start(timing: GcpTiming) -> TestGcp {
        let (dir, certs, runtime, config) = setup("redauth-gcp-", timing);
        let cloud = runtime
            .block_on(GcpCloud::start(config))
            .expect("starting the emulated GCP");
        TestGcp {
            cloud,
            certs,
            dir,
            runtime,
        }
    }

    pub fn cloud(&self) -> &GcpCloud {
        &self.cloud
    }

    pub fn stats(&self) -> FrontStats {
        self.cloud.stats()
    }

    /// How many tokens the metadata server has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.cloud.iam().tokens().issued()
    }

    /// The tokens redauth must never show: every one issued so far.
    pub fn secrets(&self) -> Vec<String> {
        self.cloud
            .iam()
            .tokens()
            .all()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }

    /// redauth in `--auth gcp-iam` mode against the front, with `GCE_METADATA_HOST` set (and no
    /// other GOOGLE_*/GCE_*/CLOUDSDK_* variable of the test's own: [`RedauthCmd`] drops them).
    pub fn redauth_cmd(&self) -> RedauthCmd {
        let mut cmd = RedauthCmd::new().args([
            "--upstream".to_string(),
            format!("rediss://{}", self.cloud.front().addr()),
            "--ca-file".into(),
            self.certs.ca.display().to_string(),
            "--tls-server-name".into(),
            "localhost".into(),
            "--auth".into(),
            "gcp-iam".into(),
        ]);
        for (key, value) in adc_env(self.cloud.env_vars(), &self.dir) {
            cmd = cmd.env(&key, value);
        }
        cmd
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// The emulated Memorystore for Redis Cluster: three primaries with a replica each, every node
/// behind its own token-checking front, announced as `localhost:<port>`.
pub struct TestGcpCluster {
    cloud: ClusterCloud,
    certs: Certs,
    dir: TempDir,
    runtime: tokio::runtime::Runtime,
}

impl TestGcpCluster {
    pub fn start(timing: GcpTiming) -> TestGcpCluster {
        let (dir, certs, runtime, config) = setup("redauth-gcp-cluster-", timing);
        let cloud = runtime
            .block_on(ClusterCloud::start_gcp(config, ClusterShape::default()))
            .expect("starting the emulated Memorystore cluster");
        TestGcpCluster {
            cloud,
            certs,
            dir,
            runtime,
        }
    }

    pub fn cloud(&self) -> &ClusterCloud {
        &self.cloud
    }

    pub fn stats(&self) -> FrontStats {
        self.cloud.stats()
    }

    /// redauth in cluster mode on `port` (see [`RedauthCmd::cluster`]) with `--auth gcp-iam`.
    pub fn redauth_cmd(&self, port: u16) -> RedauthCmd {
        let mut cmd = RedauthCmd::cluster(port).args([
            "--upstream".to_string(),
            format!("rediss://localhost:{}", self.cloud.seed().port()),
            "--ca-file".into(),
            self.certs.ca.display().to_string(),
            "--cluster".into(),
            "on".into(),
            "--auth".into(),
            "gcp-iam".into(),
        ]);
        for (key, value) in adc_env(self.cloud.env_vars(), &self.dir) {
            cmd = cmd.env(&key, value);
        }
        cmd
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

impl super::churn::ClusterControl for TestGcpCluster {
    fn parts(&self) -> (&ClusterCloud, &tokio::runtime::Runtime) {
        (&self.cloud, &self.runtime)
    }

    fn parts_mut(&mut self) -> (&mut ClusterCloud, &tokio::runtime::Runtime) {
        (&mut self.cloud, &self.runtime)
    }
}
