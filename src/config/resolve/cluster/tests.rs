//! Tests of [`super`]: the cluster settings' defaults, and every refusal.
use super::*;
use crate::config::env::settings_from_env;
use crate::config::names::Names;
use crate::config::resolve::{resolve, resolve_named};
use crate::config::{Config, ConfigError};
use std::collections::HashMap;
use std::path::Path;

/// Settings that resolve on their own: a TLS upstream, no AUTH.
fn base() -> Settings {
    Settings {
        upstream: Some("rediss://cache:10000".into()),
        auth: Some("none".into()),
        ..Settings::default()
    }
}

fn resolved(settings: Settings) -> ClusterConfig {
    resolve(settings, &HashMap::new())
        .map(|c: Config| c.cluster)
        .expect("resolves")
}

fn errors(settings: Settings) -> Vec<String> {
    let errors: Vec<ConfigError> = resolve(settings, &HashMap::new()).expect_err("refused");
    errors.into_iter().map(|e| e.0).collect()
}

/// `errors`, asserting one of them contains `needle`.
fn refused(settings: Settings, needle: &str) -> Vec<String> {
    let text = errors(settings);
    assert!(
        text.iter().any(|t| t.contains(needle)),
        "{needle:?} missing from {text:?}"
    );
    text
}

#[test]
fn defaults_follow_the_first_listen_address_and_the_upstream() {
    let mut s = base();
    s.listen = Some(vec!["127.0.0.1:6379".into()]);
    assert_eq!(
        resolved(s),
        ClusterConfig {
            mode: ClusterMode::Auto,
            ports: Some(6380..=6479),
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announce_host: "127.0.0.1".into(),
            tls_server_name: "cache".into(),
            refresh_interval: Duration::from_secs(30),
            reserved: vec![6379, 9180],
        }
    );
}

#[test]
fn the_tls_name_defaults_to_the_seeds_and_can_be_set() {
    let mut s = base();
    s.tls_server_name = Some("seed.example".into());
    assert_eq!(resolved(s.clone()).tls_server_name, "seed.example");
    s.cluster_tls_server_name = Some("nodes.example".into());
    assert_eq!(resolved(s).tls_server_name, "nodes.example");
}

