//! Passwords read from files, followed as they change.
//!
//! Azure access keys and ElastiCache RBAC passwords are rotated by
//! regenerating them, and Kubernetes updates a mounted Secret in place (it
//! writes a new directory and swaps a `..data` symlink). So a password file
//! is read again every [`POLL`] (by path, through any symlinks), and a changed
//! content is taken up without a restart:
//!
//! - the upstream password ([`follow_upstream`]) is first tried on a
//!   connection of its own ([`Verify`]). If the server accepts it (or the
//!   try says nothing about the password: the server is unreachable), it is
//!   published on the credential channel: new connections use it and live
//!   ones re-authenticate with it through the same safe points as a new
//!   token. If the server refuses it, the previous password stays in use,
//!   the log and `/readyz` say so, and it is tried again every
//!   [`RETRY_REFUSED`] while the file keeps it;
//! - the client password ([`follow_client`]) is published at once: clients
//!   that authenticate from then on must give the new one.
//!
//! A file that becomes unreadable or empty keeps the previous password, with
//! an error in the log. Nothing here logs or returns the password itself.

use super::{Credential, FeedState, Secret};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often a followed password file is read again.
pub const POLL: Duration = Duration::from_secs(2);

/// How often a password the server refused is tried again while the file
/// still holds it (the server may start accepting it later, e.g. once a
/// rotation has reached it).
pub const RETRY_REFUSED: Duration = Duration::from_secs(10);

/// Reads a password file: its content less one trailing newline, refused
/// when empty. The error names the file, never its content.
pub fn read(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading password file {}: {e}", path.display()))?;
    let trimmed = content(&text);
    if trimmed.is_empty() {
        return Err(format!("password file {} is empty", path.display()));
    }
    Ok(Secret::new(trimmed.to_string()))
}

/// A password file's content less one trailing newline (`\n` or `\r\n`).
/// The one rule for startup ([`crate::config`]) and every re-read, so an
/// unchanged file never reads as a change.
pub fn content(text: &str) -> &str {
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    trimmed.strip_suffix('\r').unwrap_or(trimmed)
}

/// What the server made of a candidate password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// The server refused it; the reason holds no secret.
    Refused(String),
    /// The try failed before the password was judged (unreachable, TLS).
    Unknown(String),
}

/// Tries a credential on a connection of its own.
pub type Verify =
    Arc<dyn Fn(Arc<Credential>) -> Pin<Box<dyn Future<Output = Verdict> + Send>> + Send + Sync>;

/// Follows the upstream password file at `path` for the life of the process,
/// publishing each accepted change on `tx` (whose current value is the
/// credential read at startup). `held_back` says why a changed password is
/// not in use, or `None` when the file's is.
pub async fn follow_upstream(
    path: PathBuf,
    tx: watch::Sender<FeedState>,
    verify: Verify,
    held_back: watch::Sender<Option<String>>,
) {
    let mut refused: Option<(Secret, Instant)> = None;
    let mut unreadable = false;
    loop {
        tokio::time::sleep(POLL).await;
        let Some(read) = reread(&path, &mut unreadable) else {
            continue;
        };
        let current = match &*tx.borrow() {
            FeedState::Ready(c) => c.clone(),
            _ => continue,
        };
        if current.secret.as_ref() == Some(&read) {
            if refused.take().is_some() {
                held_back.send_replace(None);
            }
            continue;
        }
        if let Some((secret, at)) = &refused {
            if *secret == read && at.elapsed() < RETRY_REFUSED {
                continue;
            }
        }
        let candidate = Arc::new(Credential::password(current.username.clone(), read.clone()));
        match verify(candidate.clone()).await {
            Verdict::Refused(why) => {
                let first = refused.as_ref().is_none_or(|(secret, _)| *secret != read);
                if first {
                    tracing::error!(
                        file = %path.display(),
                        reason = %why,
                        "the upstream refused the new password in the password file; still using the previous one"
                    );
                }
                held_back.send_replace(Some(format!(
                    "the new password in {} was refused ({why}); still using the previous one",
                    path.display()
                )));
                refused = Some((read, Instant::now()));
            }
            verdict => {
                if let Verdict::Unknown(why) = &verdict {
                    tracing::warn!(file = %path.display(), reason = %why, "could not try the new password before using it; using it");
                }
                tracing::info!(
                    file = %path.display(),
                    "the password file changed; new connections use the new password and live ones re-authenticate with it"
                );
                refused = None;
                held_back.send_replace(None);
                tx.send_replace(FeedState::Ready(candidate));
            }
        }
    }
}

