//! Credentials for the upstream: what they are, where they come from, and how
//! the current one is published.
//!
//! A [`Credential`] is a Redis username (optional) and a secret. A static
//! password is published once ([`CredentialFeed::fixed`]); a [`TokenSource`]
//! (Entra ID: [`entra`]; AWS IAM: [`aws`]; GCP IAM: [`gcp`]) is driven by the [`refresher`], which publishes each
//! new token on a `tokio::sync::watch` channel as a [`FeedState`]. The
//! [`CredentialFeed`] is that channel's receiving end: a new connection takes
//! the current credential from it, and a live one follows its [`Renewals`].
//! This module does not dial or speak RESP (`AUTH` is
//! [`crate::upstream::auth`]'s).

pub mod aws;
pub mod aws_token;
mod cause;
pub mod entra;
pub mod entra_certificate;
pub mod gcp;
pub mod gcp_metadata;
pub mod jwt;
pub mod password_file;
pub mod refresher;
pub mod schedule;
mod secret;
mod source;

pub use secret::Secret;
pub use source::{FetchError, Token, TokenSource};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// What a connection authenticates with.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Redis ACL username; `None` sends the one-argument `AUTH <secret>`.
    pub username: Option<String>,
    /// The password or token; `None` means the upstream needs no AUTH.
    pub secret: Option<Secret>,
    /// When the secret stops being accepted, if it ever does.
    pub expires_at: Option<SystemTime>,
    /// How long a connection authenticated with it stays authenticated.
    pub limit: ConnectionLimit,
}

/// When the server drops a connection that does not authenticate again: what
/// a live connection's re-authentication is scheduled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionLimit {
    /// When the token it last authenticated with expires (Entra ID: Azure
    /// closes the connection then). A secret without expiry never needs
    /// renewing.
    #[default]
    TokenExpiry,
    /// `max_age` after its last AUTH, or at `until` if sooner (AWS IAM: a
    /// connection is closed 12 hours after its last AUTH, and a token signed
    /// with temporary credentials dies with them).
    AfterAuth {
        max_age: Duration,
        until: Option<SystemTime>,
    },
    /// Never: the server keeps an authenticated connection whatever becomes
    /// of its token (Memorystore), so a live connection is not
    /// re-authenticated (`--reauth never`, the default for `gcp-iam`). The
    /// token still has to be good for each new connection's AUTH.
    None,
}

impl Credential {
    /// A credential that never expires (`--auth password`).
    pub fn password(username: Option<String>, secret: Secret) -> Credential {
        Credential {
            username,
            secret: Some(secret),
            expires_at: None,
            limit: ConnectionLimit::TokenExpiry,
        }
    }

    /// No authentication at all (`--auth none`).
    pub fn none() -> Credential {
        Credential {
            username: None,
            secret: None,
            expires_at: None,
            limit: ConnectionLimit::TokenExpiry,
        }
    }

    /// Whether the credential is past its expiry at `now` (a new connection
    /// cannot authenticate with it).
    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// When a connection that authenticated with this credential at
    /// `authed_at` must have authenticated again; `None`: never.
    pub fn renew_by(&self, authed_at: SystemTime) -> Option<SystemTime> {
        match self.limit {
            ConnectionLimit::TokenExpiry => self.expires_at,
            ConnectionLimit::AfterAuth { max_age, until } => {
                let aged = authed_at + max_age;
                Some(until.map_or(aged, |until| until.min(aged)))
            }
            ConnectionLimit::None => None,
        }
    }
}

/// What the credential source has to offer right now.
#[derive(Debug, Clone)]
pub enum FeedState {
    /// The first credential is still being fetched.
    Pending,
    /// A credential is available.
    Ready(Arc<Credential>),
    /// No valid credential; the reason is safe to show to clients and logs.
    Failed(String),
}

impl FeedState {
    /// When the credential on offer expires: `None` when there is none or
    /// it never expires (for the metrics' expiry gauge).
    pub fn expires_at(&self) -> Option<SystemTime> {
        match self {
            FeedState::Ready(credential) => credential.expires_at,
            FeedState::Pending | FeedState::Failed(_) => None,
        }
    }
}

