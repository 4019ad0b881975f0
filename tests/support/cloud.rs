//! The emulated Azure cloud ([`redauth_emulator`]) for one test: a plain redis-server behind the
//! token-checking TLS front, and the App Service managed-identity endpoint, all on a runtime of
//! their own so synchronous tests can drive redauth (a child process) against them.
//!
//! Also a fake `az` for the Azure CLI credential: a shell script on a `PATH` of the test's own
//! that prints whatever JSON the test last wrote with [`FakeAz::answer`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use redauth_emulator::{Cloud, CloudConfig, IdentityEndpoint, Issuer};
use tempfile::TempDir;

use super::certs::Certs;
use super::redauth::RedauthCmd;
use super::resp::RespConn;

/// The object id the emulated identity has (and so the Redis username).
pub const OID: &str = "5b3c9d2e-7f41-4a8e-9c1d-2e6f8a0b4c7d";

/// A temp dir named from `prefix`, the test PKI in it, and a runtime of its own for an emulated
/// cloud (Azure here, AWS in [`super::aws`]).
pub fn scaffold(prefix: &str) -> (TempDir, Certs, tokio::runtime::Runtime) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating temp dir");
    let certs = Certs::generate(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the emulated cloud");
    (dir, certs, runtime)
}

/// [`scaffold`], and the cloud's configuration with tokens that live `lifetime`.
fn setup(
    prefix: &str,
    lifetime: Duration,
) -> (TempDir, Certs, tokio::runtime::Runtime, CloudConfig) {
    let (dir, certs, runtime) = scaffold(prefix);
    let config = CloudConfig {
        oid: OID.to_string(),
        token_lifetime: lifetime,
        front_listen: "127.0.0.1:0".parse().unwrap(),
        identity_listen: "127.0.0.1:0".parse().unwrap(),
        cert_pem: std::fs::read_to_string(&certs.server_cert).unwrap(),
        key_pem: std::fs::read_to_string(&certs.server_key).unwrap(),
        redis_server: "redis-server".into(),
    };
    (dir, certs, runtime, config)
}

pub struct TestCloud {
    cloud: Cloud,
    certs: Certs,
    dir: TempDir,
    // Last, so the servers above stop before their runtime does.
    runtime: tokio::runtime::Runtime,
}

impl TestCloud {
    /// Starts the cloud with tokens that live `lifetime`.
    pub fn start(lifetime: Duration) -> TestCloud {
        let (dir, certs, runtime, config) = setup("redauth-cloud-", lifetime);
        let cloud = runtime
            .block_on(Cloud::start(config))
            .expect("starting the emulated cloud");
        TestCloud {
            cloud,
            certs,
            dir,
            runtime,
        }
    }

    pub fn identity(&self) -> &IdentityEndpoint {
        self.cloud.identity()
    }

    pub fn issuer(&self) -> &Issuer {
        self.cloud.issuer()
    }

    /// The issuer, for another token endpoint that must issue this cloud's tokens.
    pub fn shared_issuer(&self) -> std::sync::Arc<Issuer> {
        self.cloud.issuer().clone()
    }

    /// How many connections the front closed because their token expired.
    pub fn expired_closes(&self) -> u64 {
        self.cloud.front().stats().expired_closes
    }

    /// What each connection the front closed for an expired token had done.
    pub fn expired_reports(&self) -> Vec<redauth_emulator::ExpiredClose> {
        self.cloud.front().expired_reports()
    }

    /// redauth in `--auth entra` mode against the front, with `--entra-credential kind` and the
    /// managed-identity variables set.
    pub fn redauth_cmd(&self, kind: &str) -> RedauthCmd {
        let mut cmd = RedauthCmd::new().args(self.redauth_args(kind));
        for (key, value) in self.cloud.env_vars() {
            cmd = cmd.env(&key, value);
        }
        cmd
    }

    /// The flags of [`TestCloud::redauth_cmd`], without the managed-identity variables.
    pub fn redauth_args(&self, kind: &str) -> Vec<String> {
        vec![
            "--upstream".to_string(),
            format!("rediss://{}", self.cloud.front().addr()),
            "--ca-file".into(),
            self.certs.ca.display().to_string(),
            "--tls-server-name".into(),
            "localhost".into(),
            "--auth".into(),
            "entra".into(),
            "--entra-credential".into(),
            kind.into(),
        ]
    }

    /// A fake `az` in this cloud's directory.
    pub fn fake_az(&self) -> FakeAz {
        FakeAz::new(self.dir.path().join("bin"))
    }

