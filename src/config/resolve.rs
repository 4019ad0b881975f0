//! Merged settings to a [`Config`]: every value parsed and every
//! combination checked, each problem named by the setting as the user gave
//! it. Reads the files the settings name; binds nothing.

use super::names::Names;
use super::settings::Settings;
use super::{
    auth, files, listen, log_level, Auth, Config, ConfigError, Environment, LogFormat,
    ShutdownPolicy, DEFAULT_ADMIN_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_SIZE,
};
use crate::credentials::{Credential, Secret};
use crate::upstream::tls::TlsSettings;
use crate::upstream::{redact_url, Endpoint};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Turns merged settings into a [`Config`], or every reason it cannot;
/// messages name each setting by its flag.
pub fn resolve(settings: Settings, env: &dyn Environment) -> Result<Config, Vec<ConfigError>> {
    resolve_named(settings, &Names::default(), env)
}

/// Collects the problems found while resolving, each prefixed with the
/// setting's name.
struct Check<'a> {
    names: &'a Names,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    /// A problem with setting `key`.
    fn fail(&mut self, key: &str, problem: impl std::fmt::Display) {
        let name = self.names.name(key);
        self.errors.push(ConfigError(format!("{name}: {problem}")));
    }

    /// A problem that is already a whole sentence.
    fn fail_plain(&mut self, message: String) {
        self.errors.push(ConfigError(message));
    }

    /// The file named by setting `key` must be readable.
    fn readable(&mut self, key: &str, path: Option<&PathBuf>) {
        if let Some(Err(e)) = path.map(|p| files::check(&self.names.name(key), p)) {
            self.fail_plain(e);
        }
    }
}