/// Why no credential could be had when a connection needed one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no valid credential: {0}")]
pub struct NoCredential(pub String);

/// A credential this close to expiry is not handed to a new connection: the
/// server may already count it expired (token expiry is whole seconds, and
/// the AUTH takes a round trip). A refreshed one, or the reason there is
/// none, comes within the margin.
pub const USABLE_MARGIN: Duration = Duration::from_secs(1);

/// The receiving end of the credential channel, shared by all sessions and
/// the pool: the current credential, and [`Renewals`] from it.
#[derive(Debug, Clone)]
pub struct CredentialFeed {
    rx: watch::Receiver<FeedState>,
}

impl CredentialFeed {
    /// A fixed credential, published once (`--auth password` and `--auth none`).
    pub fn fixed(credential: Credential) -> CredentialFeed {
        let (tx, rx) = watch::channel(FeedState::Ready(Arc::new(credential)));
        // The sender is not needed again; receivers keep the last value.
        drop(tx);
        CredentialFeed { rx }
    }

    /// Wraps a channel fed by a refreshing source.
    pub fn from_channel(rx: watch::Receiver<FeedState>) -> CredentialFeed {
        CredentialFeed { rx }
    }

    /// The state as it is now, without waiting (for health checks and metrics).
    pub fn snapshot(&self) -> FeedState {
        self.rx.borrow().clone()
    }

    /// Resolves once a credential has been published (even if it has expired
    /// since), or never if the source stops before one is.
    pub async fn obtained(&self) {
        let mut rx = self.rx.clone();
        if rx
            .wait_for(|state| matches!(state, FeedState::Ready(_)))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// Waits up to `wait` for a usable credential.
    pub async fn current(&self, wait: Duration) -> Result<Arc<Credential>, NoCredential> {
        let mut rx = self.rx.clone();
        let outcome = tokio::time::timeout(wait, async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    FeedState::Ready(c) if !c.expired_at(SystemTime::now() + USABLE_MARGIN) => {
                        return Ok(c)
                    }
                    FeedState::Ready(_) => {}
                    FeedState::Failed(reason) => return Err(NoCredential(reason)),
                    FeedState::Pending => {}
                }
                if rx.changed().await.is_err() {
                    return Err(NoCredential("the credential source stopped".into()));
                }
            }
        })
        .await;
        outcome.unwrap_or_else(|_| {
            Err(NoCredential(match &*self.rx.borrow() {
                FeedState::Ready(_) => "the current credential has expired".into(),
                _ => format!("none obtained within {}", humantime::format_duration(wait)),
            }))
        })
    }
}

/// One connection's view of the feed: each call to
/// [`Renewals::next`] yields a credential other than the last one it
/// knew, starting from the one the connection authenticated with.
///
/// Sessions poll it on every read, so after the first look it only waits on
/// the channel's version (no lock) until something is published.
#[derive(Debug)]
pub struct Renewals {
    rx: watch::Receiver<FeedState>,
    last: Arc<Credential>,
    /// A credential published before the watch was made, not yet handed out.
    early: Option<Arc<Credential>>,
}

impl Renewals {
    /// Waits for a credential other than the last one seen. Never resolves
    /// for a fixed credential, or once the source has stopped.
    pub async fn next(&mut self) -> Arc<Credential> {
        if let Some(early) = self.early.take() {
            self.last = early.clone();
            return early;
        }
        loop {
            if self.rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            if let FeedState::Ready(c) = &*self.rx.borrow_and_update() {
                if !Arc::ptr_eq(c, &self.last) {
                    self.last = c.clone();
                    return c.clone();
                }
            }
        }
    }
}

/// [`Renewals::next`] as a future that owns its watch and hands it
/// back with the credential.
pub type NextRenewal = Pin<Box<dyn Future<Output = (Renewals, Arc<Credential>)> + Send>>;

impl Renewals {
    /// Waits for the next credential in a future that can be kept across
    /// many polls: a relay loop polls it on every pass, and a kept future
    /// registers with the channel once per publication, where a fresh
    /// `next()` each pass would register and deregister every time.
    pub fn into_next(mut self) -> NextRenewal {
        Box::pin(async move {
            let credential = self.next().await;
            (self, credential)
        })
    }
}

