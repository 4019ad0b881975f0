//! `redauth-emulator`: the emulated cloud as a long-running process, for
//! the demo. It starts a [`Cloud`] (`--cloud azure`, the default), an
//! [`AwsCloud`] (`--cloud aws`) or a [`GcpCloud`] (`--cloud gcp`),
//! clustered with `--cluster`, logs what it started (addresses, user,
//! lifetimes; never a token, a secret or a password), optionally writes the
//! variables redauth's credential chain needs to a file (`IDENTITY_*`; for
//! AWS `AWS_CONTAINER_*` and `AWS_REGION`; for GCP `GCE_METADATA_HOST`),
//! and runs until SIGINT or SIGTERM. Logging is set up by the
//! caller.

use super::aws::{AwsCloudConfig, AwsService, DEFAULT_CACHE_NAME, DEFAULT_REGION, DEFAULT_USER_ID};
use super::cluster::MIN_PRIMARIES;
use super::gcp::DEFAULT_PROJECT_ID;
use super::{
    AwsCloud, Cloud, CloudConfig, ClusterCloud, ClusterShape, FrontStats, GcpCloud, GcpCloudConfig,
};
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default object id of the emulated identity.
pub const DEFAULT_OID: &str = "00000000-0000-4000-8000-00000000d3e0";

/// Which cloud to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudKind {
    /// Azure: managed-identity endpoint, Entra ID tokens
    Azure,
    /// AWS: container-credentials endpoint, SigV4 IAM auth tokens
    Aws,
    /// GCP: metadata-server stand-in, Memorystore IAM access tokens
    Gcp,
}

/// Flags of `redauth-emulator`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// The cloud to emulate
    #[arg(long, value_enum, default_value_t = CloudKind::Azure)]
    pub cloud: CloudKind,

    /// Object id of the emulated managed identity (the Redis username)
    #[arg(long, value_name = "OID", default_value = DEFAULT_OID)]
    pub oid: String,

    /// Lifetime of each token handed out (Azure, GCP), e.g. 30s or 2m
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_lifetime)]
    pub token_lifetime: Duration,

    /// Address of the TLS endpoint that stands in for the cache
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:16380")]
    pub front_listen: SocketAddr,

    /// Address of the managed-identity (IDENTITY_ENDPOINT) HTTP endpoint
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:16381")]
    pub identity_listen: SocketAddr,

    /// Certificate chain (PEM) the TLS endpoint presents
    #[arg(long, value_name = "PEM")]
    pub tls_cert: PathBuf,

    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "PEM")]
    pub tls_key: PathBuf,

    /// The redis-server binary to run behind the TLS endpoint
    #[arg(long, value_name = "PATH", default_value = "redis-server")]
    pub redis_server: PathBuf,

    /// Write IDENTITY_ENDPOINT=… and IDENTITY_HEADER=… lines here (mode 0600)
    /// once everything is up
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Run an OSS-clustered cache (Azure Managed Redis's default policy) of
    /// this many primaries (at least 3), every node behind its own front on a
    /// free port announced as `localhost:<port>` (--front-listen is then
    /// unused); 0: a single endpoint
    #[arg(long, value_name = "PRIMARIES", default_value_t = 0, value_parser = parse_primaries)]
    pub cluster: usize,

    /// With --cluster: replicas of each primary
    #[arg(long, value_name = "COUNT", default_value_t = 1)]
    pub replicas: usize,

    /// With --cluster: write the seed front's port here once the cluster is up
    #[arg(long, value_name = "PATH")]
    pub seed_file: Option<PathBuf>,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub gcp: GcpArgs,
}

/// Flags of `--cloud gcp`.
#[derive(Debug, Clone, clap::Args)]
pub struct GcpArgs {
    /// GCP: verified IAM AUTHs each front admits per second (0: no limit);
    /// over it the front answers an ERR_IAM_EXHAUSTED error
    #[arg(long, value_name = "PER_SECOND", default_value_t = 0)]
    pub auth_rate_limit: u32,

    /// GCP: address of the metadata-server stand-in (GCE_METADATA_HOST)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:16383")]
    pub metadata_listen: SocketAddr,

