//! What the probes report: whether redauth has started, whether it can
//! serve a new client now, and whether it has been asked to stop.
//!
//! [`Health`] is shared by the admin endpoints and `main`. It reads the
//! credential channel's current value and the outcome of recent dials
//! ([`DialHealth`]; the probe itself never dials), and holds
//! three latches: the listeners are bound, a first credential was obtained,
//! and the drain has begun. It also carries the `/quitquitquit` request to
//! whoever runs the shutdown.

use crate::cluster::Directory;
use crate::credentials::{CredentialFeed, FeedState};
use crate::upstream::health::DialHealth;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;
use tokio::sync::{watch, Notify};

/// Health state shared by the admin endpoints and the process lifecycle.
#[derive(Debug)]
pub struct Health {
    credentials: CredentialFeed,
    listening: AtomicBool,
    obtained: AtomicBool,
    draining: AtomicBool,
    quit: Notify,
    /// Set once the connector exists (see [`Health::follow_dials`]).
    dials: OnceLock<Arc<DialHealth>>,
    /// Why a changed password file is not in use (see [`Health::follow_notice`]).
    notice: OnceLock<watch::Receiver<Option<String>>>,
    /// Cluster mode: ready only once the topology is known (or the upstream
    /// turned out to be a single endpoint).
    cluster: OnceLock<Arc<Directory>>,
}

impl Health {
    /// Starts following `credentials` for the first one obtained; call on a runtime.
    pub fn new(credentials: CredentialFeed) -> Arc<Health> {
        let health = Arc::new(Health {
            credentials,
            listening: AtomicBool::new(false),
            obtained: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            quit: Notify::new(),
            dials: OnceLock::new(),
            notice: OnceLock::new(),
            cluster: OnceLock::new(),
        });
        // Holds only a weak reference: the task ends with the process or the
        // first credential, whichever comes first.
        let weak = Arc::downgrade(&health);
        let credentials = health.credentials.clone();
        tokio::spawn(async move {
            credentials.obtained().await;
            if let Some(health) = weak.upgrade() {
                health.obtained.store(true, Ordering::Relaxed);
            }
        });
        health
    }

    /// The credentials the probes and metrics look at.
    pub fn credentials(&self) -> &CredentialFeed {
        &self.credentials
    }

    /// From now on readiness also fails while dials to the upstream do.
    pub fn follow_dials(&self, dials: Arc<DialHealth>) {
        // Only the first call counts; there is one connector.
        let _ = self.dials.set(dials);
    }

    /// From now on readiness also needs the cluster topology known.
    pub fn follow_cluster(&self, directory: Arc<Directory>) {
        let _ = self.cluster.set(directory);
    }

    /// `/readyz` shows what is published on `notice` while ready: something
    /// an operator must act on that does not stop redauth from serving.
    pub fn follow_notice(&self, notice: watch::Receiver<Option<String>>) {
        let _ = self.notice.set(notice);
    }

    /// The current notice, on one line.
    pub fn notice(&self) -> Option<String> {
        let notice = self.notice.get()?.borrow().clone()?;
        Some(one_line(&notice))
    }