impl CredentialFeed {
    /// The renewals of a connection authenticated with `used`.
    pub fn renewals_after(&self, used: Arc<Credential>) -> Renewals {
        let mut rx = self.rx.clone();
        let early = match &*rx.borrow_and_update() {
            FeedState::Ready(c) if !Arc::ptr_eq(c, &used) => Some(c.clone()),
            _ => None,
        };
        Renewals {
            rx,
            last: used,
            early,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_credential_on_offer_has_an_expiry() {
        let at = SystemTime::now() + Duration::from_secs(90);
        let expiring = Credential {
            username: Some("u".into()),
            secret: Some(Secret::new("s".into())),
            expires_at: Some(at),
            limit: ConnectionLimit::TokenExpiry,
        };
        assert_eq!(FeedState::Ready(Arc::new(expiring)).expires_at(), Some(at));
        assert_eq!(FeedState::Pending.expires_at(), None);
        assert_eq!(FeedState::Failed("x".into()).expires_at(), None);
        let fixed = FeedState::Ready(Arc::new(Credential::none()));
        assert_eq!(fixed.expires_at(), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credential::password(Some("alice".into()), Secret::new("hunter2".into()));
        let shown = format!("{c:?} {:?}", FeedState::Ready(Arc::new(c.clone())));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[tokio::test]
    async fn a_watch_yields_only_credentials_other_than_the_one_in_use() {
        let first = Arc::new(Credential::password(None, Secret::new("1".into())));
        let (tx, rx) = watch::channel(FeedState::Ready(first.clone()));
        let creds = CredentialFeed::from_channel(rx);
        let mut w = creds.renewals_after(first.clone());
        let quiet = tokio::time::timeout(Duration::from_millis(20), w.next()).await;
        assert!(quiet.is_err(), "the credential in use is not news");
        let second = Arc::new(Credential::password(None, Secret::new("2".into())));
        tx.send_replace(FeedState::Ready(second.clone()));
        assert!(Arc::ptr_eq(&w.next().await, &second));
        // Published before the watch was made: still news to a connection on `first`.
        let mut late = creds.renewals_after(first);
        assert!(Arc::ptr_eq(&late.next().await, &second));
    }

    #[test]
    fn a_connection_must_renew_at_token_expiry_or_its_age_limit() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = Credential::password(None, Secret::new("s".into()));
        assert_eq!(c.renew_by(at), None, "a password never expires");
        c.expires_at = Some(at + Duration::from_secs(900));
        assert_eq!(c.renew_by(at), c.expires_at);
        let hours = Duration::from_secs(12 * 3600);
        c.limit = ConnectionLimit::AfterAuth {
            max_age: hours,
            until: None,
        };
        assert_eq!(
            c.renew_by(at),
            Some(at + hours),
            "not the token's 15 minutes"
        );
        let sooner = at + Duration::from_secs(3600);
        c.limit = ConnectionLimit::AfterAuth {
            max_age: hours,
            until: Some(sooner),
        };
        assert_eq!(c.renew_by(at), Some(sooner), "credentials expiring first");
        c.limit = ConnectionLimit::None;
        assert_eq!(c.renew_by(at), None, "Memorystore keeps the connection");
    }

    #[tokio::test]
    async fn fixed_credentials_are_ready_at_once() {
        let creds = CredentialFeed::fixed(Credential::none());
        assert!(creds.current(Duration::from_millis(10)).await.is_ok());
        assert!(matches!(creds.snapshot(), FeedState::Ready(_)));
        // The sender is gone, but the value it left counts.
        creds.obtained().await;
    }

    #[tokio::test]
    async fn obtained_waits_for_the_first_credential() {
        let (tx, rx) = watch::channel(FeedState::Pending);
        let creds = CredentialFeed::from_channel(rx);
        let waiting = tokio::time::timeout(Duration::from_millis(20), creds.obtained()).await;
        assert!(waiting.is_err(), "nothing published yet");
        tx.send_replace(FeedState::Ready(Arc::new(Credential::none())));
        creds.obtained().await;
    }
}