/// Follows the client password file at `path` for the life of the process,
/// publishing each change on `tx`.
pub async fn follow_client(path: PathBuf, tx: watch::Sender<Option<Arc<Secret>>>) {
    let mut unreadable = false;
    loop {
        tokio::time::sleep(POLL).await;
        let Some(read) = reread(&path, &mut unreadable) else {
            continue;
        };
        if tx.borrow().as_deref() == Some(&read) {
            continue;
        }
        tracing::info!(file = %path.display(), "the client password file changed; clients authenticate with the new password from now on");
        tx.send_replace(Some(Arc::new(read)));
    }
}

/// Reads the file again; logs (once per spell) when it cannot be. A
/// mounted secret is a few bytes in a tmpfs: read in place, not worth a
/// blocking-pool hop every poll.
fn reread(path: &Path, unreadable: &mut bool) -> Option<Secret> {
    match read(path) {
        Ok(secret) => {
            *unreadable = false;
            Some(secret)
        }
        Err(why) => {
            if !*unreadable {
                tracing::error!(error = %why, "keeping the previous password");
            }
            *unreadable = true;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn read_drops_one_newline_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        write(&path, "s3cret\r\n");
        assert_eq!(read(&path).unwrap().expose(), "s3cret");
        write(&path, "\n");
        let empty = read(&path).unwrap_err();
        assert!(empty.ends_with("is empty"), "{empty}");
        let missing = read(&dir.path().join("nope")).unwrap_err();
        assert!(missing.starts_with("reading password file "), "{missing}");
    }

    /// A verifier that refuses one password and records what it was asked.
    fn refusing(bad: &'static str, asked: Arc<Mutex<Vec<String>>>) -> Verify {
        Arc::new(move |c: Arc<Credential>| {
            let pw = c.secret.as_ref().map(|s| s.expose().to_string());
            let asked = asked.clone();
            Box::pin(async move {
                let pw = pw.unwrap_or_default();
                asked.lock().unwrap().push(pw.clone());
                if pw == bad {
                    Verdict::Refused("WRONGPASS".into())
                } else {
                    Verdict::Accepted
                }
            })
        })
    }

    fn secret_of(rx: &watch::Receiver<FeedState>) -> String {
        match &*rx.borrow() {
            FeedState::Ready(c) => c.secret.as_ref().unwrap().expose().to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_password_is_published_once_accepted_and_a_refused_one_is_held_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        write(&path, "one\n");
        let first = Arc::new(Credential::password(
            Some("app".into()),
            read(&path).unwrap(),
        ));
        let (tx, rx) = watch::channel(FeedState::Ready(first));
        let (held_tx, held) = watch::channel(None);
        let asked = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(follow_upstream(
            path.clone(),
            tx,
            refusing("bad", asked.clone()),
            held_tx,
        ));

        tokio::time::sleep(POLL * 2).await;
        assert!(
            asked.lock().unwrap().is_empty(),
            "an unchanged file is not tried"
        );

        write(&path, "bad\n");
        tokio::time::sleep(POLL + Duration::from_millis(10)).await;
        assert_eq!(secret_of(&rx), "one", "the refused password is not used");
        let why = held.borrow().clone().expect("held back");
        assert!(why.contains("was refused (WRONGPASS)"), "{why}");
        assert!(!why.contains("bad"), "{why}");
        tokio::time::sleep(POLL * 2).await;
        assert_eq!(asked.lock().unwrap().len(), 1, "not tried on every poll");
        tokio::time::sleep(RETRY_REFUSED).await;
        assert_eq!(asked.lock().unwrap().len(), 2, "tried again later");

        write(&path, "two");
        tokio::time::sleep(POLL + Duration::from_millis(10)).await;
        assert_eq!(secret_of(&rx), "two");
        assert_eq!(*held.borrow(), None);
        match &*rx.borrow() {
            FeedState::Ready(c) => assert_eq!(c.username.as_deref(), Some("app")),
            other => panic!("{other:?}"),
        }

        std::fs::remove_file(&path).unwrap();
        tokio::time::sleep(POLL * 2).await;
        assert_eq!(secret_of(&rx), "two", "a missing file keeps the password");
    }

    #[tokio::test(start_paused = true)]
    async fn a_symlink_swap_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        // The layout Kubernetes mounts: pw -> ..data/pw, ..data -> a dated directory.
        for (name, text) in [("v1", "one"), ("v2", "two")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            write(&dir.path().join(name).join("pw"), text);
        }
        std::os::unix::fs::symlink("v1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/pw", dir.path().join("pw")).unwrap();
        let path = dir.path().join("pw");
        let (tx, rx) = watch::channel(Some(Arc::new(read(&path).unwrap())));
        tokio::spawn(follow_client(path, tx));
        std::os::unix::fs::symlink("v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        tokio::time::sleep(POLL + Duration::from_millis(10)).await;
        assert_eq!(rx.borrow().as_ref().unwrap().expose(), "two");
    }
}
