//! Whether redauth can reach and authenticate to the upstream: the outcome of
//! recent dials, for the readiness probe.
//!
//! Every dial ([`super::Connector::connect`], whoever asked for it: the warm
//! pool, a session, the probe) is recorded in one [`DialHealth`]. The verdict
//! ([`DialHealth::verdict`]) fails when the server refused the credential on
//! the latest dial (no retry changes that until the credential does), or when
//! the last [`FAILURES_BEFORE_UNREADY`] dials in a row failed for any other
//! reason (one lost dial is a blip, not an outage). The first dial that
//! succeeds clears it.
//!
//! Without traffic nothing would dial, and a broken credential would go
//! unnoticed until a client came, or a fixed one until the pool's backoff
//! ran out; [`probe`] dials once at startup and then every
//! [`PROBE_INTERVAL`] while the verdict is failing. This module does not
//! decide what a failure means for clients: sessions report their own.

use super::connect::{read_reply, ConnectError, Stage};
use super::Connector;
use crate::credentials::CredentialFeed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Consecutive failed dials (other than a refused credential) after which
/// redauth stops calling itself ready.
pub const FAILURES_BEFORE_UNREADY: u32 = 3;

/// How often [`probe`] dials while the verdict is failing.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The recent outcome of dials to the upstream; shared by the connector and
/// the readiness probe.
#[derive(Debug, Default)]
pub struct DialHealth {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Failed dials since the last one that succeeded.
    failures: u32,
    /// Why the latest failed dial failed; `None` after a success.
    last_error: Option<ConnectError>,
    /// When the latest dial ended, whatever its outcome.
    last_dial: Option<Instant>,
}