    /// GCP: the project id the metadata server reports
    #[arg(long, value_name = "PROJECT", default_value = DEFAULT_PROJECT_ID)]
    pub project_id: String,
}

/// Flags of `--cloud aws`.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// AWS: the cache name, the host of the presigned connect URL
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CACHE_NAME)]
    pub cache_name: String,

    /// AWS: the region tokens must be signed for
    #[arg(long, value_name = "REGION", default_value = DEFAULT_REGION)]
    pub region: String,

    /// AWS: elasticache or memorydb
    #[arg(long, value_name = "SERVICE", default_value = "elasticache")]
    pub service: AwsService,

    /// AWS: a serverless cache (tokens carry ResourceType=ServerlessCache)
    #[arg(long)]
    pub serverless: bool,

    /// AWS: the IAM-enabled user id (and name): the Redis username
    #[arg(long, value_name = "ID", default_value = DEFAULT_USER_ID)]
    pub user_id: String,

    /// AWS: lifetime of each credential set handed out, e.g. 30s or 15m
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_lifetime)]
    pub credentials_lifetime: Duration,

    /// AWS: how long a connection lives after its last AUTH (AWS: 12h)
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = parse_lifetime)]
    pub connection_limit: Duration,

    /// AWS: address of the container-credentials
    /// (AWS_CONTAINER_CREDENTIALS_FULL_URI) HTTP endpoint
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:16382")]
    pub credentials_listen: SocketAddr,
}

fn parse_primaries(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n == 0 || n >= MIN_PRIMARIES => Ok(n),
        Ok(_) => Err(format!(
            "a cluster needs at least {MIN_PRIMARIES} primaries (0: no cluster)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("the duration must be at least 1s".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the emulated cloud until SIGINT or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let read = |path: &Path, what: &str| {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the {what} {}", path.display()))
    };
    let config = CloudConfig {
        oid: args.oid.clone(),
        token_lifetime: args.token_lifetime,
        front_listen: args.front_listen,
        identity_listen: args.identity_listen,
        cert_pem: read(&args.tls_cert, "TLS certificate")?,
        key_pem: read(&args.tls_key, "TLS key")?,
        redis_server: args.redis_server.clone(),
    };
    match args.cloud {
        CloudKind::Aws => return run_aws(args, config).await,
        CloudKind::Gcp => return run_gcp(args, config).await,
        CloudKind::Azure => {}
    }
    if args.cluster > 0 {
        return run_cluster(args, config).await;
    }
    let cloud = Cloud::start(config).await?;
    tracing::info!(
        front = %cloud.front().addr(),
        identity_endpoint = %cloud.identity().url(),
        backend = %cloud.backend().addr(),
        oid = %args.oid,
        token_lifetime = %humantime::format_duration(args.token_lifetime),
        "emulated cloud running (for tests and demos only)"
    );
    if let Some(path) = &args.env_file {
        write_env_file(path, &cloud.env_vars())
            .with_context(|| format!("writing the env file {}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote IDENTITY_ENDPOINT and IDENTITY_HEADER");
    }
    redauth::server::shutdown_signal().await;
    tracing::info!(stats = ?cloud.front().stats(), "emulated cloud stopping");
    Ok(())
}

/// The clustered variant of [`run`].
async fn run_cluster(args: EmulatorArgs, config: CloudConfig) -> anyhow::Result<()> {
    let shape = ClusterShape {
        primaries: args.cluster,
        replicas_per_primary: args.replicas,
        ..ClusterShape::default()
    };
    let cloud = ClusterCloud::start(config, shape).await?;
    let fronts: Vec<String> = cloud
        .fronts()
        .iter()
        .map(|a| a.port().to_string())
        .collect();
    tracing::info!(
        seed = %cloud.seed(),
        node_ports = %fronts.join(","),
        identity_endpoint = %cloud.identity().map(|i| i.url()).unwrap_or_default(),
        oid = %args.oid,
        token_lifetime = %humantime::format_duration(args.token_lifetime),
        "emulated clustered cache running: every node behind a token-checking front, announced as localhost:<port> (for tests and demos only)"
    );
    if let Some(path) = &args.seed_file {
        std::fs::write(path, format!("{}\n", cloud.seed().port()))
            .with_context(|| format!("writing the seed file {}", path.display()))?;
    }
    if let Some(path) = &args.env_file {
        write_env_file(path, &cloud.env_vars())
            .with_context(|| format!("writing the env file {}", path.display()))?;
    }
    redauth::server::shutdown_signal().await;
    tracing::info!(stats = ?cloud.stats(), "emulated clustered cache stopping");
    Ok(())
}

