//! Blocking commands across token expiry.
//!
//! A command blocked in the server holds every later command on its
//! connection, an injected AUTH included: a client waiting in `BLPOP k 0`
//! would keep its connection on the old token until the server closes it at
//! expiry. So when a block could outlive the time the connection has left
//! before it must re-authenticate ([`budget`]), the request side runs it in
//! slices: the same command with the timeout cut to the budget. A slice that
//! times out answers a null, which is consumed; the connection re-authenticates
//! and the command goes again with the time left. The client sees one call
//! and one reply. Later commands from the client wait in redauth meanwhile,
//! as they would have waited in the server.
//!
//! `XREAD … BLOCK … $` means "entries newer than the newest one now": before
//! the first slice each `$` is resolved to the stream's last generated id
//! (`XINFO STREAM`), so no entry added between slices is missed.
//!
//! What slicing cannot keep: a slice is a new call, so a client re-issuing
//! joins the back of the queue of clients blocked on the same key, and a
//! `CLIENT UNBLOCK … TIMEOUT` from elsewhere ends a slice, not the call.

use super::reauth::MAX_SPREAD;
use crate::resp::command::BlockKind;
use crate::resp::{encode, frame};
use bytes::{Bytes, BytesMut};
use std::time::Duration;

/// The shortest slice; a connection whose token is about to expire with no
/// newer one in sight keeps blocking in slices this long.
pub const MIN_SLICE: Duration = Duration::from_millis(100);

/// The least time kept between a slice's end and the token's expiry (less
/// for short-lived tokens), covering the server's timeout resolution and the
/// round trip of the re-authentication.
pub const GUARD: Duration = Duration::from_secs(2);

/// How long a slice may block when the connection's token has `left` before
/// it expires; `jitter` in `[0, 1)` spreads connections blocked since the same
/// moment so they do not all re-authenticate at once. A fresh token is
/// published well before the end of the budget (the refresher renews at 70 %
/// of the lifetime, and a quarter of it before expiry at the latest).
pub fn budget(left: Duration, jitter: f64) -> Duration {
    let quarter = left / 4;
    let guard = GUARD.min(quarter) + quarter.min(MAX_SPREAD).mul_f64(jitter.clamp(0.0, 1.0));
    left.saturating_sub(guard).max(MIN_SLICE)
}

/// How a timeout argument is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// A blocking command that can run in slices.
#[derive(Debug, Clone)]
pub struct Call {
    /// The command as the client sent it.
    args: Vec<Bytes>,
    /// Which argument is the timeout, and in what unit.
    timeout_at: usize,
    unit: Unit,
    /// How long the client asked to block (`None`: forever).
    pub timeout: Option<Duration>,
    /// XREAD's `$` ids: (id argument, its stream's key argument).
    dollars: Vec<(usize, usize)>,
    /// The ids the `$`s resolved to so far, in order.
    resolved: Vec<Bytes>,
}

impl Call {
    /// Reads a blocking command; `None` when it does not block or is
    /// malformed (it then goes to the server as is, which words any error).
    pub fn parse(kind: BlockKind, args: &[Bytes]) -> Option<Call> {
        let (timeout_at, unit, dollars) = match kind {
            BlockKind::LastSeconds if args.len() >= 3 => (args.len() - 1, Unit::Seconds, vec![]),
            BlockKind::FirstSeconds if args.len() >= 4 => (1, Unit::Seconds, vec![]),
            BlockKind::XRead | BlockKind::XReadGroup => stream_options(kind, args)?,
            _ => return None,
        };
        let timeout = parse_timeout(&args[timeout_at], unit)?;
        Some(Call {
            args: args.to_vec(),
            timeout_at,
            unit,
            timeout: (!timeout.is_zero()).then_some(timeout),
            dollars,
            resolved: Vec::new(),
        })
    }

    /// The stream keys whose `$` must be resolved before the first slice.
    pub fn unresolved_keys(&self) -> Vec<Bytes> {
        self.dollars[self.resolved.len()..]
            .iter()
            .map(|&(_, key)| self.args[key].clone())
            .collect()
    }

    /// Records the next `$`'s last generated id (see [`last_id`]). True
    /// once every `$` is resolved.
    pub fn resolve(&mut self, id: Bytes) -> bool {
        if self.resolved.len() < self.dollars.len() {
            self.resolved.push(id);
        }
        self.resolved.len() == self.dollars.len()
    }

    /// The command as the client sent it.
    pub fn original(&self) -> BytesMut {
        encode::command(&self.args)
    }

    /// The command blocking for `timeout` (at least a millisecond: zero
    /// would mean forever), with `$` ids resolved.
    pub fn with_timeout(&self, timeout: Duration) -> BytesMut {
        let ms = timeout.as_millis().max(1);
        let written = match self.unit {
            Unit::Seconds => format!("{}.{:03}", ms / 1000, ms % 1000),
            Unit::Millis => ms.to_string(),
        };
        let mut args = self.args.clone();
        args[self.timeout_at] = Bytes::from(written);
        for (&(id_at, _), id) in self.dollars.iter().zip(&self.resolved) {
            args[id_at] = id.clone();
        }
        encode::command(&args)
    }
}

