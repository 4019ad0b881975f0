//! Authenticating an upstream connection: the one place `AUTH` is written
//! and the one place its reply is judged, for a fresh dial
//! ([`super::Connector::connect`]), a pooled connection's reset
//! ([`super::pool::reset`]) and a live session's re-authentication and
//! `RESET` (`crate::session`).

use crate::credentials::Credential;
use crate::resp::encode;
use bytes::BytesMut;

/// The `AUTH` command for `credential`, or `None` when it has nothing to send
/// (`--auth none`).
pub fn command(credential: &Credential) -> Option<BytesMut> {
    let secret = credential.secret.as_ref()?.expose().as_bytes();
    Some(match &credential.username {
        Some(user) => encode::command(&[b"AUTH", user.as_bytes(), secret]),
        None => encode::command(&[&b"AUTH"[..], secret]),
    })
}

/// `reset` (a `RESET` command) followed, in the same write, by `AUTH`: after
/// `RESET` a connection is the default user's, and no command may run
/// before it is authenticated again. The flag says whether an `AUTH` was
/// added (and so whether a reply to it is owed).
pub fn after_reset(mut reset: BytesMut, credential: &Credential) -> (BytesMut, bool) {
    match command(credential) {
        Some(auth) => {
            reset.unsplit(auth);
            (reset, true)
        }
        None => (reset, false),
    }
}

/// The server's refusal of an `AUTH`: its error text, without the leading
/// `-` and the line end. An `AUTH` reply never quotes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Judges the reply to an `AUTH`: a simple string (`+OK`) is success,
/// anything else a refusal.
pub fn judge(reply: &[u8]) -> Result<(), Refused> {
    if reply.first() == Some(&b'+') {
        return Ok(());
    }
    let text = String::from_utf8_lossy(reply);
    Err(Refused(text.trim_start_matches('-').trim_end().to_string()))
}

impl Refused {
    /// Whether the refusal says "not now" rather than "not this credential":
    /// ElastiCache Serverless answers `ERR IAM Authentication service is not
    /// available` and `ERR Exceeded limit of IAM Authentication requests` to
    /// a valid token under load; GCP Memorystore answers `ERR
    /// (ERR_IAM_EXHAUSTED) Memorystore IAM authentication backend quota
    /// exceeded…` when new connections authenticate faster than its
    /// per-second limit. Such an AUTH is tried again later; the connection
    /// keeps whatever identity it had.
    pub fn transient(&self) -> bool {
        const TRANSIENT: [&str; 3] = [
            "IAM Authentication service is not available",
            "Exceeded limit of IAM Authentication requests",
            "ERR_IAM_EXHAUSTED",
        ];
        TRANSIENT.iter().any(|t| self.0.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    #[test]
    fn auth_with_and_without_username() {
        let with = Credential::password(Some("alice".into()), Secret::new("pw".into()));
        assert_eq!(
            &command(&with).unwrap()[..],
            b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$2\r\npw\r\n"
        );
        let without = Credential::password(None, Secret::new("pw".into()));
        assert_eq!(
            &command(&without).unwrap()[..],
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        );
        assert!(command(&Credential::none()).is_none());
    }

    #[test]
    fn reset_is_followed_by_auth_when_there_is_one() {
        let reset = || encode::command(&["RESET"]);
        let with = Credential::password(None, Secret::new("pw".into()));
        let (out, owed) = after_reset(reset(), &with);
        assert_eq!(
            &out[..],
            b"*1\r\n$5\r\nRESET\r\n*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        );
        assert!(owed);
        let (out, owed) = after_reset(reset(), &Credential::none());
        assert_eq!(&out[..], b"*1\r\n$5\r\nRESET\r\n");
        assert!(!owed);
    }

    #[test]
    fn only_a_simple_string_is_success() {
        assert_eq!(judge(b"+OK\r\n"), Ok(()));
        assert_eq!(
            judge(b"-WRONGPASS invalid username-password pair\r\n"),
            Err(Refused("WRONGPASS invalid username-password pair".into()))
        );
        assert!(judge(b":1\r\n").is_err());
        assert!(judge(b"").is_err());
    }

    #[test]
    fn iam_service_trouble_is_transient_and_a_wrong_token_is_not() {
        let refused = |reply: &[u8]| judge(reply).unwrap_err();
        assert!(refused(b"-ERR IAM Authentication service is not available\r\n").transient());
        assert!(refused(b"-ERR Exceeded limit of IAM Authentication requests\r\n").transient());
        assert!(
            !refused(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                .transient()
        );
        assert!(!refused(b"-ERR max number of clients reached\r\n").transient());
        assert!(refused(b"-ERR (ERR_IAM_EXHAUSTED) Memorystore IAM authentication backend quota exceeded. See https://cloud.google.com/memorystore/docs/cluster/manage-iam-auth#error_messages.\r\n").transient());
    }
}
