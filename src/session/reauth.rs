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
//! A credential under [`ConnectionLimit::None`] (Memorystore, `--reauth
//! never`) is never injected: a publication is only kept for a `RESET`,
//! which needs a good token to authenticate again, and blocking commands are
//! never sliced (no [`Reauth::deadline`]).
//!
//! Connections are spread over a window after each publication
//! ([`delay`]) so thousands of them do not AUTH in the same instant.
//! What happened is counted in [`crate::metrics::reauth`].
//!
//! The reply side reports each answer back ([`Verdict`], through
//! [`Reauth::answer`]): a refused AUTH leaves the connection with the identity
//! and the deadline of its last accepted one, and one refused as transient
//! (the IAM service busy or rate-limiting) is tried again
//! [`retry_after_busy`] later, well before that deadline.

use super::state::Blocker;
use crate::credentials::{ConnectionLimit, Credential};
use crate::metrics;
use crate::upstream::auth;
use std::collections::VecDeque;
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

/// How long after an AUTH refused as transient a connection whose deadline
/// is `deadline` tries again: 15 to 30 seconds (`jitter` in `[0, 1)`), at
/// most half the time left.
pub fn retry_after_busy(now: SystemTime, deadline: Option<SystemTime>, jitter: f64) -> Duration {
    let wait = BUSY_RETRY.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    match deadline.map(|d| d.duration_since(now).unwrap_or_default()) {
        Some(left) => wait.min(left / 2),
        None => wait,
    }
}

/// The longest wait before an AUTH refused as transient is tried again.
const BUSY_RETRY: Duration = Duration::from_secs(30);

/// The credential a connection is authenticated with, and a newer one
/// waiting for its time and a safe point: the one place that decides when a
/// live connection re-authenticates.
#[derive(Debug)]
pub(crate) struct Reauth {
    /// What the connection is taken to be authenticated with: the last AUTH
    /// sent, until its answer says otherwise.
    current: Arc<Credential>,
    /// When the connection last authenticated (for a connection-age limit).
    authed_at: SystemTime,
    /// Under a connection-age limit: when to authenticate again, with the
    /// pending credential or else the current one.
    renew: Option<Instant>,
    /// The last AUTH the server accepted, and when it was sent.
    confirmed: (Arc<Credential>, SystemTime),
    /// Injected AUTHs whose answers have not come back, oldest first.
    in_flight: VecDeque<(Arc<Credential>, SystemTime)>,
    pending: Option<Pending>,
    /// Under [`ConnectionLimit::None`]: the newest credential published,
    /// never injected, for a `RESET` to authenticate with.
    newest: Option<Arc<Credential>>,
}