/// The AWS settings from the flags, with the certificate, key and
/// redis-server of `azure` (read once).
fn aws_config(args: &EmulatorArgs, azure: CloudConfig) -> AwsCloudConfig {
    let aws = &args.aws;
    AwsCloudConfig {
        cache_name: aws.cache_name.clone(),
        region: aws.region.clone(),
        service: aws.service,
        serverless: aws.serverless,
        user_id: aws.user_id.clone(),
        credentials_lifetime: aws.credentials_lifetime,
        connection_limit: aws.connection_limit,
        front_listen: args.front_listen,
        credentials_listen: aws.credentials_listen,
        cert_pem: azure.cert_pem,
        key_pem: azure.key_pem,
        redis_server: azure.redis_server,
    }
}

/// The GCP settings from the flags, with the certificate, key, token
/// lifetime and redis-server of `azure` (read once).
fn gcp_config(args: &EmulatorArgs, azure: CloudConfig) -> GcpCloudConfig {
    GcpCloudConfig {
        project_id: args.gcp.project_id.clone(),
        token_lifetime: azure.token_lifetime,
        auth_rate_limit: Some(args.gcp.auth_rate_limit).filter(|&n| n > 0),
        front_listen: args.front_listen,
        metadata_listen: args.gcp.metadata_listen,
        cert_pem: azure.cert_pem,
        key_pem: azure.key_pem,
        redis_server: azure.redis_server,
    }
}

/// An AWS or GCP cache, single or clustered.
enum Running {
    Aws(AwsCloud),
    Gcp(GcpCloud),
    Cluster(ClusterCloud),
}

impl Running {
    /// Starts the AWS cache the flags describe.
    async fn start_aws(args: &EmulatorArgs, config: AwsCloudConfig) -> anyhow::Result<Running> {
        if args.cluster == 0 {
            return Ok(Running::Aws(AwsCloud::start(config).await?));
        }
        let cloud = ClusterCloud::start_aws(config, cluster_shape(args)).await?;
        Running::clustered(args, cloud)
    }

    /// Starts the GCP instance the flags describe.
    async fn start_gcp(args: &EmulatorArgs, config: GcpCloudConfig) -> anyhow::Result<Running> {
        if args.cluster == 0 {
            return Ok(Running::Gcp(GcpCloud::start(config).await?));
        }
        let cloud = ClusterCloud::start_gcp(config, cluster_shape(args)).await?;
        Running::clustered(args, cloud)
    }

    /// A cluster that started: writes the seed file if asked to.
    fn clustered(args: &EmulatorArgs, cloud: ClusterCloud) -> anyhow::Result<Running> {
        if let Some(path) = &args.seed_file {
            std::fs::write(path, format!("{}\n", cloud.seed().port()))
                .with_context(|| format!("writing the seed file {}", path.display()))?;
        }
        Ok(Running::Cluster(cloud))
    }

    /// Where clients connect.
    fn front(&self) -> String {
        match self {
            Running::Aws(cloud) => cloud.front().addr().to_string(),
            Running::Gcp(cloud) => cloud.front().addr().to_string(),
            Running::Cluster(cloud) => format!("localhost:{} (seed)", cloud.seed().port()),
        }
    }

    fn env_vars(&self) -> Vec<(String, String)> {
        match self {
            Running::Aws(cloud) => cloud.env_vars(),
            Running::Gcp(cloud) => cloud.env_vars(),
            Running::Cluster(cloud) => cloud.env_vars(),
        }
    }

    fn stats(&self) -> FrontStats {
        match self {
            Running::Aws(cloud) => cloud.stats(),
            Running::Gcp(cloud) => cloud.stats(),
            Running::Cluster(cloud) => cloud.stats(),
        }
    }
}

/// The cluster the flags describe.
fn cluster_shape(args: &EmulatorArgs) -> ClusterShape {
    ClusterShape {
        primaries: args.cluster,
        replicas_per_primary: args.replicas,
        ..ClusterShape::default()
    }
}

