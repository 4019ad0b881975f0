//! Re-authenticating a live connection when a new credential is published.
//!
//! The request side injects `AUTH <user> <token>` between two client commands
//! and the reply side consumes exactly its reply. [`Reauth::take_if_safe`]
//! alone decides when. Whether it is safe at a given point of the command
//! stream depends on the server-side state the commands so far have produced
//! ([`super::state::Sent::reauth_blocker`]; their replies may still be in
//! flight):
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
//!   (see [`super::slicer`]).
//!
//! Connections are spread over a window after each publication
//! ([`delay`]) so thousands of them do not AUTH in the same instant.
//! What happened is counted in [`crate::metrics::reauth`].

use super::state::Blocker;
use crate::credentials::{ConnectionLimit, Credential};
use crate::metrics;
use crate::upstream::auth;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

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

/// How long before a connection-age limit ([`ConnectionLimit::AfterAuth`])
/// a connection re-authenticates at the latest: ten minutes before AWS's 12
/// hours, half the time left for a limit shortened in tests.
pub const AGE_LIMIT_LEAD: Duration = Duration::from_secs(600);

/// How long from `now` a connection that must authenticate again by
/// `deadline` (a connection-age limit, not the token's expiry) should do so:
/// [`AGE_LIMIT_LEAD`] before it (at most half the time left), spread back
/// over up to [`MAX_SPREAD`]. A new token comes every few minutes; only the
/// newest is sent, once, near the limit (the one in use again if nothing
/// newer came and it is still good).
pub fn delay_to_limit(now: SystemTime, deadline: Option<SystemTime>, jitter: f64) -> Duration {
    let left = deadline
        .and_then(|d| d.duration_since(now).ok())
        .unwrap_or_default();
    let latest = left - (left / 2).min(AGE_LIMIT_LEAD);
    latest - (latest / 2).min(MAX_SPREAD).mul_f64(jitter.clamp(0.0, 1.0))
}

/// The credential a connection is authenticated with, and a newer one
/// waiting for its time and a safe point: the one place that decides when a
/// live connection re-authenticates.
#[derive(Debug)]
pub(super) struct Reauth {
    current: Arc<Credential>,
    /// When the connection last authenticated (for a connection-age limit).
    authed_at: SystemTime,
    /// Under a connection-age limit: when to authenticate again, with the
    /// pending credential or else the current one.
    renew: Option<Instant>,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    credential: Arc<Credential>,
    due: Instant,
    /// Already counted as deferred.
    deferred: bool,
}

/// When [`Reauth::take_if_safe`] may take a pending credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum When {
    /// Once it is due (checked after every read).
    Due(Instant),
    /// Now, due or not: just before something the connection could not take
    /// an AUTH during (a transaction, a blocked command, the next slice).
    Early,
}

impl Reauth {
    /// A connection that authenticated with `current` at `authed_at`.
    pub fn new(current: Arc<Credential>, authed_at: SystemTime) -> Reauth {
        let mut reauth = Reauth {
            current,
            authed_at,
            renew: None,
            pending: None,
        };
        reauth.plan_renewal();
        reauth
    }

    /// Under a connection-age limit, when to authenticate again even if
    /// nothing newer is published ([`delay_to_limit`]).
    fn plan_renewal(&mut self) {
        self.renew = match self.current.limit {
            ConnectionLimit::TokenExpiry => None,
            ConnectionLimit::AfterAuth { .. } => Some(
                Instant::now() + delay_to_limit(SystemTime::now(), self.deadline(), rand::random()),
            ),
        };
    }

    /// The connection authenticates (again) with `credential` now.
    fn authenticated(&mut self, credential: Arc<Credential>) {
        self.current = credential;
        self.authed_at = SystemTime::now();
        self.plan_renewal();
    }

    /// When the connection must have authenticated again ([`Credential::renew_by`]).
    pub fn deadline(&self) -> Option<SystemTime> {
        self.current.renew_by(self.authed_at)
    }

    /// A new credential was published: re-authenticate within a window
    /// before the current one expires ([`delay`]), or at the renewal planned
    /// for the connection's age limit; a newer one replaces one still
    /// pending, keeping its time.
    pub fn published(&mut self, credential: Arc<Credential>, now: Instant, jitter: f64) {
        let due = match (&self.pending, self.renew) {
            (Some(pending), _) => pending.due,
            (None, Some(renew)) => renew,
            (None, None) => now + delay(SystemTime::now(), self.deadline(), jitter),
        };
        self.pending = Some(Pending {
            credential,
            due,
            deferred: false,
        });
    }