impl DialHealth {
    pub fn new() -> Arc<DialHealth> {
        Arc::new(DialHealth::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a dial's outcome.
    pub fn record(&self, outcome: Result<(), &ConnectError>) {
        let mut state = self.lock();
        state.last_dial = Some(Instant::now());
        match outcome {
            Ok(()) => {
                if state.failures >= FAILURES_BEFORE_UNREADY || refused(&state.last_error) {
                    tracing::info!("the upstream accepts connections again");
                }
                state.failures = 0;
                state.last_error = None;
            }
            Err(e) => {
                // Said once per spell, when it starts; sessions and the pool
                // say the rest at lower levels.
                if credential_refused(e) && !refused(&state.last_error) {
                    tracing::error!(error = %e, "the upstream refused the credential; new clients get an error until it accepts one");
                } else if !credential_refused(e) && state.failures + 1 == FAILURES_BEFORE_UNREADY {
                    tracing::warn!(error = %e, "{FAILURES_BEFORE_UNREADY} upstream dials in a row failed; not ready until one succeeds");
                }
                state.failures = state.failures.saturating_add(1);
                state.last_error = Some(e.clone());
            }
        }
    }

    /// `Ok` unless recent dials say the upstream cannot be used now; the
    /// reason is one line, without any secret (a [`ConnectError`] holds none).
    pub fn verdict(&self) -> Result<(), String> {
        let state = self.lock();
        match &state.last_error {
            Some(e) if credential_refused(e) => Err(e.to_string()),
            Some(e) if state.failures >= FAILURES_BEFORE_UNREADY => Err(format!(
                "the last {} upstream dials failed: {e}",
                state.failures
            )),
            _ => Ok(()),
        }
    }

    /// Whether a dial is owed: none has been made yet, or the verdict fails
    /// and none was made in the last [`PROBE_INTERVAL`].
    fn probe_due(&self, now: Instant) -> bool {
        let failing = self.verdict().is_err();
        let state = self.lock();
        match state.last_dial {
            None => true,
            Some(at) => failing && now.duration_since(at) >= PROBE_INTERVAL,
        }
    }
}

fn refused(error: &Option<ConnectError>) -> bool {
    error.as_ref().is_some_and(credential_refused)
}

/// Whether the server said no to the credential itself (`WRONGPASS`, or an
/// older server's `invalid password`), as opposed to an error reply that a
/// retry may not meet (`LOADING`, `max number of clients reached`).
pub fn credential_refused(e: &ConnectError) -> bool {
    e.stage == Stage::Auth
        && (e.cause.starts_with("WRONGPASS")
            || e.cause.contains("invalid password")
            || e.cause.contains("invalid username-password"))
}

/// Dials once when nothing else has (soon after startup), and then while
/// the verdict fails, so readiness finds out, and recovers, without traffic.
/// A successful probe connection is closed at once. Runs for the life of
/// the process.
pub async fn probe(connector: Connector, credentials: CredentialFeed, health: Arc<DialHealth>) {
    // Give the warm pool's first dials the chance to speak first.
    tokio::time::sleep(PROBE_INTERVAL / 4).await;
    loop {
        if health.probe_due(Instant::now()) {
            // No credential: the credential state already explains readiness.
            if let Ok(credential) = credentials.current(Duration::ZERO).await {
                // The outcome is recorded by the connector itself.
                if let Ok(upstream) = connector.connect(&credential).await {
                    drop(upstream);
                }
            }
        }
        tokio::time::sleep(PROBE_INTERVAL / 2).await;
    }
}

/// `--run-connection-test`: waits (up to `wait`) for a credential, then
/// dials, handshakes, authenticates and sends one `PING`, as a session
/// would. Says how long it took, or what failed, on one line.
pub async fn connection_test(
    connector: &Connector,
    credentials: &CredentialFeed,
    wait: Duration,
) -> Result<Duration, String> {
    let credential = credentials.current(wait).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut upstream = connector
        .connect(&credential)
        .await
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let sent = match upstream.stream.write_all(b"*1\r\n$4\r\nPING\r\n").await {
            Ok(()) => upstream.stream.flush().await,
            Err(e) => Err(e),
        };
        sent.map_err(|e| format!("sending PING: {e}"))?;
        read_reply(&mut upstream.stream, &mut upstream.pending).await
    };
    let reply = tokio::time::timeout(connector.timeout(), exchange)
        .await
        .map_err(|_| "no reply to PING in time".to_string())??;
    if &reply[..] != b"+PONG\r\n" {
        let text = String::from_utf8_lossy(&reply[..reply.len().min(80)]);
        return Err(format!("PING was answered {:?}", text.trim_end()));
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stage: Stage) -> ConnectError {
        ConnectError {
            stage,
            addr: "cache.example:6380".into(),
            cause: match stage {
                Stage::Auth => "WRONGPASS invalid username-password pair".into(),
                _ => "why".into(),
            },
        }
    }

    #[test]
    fn a_refused_credential_fails_at_once_and_a_success_clears_it() {
        let health = DialHealth::default();
        assert_eq!(health.verdict(), Ok(()));
        health.record(Err(&failed(Stage::Auth)));
        let reason = health.verdict().unwrap_err();
        assert!(
            reason.starts_with("upstream rejected the credential (cache.example:6380)"),
            "{reason}"
        );
        health.record(Ok(()));
        assert_eq!(health.verdict(), Ok(()));
        let busy = ConnectError {
            cause: "LOADING Redis is loading the dataset in memory".into(),
            ..failed(Stage::Auth)
        };
        health.record(Err(&busy));
        assert_eq!(health.verdict(), Ok(()), "not a verdict on the credential");
    }

    #[test]
    fn other_failures_count_only_in_a_row() {
        let health = DialHealth::default();
        for _ in 1..FAILURES_BEFORE_UNREADY {
            health.record(Err(&failed(Stage::Dial)));
            assert_eq!(health.verdict(), Ok(()), "a blip is not an outage");
        }
        health.record(Err(&failed(Stage::Tls)));
        let reason = health.verdict().unwrap_err();
        assert!(
            reason.starts_with("the last 3 upstream dials failed: TLS handshake"),
            "{reason}"
        );
        health.record(Ok(()));
        health.record(Err(&failed(Stage::Timeout)));
        assert_eq!(health.verdict(), Ok(()), "the count starts again");
    }

    #[test]
    fn a_probe_is_owed_first_and_then_only_while_failing() {
        let health = DialHealth::default();
        let now = Instant::now();
        assert!(health.probe_due(now), "nothing has dialed yet");
        health.record(Ok(()));
        assert!(!health.probe_due(now + PROBE_INTERVAL * 10));
        health.record(Err(&failed(Stage::Auth)));
        assert!(!health.probe_due(Instant::now()), "one was just made");
        assert!(health.probe_due(Instant::now() + PROBE_INTERVAL));
    }
}
