//! A blocking command held by redauth and run in slices (the why and the
//! parsing are in [`super::blocking`]): which frame goes next, and what each
//! answer means. No I/O: the request side sends what [`Slicer`] returns and
//! reports the reply side's [`SliceEnd`]s back to it.

use super::blocking::{Call, SliceEnd};
use super::Expect;
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::time::Instant;

/// The blocking command being held, if any.
#[derive(Debug, Default)]
pub(super) struct Slicer {
    held: Option<HeldCall>,
}

#[derive(Debug)]
struct HeldCall {
    call: Call,
    /// When the client's own timeout runs out (`None`: never).
    deadline: Option<Instant>,
    /// A slice (or an `XINFO` resolving a `$`) is with the server: the
    /// connection takes nothing else until it is answered.
    in_flight: bool,
}

/// A frame for the request side to send upstream.
#[derive(Debug)]
pub(super) enum Send {
    /// With this record, its reply consumed by the reply side.
    Special(Expect, BytesMut),
    /// An ordinary command whose reply is the client's (the last slice, or
    /// the command sent whole after all).
    Counted(BytesMut),
}

/// What the request side does after a slice ended.
#[derive(Debug)]
pub(super) enum After {
    /// Nothing: the call is over, or still waiting for more answers.
    Nothing,
    /// The call is over: answer the client with this (the client's own
    /// timeout ran out, and this is the null it gets).
    Reply(Bytes),
    /// Send this.
    Send(Send),
    /// Between two slices: the connection may re-authenticate now; then
    /// [`Slicer::next`] gives the next slice.
    Between,
}