/// [`resolve`], naming settings as `names` says.
pub(super) fn resolve_named(
    settings: Settings,
    names: &Names,
    env: &dyn Environment,
) -> Result<Config, Vec<ConfigError>> {
    let mut c = Check {
        names,
        errors: Vec::new(),
    };
    let tls_files = [
        ("ca_file", &settings.ca_file),
        ("client_cert", &settings.client_cert),
        ("client_key", &settings.client_key),
    ];
    for (key, path) in tls_files {
        c.readable(key, path.as_ref());
    }
    let auth = auth::resolve_auth(&settings, names, env).unwrap_or_else(|e| {
        c.fail_plain(e);
        Auth::Static(Credential::none())
    });
    let client_password = client_password(&mut c, settings.client_password_file.as_deref());
    let listen = listen_addresses(&mut c, &settings);
    let mut warnings = remote_clients(&mut c, &settings, &listen, client_password.is_some());
    let secret_files = [
        &settings.password_file,
        &settings.client_password_file,
        &settings.entra_client_secret_file,
    ];
    warnings.extend(
        secret_files
            .into_iter()
            .flatten()
            .filter_map(|p| files::loose_permissions(p)),
    );
    let max_bulk = settings
        .max_bulk_len
        .unwrap_or(crate::resp::DEFAULT_MAX_BULK);
    if max_bulk == 0 {
        c.fail("max_bulk_len", "must be at least 1 byte");
    }
    let mode_text = settings
        .unix_socket_mode
        .clone()
        .unwrap_or_else(|| "0660".into());
    let unix_socket_mode = u32::from_str_radix(&mode_text, 8).unwrap_or_else(|_| {
        c.fail(
            "unix_socket_mode",
            format!("{mode_text:?} is not an octal mode like 0660"),
        );
        0o660
    });
    let upstream = upstream(&mut c, &settings);
    let (tls, tls_server_name) = tls(&mut c, &settings, upstream.as_ref());
    let connect_timeout = timeout(&mut c, "connect_timeout", &settings.connect_timeout, 10);
    let output_timeout = timeout(&mut c, "output_timeout", &settings.output_timeout, 60);
    let idle_timeout = Some(duration(
        &mut c,
        "idle_timeout",
        &settings.idle_timeout,
        "0",
    ))
    .filter(|d| !d.is_zero());
    let shutdown = ShutdownPolicy {
        min_delay: duration(
            &mut c,
            "min_shutdown_delay",
            &settings.min_shutdown_delay,
            "0s",
        ),
        max_delay: duration(
            &mut c,
            "max_shutdown_delay",
            &settings.max_shutdown_delay,
            "10s",
        ),
        exit_zero_on_sigterm: settings.exit_zero_on_sigterm.unwrap_or(false),
    };
    let max_connections = match settings.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS) {
        0 => None,
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let threads = match settings.threads {
        Some(0) => {
            c.fail("threads", "must be at least 1");
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let admin_listen = admin_address(&mut c, settings.admin_listen.as_deref());
    let log_format = match settings.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            c.fail("log_format", format!("{other:?} is neither text nor json"));
            LogFormat::Text
        }
    };
    let log_level = settings.log_level.clone().unwrap_or_else(|| "info".into());
    if let Err(e) = log_level::check(&log_level) {
        c.fail("log_level", e);
    }

    let mut errors = c.errors;
    dedup(&mut errors);
    match (errors.is_empty(), upstream) {
        (true, Some(upstream)) => Ok(Config {
            listen,
            client_password,
            client_password_file: settings.client_password_file,
            password_file: match &auth {
                Auth::Static(_) => settings.password_file,
                Auth::Entra { .. } => None,
            },
            run_connection_test: settings.run_connection_test.unwrap_or(false),
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

/// Drops repeated messages (a secret file both checked and read), keeping
/// the order.
fn dedup(errors: &mut Vec<ConfigError>) {
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.0.clone()));
}

/// The local clients' password, from `--client-password-file`.
fn client_password(c: &mut Check, path: Option<&Path>) -> Option<Secret> {
    let name = c.names.name("client_password_file");
    match files::read_secret(&name, path?) {
        Ok(p) if p.is_empty() => {
            c.fail(
                "client_password_file",
                format!("{} is empty", path?.display()),
            );
            None
        }
        Ok(p) => Some(Secret::new(p)),
        Err(e) => {
            c.fail_plain(e);
            None
        }
    }
}

/// Every address of every `--listen`.
fn listen_addresses(c: &mut Check, settings: &Settings) -> Vec<SocketAddr> {
    let given = settings
        .listen
        .clone()
        .unwrap_or_else(|| vec!["127.0.0.1:6379".to_string()]);
    let mut listen = Vec::new();
    for text in &given {
        match listen::addresses(text) {
            Ok(addrs) => listen.extend(addrs),
            Err(e) => c.fail("listen", e),
        }
    }
    if given.is_empty() && settings.unix_socket.is_none() {
        c.fail_plain("nothing to listen on: give --listen or --unix-socket".into());
    }
    listen
}

/// Refuses non-loopback addresses without `--allow-remote-clients`; with it
/// but no client password, a warning.
fn remote_clients(
    c: &mut Check,
    settings: &Settings,
    listen: &[SocketAddr],
    client_password: bool,
) -> Vec<String> {
    let remote: Vec<String> = listen
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.to_string())
        .collect();
    if remote.is_empty() {
        return Vec::new();
    }
    if !settings.allow_remote_clients.unwrap_or(false) {
        c.fail("listen", format!(
            "{} is not a loopback address, and whoever can reach it uses redauth's identity; pass --allow-remote-clients to accept clients from the network (and set --client-password-file)",
            remote.join(", ")
        ));
        Vec::new()
    } else if !client_password {
        vec![format!(
            "listening on {} without --client-password-file: anyone who can reach it uses redauth's identity",
            remote.join(", ")
        )]
    } else {
        Vec::new()
    }
}

/// The upstream endpoint. Messages show the URL with any password hidden.
fn upstream(c: &mut Check, settings: &Settings) -> Option<Endpoint> {
    let Some(text) = settings.upstream.as_deref() else {
        c.fail_plain("no upstream: set --upstream rediss://host:port (or REDAUTH_UPSTREAM, or upstream in the config file)".into());
        return None;
    };
    let shown = redact_url(text);
    match Endpoint::parse(text) {
        Ok(e) if !e.tls && settings.allow_plaintext_upstream != Some(true) => {
            c.fail("upstream", format!("{shown} is plaintext (redis://); use rediss:// or pass --allow-plaintext-upstream"));
            None
        }
        Ok(e) => Some(e),
        Err(e) => {
            c.fail("upstream", format!("{shown:?}: {e}"));
            None
        }
    }
}

/// The TLS settings and the name to verify the upstream against.
fn tls(c: &mut Check, settings: &Settings, upstream: Option<&Endpoint>) -> (TlsSettings, String) {
    let tls = TlsSettings {
        ca_file: settings.ca_file.clone(),
        system_roots: true,
        client_cert: settings.client_cert.clone(),
        client_key: settings.client_key.clone(),
    };
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        c.fail_plain(format!(
            "{} and {} go together: give both or neither",
            c.names.name("client_cert"),
            c.names.name("client_key")
        ));
    }
    let name = settings
        .tls_server_name
        .clone()
        .or_else(|| upstream.map(|u| u.host.clone()))
        .unwrap_or_default();
    if upstream.is_some() && rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
        c.fail(
            "tls_server_name",
            format!("{name:?} is not a valid DNS name or IP address"),
        );
    }
    (tls, name)
}

