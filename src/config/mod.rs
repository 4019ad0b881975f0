//! Configuration: flags over `REDAUTH_*` environment variables over the TOML
//! file over defaults, resolved into a validated [`Config`] before anything
//! binds a port. [`resolve`] reports every problem at once.
//!
//! Secrets have no flag: the password comes from `--password-file` or the
//! `REDAUTH_PASSWORD` variable; an Entra client secret from
//! `--entra-client-secret-file` or `AZURE_CLIENT_SECRET`.

mod env;
mod settings;

pub use env::{settings_from_env, var_name, Environment, ProcessEnv, CONFIG_VAR, PASSWORD_VAR};
pub use settings::Settings;

use crate::credentials::entra::{EntraConfig, EntraKind, DEFAULT_SCOPE};
use crate::credentials::{Credential, Secret};
use crate::upstream::tls::TlsSettings;
use crate::upstream::Endpoint;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Largest bulk argument accepted from clients.
    pub max_bulk: u64,
    /// Things to warn about at startup (logging is not up while resolving).
    pub warnings: Vec<String>,
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: u32,
    pub upstream: Endpoint,
    pub tls: TlsSettings,
    pub tls_server_name: String,
    pub auth: Auth,
    pub connect_timeout: Duration,
    /// Warm pool cap (0: none), shared out among the relay threads.
    pub pool_size: usize,
    /// Relay threads (see [`crate::shards`]).
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
}