/// Where a command's timeout is, and XREAD's `$` ids (see [`Call`]).
type StreamOptions = (usize, Unit, Vec<(usize, usize)>);

/// XREAD / XREADGROUP: where the BLOCK value is, and XREAD's `$` ids.
fn stream_options(kind: BlockKind, args: &[Bytes]) -> Option<StreamOptions> {
    let is = |i: usize, name: &str| args[i].eq_ignore_ascii_case(name.as_bytes());
    let group = kind == BlockKind::XReadGroup;
    let mut block = None;
    let mut i = 1;
    let streams = loop {
        if i >= args.len() {
            return None;
        }
        if is(i, "streams") {
            break i + 1;
        } else if is(i, "block") || is(i, "count") {
            if is(i, "block") {
                block = Some(i + 1);
            }
            i += 2;
        } else if group && is(i, "group") {
            i += 3;
        } else if group && is(i, "noack") {
            i += 1;
        } else {
            return None;
        }
    };
    let block = block.filter(|&b| b < streams)?;
    let rest = args.len().checked_sub(streams)?;
    if rest == 0 || rest % 2 != 0 {
        return None;
    }
    let n = rest / 2;
    let dollars = if group {
        Vec::new()
    } else {
        (0..n)
            .filter(|k| &args[streams + n + k][..] == b"$")
            .map(|k| (streams + n + k, streams + k))
            .collect()
    };
    Some((block, Unit::Millis, dollars))
}

/// A timeout as Redis reads it; `None` for what Redis would refuse.
fn parse_timeout(arg: &[u8], unit: Unit) -> Option<Duration> {
    let text = std::str::from_utf8(arg).ok()?;
    match unit {
        Unit::Seconds => {
            let secs: f64 = text.parse().ok()?;
            (0.0..1e12)
                .contains(&secs)
                .then(|| Duration::from_millis((secs * 1000.0).ceil() as u64))
        }
        Unit::Millis => text.parse::<u64>().ok().map(Duration::from_millis),
    }
}

/// Whether the reply at the start of `buf` is the null a blocking command
/// answers when its timeout runs out; `None` until enough bytes are there.
pub fn timed_out(buf: &[u8]) -> Option<bool> {
    match buf {
        [] => None,
        [b'_', ..] => Some(true),
        [b'*' | b'$'] => None,
        [b'*' | b'$', b'-', ..] => Some(true),
        _ => Some(false),
    }
}

/// What the reply side tells the request side about a sliced command.
#[derive(Debug)]
pub enum SliceEnd {
    /// The slice timed out; its null reply, held back from the client.
    TimedOut(Bytes),
    /// The slice got an answer, which went to the client: the call is over.
    Served,
    /// The answer to an `XINFO STREAM` resolving a `$` (see [`last_id`]).
    LastId(Result<Bytes, String>),
}