/// `--admin-listen`: the first address it stands for.
fn admin_address(c: &mut Check, text: Option<&str>) -> SocketAddr {
    let fallback = SocketAddr::from(([127, 0, 0, 1], 9180));
    match listen::addresses(text.unwrap_or(DEFAULT_ADMIN_LISTEN)) {
        Ok(addrs) => addrs.first().copied().unwrap_or(fallback),
        Err(e) => {
            c.fail("admin_listen", e);
            fallback
        }
    }
}

/// A timeout setting: a humantime duration other than zero, `default_secs`
/// when not set.
fn timeout(c: &mut Check, key: &str, text: &Option<String>, default_secs: u64) -> Duration {
    let default = Duration::from_secs(default_secs);
    let Some(text) = text else { return default };
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            c.fail(key, format!("{text:?} is not a duration like 10s or 500ms"));
            default
        }
    }
}

/// A duration setting where zero is allowed (a bare `0` too).
fn duration(c: &mut Check, key: &str, text: &Option<String>, default: &str) -> Duration {
    let text = text.as_deref().unwrap_or(default);
    let parsed = match text.trim() {
        "0" => Some(Duration::ZERO),
        other => humantime::parse_duration(other).ok(),
    };
    parsed.unwrap_or_else(|| {
        c.fail(
            key,
            format!("{text:?} is not a duration like 10s, 500ms or 0"),
        );
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::{settings_from_env, PASSWORD_VAR};
    use crate::config::settings;
    use crate::credentials::entra::EntraKind;
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
            "--listen: \"nowhere\" has no port",
            "plaintext",
            "--client-cert c.pem: no such file",
            "--client-key",
            "--connect-timeout",
            "--idle-timeout",
            "--admin-listen",
            "--max-shutdown-delay",
            "--log-format",
            "did you mean --auth entra?",
        ] {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "{needle} missing from {text:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_source_and_hide_url_passwords() {
        let flags = Settings {
            log_level: Some("verbose".into()),
            ..Settings::default()
        };
        let from_env = Settings {
            upstream: Some("rediss://me:hunter2@cache:6380".into()),
            ..Settings::default()
        };
        let file = Settings {
            pool_size: Some(1),
            threads: Some(0),
            ..Settings::default()
        };
        let names = Names::new(&flags, &from_env, Some((Path::new("/r.toml"), &file)));
        let merged = flags.or(from_env).or(file);
        let errors = resolve_named(merged, &names, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("--log-level: \"verbose\" is not a log level")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with(
                "REDAUTH_UPSTREAM: \"rediss://me:***@cache:6380\": a user or password"
            )),
            "{text:?}"
        );
        assert!(
            text.contains(&"threads in /r.toml: must be at least 1".to_string()),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("hunter2")), "{text:?}");
    }

    #[test]
    fn listen_takes_a_bare_port_as_loopback() {
        let mut s = upstream("rediss://cache:10000");
        s.auth = Some("none".into());
        s.listen = Some(vec!["6380".into()]);
        s.admin_listen = Some("9181".into());
        let c = resolve(s, &env(&[])).unwrap();
        assert_eq!(
            c.listen,
            vec!["127.0.0.1:6380".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            c.admin_listen,
            "127.0.0.1:9181".parse::<SocketAddr>().unwrap()
        );
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
        let (from_env, _) = settings_from_env(&env(&[("REDAUTH_UPSTREAM", "rediss://env:2")]));
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
