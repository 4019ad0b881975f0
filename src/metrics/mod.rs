//! Process-wide metrics, rendered for `/metrics` in the OpenMetrics text
//! format (which Prometheus scrapes).
//!
//! Code that counts something calls one of the free functions here
//! ([`commands`], [`bytes`], [`client_opened`], [`upstream_error`]…). Each is
//! an atomic add on a handle made once, at first use: no lock, no allocation,
//! no label lookup on the way. Labels take a few fixed values (an enum each),
//! never a key, a client address or an error text. The one exception to "no
//! lock" is the connect-time histogram, observed once per upstream
//! connection, never per command.
//!
//! One family is read when scraped rather than counted here: the time the
//! current credential has left ([`render`] is handed its expiry). This module
//! builds on nothing else of redauth's: it only counts and renders; serving
//! HTTP is [`crate::admin`]'s job.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;

mod cluster;
pub use cluster::{
    cluster_nodes, cluster_refresh, cluster_rewrite, router_client, router_redirect, NodeMetrics,
    RoutedRedirect,
};
use std::time::{Duration, SystemTime};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which way relayed bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToUpstream,
    UpstreamToClient,
}

impl Direction {
    const ALL: [Direction; 2] = [Direction::ClientToUpstream, Direction::UpstreamToClient];

    fn label(self) -> &'static str {
        match self {
            Direction::ClientToUpstream => "client_to_upstream",
            Direction::UpstreamToClient => "upstream_to_client",
        }
    }
}

/// What went wrong with an upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// DNS or TCP: the upstream could not be reached.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The upstream refused the credential (or AUTH could not be exchanged).
    Auth,
    /// Dial + TLS + AUTH took longer than `--connect-timeout`.
    Timeout,
    /// Reading from or writing to an established connection failed.
    Io,
    /// The upstream closed an established connection.
    Closed,
}

impl UpstreamError {
    const ALL: [UpstreamError; 6] = [
        UpstreamError::Connect,
        UpstreamError::Tls,
        UpstreamError::Auth,
        UpstreamError::Timeout,
        UpstreamError::Io,
        UpstreamError::Closed,
    ];

    fn label(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Tls => "tls",
            UpstreamError::Auth => "auth",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Io => "io",
            UpstreamError::Closed => "closed",
        }
    }
}

/// How a token fetch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The identity answered with a usable token (new or the one held).
    Ok,
    /// The fetch failed, or the token was unusable.
    Failed,
}

impl Refresh {
    const ALL: [Refresh; 2] = [Refresh::Ok, Refresh::Failed];

    fn label(self) -> &'static str {
        match self {
            Refresh::Ok => "ok",
            Refresh::Failed => "failed",
        }
    }
}

/// What became of a re-authentication of a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReauthEvent {
    /// AUTH with a newer credential was injected into the connection.
    Injected,
    /// It had to wait for a safe point (MULTI, a subscribed RESP2
    /// connection, a reply skip, a command mid-stream, a blocked command).
    Deferred,
    /// The server accepted the injected AUTH.
    Ok,
    /// The server refused it (the connection keeps its identity).
    Failed,
}

impl ReauthEvent {
    const ALL: [ReauthEvent; 4] = [
        ReauthEvent::Injected,
        ReauthEvent::Deferred,
        ReauthEvent::Ok,
        ReauthEvent::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            ReauthEvent::Injected => "injected",
            ReauthEvent::Deferred => "deferred",
            ReauthEvent::Ok => "ok",
            ReauthEvent::Failed => "failed",
        }
    }
}

/// A command relayed from a client: `n` of them (a pipeline counts each).
pub fn commands(n: u64) {
    METRICS.commands.inc_by(n);
}

/// `n` bytes relayed in `direction`.
pub fn bytes(direction: Direction, n: u64) {
    METRICS.bytes[direction as usize].inc_by(n);
}

/// A client connection was accepted and will be served. Pair with [`client_closed`].
pub fn client_opened() {
    METRICS.client_connections.inc();
    METRICS.accepted.inc();
}