/// `--cloud aws`: an [`AwsCloud`] (or a clustered one) until SIGINT or SIGTERM.
async fn run_aws(args: EmulatorArgs, azure: CloudConfig) -> anyhow::Result<()> {
    let config = aws_config(&args, azure);
    let cache = config.cache();
    let cloud = Running::start_aws(&args, config).await?;
    let env = cloud.env_vars();
    let front = cloud.front();
    let uri = env.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    tracing::info!(
        front = %front,
        credentials_uri = %uri,
        cache_name = %cache.name,
        region = %cache.region,
        service = cache.service.name(),
        serverless = cache.serverless,
        user_id = %cache.user_id,
        credentials_lifetime = %humantime::format_duration(args.aws.credentials_lifetime),
        connection_limit = %humantime::format_duration(cache.connection_limit),
        "emulated AWS cache running (for tests and demos only): point redauth at the front \
         with this cache name, region, service and user id, and give it \
         AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN (--env-file)"
    );
    if let Some(path) = &args.env_file {
        let mut vars = env.clone();
        vars.push(("AWS_REGION".to_string(), cache.region.clone()));
        write_env_file(path, &vars)
            .with_context(|| format!("writing the env file {}", path.display()))?;
        tracing::info!(
            path = %path.display(),
            "wrote AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN and AWS_REGION"
        );
    }
    redauth::server::shutdown_signal().await;
    tracing::info!(stats = ?cloud.stats(), "emulated AWS cache stopping");
    Ok(())
}