    /// When to wake for a pending re-authentication still ahead of `now`
    /// (one that is due but blocked waits for the client's next bytes).
    pub fn wake_at(&self, now: Instant) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|p| p.due)
            .or(self.renew)
            .filter(|&due| due > now)
    }

    /// The pending credential, if `when` allows and nothing blocks an AUTH
    /// (`blocker`); it becomes the current one. A due one that is blocked is
    /// counted (once) as deferred.
    pub fn take_if_safe(
        &mut self,
        blocker: Option<Blocker>,
        when: When,
    ) -> Option<Arc<Credential>> {
        let Some(pending) = self.pending.as_mut() else {
            return self.renew_if_due(blocker, when);
        };
        if let When::Due(now) = when {
            if now < pending.due {
                return None;
            }
        }
        if let Some(blocker) = blocker {
            if matches!(when, When::Due(_)) && !pending.deferred {
                pending.deferred = true;
                metrics::reauth(metrics::ReauthEvent::Deferred);
                tracing::debug!(?blocker, "re-authentication deferred");
            }
            return None;
        }
        let pending = self.pending.take()?;
        self.authenticated(pending.credential.clone());
        Some(pending.credential)
    }

    /// Nothing newer was published by the renewal planned for an age limit:
    /// the credential in use again, if it is still good and nothing blocks.
    fn renew_if_due(&mut self, blocker: Option<Blocker>, when: When) -> Option<Arc<Credential>> {
        // Before something that could not take an AUTH, too, once the renewal is due.
        let now = match when {
            When::Due(now) => now,
            When::Early => Instant::now(),
        };
        let usable = !self
            .current
            .expired_at(SystemTime::now() + crate::credentials::USABLE_MARGIN);
        if self.renew.is_none_or(|at| now < at) || blocker.is_some() || !usable {
            return None;
        }
        let current = self.current.clone();
        self.authenticated(current.clone());
        Some(current)
    }

    /// `RESET` drops the connection to the default user; it is authenticated
    /// again with the newest credential, which settles a pending one.
    pub fn settle(&mut self) -> &Arc<Credential> {
        let credential = match self.pending.take() {
            Some(pending) => pending.credential,
            None => self.current.clone(),
        };
        self.authenticated(credential);
        &self.current
    }
}