/// What `$` stands for, from a whole `XINFO STREAM` reply (RESP2 array or
/// RESP3 map): the stream's last generated id, or `0-0` when there is no
/// such stream (as XREAD reads `$` then). Any other error (no permission, a
/// wrong type…) is the server's words.
pub fn last_id(frame: &[u8]) -> Result<Bytes, String> {
    if frame.first() == Some(&b'-') {
        let text = String::from_utf8_lossy(&frame[1..]).trim_end().to_string();
        return if text.contains("no such key") {
            Ok(Bytes::from_static(b"0-0"))
        } else {
            Err(text)
        };
    }
    let elements = frame::elements(frame);
    let found = elements.chunks_exact(2).find_map(|pair| {
        let (key, _) = frame::bulk(pair[0], 0)?;
        if key? != b"last-generated-id" {
            return None;
        }
        let (id, _) = frame::bulk(pair[1], 0)?;
        id.map(Bytes::copy_from_slice)
    });
    found.ok_or_else(|| "XINFO STREAM gave no last-generated-id".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn call(kind: BlockKind, s: &str) -> Option<Call> {
        Call::parse(kind, &args(s))
    }

    #[test]
    fn the_budget_keeps_a_guard_and_spreads_by_jitter() {
        let hour = Duration::from_secs(3600);
        assert_eq!(budget(hour, 0.0), hour - GUARD);
        assert_eq!(budget(hour, 0.5), hour - GUARD - MAX_SPREAD / 2);
        // A 4-second token: a quarter of it is the guard, jitter up to another.
        assert_eq!(budget(Duration::from_secs(4), 0.0), Duration::from_secs(3));
        assert_eq!(
            budget(Duration::from_secs(4), 0.5),
            Duration::from_millis(2500)
        );
        assert_eq!(budget(Duration::ZERO, 0.9), MIN_SLICE);
    }

    #[test]
    fn list_commands_get_their_timeout_rewritten_in_seconds() {
        let c = call(BlockKind::LastSeconds, "BLPOP a b 0").unwrap();
        assert_eq!(c.timeout, None);
        assert_eq!(
            &c.with_timeout(Duration::from_millis(2500))[..],
            &encode::command(&args("BLPOP a b 2.500"))[..]
        );
        let c = call(BlockKind::LastSeconds, "BLMOVE s d LEFT RIGHT 1.5").unwrap();
        assert_eq!(c.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(
            &c.with_timeout(Duration::ZERO)[..],
            &encode::command(&args("BLMOVE s d LEFT RIGHT 0.001"))[..],
            "never zero, which blocks forever"
        );
        let c = call(BlockKind::FirstSeconds, "BZMPOP 7 1 z MIN").unwrap();
        assert_eq!(c.timeout, Some(Duration::from_secs(7)));
        assert_eq!(
            &c.with_timeout(Duration::from_secs(61))[..],
            &encode::command(&args("BZMPOP 61.000 1 z MIN"))[..]
        );
    }

    #[test]
    fn what_redis_would_refuse_is_left_to_redis() {
        assert!(call(BlockKind::LastSeconds, "BLPOP k -1").is_none());
        assert!(call(BlockKind::LastSeconds, "BLPOP k soon").is_none());
        assert!(call(BlockKind::LastSeconds, "BLPOP k inf").is_none());
        assert!(call(BlockKind::LastSeconds, "BLPOP k").is_none());
        assert!(call(BlockKind::FirstSeconds, "BLMPOP 0 1").is_none());
        assert!(call(BlockKind::XRead, "XREAD BLOCK -5 STREAMS s $").is_none());
        assert!(call(BlockKind::XRead, "XREAD BLOCK 0 STREAMS s").is_none());
        assert!(call(BlockKind::XRead, "XREAD BLOCK 0 NOACK STREAMS s $").is_none());
    }

    #[test]
    fn xread_without_block_does_not_block() {
        assert!(call(BlockKind::XRead, "XREAD COUNT 2 STREAMS s 0").is_none());
    }

    #[test]
    fn xread_dollars_resolve_before_the_first_slice() {
        let mut c = call(
            BlockKind::XRead,
            "xread count 5 block 0 streams a b c $ 7-1 $",
        )
        .unwrap();
        assert_eq!(c.timeout, None);
        assert_eq!(c.unresolved_keys(), args("a c"));
        assert!(!c.resolve(Bytes::from_static(b"9-0")));
        assert_eq!(c.unresolved_keys(), args("c"));
        assert!(c.resolve(Bytes::from_static(b"0-0")));
        assert_eq!(
            &c.with_timeout(Duration::from_millis(1234))[..],
            &encode::command(&args("xread count 5 block 1234 streams a b c 9-0 7-1 0-0"))[..]
        );
        assert_eq!(
            &c.original()[..],
            &encode::command(&args("xread count 5 block 0 streams a b c $ 7-1 $"))[..]
        );
    }

    #[test]
    fn xreadgroup_keeps_its_ids() {
        let c = call(
            BlockKind::XReadGroup,
            "XREADGROUP GROUP g alice COUNT 1 BLOCK 2000 NOACK STREAMS s >",
        )
        .unwrap();
        assert_eq!(c.timeout, Some(Duration::from_secs(2)));
        assert!(c.unresolved_keys().is_empty());
        assert_eq!(
            &c.with_timeout(Duration::from_millis(500))[..],
            &encode::command(&args(
                "XREADGROUP GROUP g alice COUNT 1 BLOCK 500 NOACK STREAMS s >"
            ))[..]
        );
    }

    #[test]
    fn nulls_are_timeouts_in_either_protocol() {
        assert_eq!(timed_out(b"*-1\r\n"), Some(true));
        assert_eq!(timed_out(b"$-1\r\n"), Some(true));
        assert_eq!(timed_out(b"_\r\n"), Some(true));
        assert_eq!(timed_out(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n"), Some(false));
        assert_eq!(timed_out(b"-WRONGTYPE x\r\n"), Some(false));
        assert_eq!(timed_out(b"%1\r\n"), Some(false));
        assert_eq!(timed_out(b"*"), None);
        assert_eq!(timed_out(b""), None);
    }

    #[test]
    fn last_generated_id_from_either_protocol() {
        let resp2 = b"*6\r\n$6\r\nlength\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n5-1\r\n$11\r\nfirst-entry\r\n*-1\r\n";
        assert_eq!(last_id(resp2), Ok(Bytes::from_static(b"5-1")));
        let resp3 = b"%2\r\n$6\r\nlength\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n6-0\r\n";
        assert_eq!(last_id(resp3), Ok(Bytes::from_static(b"6-0")));
        assert_eq!(
            last_id(b"-ERR no such key\r\n"),
            Ok(Bytes::from_static(b"0-0"))
        );
        assert_eq!(last_id(b"-NOPERM no\r\n"), Err("NOPERM no".into()));
    }
}