    /// The test PKI: the front's certificate, and the CA redauth trusts for it.
    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// Keeps the runtime named; the servers run on it.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// A fake Azure CLI: `az account get-access-token -o json --scope <scope>` prints the last
/// answer written, after checking it was asked for the Redis scope.
pub struct FakeAz {
    bin: PathBuf,
}

impl FakeAz {
    fn new(bin: PathBuf) -> FakeAz {
        std::fs::create_dir_all(&bin).unwrap();
        let script = format!(
            "#!/bin/sh\n\
             # A stand-in for the Azure CLI, written by the redauth tests.\n\
             echo \"$@\" >> '{log}'\n\
             case \"$*\" in\n\
               'account get-access-token -o json --scope https://redis.azure.com/.default'*) ;;\n\
               *) echo \"ERROR: unexpected arguments: $*\" >&2; exit 2 ;;\n\
             esac\n\
             if [ -f '{failing}' ]; then echo 'ERROR: Please run az login to setup account.' >&2; exit 1; fi\n\
             cat '{answer}'\n",
            log = bin.join("calls").display(),
            failing = bin.join("failing").display(),
            answer = bin.join("answer.json").display(),
        );
        let az = bin.join("az");
        std::fs::write(&az, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeAz { bin }
    }

    /// What the next `az account get-access-token` prints: the token and its expiry, in the
    /// shape Azure CLI 2.54+ uses.
    pub fn answer(&self, token: &str, expires_at: SystemTime) {
        let epoch = expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let json = serde_json::json!({
            "accessToken": token,
            "expiresOn": "2026-01-01 00:00:00.000000",
            "expires_on": epoch,
            "subscription": "00000000-0000-0000-0000-000000000000",
            "tenant": "00000000-0000-0000-0000-000000000000",
            "tokenType": "Bearer",
        });
        // Write then rename, so az never prints half a file.
        let tmp = self.bin.join("answer.json.tmp");
        std::fs::write(&tmp, json.to_string()).unwrap();
        std::fs::rename(tmp, self.bin.join("answer.json")).unwrap();
    }

    /// How many times az was run.
    pub fn calls(&self) -> usize {
        std::fs::read_to_string(self.bin.join("calls"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// A `PATH` with this fake first.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

/// Connects to redauth and asks `ACL WHOAMI`.
pub fn whoami(conn: &mut RespConn) -> Vec<u8> {
    conn.request(&["ACL", "WHOAMI"])
}

/// The emulated Azure Managed Redis with the OSS clustering policy ([`ClusterCloud`]): three
/// primaries with a replica each, every node behind its own token-checking front, all announced
/// as `localhost:<port>`.
pub struct TestClusterCloud {
    cloud: redauth_emulator::ClusterCloud,
    certs: Certs,
    _dir: TempDir,
    runtime: tokio::runtime::Runtime,
}

impl TestClusterCloud {
    pub fn start(lifetime: Duration) -> TestClusterCloud {
        let (dir, certs, runtime, config) = setup("redauth-cluster-cloud-", lifetime);
        let cloud = runtime
            .block_on(redauth_emulator::ClusterCloud::start(
                config,
                redauth_emulator::ClusterShape::default(),
            ))
            .expect("starting the emulated clustered cache");
        TestClusterCloud {
            cloud,
            certs,
            _dir: dir,
            runtime,
        }
    }

    /// redauth in `--auth entra --entra-credential managed-identity` mode with the seed as
    /// `--upstream`, listening on `port` with node ports from `port + 1`.
    pub fn redauth_cmd(&self, port: u16) -> RedauthCmd {
        let mut cmd = RedauthCmd::cluster(port)
            .args([
                "--upstream",
                &format!("rediss://localhost:{}", self.cloud.seed().port()),
            ])
            .arg("--ca-file")
            .arg(self.certs.ca.display().to_string())
            .args(["--auth", "entra", "--entra-credential", "managed-identity"]);
        for (key, value) in self.cloud.env_vars() {
            cmd = cmd.env(&key, value);
        }
        cmd
    }

    /// Every front's counters, added up.
    pub fn stats(&self) -> redauth_emulator::FrontStats {
        self.cloud.stats()
    }

    /// The expiry closes redauth is to blame for: all but those whose re-authentication, sent at
    /// least a second ahead, the server held behind a paused command (see tests/cluster_entra.rs).
    pub fn lapsed(&self) -> Vec<String> {
        self.expired_reports()
            .iter()
            .filter(|c| !c.stalled_behind_server(Duration::from_secs(1)))
            .map(ToString::to_string)
            .collect()
    }

    /// What each connection a front closed for an expired token had done.
    pub fn expired_reports(&self) -> Vec<redauth_emulator::ExpiredClose> {
        self.cloud.expired_reports()
    }
}

impl super::churn::ClusterControl for TestClusterCloud {
    fn parts(&self) -> (&redauth_emulator::ClusterCloud, &tokio::runtime::Runtime) {
        (&self.cloud, &self.runtime)
    }

    fn parts_mut(
        &mut self,
    ) -> (
        &mut redauth_emulator::ClusterCloud,
        &tokio::runtime::Runtime,
    ) {
        (&mut self.cloud, &self.runtime)
    }
}