/// Counts and logs the server's answer to an injected re-authentication (a
/// refusal leaves the connection with the identity it had).
pub(super) fn answered(reply: &[u8]) {
    match auth::judge(reply) {
        Ok(()) => {
            metrics::reauth(metrics::ReauthEvent::Ok);
            tracing::debug!("re-authenticated with the new credential");
        }
        Err(refused) => {
            metrics::reauth(metrics::ReauthEvent::Failed);
            tracing::warn!(
                reply = %refused,
                "the server refused re-authentication; the connection keeps its current identity"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

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
    fn near_an_age_limit_only_the_last_stretch_is_spread_over() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let in_secs = |s| Some(now + Duration::from_secs(s));
        let twelve_hours = 12 * 3600;
        let latest = Duration::from_secs(twelve_hours - 600);
        assert_eq!(delay_to_limit(now, in_secs(twelve_hours), 0.0), latest);
        assert_eq!(
            delay_to_limit(now, in_secs(twelve_hours), 0.999_999).as_secs(),
            latest.as_secs() - 60
        );
        // Shortened for a test: half the time left, then a quarter of it spread.
        assert_eq!(
            delay_to_limit(now, in_secs(20), 0.0),
            Duration::from_secs(10)
        );
        assert_eq!(delay_to_limit(now, in_secs(20), 0.5).as_millis(), 7_500);
        assert_eq!(delay_to_limit(now, None, 0.5), Duration::ZERO);
        assert_eq!(
            delay_to_limit(now, Some(now - Duration::from_secs(1)), 0.5),
            Duration::ZERO
        );
    }

    #[test]
    fn under_an_age_limit_a_connection_renews_near_its_own_deadline() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let aged = |secret: &str| {
            let mut c = Credential::password(None, Secret::new(secret.into()));
            c.expires_at = Some(SystemTime::now() + Duration::from_secs(900));
            c.limit = ConnectionLimit::AfterAuth {
                max_age: hour,
                until: None,
            };
            Arc::new(c)
        };
        let authed = SystemTime::now() - Duration::from_secs(1800);
        let mut r = Reauth::new(aged("old"), authed);
        assert_eq!(r.deadline(), Some(authed + hour));
        r.published(aged("new"), now, 0.0);
        let due = r.wake_at(now).expect("well ahead");
        let ahead = due - now;
        // 30 minutes left: the latest point is 10 minutes before the limit, spread over a minute.
        assert!(
            ahead > Duration::from_secs(1135) && ahead <= Duration::from_secs(1200),
            "{ahead:?}"
        );
        r.published(aged("newer"), now, 0.0);
        let taken = r.take_if_safe(None, When::Due(due)).expect("due");
        assert_eq!(taken.secret.as_ref().unwrap().expose(), "newer");
        let renewed = r.deadline().unwrap();
        assert!(
            renewed > SystemTime::now() + hour - Duration::from_secs(5),
            "counted from the new AUTH"
        );
    }

    #[test]
    fn under_an_age_limit_the_credential_in_use_renews_if_nothing_newer_came() {
        let now = Instant::now();
        let mut c = Credential::password(None, Secret::new("only".into()));
        c.expires_at = Some(SystemTime::now() + Duration::from_secs(900));
        c.limit = ConnectionLimit::AfterAuth {
            max_age: Duration::from_secs(20),
            until: None,
        };
        let mut r = Reauth::new(Arc::new(c), SystemTime::now());
        let at = r.wake_at(now).expect("a renewal is planned");
        assert!(at - now <= Duration::from_secs(10) && at - now >= Duration::from_secs(5));
        assert!(r.take_if_safe(None, When::Due(now)).is_none(), "not yet");
        assert!(r
            .take_if_safe(Some(Blocker::Multi), When::Due(at))
            .is_none());
        let again = r.take_if_safe(None, When::Due(at)).expect("renewed");
        assert_eq!(again.secret.as_ref().unwrap().expose(), "only");
        assert!(r.wake_at(now).is_some(), "and planned again");
    }

    fn credential(secret: &str) -> Arc<Credential> {
        Arc::new(Credential::password(None, Secret::new(secret.into())))
    }

    #[test]
    fn a_due_credential_waits_for_a_safe_point_and_is_deferred_once() {
        let now = Instant::now();
        let mut r = Reauth::new(credential("old"), SystemTime::now());
        assert!(
            r.take_if_safe(None, When::Due(now)).is_none(),
            "nothing pending"
        );
        r.published(credential("new"), now, 0.0);
        assert_eq!(r.wake_at(now), None, "due at once: no wake-up ahead");
        assert!(r
            .take_if_safe(Some(Blocker::Multi), When::Due(now))
            .is_none());
        assert!(r
            .take_if_safe(Some(Blocker::Multi), When::Due(now))
            .is_none());
        assert!(r.pending.as_ref().unwrap().deferred);
        let taken = r.take_if_safe(None, When::Due(now)).expect("safe now");
        assert_eq!(taken.secret.as_ref().unwrap().expose(), "new");
        assert!(Arc::ptr_eq(&r.current, &taken));
        assert!(r.take_if_safe(None, When::Due(now)).is_none(), "taken once");
    }

    #[test]
    fn an_early_take_ignores_the_due_time_but_not_the_blocker() {
        let now = Instant::now();
        let mut expiring = Credential::password(None, Secret::new("old".into()));
        expiring.expires_at = Some(SystemTime::now() + Duration::from_secs(600));
        let mut r = Reauth::new(Arc::new(expiring), SystemTime::now());
        r.published(credential("new"), now, 0.5);
        let due = r.wake_at(now).expect("spread into the future");
        assert!(
            r.take_if_safe(None, When::Due(now)).is_none(),
            "not due yet"
        );
        assert!(r.take_if_safe(Some(Blocker::Raw), When::Early).is_none());
        assert!(
            !r.pending.as_ref().unwrap().deferred,
            "early takes are not deferrals"
        );
        // A newer publication keeps the time already drawn.
        r.published(credential("newer"), now, 0.0);
        assert_eq!(r.wake_at(now), Some(due));
        let taken = r.take_if_safe(None, When::Early).expect("taken early");
        assert_eq!(taken.secret.as_ref().unwrap().expose(), "newer");
    }

    #[test]
    fn reset_settles_on_the_newest_credential() {
        let mut r = Reauth::new(credential("old"), SystemTime::now());
        assert_eq!(r.settle().secret.as_ref().unwrap().expose(), "old");
        r.published(credential("new"), Instant::now(), 0.9);
        assert_eq!(r.settle().secret.as_ref().unwrap().expose(), "new");
        assert!(r.pending.is_none());
    }
}