impl Slicer {
    /// Whether a held command waits for an answer: an AUTH cannot go in, and
    /// later client commands wait.
    pub fn blocked(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.in_flight)
    }

    /// Whether a command is held at all.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Holds `call`, unless it ends within `budget` anyway (then `None`: send
    /// it whole). Returns the first frames to send: the `XINFO STREAM`s that
    /// resolve its `$`s, or its first slice.
    pub fn start(&mut self, call: Call, now: Instant, budget: Duration) -> Option<Vec<Send>> {
        let deadline = call.timeout.map(|t| now + t);
        if deadline.is_some_and(|d| d <= now + budget) {
            return None;
        }
        let keys = call.unresolved_keys();
        self.held = Some(HeldCall {
            call,
            deadline,
            in_flight: true,
        });
        if keys.is_empty() {
            return Some(self.next(now, budget).into_iter().collect());
        }
        let lookups = keys
            .iter()
            .map(|key| {
                let xinfo = crate::resp::encode::command(&[&b"XINFO"[..], b"STREAM", key]);
                Send::Special(Expect::LastId, xinfo)
            })
            .collect();
        Some(lookups)
    }

    /// The next slice: the held command again, for the time it has left or
    /// `budget`, whichever is shorter; the last slice ends the hold.
    pub fn next(&mut self, now: Instant, budget: Duration) -> Option<Send> {
        let held = self.held.as_mut()?;
        held.in_flight = true;
        match held.deadline {
            Some(deadline) if deadline <= now + budget => {
                // Whatever this one answers is the client's reply.
                let frame = held
                    .call
                    .with_timeout(deadline.saturating_duration_since(now));
                self.held = None;
                Some(Send::Counted(frame))
            }
            _ => Some(Send::Special(Expect::Slice, held.call.with_timeout(budget))),
        }
    }

    /// The reply side reports on the held command; `budget` is for a slice
    /// sent at once (after the last `$` was resolved).
    pub fn ended(&mut self, end: SliceEnd, now: Instant, budget: Duration) -> After {
        let Some(held) = &mut self.held else {
            return After::Nothing;
        };
        match end {
            SliceEnd::Served => {
                self.held = None;
                After::Nothing
            }
            SliceEnd::LastId(Ok(id)) => match held.call.resolve(id) {
                true => self.next(now, budget).map_or(After::Nothing, After::Send),
                false => After::Nothing,
            },
            SliceEnd::LastId(Err(why)) => {
                // `$` cannot be pinned down: block in one piece, as sent.
                tracing::warn!(reply = %why, "cannot resolve XREAD's $; the command blocks unsliced and may not outlive the token");
                let frame = held.call.original();
                self.held = None;
                After::Send(Send::Counted(frame))
            }
            SliceEnd::TimedOut(null) => {
                if held.deadline.is_some_and(|d| d <= now) {
                    self.held = None;
                    return After::Reply(null);
                }
                held.in_flight = false;
                After::Between
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::command::BlockKind;

    fn call(s: &str) -> Call {
        let args: Vec<Bytes> = s
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let kind = if s.starts_with("XREAD") {
            BlockKind::XRead
        } else {
            BlockKind::LastSeconds
        };
        Call::parse(kind, &args).expect("a blocking call")
    }

    fn special(send: &Send) -> &Expect {
        match send {
            Send::Special(expect, _) => expect,
            Send::Counted(_) => panic!("not special: {send:?}"),
        }
    }

    #[test]
    fn a_call_that_ends_within_the_budget_is_not_held() {
        let mut s = Slicer::default();
        let now = Instant::now();
        assert!(s
            .start(call("BLPOP k 5"), now, Duration::from_secs(10))
            .is_none());
        assert!(!s.holding());
    }

    #[test]
    fn slices_until_the_clients_own_timeout_then_a_last_counted_one() {
        let mut s = Slicer::default();
        let now = Instant::now();
        let budget = Duration::from_secs(4);
        let first = s.start(call("BLPOP k 10"), now, budget).expect("held");
        assert_eq!(first.len(), 1);
        assert_eq!(special(&first[0]), &Expect::Slice);
        assert!(s.blocked());
        let null = Bytes::from_static(b"*-1\r\n");
        let later = now + Duration::from_secs(4);
        assert!(matches!(
            s.ended(SliceEnd::TimedOut(null.clone()), later, budget),
            After::Between
        ));
        assert!(
            s.holding() && !s.blocked(),
            "an AUTH may go in between slices"
        );
        let second = s.next(later, budget).expect("a second slice");
        assert_eq!(special(&second), &Expect::Slice);
        let last = s
            .next(now + Duration::from_secs(8), budget)
            .expect("the last");
        assert!(matches!(last, Send::Counted(_)), "{last:?}");
        assert!(!s.holding());
    }

    #[test]
    fn the_clients_timeout_running_out_answers_the_null() {
        let mut s = Slicer::default();
        let now = Instant::now();
        s.start(call("BLPOP k 10"), now, Duration::from_secs(1))
            .expect("held");
        let null = Bytes::from_static(b"*-1\r\n");
        let after = s.ended(
            SliceEnd::TimedOut(null.clone()),
            now + Duration::from_secs(11),
            Duration::from_secs(1),
        );
        assert!(matches!(after, After::Reply(reply) if reply == null));
        assert!(!s.holding());
    }

    #[test]
    fn dollars_are_resolved_first_and_an_answer_ends_the_call() {
        let mut s = Slicer::default();
        let now = Instant::now();
        let budget = Duration::from_secs(1);
        let first = s
            .start(call("XREAD BLOCK 0 STREAMS a b $ $"), now, budget)
            .expect("held");
        assert_eq!(
            first.iter().map(special).collect::<Vec<_>>(),
            [&Expect::LastId, &Expect::LastId]
        );
        let id = || SliceEnd::LastId(Ok(Bytes::from_static(b"1-0")));
        assert!(matches!(s.ended(id(), now, budget), After::Nothing));
        match s.ended(id(), now, budget) {
            After::Send(send) => assert_eq!(special(&send), &Expect::Slice),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.ended(SliceEnd::Served, now, budget),
            After::Nothing
        ));
        assert!(!s.holding());
    }

    #[test]
    fn an_unresolvable_dollar_sends_the_command_whole() {
        let mut s = Slicer::default();
        let now = Instant::now();
        s.start(
            call("XREAD BLOCK 0 STREAMS a $"),
            now,
            Duration::from_secs(1),
        )
        .expect("held");
        let after = s.ended(
            SliceEnd::LastId(Err("NOPERM".into())),
            now,
            Duration::from_secs(1),
        );
        assert!(matches!(after, After::Send(Send::Counted(_))), "{after:?}");
        assert!(!s.holding());
    }
}