/// One problem with the configuration, phrased for the person fixing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads a TOML settings file.
pub fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("reading config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

/// Turns merged settings into a [`Config`], or every reason it cannot.
pub fn resolve(settings: Settings, env: &dyn Environment) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let auth_result = auth(&settings, env);
    let mut fail = |msg: String| errors.push(ConfigError(msg));

    let listen: Vec<SocketAddr> = settings
        .listen
        .unwrap_or_else(|| vec!["127.0.0.1:6379".to_string()])
        .iter()
        .filter_map(|a| match a.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                fail(format!(
                    "listen: {a:?} is not an address like 127.0.0.1:6379"
                ));
                None
            }
        })
        .collect();
    if listen.is_empty() && settings.unix_socket.is_none() {
        fail("nothing to listen on: give --listen or --unix-socket".into());
    }
    let mut warnings = Vec::new();
    let client_password = match &settings.client_password_file {
        Some(path) => match read_password(path) {
            Ok(p) if p.is_empty() => {
                fail(format!("client_password_file: {} is empty", path.display()));
                None
            }
            Ok(p) => Some(Secret::new(p)),
            Err(e) => {
                fail(e);
                None
            }
        },
        None => None,
    };
    let remote: Vec<String> = listen
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.to_string())
        .collect();
    if !remote.is_empty() {
        if !settings.allow_remote_clients.unwrap_or(false) {
            fail(format!(
                "listen: {} is not a loopback address, and whoever can reach it uses redauth's identity; pass --allow-remote-clients to accept clients from the network (and set --client-password-file)",
                remote.join(", ")
            ));
        } else if client_password.is_none() {
            warnings.push(format!(
                "listening on {} without --client-password-file: anyone who can reach it uses redauth's identity",
                remote.join(", ")
            ));
        }
    }
    let secret_files = [
        &settings.password_file,
        &settings.client_password_file,
        &settings.entra_client_secret_file,
    ];
    warnings.extend(
        secret_files
            .into_iter()
            .flatten()
            .filter_map(|p| loose_permissions(p)),
    );
    let max_bulk = settings
        .max_bulk_len
        .unwrap_or(crate::resp::DEFAULT_MAX_BULK);
    if max_bulk == 0 {
        fail("max_bulk_len: must be at least 1 byte".into());
    }

    let mode_text = settings.unix_socket_mode.unwrap_or_else(|| "0660".into());
    let unix_socket_mode = u32::from_str_radix(&mode_text, 8).unwrap_or_else(|_| {
        fail(format!(
            "unix_socket_mode: {mode_text:?} is not an octal mode like 0660"
        ));
        0o660
    });

    let upstream = match settings.upstream.as_deref() {
        None => {
            fail("no upstream: set --upstream rediss://host:port (or REDAUTH_UPSTREAM, or upstream in the config file)".into());
            None
        }
        Some(text) => match Endpoint::parse(text) {
            Ok(e) if !e.tls && settings.allow_plaintext_upstream != Some(true) => {
                fail(format!("upstream {text} is plaintext (redis://); use rediss:// or pass --allow-plaintext-upstream"));
                None
            }
            Ok(e) => Some(e),
            Err(e) => {
                fail(format!("upstream {text:?}: {e}"));
                None
            }
        },
    };

    let tls = TlsSettings {
        ca_file: settings.ca_file,
        system_roots: true,
        client_cert: settings.client_cert,
        client_key: settings.client_key,
    };
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        fail("--client-cert and --client-key go together: give both or neither".into());
    }
    let tls_server_name = settings
        .tls_server_name
        .or_else(|| upstream.as_ref().map(|u| u.host.clone()))
        .unwrap_or_default();
    if upstream.is_some()
        && rustls::pki_types::ServerName::try_from(tls_server_name.as_str()).is_err()
    {
        fail(format!(
            "tls_server_name: {tls_server_name:?} is not a valid DNS name or IP address"
        ));
    }

    let auth = auth_result.unwrap_or_else(|e| {
        fail(e);
        Auth::Static(Credential::none())
    });

    let connect_timeout =
        timeout("connect_timeout", settings.connect_timeout, 10).unwrap_or_else(|e| {
            fail(e);
            Duration::from_secs(10)
        });
    let mut duration = |key: &str, text: Option<String>, default: &str| {
        let text = text.unwrap_or_else(|| default.into());
        parse_duration(&text).unwrap_or_else(|| {
            fail(format!(
                "{key}: {text:?} is not a duration like 10s, 500ms or 0"
            ));
            Duration::ZERO
        })
    };
    let idle_timeout =
        Some(duration("idle_timeout", settings.idle_timeout, "0")).filter(|d| !d.is_zero());
    let shutdown = ShutdownPolicy {
        min_delay: duration("min_shutdown_delay", settings.min_shutdown_delay, "0s"),
        max_delay: duration("max_shutdown_delay", settings.max_shutdown_delay, "10s"),
        exit_zero_on_sigterm: settings.exit_zero_on_sigterm.unwrap_or(false),
    };
    let max_connections = match settings.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS) {
        0 => None,
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let threads = match settings.threads {
        Some(0) => {
            fail("threads: must be at least 1".to_string());
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let admin_text = settings
        .admin_listen
        .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into());
    let admin_listen = admin_text.parse().unwrap_or_else(|_| {
        fail(format!(
            "admin_listen: {admin_text:?} is not an address like {DEFAULT_ADMIN_LISTEN}"
        ));
        SocketAddr::from(([127, 0, 0, 1], 9180))
    });

    let output_timeout =
        timeout("output_timeout", settings.output_timeout, 60).unwrap_or_else(|e| {
            fail(e);
            Duration::from_secs(60)
        });

    let log_format = match settings.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            fail(format!("log_format: {other:?} is neither text nor json"));
            LogFormat::Text
        }
    };
    let log_level = settings.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        fail(format!(
            "log_level: {log_level:?} is not a level (error, warn, info, debug, trace) or filter"
        ));
    }

    match (errors.is_empty(), upstream) {
        (true, Some(upstream)) => Ok(Config {
            listen,
            client_password,
            max_bulk,
            warnings,
            unix_socket: settings.unix_socket,
            unix_socket_mode,
            upstream,
            tls,
            tls_server_name,
            auth,
            connect_timeout,
            pool_size: settings.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
            threads,
            output_timeout,
            idle_timeout,
            max_connections,
            admin_listen,
            shutdown,
            log_format,
            log_level,
        }),
        _ => Err(errors),
    }
}

