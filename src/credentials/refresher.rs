//! The refresher: one task that owns the token schedule and publishes the
//! current credential on the watch channel every session reads.
//!
//! - The first fetch starts at once; until it lands the state is `Pending`
//!   (sessions wait a bounded time for it).
//! - After a fetch, the next one is due at [`schedule::refresh_at`].
//! - A fetch that returns a token expiring no later than the one held (a
//!   cached token) publishes nothing; it asks again at
//!   [`schedule::retry_same_at`].
//! - A failed fetch is logged with what was tried (the same error again only
//!   now and then) and retried after [`schedule::backoff`]; the held token
//!   stays in use until it expires, and when there is no valid one the state
//!   becomes `Failed(reason)`, so new clients get an error instead of
//!   hanging, and fetches are retried every second or two.
//! - The Redis username ([`RedisUser`]) is `--username`, or else the token's
//!   `oid` claim (Entra ID), or none at all: the one-argument `AUTH <token>`
//!   (GCP Memorystore's `default` user). A first token without either is [`Fatal`]: no retry can fix
//!   it. A token that is not a JWT (an AWS IAM token, a presigned URL) is
//!   taken as it is when `--username` is given, issued now.
//! - Every fetch is counted in `redauth_token_refresh_total{result}`.

use super::jwt;
use super::schedule::{self, RefreshPolicy};
use super::source::{Token, TokenSource};
use super::{Credential, CredentialFeed, FeedState};
use crate::metrics::{self, Refresh};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A credential problem that retrying cannot fix; redauth stops on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// Which Redis user a token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUser {
    /// This one (`--username`): `AUTH <user> <token>`.
    Named(String),
    /// The token's `oid` claim (Entra ID): `AUTH <oid> <token>`.
    FromToken,
    /// The server's default user: `AUTH <token>` (GCP Memorystore).
    Default,
}

impl RedisUser {
    /// `--username` if given, else `otherwise`.
    pub fn named_or(username: Option<String>, otherwise: RedisUser) -> RedisUser {
        username.map_or(otherwise, RedisUser::Named)
    }
}

/// Starts the refresher on the current runtime. The task ends only with a
/// [`Fatal`] error, or when every [`CredentialFeed`] handle is gone.
pub fn start(
    source: Arc<dyn TokenSource>,
    user: RedisUser,
    policy: RefreshPolicy,
) -> (CredentialFeed, JoinHandle<Option<Fatal>>) {
    let (tx, rx) = watch::channel(FeedState::Pending);
    let refresher = Refresher {
        source,
        user,
        policy,
        tx,
        held: None,
        last_error: None,
    };
    (
        CredentialFeed::from_channel(rx),
        tokio::spawn(refresher.run()),
    )
}

struct Refresher {
    source: Arc<dyn TokenSource>,
    user: RedisUser,
    policy: RefreshPolicy,
    tx: watch::Sender<FeedState>,
    held: Option<Held>,
    /// The last failed fetch's error, to log a repeated one quietly.
    last_error: Option<String>,
}

/// The credential being published, and when its token was issued.
struct Held {
    credential: Arc<Credential>,
    issued: SystemTime,
    expires: SystemTime,
}

impl Refresher {
    async fn run(mut self) -> Option<Fatal> {
        let mut failures = 0u32;
        loop {
            if self.tx.is_closed() {
                return None;
            }
            let next = match self.source.fetch().await {
                Ok(token) => {
                    failures = 0;
                    self.last_error = None;
                    match self.take(token) {
                        Ok(next) => {
                            metrics::token_refresh(Refresh::Ok);
                            next
                        }
                        Err(fatal) => {
                            metrics::token_refresh(Refresh::Failed);
                            self.tx.send_replace(FeedState::Failed(fatal.0.clone()));
                            return Some(fatal);
                        }
                    }
                }
                Err(e) => {
                    metrics::token_refresh(Refresh::Failed);
                    failures += 1;
                    let now = SystemTime::now();
                    let valid = self.holds_valid(now);
                    let delay = schedule::backoff(failures, valid, &self.policy, rand::random());
                    let reason = e.to_string();
                    self.log_failure(failures, delay, now, &reason);
                    if !valid {
                        self.tx
                            .send_replace(FeedState::Failed(self.failed_because(&reason)));
                    }
                    let next = SystemTime::now() + delay;
                    self.fail_at_expiry_before(next, &reason).await;
                    next
                }
            };
            sleep_until(next).await;
        }
    }