/// The server's answer to an injected re-authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    /// Refused: the credential itself, or anything not known to pass.
    Refused,
    /// Refused as transient ([`auth::Refused::transient`]): try again later.
    Busy,
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
pub(crate) enum When {
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
            confirmed: (current.clone(), authed_at),
            current,
            authed_at,
            renew: None,
            in_flight: VecDeque::new(),
            pending: None,
            newest: None,
        };
        reauth.plan_renewal();
        reauth
    }

    /// Under a connection-age limit, when to authenticate again even if
    /// nothing newer is published ([`delay_to_limit`]).
    fn plan_renewal(&mut self) {
        self.renew = match self.current.limit {
            ConnectionLimit::TokenExpiry | ConnectionLimit::None => None,
            ConnectionLimit::AfterAuth { .. } => Some(
                Instant::now() + delay_to_limit(SystemTime::now(), self.deadline(), rand::random()),
            ),
        };
    }

    /// An AUTH with `credential` is injected now: the connection is taken
    /// to be authenticated with it until its answer says otherwise.
    fn authenticated(&mut self, credential: Arc<Credential>) {
        self.current = credential;
        self.authed_at = SystemTime::now();
        self.in_flight
            .push_back((self.current.clone(), self.authed_at));
        self.plan_renewal();
    }

    /// Whether an injected AUTH still waits for its answer.
    pub fn awaiting(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The answer to the oldest injected AUTH still unanswered. A refusal
    /// puts the connection back on its last accepted credential (and its
    /// deadline) once no other AUTH is in flight; a transient one is tried
    /// again [`retry_after_busy`] later, unless a newer credential is already
    /// pending.
    pub fn answer(&mut self, verdict: Verdict, now: Instant, jitter: f64) {
        // None: a RESET settled the connection meanwhile.
        let Some(sent) = self.in_flight.pop_front() else {
            return;
        };
        if verdict == Verdict::Accepted {
            self.confirmed = sent;
            return;
        }
        if self.in_flight.is_empty() {
            self.current = self.confirmed.0.clone();
            self.authed_at = self.confirmed.1;
            self.plan_renewal();
        }
        if verdict == Verdict::Busy && self.pending.is_none() {
            let wait = retry_after_busy(SystemTime::now(), self.deadline(), jitter);
            self.pending = Some(Pending {
                credential: sent.0,
                due: now + wait,
                deferred: false,
            });
        }
    }

    /// Whether a re-authentication is due at `now` (a pending credential's
    /// time, or the renewal planned for a connection-age limit).
    /// ([`Reauth::take_if_safe`] then takes it when nothing blocks.)
    pub fn due(&self, now: Instant) -> bool {
        match &self.pending {
            Some(pending) => pending.due <= now,
            None => self.renewal_due(now),
        }
    }

    /// Under a connection-age limit, whether the planned renewal is due and
    /// the credential in use is still good to send again.
    fn renewal_due(&self, now: Instant) -> bool {
        let usable = !self
            .current
            .expired_at(SystemTime::now() + crate::credentials::USABLE_MARGIN);
        self.renew.is_some_and(|at| at <= now) && usable
    }

    /// When the server last accepted an AUTH on the connection.
    pub fn confirmed_at(&self) -> SystemTime {
        self.confirmed.1
    }

    /// When the connection must have authenticated again ([`Credential::renew_by`]).
    pub fn deadline(&self) -> Option<SystemTime> {
        self.current.renew_by(self.authed_at)
    }

    /// A new credential was published: re-authenticate within a window
    /// before the current one expires ([`delay`]), or at the renewal planned
    /// for the connection's age limit; a newer one replaces one still
    /// pending, keeping its time. Under [`ConnectionLimit::None`] it is only
    /// kept (see the module).
    pub fn published(&mut self, credential: Arc<Credential>, now: Instant, jitter: f64) {
        if self.current.limit == ConnectionLimit::None {
            self.newest = Some(credential);
            return;
        }
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
        if blocker.is_some() || !self.renewal_due(now) {
            return None;
        }
        let current = self.current.clone();
        self.authenticated(current.clone());
        Some(current)
    }

    /// `RESET` drops the connection to the default user; it is authenticated
    /// again with the newest credential, which settles a pending one.
    pub fn settle(&mut self) -> &Arc<Credential> {
        let credential = match (self.pending.take(), self.newest.take()) {
            (Some(pending), _) => pending.credential,
            (None, Some(newest)) => newest,
            (None, None) => self.current.clone(),
        };
        self.authenticated(credential);
        // Refused, the AUTH after RESET ends the session: no answer to wait for.
        self.in_flight.clear();
        self.confirmed = (self.current.clone(), self.authed_at);
        &self.current
    }
}

/// Judges, counts and logs the server's answer to an injected
/// re-authentication (a refusal leaves the connection with the identity it
/// had).
pub(crate) fn answered(reply: &[u8]) -> Verdict {
    match auth::judge(reply) {
        Ok(()) => {
            metrics::reauth(metrics::ReauthEvent::Ok);
            tracing::debug!("re-authenticated with the new credential");
            Verdict::Accepted
        }
        Err(refused) if refused.transient() => {
            metrics::reauth(metrics::ReauthEvent::Failed);
            tracing::warn!(
                reply = %refused,
                "the server is busy authenticating; the connection keeps its current identity and tries again shortly"
            );
            Verdict::Busy
        }
        Err(refused) => {
            metrics::reauth(metrics::ReauthEvent::Failed);
            tracing::warn!(
                reply = %refused,
                "the server refused re-authentication; the connection keeps its current identity"
            );
            Verdict::Refused
        }
    }
}

#[cfg(test)]
mod tests;