/// How upstream connections authenticate, from `--auth` and its companions.
fn auth(settings: &Settings, env: &dyn Environment) -> Result<Auth, String> {
    let mode = settings.auth.as_deref().unwrap_or("password");
    let from_env = env.var(PASSWORD_VAR);
    let entra_flags = [
        ("--entra-credential", settings.entra_credential.is_some()),
        ("--entra-client-id", settings.entra_client_id.is_some()),
        ("--entra-tenant-id", settings.entra_tenant_id.is_some()),
        ("--entra-scope", settings.entra_scope.is_some()),
        (
            "--entra-client-secret-file",
            settings.entra_client_secret_file.is_some(),
        ),
    ];
    if mode != "entra" {
        if let Some((flag, _)) = entra_flags.iter().find(|(_, given)| *given) {
            return Err(format!("{flag} needs --auth entra (auth is {mode:?})"));
        }
    }
    let username = settings.username.clone();
    let password_file = settings.password_file.as_deref();
    match mode {
        "none" => {
            if username.is_some() || password_file.is_some() || from_env.is_some() {
                return Err(
                    "--auth none takes no --username, --password-file or REDAUTH_PASSWORD".into(),
                );
            }
            Ok(Auth::Static(Credential::none()))
        }
        "password" => {
            let password = match (password_file, from_env) {
                (Some(_), Some(_)) => {
                    return Err("the password is given twice: use --password-file or REDAUTH_PASSWORD, not both".into())
                }
                (Some(path), None) => read_password(path)?,
                (None, Some(text)) => text,
                (None, None) => {
                    return Err("--auth password needs the password: --password-file PATH or REDAUTH_PASSWORD".into())
                }
            };
            if password.is_empty() {
                return Err("the upstream password is empty".into());
            }
            Ok(Auth::Static(Credential::password(
                username,
                Secret::new(password),
            )))
        }
        "entra" => {
            if password_file.is_some() || from_env.is_some() {
                return Err(
                    "--auth entra uses tokens: drop --password-file and REDAUTH_PASSWORD".into(),
                );
            }
            let kind: EntraKind = settings
                .entra_credential
                .as_deref()
                .unwrap_or("default")
                .parse()?;
            let client_secret = match &settings.entra_client_secret_file {
                Some(path) => Some(Secret::new(read_password(path)?)),
                None => None,
            };
            Ok(Auth::Entra {
                entra: EntraConfig {
                    kind,
                    client_id: settings.entra_client_id.clone(),
                    tenant_id: settings.entra_tenant_id.clone(),
                    scope: settings
                        .entra_scope
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SCOPE.into()),
                    client_secret,
                },
                username,
            })
        }
        other => Err(format!(
            "auth: {other:?} is not one of password, entra, none"
        )),
    }
}

/// A timeout setting: a humantime duration other than zero, `default_secs`
/// when not set.
fn timeout(key: &str, text: Option<String>, default_secs: u64) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(Duration::from_secs(default_secs));
    };
    match humantime::parse_duration(&text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{key}: {text:?} is not a duration like 10s or 500ms"
        )),
    }
}

/// A humantime duration; a bare `0` is zero too.
fn parse_duration(text: &str) -> Option<Duration> {
    match text.trim() {
        "0" => Some(Duration::ZERO),
        other => humantime::parse_duration(other).ok(),
    }
}

/// Reads a password file, dropping one trailing newline.
/// A warning when a file holding a secret can be read by group or others.
fn loose_permissions(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds a secret and is readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        )
    })
}

fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading password file {}: {e}", path.display()))?;
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn upstream(url: &str) -> Settings {
        Settings {
            upstream: Some(url.into()),
            ..Settings::default()
        }
    }

    #[test]
    fn defaults_with_a_password_from_the_environment() {
        let c = resolve(
            upstream("rediss://cache:10000"),
            &env(&[(PASSWORD_VAR, "pw")]),
        )
        .unwrap();
        assert_eq!(
            c.listen,
            vec!["127.0.0.1:6379".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.unix_socket_mode, 0o660);
        assert_eq!(c.tls_server_name, "cache");
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.max_connections, Some(10_000));
        assert_eq!(c.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(c.shutdown, ShutdownPolicy::default());
        assert_eq!(c.shutdown.max_delay, Duration::from_secs(10));
        let Auth::Static(credential) = c.auth else {
            panic!("password mode")
        };
        assert_eq!(credential.secret.unwrap().expose(), "pw");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let s = Settings {
            listen: Some(vec!["nowhere".into()]),
            upstream: Some("redis://cache:6379".into()),
            client_cert: Some("c.pem".into()),
            connect_timeout: Some("soon".into()),
            idle_timeout: Some("a while".into()),
            admin_listen: Some("port 9180".into()),
            max_shutdown_delay: Some("-1s".into()),
            log_format: Some("xml".into()),
            ..Settings::default()
        };
        let errors = resolve(s, &env(&[])).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        for needle in [
            "listen",
            "plaintext",
            "client-key",
            "connect_timeout",
            "idle_timeout",
            "admin_listen",
            "max_shutdown_delay",
            "log_format",
            "password",
        ] {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "{needle} missing from {text:?}"
            );
        }
    }

    #[test]
    fn lifecycle_settings() {
        let mut s = upstream("rediss://cache:10000");
        s.auth = Some("none".into());
        s.idle_timeout = Some("5m".into());
        s.max_connections = Some(0);
        s.min_shutdown_delay = Some("3s".into());
        s.max_shutdown_delay = Some("0".into());
        s.exit_zero_on_sigterm = Some(true);
        s.admin_listen = Some("0.0.0.0:9000".into());
        let c = resolve(s.clone(), &env(&[])).unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.max_connections, None);
        assert_eq!(
            c.shutdown,
            ShutdownPolicy {
                min_delay: Duration::from_secs(3),
                max_delay: Duration::ZERO,
                exit_zero_on_sigterm: true,
            }
        );
        assert_eq!(c.admin_listen.port(), 9000);
        s.idle_timeout = Some("0s".into());
        s.max_connections = Some(2);
        let c = resolve(s, &env(&[])).unwrap();
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.max_connections, Some(2));
    }

    #[test]
    fn threads_default_to_the_cpus_and_zero_is_refused() {
        let s = upstream("rediss://x:1");
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(
            resolve(s.clone(), &env(&[(PASSWORD_VAR, "pw")]))
                .unwrap()
                .threads,
            cpus
        );
        let mut three = s.clone();
        three.threads = Some(3);
        assert_eq!(
            resolve(three, &env(&[(PASSWORD_VAR, "pw")]))
                .unwrap()
                .threads,
            3
        );
        let mut zero = s;
        zero.threads = Some(0);
        let errors = resolve(zero, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.to_string().contains("threads: must be at least 1")),
            "{errors:?}"
        );
    }

    #[test]
    fn plaintext_needs_the_explicit_switch() {
        let mut s = upstream("redis://127.0.0.1:6379");
        s.auth = Some("none".into());
        assert!(resolve(s.clone(), &env(&[])).is_err());
        s.allow_plaintext_upstream = Some(true);
        assert!(!resolve(s, &env(&[])).unwrap().upstream.tls);
    }

    #[test]
    fn password_file_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut s = upstream("rediss://x:1");
        s.password_file = Some(path);
        let c = resolve(s, &env(&[])).unwrap();
        let Auth::Static(credential) = c.auth else {
            panic!("password mode")
        };
        assert_eq!(credential.secret.unwrap().expose(), "s3cret");
    }

    #[test]
    fn entra_mode_defaults_and_refusals() {
        let mut s = upstream("rediss://cache:10000");
        s.auth = Some("entra".into());
        let c = resolve(s.clone(), &env(&[])).unwrap();
        let Auth::Entra { entra, username } = c.auth else {
            panic!("entra mode")
        };
        assert_eq!(entra.kind, EntraKind::Default);
        assert_eq!(entra.scope, "https://redis.azure.com/.default");
        assert!(username.is_none());

        let errors = resolve(s.clone(), &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
        assert!(errors[0].0.contains("uses tokens"), "{errors:?}");

        s.entra_credential = Some("msi".into());
        let errors = resolve(s.clone(), &env(&[])).unwrap_err();
        assert!(errors[0].0.contains("managed-identity"), "{errors:?}");

        s.auth = Some("password".into());
        s.entra_credential = Some("managed-identity".into());
        let errors = resolve(s, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
        assert!(
            errors[0]
                .0
                .contains("--entra-credential needs --auth entra"),
            "{errors:?}"
        );
    }

    #[test]
    fn layers_merge_field_by_field() {
        let file: Settings = toml::from_str(
            "upstream = \"rediss://file:1\"\nusername = \"from-file\"\nlisten = [\"127.0.0.1:1\"]",
        )
        .unwrap();
        let from_env = settings_from_env(&env(&[("REDAUTH_UPSTREAM", "rediss://env:2")])).unwrap();
        let flags = Settings {
            listen: Some(vec!["127.0.0.1:3".into()]),
            ..Settings::default()
        };
        let merged = flags.or(from_env).or(file);
        assert_eq!(merged.upstream.as_deref(), Some("rediss://env:2"));
        assert_eq!(merged.username.as_deref(), Some("from-file"));
        assert_eq!(merged.listen.unwrap(), vec!["127.0.0.1:3"]);
    }

    #[test]
    fn the_example_config_shows_every_setting_and_parses() {
        let text = include_str!("../../config/redauth.example.toml");
        let mut keys = std::collections::HashSet::new();
        let uncommented: String = text
            .lines()
            .filter_map(|line| {
                let body = line.strip_prefix('#')?;
                let (key, _) = body.split_once(" = ")?;
                let is_key =
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                (is_key && keys.insert(key.to_string())).then(|| format!("{body}\n"))
            })
            .collect();
        let parsed: Settings = toml::from_str(&uncommented).expect("the example parses");
        for (key, _) in settings::KEYS {
            assert!(
                keys.contains(*key),
                "config/redauth.example.toml lacks {key}"
            );
        }
        assert!(parsed.upstream.is_some());
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        assert!(toml::from_str::<Settings>("upstrem = \"x\"").is_err());
    }
}
