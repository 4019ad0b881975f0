//! Configuration: flags over `REDAUTH_*` environment variables over the TOML
//! file over defaults, resolved into a validated [`Config`] before anything
//! binds a port. [`load`] reads the three sources and reports every problem
//! at once, each naming the setting the way the user gave it (`--log-level`,
//! `REDAUTH_LOG_LEVEL` or `log_level in /etc/redauth.toml`, see
//! [`names`]); it also checks that the files named can be read and the
//! addresses bound. [`resolve`] is the pure part: merged settings to a
//! [`Config`].
//!
//! Secrets have no flag: the password comes from `--password-file` or the
//! `REDAUTH_PASSWORD` variable; an Entra client secret from
//! `--entra-client-secret-file` or `AZURE_CLIENT_SECRET`; AWS credentials only
//! through the AWS SDK's own chain. No message shows a
//! secret, nor the password of a URL.
//!
//! Layout: [`settings`] (the settings as given), [`env`] and [`file`] (two of
//! their sources), [`names`], [`auth`], [`files`] (the files named),
//! [`listen`] (addresses), [`log_level`], [`suggest`] (did you mean).

mod auth;
mod env;
mod file;
mod files;
mod listen;
mod log_level;
mod names;
mod resolve;
mod settings;
mod suggest;

pub use env::{settings_from_env, unknown_vars, var_name, CONFIG_VAR, PASSWORD_VAR};
pub use file::load_file;
pub use listen::BindError;
pub use names::Names;
pub use resolve::cluster::{ClusterConfig, ClusterMode};
pub use resolve::resolve;
use resolve::resolve_named;
pub use settings::Settings;

use crate::credentials::aws::AwsIamConfig;
use crate::credentials::entra::EntraConfig;
use crate::credentials::gcp::GcpIamConfig;
use crate::credentials::{Credential, Secret};
use crate::environment::Environment;
use crate::upstream::tls::TlsSettings;
use crate::upstream::Endpoint;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Warm pool cap when none is configured.
pub const DEFAULT_POOL_SIZE: usize = 64;

/// Everything redauth runs with, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// The password local clients must AUTH with, if any.
    pub client_password: Option<Secret>,
    /// Where `client_password` was read from, to follow its changes.
    pub client_password_file: Option<PathBuf>,
    /// Where the upstream password was read from (`--auth password` with
    /// `--password-file`), to follow its changes.
    pub password_file: Option<PathBuf>,
    /// Dial once at startup and exit 1 if that fails.
    pub run_connection_test: bool,
    /// Largest bulk argument accepted from clients.
    pub max_bulk: u64,
    /// Things to warn about at startup (logging is not up while resolving).
    pub warnings: Vec<String>,
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: u32,
    pub upstream: Endpoint,
    pub tls: TlsSettings,
    pub tls_server_name: String,
    /// OSS cluster mode: node ports and how nodes are reached.
    pub cluster: ClusterConfig,
    pub auth: Auth,
    pub connect_timeout: Duration,
    /// Warm pool cap (0: none), shared out among the relay threads.
    pub pool_size: usize,
    /// Relay threads (see [`crate::relays`]).
    pub threads: usize,
    /// How long a client may leave its replies unread.
    pub output_timeout: Duration,
    /// Close clients silent this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Most clients at once; `None` is no limit.
    pub max_connections: Option<usize>,
    /// Where the admin endpoints listen.
    pub admin_listen: SocketAddr,
    pub shutdown: ShutdownPolicy,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// How redauth stops on SIGTERM, SIGINT or `POST /quitquitquit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPolicy {
    /// Keep accepting clients this long after the request (readiness fails meanwhile).
    pub min_delay: Duration,
    /// Then wait at most this long for open clients to finish.
    pub max_delay: Duration,
    /// Exit 0 rather than 143 after SIGTERM.
    pub exit_zero_on_sigterm: bool,
}

impl Default for ShutdownPolicy {
    fn default() -> Self {
        ShutdownPolicy {
            min_delay: Duration::ZERO,
            max_delay: Duration::from_secs(10),
            exit_zero_on_sigterm: false,
        }
    }
}