    /// Takes a fetched token: publishes it if it expires later than the one
    /// held, and says when to fetch next.
    fn take(&mut self, token: Token) -> Result<SystemTime, Fatal> {
        let now = SystemTime::now();
        if let Some(held) = &self.held {
            if token.expires_at <= held.expires {
                tracing::debug!(
                    source = %self.source.kind(),
                    expires_at = %humantime::format_rfc3339_seconds(held.expires),
                    "the identity returned the token already held; asking again later"
                );
                return Ok(schedule::retry_same_at(
                    held.issued,
                    held.expires,
                    now,
                    &self.policy,
                ));
            }
        }
        let claims = jwt::claims(token.secret.expose());
        let username = match (&self.user, claims.as_ref().ok().and_then(|c| c.oid.clone())) {
            (RedisUser::Named(name), _) => Some(name.clone()),
            (RedisUser::Default, _) => None,
            (RedisUser::FromToken, Some(oid)) => Some(oid),
            (RedisUser::FromToken, None) => {
                let why = match &claims {
                    Ok(_) => "the access token has no oid claim".to_string(),
                    Err(e) => e.to_string(),
                };
                match &self.held {
                    Some(held) => {
                        tracing::error!(source = %self.source.kind(), "{why}; keeping the username of the previous token");
                        held.credential.username.clone()
                    }
                    None => {
                        return Err(Fatal(format!(
                            "{why}, so the Redis username is unknown: set --username to the identity's object id"
                        )))
                    }
                }
            }
        };
        let issued = claims
            .ok()
            .and_then(|c| c.issued_at())
            .filter(|&t| t <= now && t < token.expires_at)
            .unwrap_or(now);
        let next =
            schedule::refresh_at(issued, token.expires_at, now, &self.policy, rand::random());
        tracing::info!(
            source = %self.source.kind(),
            username = username.as_deref().unwrap_or("(default)"),
            expires_at = %humantime::format_rfc3339_seconds(token.expires_at),
            valid_for = %humantime::format_duration(round(until(token.expires_at, now))),
            next_refresh_in = %humantime::format_duration(round(until(next, now))),
            "token refreshed"
        );
        let credential = Arc::new(Credential {
            username,
            secret: Some(token.secret),
            expires_at: Some(token.expires_at),
            limit: token.limit,
        });
        self.held = Some(Held {
            credential: credential.clone(),
            issued,
            expires: token.expires_at,
        });
        self.tx.send_replace(FeedState::Ready(credential));
        Ok(next)
    }

    /// Logs a failed fetch: at WARN when its error is new (or on the 2nd,
    /// 4th, 8th… failure in a row, so a long outage still shows), otherwise
    /// at DEBUG, so a retry every second does not flood the log.
    fn log_failure(&mut self, failures: u32, delay: Duration, now: SystemTime, error: &str) {
        let repeated = failures > 1 && self.last_error.as_deref() == Some(error);
        self.last_error = Some(error.to_string());
        let current = match &self.held {
            Some(h) if h.expires > now => format!(
                "in use until {}",
                humantime::format_rfc3339_seconds(h.expires)
            ),
            Some(_) => "expired".to_string(),
            None => "none yet".to_string(),
        };
        let retry_in = humantime::format_duration(round(delay));
        if repeated && !failures.is_power_of_two() {
            tracing::debug!(source = %self.source.kind(), failures, %retry_in, current_token = %current, error, "token refresh failed again");
            return;
        }
        tracing::warn!(
            source = %self.source.kind(),
            failures,
            %retry_in,
            current_token = %current,
            error,
            "token refresh failed"
        );
    }

    fn holds_valid(&self, now: SystemTime) -> bool {
        self.held.as_ref().is_some_and(|h| h.expires > now)
    }

