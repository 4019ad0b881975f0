//! The cluster-mode settings (`--cluster`, `--cluster-ports`,
//! `--cluster-announce-host`, `--cluster-tls-server-name`,
//! `--cluster-refresh-interval`), resolved and checked.

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
    pub mode: ClusterMode,
    /// Local ports for node listeners; `None` when none were given and none
    /// can be derived (the first `--listen` port is 0, or there is only a
    /// Unix socket): no node ports are opened then.
    pub ports: Option<RangeInclusive<u16>>,
    /// The IP node listeners bind: the first `--listen` address's, else 127.0.0.1.
    pub bind_ip: IpAddr,
    /// The host clients are told to connect to for node ports.
    pub announce_host: String,
    /// The name to verify the certificates of nodes announced by IP only.
    pub tls_server_name: String,
    /// How often the topology is read again without a reason.
    pub refresh_interval: Duration,
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
        check(c, mode, ports.as_ref(), listen, admin);
        if announce_host.is_empty()
            || rustls::pki_types::ServerName::try_from(announce_host.as_str()).is_err()
        {
            c.fail(
                "cluster_announce_host",
                format!("{announce_host:?} is not a host name or IP address"),
            );
        }
        if rustls::pki_types::ServerName::try_from(tls_server_name.as_str()).is_err() {
            c.fail(
                "cluster_tls_server_name",
                format!("{tls_server_name:?} is not a valid DNS name or IP address"),
            );
        }
    }
    ClusterConfig {
        mode,
        ports,
        bind_ip,
        announce_host,
        tls_server_name,
        refresh_interval,
    }
}

/// The node ports must exist under `--cluster on` and must not take a port
/// redauth listens on already.
fn check(
    c: &mut Check,
    mode: ClusterMode,
    ports: Option<&RangeInclusive<u16>>,
    listen: &[SocketAddr],
    admin: SocketAddr,
) {
    let Some(ports) = ports else {
        if mode == ClusterMode::On && c.errors.is_empty() {
            c.fail(
                "cluster",
                "on needs node ports: give --cluster-ports (none follow a --listen port of 0 or a Unix socket)",
            );
        }
        return;
    };
    let taken = listen
        .iter()
        .map(|a| ("--listen", a.port()))
        .chain([("--admin-listen", admin.port())]);
    for (setting, port) in taken {
        if ports.contains(&port) {
            let name = c.names.name("cluster_ports");
            c.fail_plain(format!(
                "{name}: {}-{} includes port {port}, which {setting} uses; node listeners need ports of their own",
                ports.start(),
                ports.end()
            ));
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
mod tests {
    use super::*;

    #[test]
    fn ports_are_a_first_port_or_a_range() {
        assert_eq!(parse_ports("7000"), Ok(7000..=7099));
        assert_eq!(parse_ports("7000-7005"), Ok(7000..=7005));
        assert_eq!(parse_ports("65500"), Ok(65500..=65535));
        for bad in ["0", "x", "7000-", "7005-7000", "70000", "-1"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }
}