/// `--cloud gcp`: a [`GcpCloud`] (or a clustered one) until SIGINT or SIGTERM.
async fn run_gcp(args: EmulatorArgs, azure: CloudConfig) -> anyhow::Result<()> {
    let config = gcp_config(&args, azure);
    let project_id = config.project_id.clone();
    let rate = config.auth_rate_limit;
    let cloud = Running::start_gcp(&args, config).await?;
    let env = cloud.env_vars();
    let host = env.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    tracing::info!(
        front = %cloud.front(),
        metadata_host = %host,
        project_id = %project_id,
        token_lifetime = %humantime::format_duration(args.token_lifetime),
        auth_rate_limit = rate.map_or_else(|| "none".to_string(), |n| format!("{n}/s per front")),
        "emulated GCP Memorystore running (for tests and demos only): point redauth at the \
         front (AUTH <token> as user default) and give it GCE_METADATA_HOST (--env-file)"
    );
    if let Some(path) = &args.env_file {
        write_env_file(path, &env)
            .with_context(|| format!("writing the env file {}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote GCE_METADATA_HOST");
    }
    redauth::server::shutdown_signal().await;
    tracing::info!(stats = ?cloud.stats(), "emulated GCP Memorystore stopping");
    Ok(())
}

/// Writes `NAME=value` lines to a new file only its owner can read.
fn write_env_file(path: &Path, vars: &[(String, String)]) -> std::io::Result<()> {
    // Replace any older file rather than inherit its permissions.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn defaults_and_parsing() {
        let cli = Cli::try_parse_from(["x", "--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(cli.args.oid, DEFAULT_OID);
        assert_eq!(cli.args.token_lifetime, Duration::from_secs(30));
        assert_eq!(cli.args.front_listen, "127.0.0.1:16380".parse().unwrap());
        assert_eq!(cli.args.identity_listen, "127.0.0.1:16381".parse().unwrap());
        assert_eq!(cli.args.redis_server, PathBuf::from("redis-server"));
        let cli = Cli::try_parse_from([
            "x",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--token-lifetime",
            "2m",
        ])
        .unwrap();
        assert_eq!(cli.args.token_lifetime, Duration::from_secs(120));
        assert!(Cli::try_parse_from([
            "x",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--token-lifetime",
            "10ms"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["x"]).is_err(),
            "the certificate is required"
        );
        assert_eq!((cli.args.cluster, cli.args.replicas), (0, 1));
        let cli = Cli::try_parse_from([
            "x",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--cluster",
            "4",
            "--replicas",
            "2",
        ])
        .unwrap();
        assert_eq!((cli.args.cluster, cli.args.replicas), (4, 2));
        for few in ["1", "2"] {
            let parsed =
                Cli::try_parse_from(["x", "--tls-cert", "c", "--tls-key", "k", "--cluster", few]);
            assert!(parsed.is_err(), "--cluster {few}");
        }
    }

    #[test]
    fn aws_flags() {
        let base = ["x", "--tls-cert", "c", "--tls-key", "k"];
        let cli = Cli::try_parse_from(base).unwrap();
        assert_eq!(cli.args.cloud, CloudKind::Azure);
        assert_eq!(cli.args.aws.service, AwsService::ElastiCache);
        assert_eq!(
            cli.args.aws.connection_limit,
            Duration::from_secs(12 * 3600)
        );
        let mut argv = base.to_vec();
        argv.extend([
            "--cloud",
            "aws",
            "--cache-name",
            "MyCache",
            "--region",
            "eu-west-1",
            "--service",
            "memorydb",
            "--user-id",
            "app",
            "--credentials-lifetime",
            "10s",
            "--connection-limit",
            "5s",
            "--credentials-listen",
            "127.0.0.1:0",
        ]);
        let cli = Cli::try_parse_from(argv).unwrap();
        assert_eq!(cli.args.cloud, CloudKind::Aws);
        let azure = CloudConfig {
            oid: DEFAULT_OID.into(),
            token_lifetime: Duration::from_secs(30),
            front_listen: cli.args.front_listen,
            identity_listen: cli.args.identity_listen,
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
            redis_server: PathBuf::from("redis-server"),
        };
        let config = aws_config(&cli.args, azure);
        let cache = config.cache();
        assert_eq!(cache.name, "mycache");
        assert_eq!(cache.region, "eu-west-1");
        assert_eq!(cache.service, AwsService::MemoryDb);
        assert_eq!(cache.user_id, "app");
        assert!(!cache.serverless);
        assert_eq!(config.credentials_lifetime, Duration::from_secs(10));
        assert_eq!(cache.connection_limit, Duration::from_secs(5));
        assert_eq!(
            (config.cert_pem.as_str(), config.key_pem.as_str()),
            ("CERT", "KEY")
        );
        let mut bad = base.to_vec();
        bad.extend(["--cloud", "aws", "--service", "s3"]);
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn gcp_flags() {
        let base = ["x", "--tls-cert", "c", "--tls-key", "k"];
        let cli = Cli::try_parse_from(base).unwrap();
        assert_eq!(cli.args.gcp.auth_rate_limit, 0);
        assert_eq!(
            cli.args.gcp.metadata_listen,
            "127.0.0.1:16383".parse().unwrap()
        );
        let mut argv = base.to_vec();
        argv.extend([
            "--cloud",
            "gcp",
            "--token-lifetime",
            "5s",
            "--auth-rate-limit",
            "20",
            "--metadata-listen",
            "127.0.0.1:0",
            "--project-id",
            "my-proj",
            "--cluster",
            "3",
        ]);
        let cli = Cli::try_parse_from(argv).unwrap();
        assert_eq!(cli.args.cloud, CloudKind::Gcp);
        assert_eq!(cli.args.cluster, 3);
        let azure = CloudConfig {
            oid: DEFAULT_OID.into(),
            token_lifetime: cli.args.token_lifetime,
            front_listen: cli.args.front_listen,
            identity_listen: cli.args.identity_listen,
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
            redis_server: PathBuf::from("redis-server"),
        };
        let config = gcp_config(&cli.args, azure.clone());
        assert_eq!(config.token_lifetime, Duration::from_secs(5));
        assert_eq!(config.auth_rate_limit, Some(20));
        assert_eq!(config.metadata_listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.project_id, "my-proj");
        assert_eq!(config.validate(), Ok(()));
        let cli = Cli::try_parse_from(base).unwrap();
        assert_eq!(gcp_config(&cli.args, azure).auth_rate_limit, None);
    }

    #[test]
    fn the_env_file_is_private_and_replaced() {
        let path =
            std::env::temp_dir().join(format!("redauth-env-{}", super::super::random::secret()));
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let vars = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x y".to_string()),
        ];
        write_env_file(&path, &vars).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\nB=x y\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_file(&path).unwrap();
    }
}
