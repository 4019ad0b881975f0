//! Re-authenticating a live connection when a new credential is published.
//!
//! The request side injects `AUTH <user> <token>` between two client commands
//! and the reply side consumes exactly its reply. Whether that is safe at a
//! given point of the command stream depends on the server-side state the
//! commands so far have produced, which [`StreamState`] follows from the
//! commands alone (their replies may still be in flight):
//!
//! - inside `MULTI` Redis would queue the AUTH and answer it inside the EXEC
//!   array: wait for EXEC or DISCARD (a re-authentication pending when MULTI
//!   comes goes just before it, as a transaction may outlast the token);
//! - a RESP2 connection with subscriptions refuses AUTH: redauth runs such a
//!   connection in RESP3 (see `requests`), and only one it could not switch
//!   (subscribed inside MULTI or with replies off) waits until it has none;
//! - under `CLIENT REPLY SKIP` the AUTH's reply would be the one skipped:
//!   wait for the skip to pass (under `CLIENT REPLY OFF` the AUTH is wrapped
//!   in `CLIENT REPLY ON` … `OFF`);
//! - a MONITOR feed or replication stream takes no more commands;
//! - a blocking command running in slices takes the AUTH between two slices
//!   (see [`super::blocking`]).
//!
//! Connections are spread over a window after each publication
//! ([`delay`]) so thousands of them do not AUTH in the same instant.
//! What happened is counted in [`crate::metrics::reauth`].

use crate::resp::command::SubscribeKind;
use bytes::Bytes;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// The widest window re-authentications are spread over (after a publication,
/// and across the ends of blocking-command slices).
pub const MAX_SPREAD: Duration = Duration::from_secs(60);

/// How long after a new credential is published a connection whose current
/// token expires at `expires` should re-authenticate; `jitter` is in `[0, 1)`.
/// The window is half the time the current token has left, at most
/// [`MAX_SPREAD`], so even 5-second test tokens are renewed in time.
pub fn delay(now: SystemTime, expires: Option<SystemTime>, jitter: f64) -> Duration {
    let left = expires
        .and_then(|e| e.duration_since(now).ok())
        .unwrap_or_default();
    (left / 2).min(MAX_SPREAD).mul_f64(jitter.clamp(0.0, 1.0))
}

/// Why an injection must wait, or `None` when it can go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Blocker {
    Multi,
    SubscribedResp2,
    ReplySkip,
    MidCommand,
    Raw,
    /// A blocking command is running in slices; the next slice takes it.
    Blocked,
}

/// The server-side connection state as the commands sent so far will leave
/// it, as far as re-authentication cares.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    pub resp3: bool,
    /// Channels, patterns and shard channels subscribed to.
    subscriptions: [HashSet<Bytes>; 3],
    /// SUBSCRIBE-family commands queued in the open MULTI (`None`: channels
    /// too large to read).
    queued: Vec<(SubscribeKind, Option<Vec<Bytes>>)>,
    /// A subscribe command too large to read: assume subscribed.
    unknown: bool,
}

impl StreamState {
    pub fn subscribed(&self) -> bool {
        self.unknown || self.subscriptions.iter().any(|s| !s.is_empty())
    }

    /// A SUBSCRIBE-family command with its arguments (`None` if too large to
    /// hold), outside MULTI; inside MULTI it is queued until EXEC.
    pub fn subscribe(&mut self, kind: SubscribeKind, args: Option<&[Bytes]>, in_multi: bool) {
        let channels = args.map(|args| args.get(1..).unwrap_or_default().to_vec());
        if in_multi {
            self.queued.push((kind, channels));
        } else {
            self.apply(kind, channels);
        }
    }

    /// Whether the open MULTI queued a SUBSCRIBE-family command.
    pub fn queued_any(&self) -> bool {
        !self.queued.is_empty()
    }

    fn apply(&mut self, kind: SubscribeKind, channels: Option<Vec<Bytes>>) {
        let Some(channels) = channels else {
            self.unknown = kind.adds() || self.unknown;
            return;
        };
        let set = &mut self.subscriptions[kind.set()];
        match (kind.adds(), channels.is_empty()) {
            // SUBSCRIBE with no channel is an arity error: no change.
            (true, true) => {}
            (true, false) => set.extend(channels),
            (false, true) => set.clear(),
            (false, false) => channels.iter().for_each(|c| {
                set.remove(c);
            }),
        }
    }

    /// EXEC: the queued subscriptions take effect.
    pub fn exec(&mut self) {
        for (kind, channels) in std::mem::take(&mut self.queued) {
            self.apply(kind, channels);
        }
    }

    /// DISCARD: the queued subscriptions never happen.
    pub fn discard(&mut self) {
        self.queued.clear();
    }

    /// RESET: RESP2, no subscriptions.
    pub fn reset(&mut self) {
        *self = StreamState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn the_spread_is_half_the_time_left_at_most_a_minute() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let in_secs = |s| Some(now + Duration::from_secs(s));
        assert_eq!(delay(now, in_secs(2), 0.999_999).as_millis(), 999);
        assert_eq!(delay(now, in_secs(2), 0.0), Duration::ZERO);
        assert_eq!(delay(now, in_secs(1200), 0.5), Duration::from_secs(30));
        assert_eq!(delay(now, None, 0.5), Duration::ZERO);
        assert_eq!(
            delay(now, Some(now - Duration::from_secs(1)), 0.5),
            Duration::ZERO
        );
    }

    #[test]
    fn subscriptions_follow_the_commands() {
        let mut s = StreamState::default();
        let sub = SubscribeKind::Subscribe;
        let unsub = SubscribeKind::Unsubscribe;
        s.subscribe(sub, Some(&[b("SUBSCRIBE"), b("a"), b("b")]), false);
        assert!(s.subscribed());
        s.subscribe(unsub, Some(&[b("UNSUBSCRIBE"), b("a")]), false);
        assert!(s.subscribed());
        s.subscribe(
            SubscribeKind::PUnsubscribe,
            Some(&[b("PUNSUBSCRIBE")]),
            false,
        );
        assert!(s.subscribed(), "patterns are another set");
        s.subscribe(unsub, Some(&[b("UNSUBSCRIBE")]), false);
        assert!(!s.subscribed());
    }

    #[test]
    fn subscriptions_in_multi_count_from_exec_and_vanish_on_discard() {
        let mut s = StreamState::default();
        let args = [b("PSUBSCRIBE"), b("p*")];
        s.subscribe(SubscribeKind::PSubscribe, Some(&args), true);
        assert!(!s.subscribed());
        s.discard();
        s.exec();
        assert!(!s.subscribed());
        s.subscribe(SubscribeKind::PSubscribe, Some(&args), true);
        s.exec();
        assert!(s.subscribed());
        s.reset();
        assert!(!s.subscribed() && !s.resp3);
    }
}
