//! The emulated AWS ([`redauth_emulator::AwsCloud`]) for one test: a plain redis-server behind a
//! TLS front that checks every AUTH's SigV4 token by recomputing its signature, refuses AUTH
//! inside MULTI and closes connections a set time after their last AUTH; and a container
//! credentials endpoint issuing rotating temporary credentials. All on a runtime of its own, so
//! synchronous tests can drive redauth (a child process) against it.

use std::time::Duration;

use redauth_emulator::{AwsCloud, AwsCloudConfig, ClusterCloud, ClusterShape, FrontStats};
use tempfile::TempDir;

use super::certs::Certs;
use super::redauth::RedauthCmd;

/// How the emulated cache is set up for a test.
#[derive(Debug, Clone, Copy)]
pub struct AwsTiming {
    /// Lifetime of each set of temporary credentials.
    pub credentials: Duration,
    /// How long a connection lives after its last good AUTH (AWS: 12 hours).
    pub connection_limit: Duration,
}

fn setup(
    prefix: &str,
    timing: AwsTiming,
) -> (TempDir, Certs, tokio::runtime::Runtime, AwsCloudConfig) {
    let (dir, certs, runtime) = super::cloud::scaffold(prefix);
    let mut config = AwsCloudConfig::new(
        std::fs::read_to_string(&certs.server_cert).unwrap(),
        std::fs::read_to_string(&certs.server_key).unwrap(),
    );
    config.credentials_lifetime = timing.credentials;
    config.connection_limit = timing.connection_limit;
    (dir, certs, runtime, config)
}

/// One emulated ElastiCache cache with IAM authentication.
pub struct TestAws {
    cloud: AwsCloud,
    config: AwsCloudConfig,
    certs: Certs,
    _dir: TempDir,
    // Last, so the servers above stop before their runtime does.
    runtime: tokio::runtime::Runtime,
}

impl TestAws {
    pub fn start(timing: AwsTiming) -> TestAws {
        let (dir, certs, runtime, config) = setup("redauth-aws-", timing);
        let cloud = runtime
            .block_on(AwsCloud::start(config.clone()))
            .expect("starting the emulated AWS");
        TestAws {
            cloud,
            config,
            certs,
            _dir: dir,
            runtime,
        }
    }

    pub fn cloud(&self) -> &AwsCloud {
        &self.cloud
    }

    pub fn stats(&self) -> FrontStats {
        self.cloud.stats()
    }

    /// What each connection the front closed at its limit had done.
    pub fn expired_reports(&self) -> Vec<redauth_emulator::ExpiredClose> {
        self.cloud.expired_reports()
    }

    /// How many sets of credentials the endpoint has handed out.
    pub fn credentials_issued(&self) -> u64 {
        self.cloud.iam().credentials().issued()
    }

    /// The secrets redauth must never show: the endpoint's authorization token, and every
    /// secret key and session token issued so far.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self
            .cloud
            .iam()
            .endpoint()
            .authorization_token()
            .to_string()];
        for c in self.cloud.iam().credentials().all() {
            secrets.push(c.secret_access_key.clone());
            secrets.push(c.session_token.clone());
        }
        secrets
    }

    /// redauth in `--auth aws-iam` mode against the front, with the container-credentials
    /// variables set (and no other AWS variable: [`RedauthCmd`] drops the test's own).
    pub fn redauth_cmd(&self) -> RedauthCmd {
        let mut cmd = RedauthCmd::new().args([
            "--upstream".to_string(),
            format!("rediss://{}", self.cloud.front().addr()),
            "--ca-file".into(),
            self.certs.ca.display().to_string(),
            "--tls-server-name".into(),
            "localhost".into(),
        ]);
        cmd = cmd.args(aws_flags(&self.config));
        for (key, value) in self.cloud.env_vars() {
            cmd = cmd.env(&key, value);
        }
        cmd
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// The `--auth aws-iam` flags for the cache `config` describes.
fn aws_flags(config: &AwsCloudConfig) -> Vec<String> {
    vec![
        "--auth".into(),
        "aws-iam".into(),
        "--aws-cache-name".into(),
        config.cache_name.clone(),
        "--aws-region".into(),
        config.region.clone(),
        "--username".into(),
        config.user_id.clone(),
        "--aws-connection-limit".into(),
        humantime::format_duration(config.connection_limit).to_string(),
    ]
}

/// The emulated ElastiCache with cluster mode enabled: three primaries with a replica each,
/// every node behind its own SigV4-checking front, announced as `localhost:<port>`.
pub struct TestAwsCluster {
    cloud: ClusterCloud,
    config: AwsCloudConfig,
    certs: Certs,
    _dir: TempDir,
    runtime: tokio::runtime::Runtime,
}

impl TestAwsCluster {
    pub fn start(timing: AwsTiming) -> TestAwsCluster {
        let (dir, certs, runtime, config) = setup("redauth-aws-cluster-", timing);
        let cloud = runtime
            .block_on(ClusterCloud::start_aws(
                config.clone(),
                ClusterShape::default(),
            ))
            .expect("starting the emulated clustered cache");
        TestAwsCluster {
            cloud,
            config,
            certs,
            _dir: dir,
            runtime,
        }
    }

    pub fn cloud(&self) -> &ClusterCloud {
        &self.cloud
    }

    pub fn stats(&self) -> FrontStats {
        self.cloud.stats()
    }

    /// redauth in cluster mode on `port` (see [`RedauthCmd::cluster`]) with `--auth aws-iam`.
    pub fn redauth_cmd(&self, port: u16) -> RedauthCmd {
        let mut cmd = RedauthCmd::cluster(port).args([
            "--upstream".to_string(),
            format!("rediss://localhost:{}", self.cloud.seed().port()),
            "--ca-file".into(),
            self.certs.ca.display().to_string(),
            "--cluster".into(),
            "on".into(),
        ]);
        cmd = cmd.args(aws_flags(&self.config));
        for (key, value) in self.cloud.env_vars() {
            cmd = cmd.env(&key, value);
        }
        cmd
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}