#[test]
fn every_setting_given() {
    let mut s = base();
    s.listen = Some(vec!["[::1]:7000".into()]);
    s.cluster = Some("on".into());
    s.cluster_ports = Some("8000-8002".into());
    s.cluster_announce_host = Some("redauth.local".into());
    s.cluster_refresh_interval = Some("5s".into());
    let c = resolved(s.clone());
    assert_eq!(c.mode, ClusterMode::On);
    assert_eq!(c.ports, Some(8000..=8002));
    assert_eq!(c.bind_ip, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(c.announce_host, "redauth.local");
    assert_eq!(c.refresh_interval, Duration::from_secs(5));
    s.cluster = Some("off".into());
    s.cluster_ports = Some("8000".into());
    let c = resolved(s);
    assert_eq!(c.mode, ClusterMode::Off);
    assert_eq!(c.ports, Some(8000..=8099));
}

#[test]
fn ports_are_a_first_port_or_a_range() {
    assert_eq!(parse_ports("7000"), Ok(7000..=7099));
    assert_eq!(parse_ports("7000-7005"), Ok(7000..=7005));
    assert_eq!(parse_ports(" 7000 - 7000 "), Ok(7000..=7000));
    assert_eq!(parse_ports("65500"), Ok(65500..=65535));
    for bad in [
        "0",
        "0-10",
        "x",
        "",
        "7000-",
        "7005-7000",
        "70000",
        "7000-70000",
        "-1",
    ] {
        assert!(parse_ports(bad).is_err(), "{bad}");
    }
    for bad in ["x", "0", "7005-7000", "70000"] {
        let mut s = base();
        s.cluster_ports = Some(bad.into());
        refused(s, &format!("--cluster-ports: \"{bad}\""));
    }
}

#[test]
fn no_ports_follow_port_0_or_a_unix_socket_alone() {
    let mut port_0 = base();
    port_0.listen = Some(vec!["127.0.0.1:0".into()]);
    let mut socket = base();
    socket.listen = Some(vec![]);
    socket.unix_socket = Some("/tmp/redauth.sock".into());
    for s in [port_0, socket] {
        let c = resolved(s.clone());
        assert_eq!(c.ports, None);
        assert_eq!(c.bind_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.announce_host, "127.0.0.1");
        let mut on = s;
        on.cluster = Some("on".into());
        refused(
            on.clone(),
            "--cluster: on needs node ports: give --cluster-ports",
        );
        on.cluster_ports = Some("7000".into());
        assert_eq!(resolved(on).ports, Some(7000..=7099));
    }
}

#[test]
fn cluster_on_without_ports_is_reported_with_other_problems_but_not_after_bad_ports() {
    let mut s = base();
    s.listen = Some(vec!["0".into()]);
    s.cluster = Some("on".into());
    s.log_format = Some("xml".into());
    let text = refused(s.clone(), "--cluster: on needs node ports");
    assert!(
        text.iter().any(|t| t.starts_with("--log-format")),
        "{text:?}"
    );
    s.cluster_ports = Some("x".into());
    let text = refused(s, "--cluster-ports: \"x\"");
    assert!(
        !text.iter().any(|t| t.contains("needs node ports")),
        "{text:?}"
    );
}

#[test]
fn an_unknown_mode_names_the_accepted_ones() {
    let mut s = base();
    s.cluster = Some("yes".into());
    refused(s, "--cluster: \"yes\" is not auto, on or off");
}

#[test]
fn ports_must_not_include_a_listen_or_admin_port() {
    let mut s = base();
    s.cluster_ports = Some("6300-6400".into());
    refused(
        s.clone(),
        "--cluster-ports: 6300-6400 includes port 6379, which --listen uses",
    );
    s.cluster_ports = Some("9100".into());
    refused(
        s,
        "--cluster-ports: 9100-9199 includes port 9180, which --admin-listen uses",
    );
    // The default range is no choice of the user's: ports redauth listens on are left out of it.
    let mut two = base();
    two.listen = Some(vec!["6379".into(), "6380".into()]);
    let config = resolved(two);
    assert_eq!(config.ports, Some(6380..=6479));
    assert!(config.reserved.contains(&6380) && config.reserved.contains(&9180));
}

#[test]
fn host_names_must_be_names_or_addresses() {
    for bad in ["", "not a host"] {
        let mut s = base();
        s.cluster_announce_host = Some(bad.into());
        refused(
            s,
            &format!("--cluster-announce-host: {bad:?} is not a host name"),
        );
        let mut s = base();
        s.cluster_tls_server_name = Some(bad.into());
        refused(
            s,
            &format!("--cluster-tls-server-name: {bad:?} is not a valid DNS name"),
        );
    }
    let mut s = base();
    s.cluster_announce_host = Some("::1".into());
    assert_eq!(resolved(s).announce_host, "::1");
}

#[test]
fn a_bad_seed_name_is_reported_once_as_the_seeds() {
    let mut s = base();
    s.tls_server_name = Some("not a host".into());
    let text = refused(s, "--tls-server-name");
    assert_eq!(text.len(), 1, "{text:?}");
    let text = errors(Settings::default());
    assert!(!text.iter().any(|t| t.contains("cluster")), "{text:?}");
}

#[test]
fn the_refresh_interval_is_a_duration_other_than_zero() {
    for bad in ["0s", "0", "often"] {
        let mut s = base();
        s.cluster_refresh_interval = Some(bad.into());
        refused(
            s,
            &format!("--cluster-refresh-interval: {bad:?} is not a duration"),
        );
    }
}

#[test]
fn cluster_off_only_parses_the_other_settings() {
    let mut s = base();
    s.cluster = Some("off".into());
    s.cluster_ports = Some("6379".into());
    s.cluster_announce_host = Some(String::new());
    s.cluster_tls_server_name = Some("not a host".into());
    assert_eq!(resolved(s.clone()).mode, ClusterMode::Off);
    s.cluster_ports = Some("x".into());
    refused(s.clone(), "--cluster-ports: \"x\"");
    s.cluster_ports = None;
    s.cluster_refresh_interval = Some("0s".into());
    refused(s, "--cluster-refresh-interval");
}

#[test]
fn messages_name_each_setting_as_given() {
    let vars: HashMap<String, String> = [
        ("REDAUTH_CLUSTER", "always"),
        ("REDAUTH_LISTEN", "127.0.0.1:7000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (from_env, env_errors) = settings_from_env(&vars);
    assert!(env_errors.is_empty(), "{env_errors:?}");
    let file: Settings =
        toml::from_str("cluster_ports = \"6990-7010\"\ncluster_refresh_interval = \"never\"")
            .expect("parses");
    let flags = base();
    let names = Names::new(&flags, &from_env, Some((Path::new("/r.toml"), &file)));
    let merged = flags.or(from_env).unwrap().or(file).unwrap();
    let text: Vec<String> = resolve_named(merged, &names, &vars)
        .expect_err("refused")
        .into_iter()
        .map(|e| e.0)
        .collect();
    for expected in [
        "REDAUTH_CLUSTER: \"always\" is not auto, on or off",
        "cluster_refresh_interval in /r.toml: \"never\" is not a duration like 10s or 500ms",
        "cluster_ports in /r.toml: 6990-7010 includes port 7000, which REDAUTH_LISTEN uses; node listeners need ports of their own",
    ] {
        assert!(text.contains(&expected.to_string()), "{expected:?} missing from {text:?}");
    }
}