    /// While fetches fail, turns the state to `Failed` the moment the held
    /// token expires, if that is before the next attempt.
    async fn fail_at_expiry_before(&self, next: SystemTime, reason: &str) {
        let Some(held) = &self.held else { return };
        if held.expires <= SystemTime::now() || held.expires >= next {
            return;
        }
        sleep_until(held.expires).await;
        tracing::error!(
            source = %self.source.kind(),
            expired_at = %humantime::format_rfc3339_seconds(held.expires),
            "the token expired and no new one could be fetched; new clients get an error until one is"
        );
        self.tx
            .send_replace(FeedState::Failed(self.failed_because(reason)));
    }

    /// What clients are told when there is no valid token and fetching failed.
    fn failed_because(&self, error: &str) -> String {
        match &self.held {
            Some(held) => format!(
                "the last token expired at {} and fetching a new one failed: {error}",
                humantime::format_rfc3339_seconds(held.expires)
            ),
            None => error.to_string(),
        }
    }
}

fn until(t: SystemTime, now: SystemTime) -> Duration {
    t.duration_since(now).unwrap_or_default()
}

/// Durations for logs, to the millisecond.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

async fn sleep_until(t: SystemTime) {
    tokio::time::sleep(until(t, SystemTime::now())).await;
}

#[cfg(test)]
mod tests {
    use super::super::source::FetchError;
    use super::super::{ConnectionLimit, Secret};
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A scripted source: each fetch pops the next outcome (the last repeats).
    #[derive(Debug)]
    struct Scripted {
        outcomes: Mutex<VecDeque<Result<Token, FetchError>>>,
        fetches: Mutex<u32>,
    }

    impl Scripted {
        fn new(outcomes: Vec<Result<Token, FetchError>>) -> Arc<Scripted> {
            Arc::new(Scripted {
                outcomes: Mutex::new(outcomes.into()),
                fetches: Mutex::new(0),
            })
        }
    }

