//! How redauth stops: what may ask it to, the phases of the drain, and the
//! exit status each outcome leads to.
//!
//! A stop is requested by SIGTERM, SIGINT, `POST /quitquitquit`, or a
//! credential problem no retry can fix ([`Stop`]). Then:
//!
//! 1. `/readyz` fails at once (`draining`), so load balancers and Kubernetes
//!    stop sending new clients;
//! 2. clients are still accepted for `--min-shutdown-delay` (default 0), for
//!    peers that have not yet noticed;
//! 3. the listeners close, and open clients may finish — a client blocked in
//!    `BLPOP` is served to the end — for at most `--max-shutdown-delay`;
//! 4. whatever is still open then is closed.
//!
//! [`exit_status`] maps the outcome to the process's exit status. Binding
//! the listeners and serving are [`crate::server`]'s job, not this module's.

use crate::admin::Health;
use crate::config::ShutdownPolicy;
use crate::credentials::refresher::Fatal;
use crate::server::Signal;
use std::fmt;
use std::future::Future;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Exit status after a clean shutdown (SIGINT, `/quitquitquit`, or SIGTERM
/// with `--exit-zero-on-sigterm`).
pub const EXIT_CLEAN: u8 = 0;
/// Exit status when startup failed (an unusable certificate, the runtime).
pub const EXIT_STARTUP: u8 = 1;
/// Exit status for a configuration error (an address that cannot be bound
/// included), or a credential no retry can fix.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the drain period ran out and connections were cut.
pub const EXIT_DRAIN_CUT: u8 = 3;
/// Exit status after SIGTERM (128 + 15, as a shell reports a process the
/// signal killed).
pub const EXIT_SIGTERM: u8 = 143;

/// Why redauth stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Signal(Signal),
    /// `POST /quitquitquit`.
    Quit,
    /// A credential problem no retry can fix (a token without `oid` and no
    /// `--username`).
    Fatal(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Signal(Signal::Terminate) => f.write_str("SIGTERM"),
            Stop::Signal(Signal::Interrupt) => f.write_str("SIGINT"),
            Stop::Quit => f.write_str("POST /quitquitquit"),
            Stop::Fatal(why) => write!(f, "redauth cannot authenticate: {why}"),
        }
    }
}

/// The exit status for a stop, given how many sessions the drain had to cut.
pub fn exit_status(stop: &Stop, cut: usize, policy: &ShutdownPolicy) -> u8 {
    match stop {
        Stop::Fatal(_) => EXIT_CONFIG,
        _ if cut > 0 => EXIT_DRAIN_CUT,
        Stop::Signal(Signal::Terminate) if !policy.exit_zero_on_sigterm => EXIT_SIGTERM,
        _ => EXIT_CLEAN,
    }
}

/// Waits for the first reason to stop: `signal` (from
/// [`crate::server::shutdown_signal`], called early so no signal is lost), a
/// `/quitquitquit` through `health`, or the refresher ending with a fatal
/// error.
pub async fn wait_for_stop(
    signal: impl Future<Output = Signal>,
    health: &Health,
    refresher: Option<JoinHandle<Option<Fatal>>>,
) -> Stop {
    tokio::select! {
        signal = signal => Stop::Signal(signal),
        _ = health.quit_requested() => Stop::Quit,
        Some(fatal) = watch_refresher(refresher) => Stop::Fatal(fatal.0),
    }
}

/// Runs the drain: readiness fails, accepting goes on for the policy's
/// minimum delay (not after a fatal error: no client could be served), then
/// `stop_accepting` is sent and `serving` (the server, which waits at most the
/// maximum delay for open sessions) is awaited. Returns how many sessions
/// were cut.
pub async fn drain(
    stop: &Stop,
    health: &Health,
    policy: &ShutdownPolicy,
    stop_accepting: watch::Sender<bool>,
    serving: JoinHandle<usize>,
) -> usize {
    health.begin_draining();
    crate::notify::stopping();
    let accept_for = match stop {
        Stop::Fatal(_) => std::time::Duration::ZERO,
        _ => policy.min_delay,
    };
    match stop {
        Stop::Fatal(why) => {
            tracing::error!(error = %why, "redauth cannot authenticate; stopping")
        }
        _ => tracing::info!(
            reason = %stop,
            accepting_for = %humantime::format_duration(accept_for),
            then_waiting_at_most = %humantime::format_duration(policy.max_delay),
            "draining: /readyz now fails"
        ),
    }
    tokio::time::sleep(accept_for).await;
    let _ = stop_accepting.send(true);
    let cut = match serving.await {
        Ok(cut) => cut,
        Err(error) => {
            tracing::error!(%error, "the server task failed");
            0
        }
    };
    if cut > 0 {
        tracing::warn!(
            sessions = cut,
            "the drain period ran out: closing the sessions still open"
        );
    } else {
        tracing::info!("every session has finished; exiting");
    }
    cut
}

/// Resolves with the refresher's fatal error, if it ever has one.
async fn watch_refresher(task: Option<JoinHandle<Option<Fatal>>>) -> Option<Fatal> {
    let outcome = match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    };
    match outcome {
        Ok(fatal) => fatal,
        Err(e) => Some(Fatal(format!("the token refresher failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        let policy = ShutdownPolicy::default();
        let lenient = ShutdownPolicy {
            exit_zero_on_sigterm: true,
            ..policy
        };
        let term = Stop::Signal(Signal::Terminate);
        let int = Stop::Signal(Signal::Interrupt);
        assert_eq!(exit_status(&term, 0, &policy), 143);
        assert_eq!(exit_status(&term, 0, &lenient), 0);
        assert_eq!(exit_status(&int, 0, &policy), 0);
        assert_eq!(exit_status(&Stop::Quit, 0, &policy), 0);
        for stop in [&term, &int, &Stop::Quit] {
            assert_eq!(exit_status(stop, 2, &lenient), 3, "{stop}");
        }
        assert_eq!(exit_status(&Stop::Fatal("no oid".into()), 1, &policy), 2);
    }
}
