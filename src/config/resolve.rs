//! Merged settings to a [`Config`]: every value parsed and every
//! combination checked, each problem named by the setting as the user gave
//! it. Reads the files the settings name; binds nothing.

pub(super) mod cluster;

use super::names::Names;
use super::settings::Settings;
use super::{
    auth, files, listen, log_level, Auth, Config, ConfigError, LogFormat, ShutdownPolicy,
    DEFAULT_ADMIN_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_SIZE,
};
use crate::credentials::{Credential, Secret};
use crate::environment::Environment;
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
    let auth = auth::resolve_auth(&settings, names, env).unwrap_or_else(|errors| {
        errors.into_iter().for_each(|e| c.fail_plain(e));
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
    let cluster = cluster::resolve(&mut c, &settings, &listen, admin_listen, &tls_server_name);
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
                Auth::Entra { .. } | Auth::AwsIam { .. } | Auth::GcpIam { .. } => None,
            },
            run_connection_test: settings.run_connection_test.unwrap_or(false),
            max_bulk,
            warnings,
            unix_socket: settings.unix_socket,
            unix_socket_mode,
            upstream,
            tls,
            tls_server_name,
            cluster,
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
mod tests;
