//! The cluster-mode settings (`--cluster`, `--cluster-ports`,
//! `--cluster-announce-host`, `--cluster-tls-server-name`,
//! `--cluster-refresh-interval`), resolved into a [`ClusterConfig`] and
//! checked, each problem named as the user gave the setting. Under
//! `--cluster off` the others are parsed, not checked. Binds nothing: that
//! the node ports are free is only known as nodes appear.

use super::{timeout, Check};
use crate::config::settings::Settings;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

/// Whether redauth treats the upstream as an OSS cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// Ask the upstream after the first connection, and follow what it says.
    Auto,
    /// The upstream must be a cluster: readiness fails until its topology is read.
    On,
    /// Relay to `--upstream` as one Redis, whatever it is.
    Off,
}

/// How many node ports `--cluster-ports FIRST` gives out.
pub const DEFAULT_PORT_COUNT: u16 = 100;

/// Cluster mode, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Whether the upstream is treated as a cluster.
    pub mode: ClusterMode,
    /// Local ports for node listeners; `None` when none were given and none
    /// can be derived (the first `--listen` port is 0, or there is only a
    /// Unix socket): no node ports are opened then.
    pub ports: Option<RangeInclusive<u16>>,
    /// The IP node listeners bind: the first `--listen` address's, else 127.0.0.1.
    pub bind_ip: IpAddr,
    /// The host clients are told to connect to for node ports, in rewritten
    /// replies: `--cluster-announce-host`, else `bind_ip`.
    pub announce_host: String,
    /// The name to verify the certificates of nodes announced by IP only:
    /// `--cluster-tls-server-name`, else the seed's name.
    pub tls_server_name: String,
    /// How often the topology is read again without a reason.
    pub refresh_interval: Duration,
    /// Ports in `ports` no node may take: those redauth listens on (only a
    /// default range can hold them; a given one that does is refused).
    pub reserved: Vec<u16>,
}

/// Resolves the cluster settings; `tls_server_name` is the seed's (the
/// `--tls-server-name` or the upstream host).
pub(super) fn resolve(
    c: &mut Check,
    settings: &Settings,
    listen: &[SocketAddr],
    admin: SocketAddr,
    tls_server_name: &str,
) -> ClusterConfig {
    let mode = match settings.cluster.as_deref().unwrap_or("auto") {
        "auto" => ClusterMode::Auto,
        "on" => ClusterMode::On,
        "off" => ClusterMode::Off,
        other => {
            c.fail("cluster", format!("{other:?} is not auto, on or off"));
            ClusterMode::Auto
        }
    };
    let first_listen = listen.first();
    let bind_ip = first_listen.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), SocketAddr::ip);
    let ports = match settings.cluster_ports.as_deref() {
        Some(text) => parse_ports(text)
            .map_err(|e| c.fail("cluster_ports", e))
            .ok(),
        None => first_listen
            .map(SocketAddr::port)
            .filter(|&p| p != 0)
            .and_then(|p| p.checked_add(1))
            .map(|first| first..=first.saturating_add(DEFAULT_PORT_COUNT - 1)),
    };
    let announce_host = settings
        .cluster_announce_host
        .clone()
        .unwrap_or_else(|| bind_ip.to_string());
    let tls_server_name = settings
        .cluster_tls_server_name
        .clone()
        .unwrap_or_else(|| tls_server_name.to_string());
    let refresh_interval = timeout(
        c,
        "cluster_refresh_interval",
        &settings.cluster_refresh_interval,
        30,
    );
    if mode != ClusterMode::Off {
        let given = settings.cluster_ports.is_some();
        check_ports(c, mode, ports.as_ref(), given, listen, admin);
        if !is_server_name(&announce_host) {
            c.fail(
                "cluster_announce_host",
                format!("{announce_host:?} is not a host name or IP address"),
            );
        }
        // When not given it is the seed's name, checked (or refused) as --tls-server-name.
        if settings.cluster_tls_server_name.is_some() && !is_server_name(&tls_server_name) {
            c.fail(
                "cluster_tls_server_name",
                format!("{tls_server_name:?} is not a valid DNS name or IP address"),
            );
        }
    }
    let reserved = listen
        .iter()
        .map(SocketAddr::port)
        .chain([admin.port()])
        .collect();
    ClusterConfig {
        mode,
        ports,
        bind_ip,
        announce_host,
        tls_server_name,
        refresh_interval,
        reserved,
    }
}

/// Whether `name` can be checked against a certificate: a DNS name or an IP address.
fn is_server_name(name: &str) -> bool {
    !name.is_empty() && rustls::pki_types::ServerName::try_from(name).is_ok()
}

/// The node ports must exist under `--cluster on`, and a range given must
/// not take a port redauth listens on already. `given`: `--cluster-ports` was set (and, if
/// `ports` is `None`, already reported as malformed).
fn check_ports(
    c: &mut Check,
    mode: ClusterMode,
    ports: Option<&RangeInclusive<u16>>,
    given: bool,
    listen: &[SocketAddr],
    admin: SocketAddr,
) {
    let Some(ports) = ports else {
        if mode == ClusterMode::On && !given {
            c.fail(
                "cluster",
                "on needs node ports: give --cluster-ports (none follow a --listen port of 0 or 65535, or a Unix socket)",
            );
        }
        return;
    };
    if !given {
        // The default range skips the ports redauth listens on (`reserved`).
        return;
    }
    let range = format!("{}-{} includes", ports.start(), ports.end());
    let advice = "node listeners need ports of their own";
    let taken = listen
        .iter()
        .map(|a| ("listen", a.port()))
        .chain([("admin_listen", admin.port())]);
    for (key, port) in taken {
        if ports.contains(&port) {
            let setting = c.names.name(key);
            c.fail(
                "cluster_ports",
                format!("{range} port {port}, which {setting} uses; {advice}"),
            );
        }
    }
}

/// `FIRST` (and the [`DEFAULT_PORT_COUNT`] ports from it) or `FIRST-LAST`.
fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{text:?} is not a port (1-65535) or a range like 6380-6479"))
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (port(first)?, port(last)?),
        None => {
            let first = port(text)?;
            (first, first.saturating_add(DEFAULT_PORT_COUNT - 1))
        }
    };
    if last < first {
        return Err(format!("{text:?} ends before it starts"));
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests;