    /// Every client listener is bound.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Relaxed);
    }

    /// The drain has begun: readiness fails from now on.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Asks for a graceful shutdown (`POST /quitquitquit`). Readiness fails
    /// before this returns, so the caller's next probe already sees it.
    pub fn request_quit(&self) {
        self.begin_draining();
        // notify_one keeps a permit if nobody is waiting yet.
        self.quit.notify_one();
    }

    /// Resolves when a shutdown was requested through [`Health::request_quit`].
    pub async fn quit_requested(&self) {
        self.quit.notified().await;
    }

    /// `Ok` once the listeners are bound and a first credential was obtained;
    /// otherwise why not, on one line.
    pub fn startup(&self) -> Result<(), String> {
        if !self.listening.load(Ordering::Relaxed) {
            return Err("the listeners are not bound yet".into());
        }
        match self.credentials.snapshot() {
            _ if self.obtained.load(Ordering::Relaxed) => Ok(()),
            FeedState::Ready(_) => {
                self.obtained.store(true, Ordering::Relaxed);
                Ok(())
            }
            state => Err(no_credential_yet(&state)),
        }
    }

    /// `Ok` when a new client would be served now: a valid credential is
    /// held, the upstream takes it (see [`DialHealth::verdict`]) and redauth
    /// is not draining. Otherwise why not, on one line, without any secret.
    pub fn readiness(&self, now: SystemTime) -> Result<(), String> {
        if self.is_draining() {
            return Err("draining".into());
        }
        self.credential_readiness(now)?;
        if let Some(directory) = self.cluster.get() {
            if !directory.known() && !directory.single() {
                return Err("the cluster topology is not known yet".into());
            }
        }
        match self.dials.get() {
            Some(dials) => dials.verdict().map_err(|why| one_line(&why)),
            None => Ok(()),
        }
    }

    fn credential_readiness(&self, now: SystemTime) -> Result<(), String> {
        match self.credentials.snapshot() {
            FeedState::Ready(c) => match c.expires_at {
                Some(at) if at <= now => Err(format!(
                    "the credential expired at {}",
                    humantime::format_rfc3339_seconds(at)
                )),
                _ => {
                    self.obtained.store(true, Ordering::Relaxed);
                    Ok(())
                }
            },
            FeedState::Failed(reason) if self.obtained.load(Ordering::Relaxed) => {
                Err(one_line(&format!("no valid credential: {reason}")))
            }
            state => Err(no_credential_yet(&state)),
        }
    }
}

fn no_credential_yet(state: &FeedState) -> String {
    match state {
        FeedState::Failed(reason) => one_line(&format!("no credential yet: {reason}")),
        _ => "no credential yet: the first one is being fetched".into(),
    }
}

/// Identity stacks' errors can span lines; a probe's reason is one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{Credential, Secret};
    use std::time::Duration;
    use tokio::sync::watch;

    fn token(expires_at: SystemTime) -> FeedState {
        FeedState::Ready(Arc::new(Credential {
            username: Some("oid".into()),
            secret: Some(Secret::new("the-token".into())),
            expires_at: Some(expires_at),
            limit: Default::default(),
        }))
    }

    #[tokio::test]
    async fn a_static_credential_is_ready_once_listening() {
        let health = Health::new(CredentialFeed::fixed(Credential::none()));
        assert_eq!(
            health.startup(),
            Err("the listeners are not bound yet".into())
        );
        health.set_listening();
        assert_eq!(health.startup(), Ok(()));
        assert_eq!(health.readiness(SystemTime::now()), Ok(()));
        health.begin_draining();
        assert_eq!(health.readiness(SystemTime::now()), Err("draining".into()));
        assert_eq!(health.startup(), Ok(()), "started stays started");
    }

    #[tokio::test]
    async fn readiness_follows_the_credential() {
        let (tx, rx) = watch::channel(FeedState::Pending);
        let health = Health::new(CredentialFeed::from_channel(rx));
        health.set_listening();
        let now = SystemTime::now();
        let pending = "no credential yet: the first one is being fetched".to_string();
        assert_eq!(health.startup(), Err(pending.clone()));
        assert_eq!(health.readiness(now), Err(pending));

        tx.send_replace(FeedState::Failed("endpoint said\n500".into()));
        let failing = "no credential yet: endpoint said 500".to_string();
        assert_eq!(health.startup(), Err(failing.clone()));
        assert_eq!(health.readiness(now), Err(failing));

        let expires = now + Duration::from_secs(60);
        tx.send_replace(token(expires));
        assert_eq!(health.readiness(now), Ok(()));
        assert_eq!(health.startup(), Ok(()));
        let later = expires + Duration::from_secs(1);
        let expired = health.readiness(later).unwrap_err();
        assert!(
            expired.starts_with("the credential expired at "),
            "{expired}"
        );
        assert!(!expired.contains("the-token"), "{expired}");

        tx.send_replace(FeedState::Failed(
            "the last token expired at X and fetching a new one failed: 500".into(),
        ));
        assert_eq!(
            health.readiness(later),
            Err("no valid credential: the last token expired at X and fetching a new one failed: 500".into())
        );
        assert_eq!(health.startup(), Ok(()));
    }

    #[tokio::test]
    async fn a_quit_request_is_not_lost_when_nobody_waits_yet() {
        let health = Health::new(CredentialFeed::fixed(Credential::none()));
        health.request_quit();
        tokio::time::timeout(Duration::from_secs(5), health.quit_requested())
            .await
            .expect("the request was kept");
    }
}
