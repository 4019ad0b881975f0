//! systemd's readiness protocol (`Type=notify`): `READY=1` once redauth
//! serves (listeners bound, a first credential held), `STOPPING=1` when the
//! drain begins. Through the `sd-notify` crate; nothing is sent when
//! `NOTIFY_SOCKET` is unset (not under systemd), and a failure to send is
//! logged, never fatal.

use sd_notify::NotifyState;

/// Tells systemd redauth is ready.
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Tells systemd redauth is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

fn send(states: &[NotifyState], what: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match sd_notify::notify(states) {
        Ok(()) => tracing::debug!("told systemd {what}"),
        Err(e) => tracing::warn!(error = %e, "could not tell systemd {what}"),
    }
}