    #[async_trait::async_trait]
    impl TokenSource for Scripted {
        fn kind(&self) -> String {
            "scripted".into()
        }
        async fn fetch(&self) -> Result<Token, FetchError> {
            *self.fetches.lock().unwrap() += 1;
            let mut q = self.outcomes.lock().unwrap();
            if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q.front().unwrap().clone()
            }
        }
    }

    fn token(oid: Option<&str>, text: &str, lifetime: Duration) -> Token {
        let now = SystemTime::now();
        let unix = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let expires = now + lifetime;
        let payload = match oid {
            Some(oid) => format!(
                r#"{{"oid":"{oid}","iat":{},"exp":{}}}"#,
                unix(now),
                unix(expires)
            ),
            None => format!(r#"{{"exp":{}}}"#, unix(expires)),
        };
        Token {
            secret: Secret::new(format!("h.{}.{text}", URL_SAFE_NO_PAD.encode(payload))),
            expires_at: expires,
            limit: ConnectionLimit::TokenExpiry,
        }
    }

    fn fast() -> RefreshPolicy {
        RefreshPolicy {
            backoff_base: Duration::from_millis(20),
            backoff_cap: Duration::from_millis(80),
            urgent_cap: Duration::from_millis(80),
            ..RefreshPolicy::default()
        }
    }

    /// Watches the channel until `n` distinct tokens were published; returns
    /// every `Ready` value seen, in order (a token published twice shows twice).
    async fn published(creds: &CredentialFeed, n: usize) -> Vec<String> {
        let mut rx = creds.rx.clone();
        let mut seen: Vec<String> = Vec::new();
        loop {
            rx.changed().await.unwrap();
            if let FeedState::Ready(c) = &*rx.borrow_and_update() {
                seen.push(c.secret.as_ref().unwrap().expose().to_string());
            }
            let mut distinct = seen.clone();
            distinct.dedup();
            if distinct.len() == n {
                return seen;
            }
        }
    }

    fn ends(seen: &[String], suffixes: &[&str]) -> bool {
        seen.len() == suffixes.len() && seen.iter().zip(suffixes).all(|(t, s)| t.ends_with(s))
    }

    #[tokio::test]
    async fn username_is_the_oid_unless_overridden() {
        let src = Scripted::new(vec![Ok(token(
            Some("oid-1"),
            "a",
            Duration::from_secs(600),
        ))]);
        let (creds, _task) = start(src.clone(), RedisUser::FromToken, fast());
        let c = creds.current(Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.username.as_deref(), Some("oid-1"));

        let (creds, _task) = start(src, RedisUser::Named("override".into()), fast());
        let c = creds.current(Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.username.as_deref(), Some("override"));
    }

    #[tokio::test]
    async fn a_first_token_without_oid_is_fatal_and_says_what_to_do() {
        let src = Scripted::new(vec![Ok(token(None, "a", Duration::from_secs(600)))]);
        let (creds, task) = start(src, RedisUser::FromToken, fast());
        let fatal = task.await.unwrap().expect("fatal");
        assert!(fatal.0.contains("no oid claim"), "{fatal}");
        assert!(fatal.0.contains("--username"), "{fatal}");
        let e = creds.current(Duration::from_secs(1)).await.unwrap_err();
        assert!(e.to_string().contains("no oid claim"), "{e}");
    }

    #[tokio::test]
    async fn the_same_token_again_is_not_published_again() {
        // Lifetime 2 s: refresh due after ~1.2–1.4 s. The source hands back
        // the same token twice, then a new one.
        let first = token(Some("o"), "first", Duration::from_secs(2));
        let second = token(Some("o"), "second", Duration::from_secs(3));
        let src = Scripted::new(vec![
            Ok(first.clone()),
            Ok(first.clone()),
            Ok(first),
            Ok(second),
        ]);
        let (creds, _task) = start(src.clone(), RedisUser::FromToken, fast());
        let seen = published(&creds, 2).await;
        assert!(ends(&seen, &["first", "second"]), "{seen:?}");
        assert_eq!(*src.fetches.lock().unwrap(), 4);
    }

    #[tokio::test]
    async fn failures_back_off_keep_the_token_then_recover() {
        let good = token(Some("o"), "good", Duration::from_secs(600));
        let later = token(Some("o"), "later", Duration::from_secs(900));
        let down = || Err(FetchError("endpoint down".into()));
        let src = Scripted::new(vec![Ok(good), down(), down(), down(), Ok(later)]);
        // Refresh straight away: a policy whose refresh point is now.
        let policy = RefreshPolicy {
            at_fraction: 0.0,
            jitter_fraction: 0.0,
            ..fast()
        };
        let (creds, _task) = start(src.clone(), RedisUser::FromToken, policy);
        let seen = published(&creds, 2).await;
        assert!(ends(&seen, &["good", "later"]), "{seen:?}");
        // Three failures came between the two tokens (the refresher may already
        // have asked again since, with this policy's immediate refresh point).
        assert!(*src.fetches.lock().unwrap() >= 5);
    }

    #[tokio::test]
    async fn with_no_token_at_all_clients_get_the_reason_at_once() {
        let src = Scripted::new(vec![Err(FetchError("identity endpoint said 500".into()))]);
        let (creds, _task) = start(src, RedisUser::FromToken, fast());
        let e = creds.current(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "no valid credential: identity endpoint said 500"
        );
    }

    #[tokio::test]
    async fn an_opaque_token_is_taken_with_the_given_username_and_its_limit() {
        // An AWS IAM token is a presigned URL, not a JWT: no claims to read,
        // nothing to complain about when --username names the user.
        let limit = ConnectionLimit::AfterAuth {
            max_age: Duration::from_secs(43_200),
            until: None,
        };
        let opaque = Token {
            secret: Secret::new("cache/?Action=connect&User=u&X-Amz-Signature=00".into()),
            expires_at: SystemTime::now() + Duration::from_secs(900),
            limit,
        };
        let (creds, task) = start(
            Scripted::new(vec![Ok(opaque)]),
            RedisUser::Named("u".into()),
            fast(),
        );
        let c = creds.current(Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.limit, limit);
        assert!(!task.is_finished(), "not fatal");
    }

    #[tokio::test]
    async fn an_opaque_token_for_the_default_user_goes_without_a_username() {
        // GCP Memorystore: `AUTH <token>`, the `default` user.
        let opaque = Token {
            secret: Secret::new("ya29.opaque".into()),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
            limit: ConnectionLimit::None,
        };
        let (creds, task) = start(Scripted::new(vec![Ok(opaque)]), RedisUser::Default, fast());
        let c = creds.current(Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.username, None);
        assert_eq!(c.limit, ConnectionLimit::None);
        assert!(!task.is_finished(), "not fatal");
    }
}