/// A client connection counted by [`client_opened`] ended.
pub fn client_closed() {
    METRICS.client_connections.dec();
}

/// A client was turned away because `--max-connections` were open.
pub fn client_rejected() {
    METRICS.rejected.inc();
}

/// An upstream connection was dialed, TLS-handshaken and authenticated in `took`.
pub fn upstream_connected(took: Duration) {
    METRICS.connect_seconds.observe(took.as_secs_f64());
}

/// Something went wrong with an upstream connection.
pub fn upstream_error(kind: UpstreamError) {
    METRICS.upstream_errors[kind as usize].inc();
}

/// A token fetch finished.
pub fn token_refresh(result: Refresh) {
    METRICS.token_refresh[result as usize].inc();
}

/// A step of re-authenticating a live connection.
pub fn reauth(event: ReauthEvent) {
    METRICS.reauth[event as usize].inc();
}

/// Renders every metric; `token_expires_at` is when the current credential
/// expires (`None`: there is none, or it never expires).
pub fn render(token_expires_at: Option<SystemTime>) -> String {
    let mut out = String::with_capacity(4096);
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(AtScrape { token_expires_at }));
    // Writing to a String cannot fail; the encoder's error type is fmt::Error.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &METRICS.registry)
        .and_then(|()| prometheus_client::encoding::text::encode_registry(&mut out, &scrape))
        .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut out));
    out
}

/// The handles, made at first use and registered once.
struct Metrics {
    registry: Registry,
    client_connections: Gauge,
    accepted: Counter,
    rejected: Counter,
    connect_seconds: Histogram,
    commands: Counter,
    /// Indexed by `Direction as usize`.
    bytes: [Counter; 2],
    /// Indexed by `UpstreamError as usize`.
    upstream_errors: [Counter; 6],
    /// Indexed by `Refresh as usize`.
    token_refresh: [Counter; 2],
    /// Indexed by `ReauthEvent as usize`.
    reauth: [Counter; 4],
    cluster: cluster::ClusterMetrics,
}

type Labels = [(&'static str, &'static str); 1];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let client_connections = Gauge::default();
        registry.register(
            "redauth_client_connections",
            "Client connections open now",
            client_connections.clone(),
        );
        let accepted = Counter::default();
        registry.register(
            "redauth_client_connections_accepted",
            "Client connections accepted",
            accepted.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "redauth_client_connections_rejected",
            "Client connections refused because --max-connections were open",
            rejected.clone(),
        );
        // 1 ms to ~16 s: a local TLS handshake to an Azure region's slowest.
        let connect_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15),
        );
        registry.register_with_unit(
            "redauth_upstream_connect",
            "Time to dial, TLS-handshake and authenticate an upstream connection",
            Unit::Seconds,
            connect_seconds.clone(),
        );
        let commands = Counter::default();
        registry.register(
            "redauth_commands",
            "Commands relayed from clients",
            commands.clone(),
        );
        let bytes = labelled(
            &mut registry,
            "redauth_bytes",
            "Bytes relayed, by direction",
            "direction",
            Direction::ALL.map(Direction::label),
        );
        let upstream_errors = labelled(
            &mut registry,
            "redauth_upstream_errors",
            "Upstream connections that failed, by what failed",
            "kind",
            UpstreamError::ALL.map(UpstreamError::label),
        );
        registry.register(
            "redauth_build",
            "The version and git commit of this build",
            prometheus_client::metrics::info::Info::new([
                ("version", crate::version::VERSION),
                ("commit", crate::version::COMMIT),
            ]),
        );
        let token_refresh = labelled(
            &mut registry,
            "redauth_token_refresh",
            "Token fetches, by result",
            "result",
            Refresh::ALL.map(Refresh::label),
        );
        let reauth = labelled(
            &mut registry,
            "redauth_reauth",
            "Re-authentications of live connections: AUTHs injected, deferred to a safe point, accepted (ok) and refused (failed).",
            "result",
            ReauthEvent::ALL.map(ReauthEvent::label),
        );
        let cluster = cluster::ClusterMetrics::register(&mut registry);
        Metrics {
            registry,
            cluster,
            client_connections,
            accepted,
            rejected,
            connect_seconds,
            commands,
            bytes,
            upstream_errors,
            token_refresh,
            reauth,
        }
    }
}