/// The admin endpoints' address when none is configured.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9180";

/// `--max-connections` when none is configured (Redis's `maxclients` default).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// How upstream connections authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `--auth password` or `--auth none`: one credential for the life of the process.
    Static(Credential),
    /// `--auth entra`: Entra ID tokens, refreshed; `username` overrides the token's oid.
    Entra {
        entra: EntraConfig,
        username: Option<String>,
    },
    /// `--auth aws-iam`: ElastiCache/MemoryDB IAM tokens signed with AWS
    /// credentials; `username` is the IAM-enabled user's id.
    AwsIam { aws: AwsIamConfig, username: String },
    /// `--auth gcp-iam`: Memorystore IAM access tokens from Application
    /// Default Credentials; `username` (else the one-argument AUTH).
    GcpIam {
        gcp: GcpIamConfig,
        username: Option<String>,
    },
}

/// One problem with the configuration, phrased for the person fixing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why the configuration was refused: every error, and the warnings found on
/// the way (an unknown `REDAUTH_*` variable may be why a setting is missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejected {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
}

impl Rejected {
    fn add(&mut self, messages: Vec<String>) {
        self.errors.extend(messages.into_iter().map(ConfigError));
    }
}

/// Reads the file (`config_flag`, else `REDAUTH_CONFIG`) and the environment
/// under `flags`, resolves them, and checks that the listen addresses can be
/// bound.
pub fn load(
    flags: Settings,
    config_flag: Option<PathBuf>,
    env: &dyn Environment,
) -> Result<Config, Rejected> {
    let mut rejected = Rejected {
        errors: Vec::new(),
        warnings: unknown_vars(env),
    };
    let (from_env, env_errors) = settings_from_env(env);
    rejected.add(env_errors);
    let file_path = match config_flag {
        Some(path) => Some(("--config", path)),
        None => env.var(CONFIG_VAR).map(|p| (CONFIG_VAR, PathBuf::from(p))),
    };
    let file = match &file_path {
        Some((name, path)) => match load_file(name, path) {
            Ok((settings, key_errors)) => {
                rejected.add(key_errors);
                Some((path.as_path(), settings))
            }
            Err(e) => {
                // Without the file, what else is missing is no news.
                rejected.add(vec![e]);
                return Err(rejected);
            }
        },
        None => None,
    };
    let names = Names::new(&flags, &from_env, file.as_ref().map(|(p, s)| (*p, s)));
    let file_settings = file.map(|(_, s)| s).unwrap_or_default();
    let merged = match flags.or(from_env).and_then(|s| s.or(file_settings)) {
        Ok(merged) => merged,
        Err(e) => {
            rejected.add(vec![e]);
            return Err(rejected);
        }
    };
    match resolve_named(merged, &names, env) {
        Ok(config) if rejected.errors.is_empty() => {
            let unbindable = check_addresses(&config, &names);
            if unbindable.is_empty() {
                let mut config = config;
                config.warnings.extend(rejected.warnings);
                return Ok(config);
            }
            rejected.errors.extend(unbindable);
        }
        Ok(_) => {}
        Err(errors) => rejected.errors.extend(errors),
    }
    Err(rejected)
}

/// Every address in `config` that cannot be bound, and a Unix socket path
/// that cannot be used, named as the user gave them.
fn check_addresses(config: &Config, names: &Names) -> Vec<ConfigError> {
    let mut addrs = config.listen.clone();
    addrs.push(config.admin_listen);
    let mut errors: Vec<ConfigError> = listen::unbindable(&addrs)
        .into_iter()
        .map(|(i, cause)| {
            let key = if i == config.listen.len() {
                "admin_listen"
            } else {
                "listen"
            };
            ConfigError(format!(
                "{} {}: cannot bind: {cause}",
                names.name(key),
                addrs[i]
            ))
        })
        .collect();
    if let Some(path) = &config.unix_socket {
        if let Some(problem) = listen::unix_socket_problem(path) {
            errors.push(ConfigError(format!(
                "{} {}: {problem}",
                names.name("unix_socket"),
                path.display()
            )));
        }
    }
    errors
}
