//! Pub/sub traffic in server output: telling pushes (messages) from
//! confirmations (subscribe/unsubscribe) from ordinary replies.
//!
//! Only the head of a frame is looked at: the aggregate header and its first
//! element, which Redis always sends as a short bulk string. Confirmations are
//! small and parsed whole, to learn the channel they name.

use super::command::SubscribeKind;
use super::frame::{bulk, line};
use super::number::parse_i64;

/// What a frame starting with `*` or `>` is, judged by its first element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Not enough bytes yet to tell.
    NeedMore,
    /// `message`, `pmessage` or `smessage`: a push, not a reply to anything.
    Message,
    /// A subscribe-family confirmation.
    Confirmation(SubscribeKind),
    /// A client-side caching push (RESP3 only): `invalidate` or
    /// `tracking-redir-broken`.
    Tracking(TrackingPush),
    /// Anything else (including RESP2's `pong` in subscribed mode).
    Other,
}

/// The client-side caching pushes Redis sends a RESP3 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackingPush {
    /// `invalidate <keys | null>`: keys changed (null: the database was flushed).
    Invalidate,
    /// `tracking-redir-broken <id>`: the client invalidations went to is gone.
    RedirBroken,
}

/// The longest first element worth reading: `tracking-redir-broken`.
const KIND_MAX: i64 = 21;

/// Classifies the aggregate frame at the start of `buf`.
pub fn peek(buf: &[u8]) -> Peek {
    let Some((aggregate, count, pos)) = line(buf, 0) else {
        return Peek::NeedMore;
    };
    if !matches!(parse_i64(count), Some(n) if n >= 2) {
        return Peek::Other;
    }
    let Some((kind, len, start)) = line(buf, pos) else {
        return Peek::NeedMore;
    };
    if kind != b'$' {
        return Peek::Other;
    }
    let len = match parse_i64(len) {
        Some(n) if (0..=KIND_MAX).contains(&n) => n as usize,
        _ => return Peek::Other,
    };
    let Some(name) = buf.get(start..start + len) else {
        return Peek::NeedMore;
    };
    match name {
        b"message" | b"pmessage" | b"smessage" => Peek::Message,
        b"invalidate" if aggregate == b'>' => Peek::Tracking(TrackingPush::Invalidate),
        b"tracking-redir-broken" if aggregate == b'>' => Peek::Tracking(TrackingPush::RedirBroken),
        other => SubscribeKind::from_confirmation(other)
            .map(Peek::Confirmation)
            .unwrap_or(Peek::Other),
    }
}

/// The channel (or pattern) a whole confirmation frame names: `None` if the
/// frame is not a well-formed confirmation; `Some(None)` for the null channel
/// Redis sends when unsubscribing from nothing.
pub fn confirmed_channel(frame: &[u8]) -> Option<Option<Vec<u8>>> {
    let (_, count, pos) = line(frame, 0)?;
    if parse_i64(count)? != 3 {
        return None;
    }
    let (_, pos) = bulk(frame, pos)?;
    let (channel, _) = bulk(frame, pos)?;
    Some(channel.map(<[u8]>::to_vec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_messages_from_confirmations() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
        assert_eq!(peek(msg), Peek::Message);
        assert_eq!(peek(&msg[..10]), Peek::NeedMore);
        assert_eq!(peek(b">4\r\n$8\r\npmessage\r\n"), Peek::Message);
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        assert_eq!(peek(sub), Peek::Confirmation(SubscribeKind::Subscribe));
        assert_eq!(peek(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"), Peek::Other);
        assert_eq!(peek(b"*2\r\n:1\r\n:2\r\n"), Peek::Other);
        assert_eq!(peek(b"*1\r\n$7\r\nmessage\r\n"), Peek::Other);
        assert_eq!(peek(b"*2\r\n$100\r\n"), Peek::Other);
    }

    #[test]
    fn tells_client_side_caching_pushes_only_in_push_frames() {
        let keys = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
        assert_eq!(peek(keys), Peek::Tracking(TrackingPush::Invalidate));
        let broken = b">2\r\n$21\r\ntracking-redir-broken\r\n:7\r\n";
        assert_eq!(peek(broken), Peek::Tracking(TrackingPush::RedirBroken));
        // An array reply that happens to start with the word is a reply.
        assert_eq!(peek(b"*2\r\n$10\r\ninvalidate\r\n$1\r\nk\r\n"), Peek::Other);
    }

    #[test]
    fn malformed_lines_are_judged_not_waited_on() {
        // A bare LF where the first element belongs used to panic.
        assert_eq!(peek(b">2\r\n\n"), Peek::Other);
        // Lines ending in a bare LF (which the scanner accepts) used to read as
        // incomplete however many bytes followed.
        assert_eq!(peek(b">3\n$7\nmessage\r\n"), Peek::Message);
    }

    #[test]
    fn reads_the_confirmed_channel() {
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        assert_eq!(confirmed_channel(sub), Some(Some(b"ch".to_vec())));
        let none = b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n";
        assert_eq!(confirmed_channel(none), Some(None));
        let resp3 = b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n";
        assert_eq!(confirmed_channel(resp3), Some(None));
    }
}