/// Registers a counter family with one label of `values`, and returns a
/// handle per value, in order (every value shows from the start, at 0).
fn labelled<const N: usize>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    key: &'static str,
    values: [&'static str; N],
) -> [Counter; N] {
    let family = Family::<Labels, Counter>::default();
    let handles = values.map(|value| family.get_or_create(&[(key, value)]).clone());
    registry.register(name, help, family);
    handles
}

/// The family read when scraped.
#[derive(Debug)]
struct AtScrape {
    token_expires_at: Option<SystemTime>,
}

impl Collector for AtScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(left) = expires_in(self.token_expires_at, SystemTime::now()) {
            let gauge = ConstGauge::new(left);
            let metric = encoder.encode_descriptor(
                "redauth_token_expiry",
                "Time until the current credential expires (absent when none is held or it never expires).",
                Some(&Unit::Seconds),
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// Seconds a credential expiring at `expires` has left (0 once expired), or
/// `None` when there is none or it never expires.
fn expires_in(expires: Option<SystemTime>, now: SystemTime) -> Option<f64> {
    let expires = expires?;
    Some(
        expires
            .duration_since(now)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line starting with `series ` in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("a number"))
    }

    #[test]
    fn every_family_is_rendered_with_its_labels() {
        commands(3);
        bytes(Direction::ClientToUpstream, 10);
        bytes(Direction::UpstreamToClient, 7);
        upstream_connected(Duration::from_millis(5));
        upstream_error(UpstreamError::Tls);
        token_refresh(Refresh::Ok);
        client_opened();
        client_closed();
        client_rejected();
        reauth(ReauthEvent::Injected);
        let text = render(None);
        assert!(text.ends_with("# EOF\n"), "{text}");
        for series in [
            "redauth_client_connections",
            "redauth_client_connections_accepted_total",
            "redauth_client_connections_rejected_total",
            "redauth_commands_total",
            "redauth_bytes_total{direction=\"client_to_upstream\"}",
            "redauth_bytes_total{direction=\"upstream_to_client\"}",
            "redauth_upstream_connect_seconds_count",
            "redauth_upstream_connect_seconds_bucket{le=\"+Inf\"}",
            "redauth_upstream_errors_total{kind=\"connect\"}",
            "redauth_upstream_errors_total{kind=\"tls\"}",
            "redauth_upstream_errors_total{kind=\"closed\"}",
            "redauth_token_refresh_total{result=\"ok\"}",
            "redauth_token_refresh_total{result=\"failed\"}",
            "redauth_reauth_total{result=\"ok\"}",
            "redauth_reauth_total{result=\"failed\"}",
            "redauth_reauth_total{result=\"deferred\"}",
            "redauth_reauth_total{result=\"injected\"}",
        ] {
            assert!(sample(&text, series).is_some(), "{series} missing:\n{text}");
        }
        // Other tests count too (the handles are process-wide): at least ours.
        assert!(sample(&text, "redauth_commands_total").unwrap() >= 3.0);
        assert!(sample(&text, "redauth_upstream_connect_seconds_count").unwrap() >= 1.0);
        assert!(sample(&text, "redauth_upstream_errors_total{kind=\"tls\"}").unwrap() >= 1.0);
        // A credential that never expires has no expiry gauge.
        assert!(!text.contains("redauth_token_expiry_seconds "), "{text}");
    }

    #[test]
    fn the_expiry_gauge_counts_down_and_stops_at_zero() {
        let now = SystemTime::now();
        let left = expires_in(Some(now + Duration::from_secs(90)), now).unwrap();
        assert!((left - 90.0).abs() < 1e-6, "{left}");
        assert_eq!(
            expires_in(Some(now - Duration::from_secs(1)), now),
            Some(0.0)
        );
        assert_eq!(expires_in(None, now), None);
    }
}
