//! The front's reply side: backend output relayed untouched, frame by frame,
//! while matching in-band replies to the [`Expect`] records of the commands
//! they answer, to learn which AUTHs succeeded.
//!
//! Out of band (answering no command): RESP3 pushes (`>`), and — on a RESP2
//! connection that has subscriptions or is subscribing — arrays shaped like a
//! pub/sub message (`["message", ch, payload]`, `["pmessage", pat, ch,
//! payload]`, `["smessage", ch, payload]`) or a (un)subscribe confirmation
//! (`[kind, channel-or-null, integer]`). Confirmations are counted against
//! the SUBSCRIBE-family command at the head of the queue: it expects one per
//! channel named (for "unsubscribe from all": one per current subscription,
//! or one if none), or a single error reply. [`Expect::Local`] expects
//! nothing from the backend: its bytes go to the client as soon as every
//! reply before it has. Every other record expects one in-band reply.

use super::Expect;
use bytes::BytesMut;
use memchr::memchr;
use redauth::resp::command::SubscribeKind;
use redauth::resp::{parse_i64, pubsub, ReplyError, ReplyScanner};
use std::collections::{HashSet, VecDeque};
use std::time::SystemTime;

/// What the frame being relayed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Relayed as it arrives; `in_band` frames answer the queue head.
    Stream { in_band: bool, first: u8 },
    /// A (possible) subscribe-family confirmation, looked at whole.
    Confirmation(SubscribeKind),
    /// The reply to AUTH, HELLO or RESET, looked at whole (it is small).
    Tracked,
}

/// How a frame's head looks, before the whole frame is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    NeedMore,
    Message,
    Confirmation(SubscribeKind),
    Other,
}

/// Reads an aggregate's element count and first element (if it is a short
/// bulk string) to tell pub/sub traffic from anything else.
fn shape(buf: &[u8]) -> Shape {
    let Some(nl) = memchr(b'\n', buf) else {
        return Shape::NeedMore;
    };
    let count = parse_i64(buf[1..nl].strip_suffix(b"\r").unwrap_or(&buf[1..nl]));
    if !matches!(count, Some(3 | 4)) {
        return Shape::Other;
    }
    match pubsub::peek(buf) {
        pubsub::Peek::NeedMore => Shape::NeedMore,
        pubsub::Peek::Message => {
            let name_at = nl + 1;
            let pattern = buf.get(name_at..name_at + 12) == Some(&b"$8\r\npmessage"[..]);
            if count == Some(if pattern { 4 } else { 3 }) {
                Shape::Message
            } else {
                Shape::Other
            }
        }
        pubsub::Peek::Confirmation(kind) if count == Some(3) => Shape::Confirmation(kind),
        _ => Shape::Other,
    }
}

/// Whether a whole frame is `[kind, channel-or-null, integer]`.
fn is_confirmation(frame: &[u8]) -> bool {
    match redauth::resp::frame::elements(frame)[..] {
        [_, channel, count] => {
            matches!(channel.first(), Some(b'$' | b'_')) && count.first() == Some(&b':')
        }
        _ => false,
    }
}

/// The reply side's state between reads.
#[derive(Debug, Default)]
pub(crate) struct ReplyTracker {
    queue: VecDeque<Expect>,
    scanner: ReplyScanner,
    current: Option<Role>,
    /// Replies are no longer matched: everything is relayed as it comes.
    untracked: bool,
    /// A HELLO switched the connection to RESP3 (`*` is then never pub/sub).
    resp3: bool,
    /// Channels, patterns and shard channels subscribed to.
    subscriptions: [HashSet<Vec<u8>>; 3],
    /// Confirmations still owed to the SUBSCRIBE-family command at the head.
    confirmations_left: Option<u32>,
}

impl ReplyTracker {
    /// How many replies owed come before the last AUTH (or HELLO … AUTH)
    /// with a verified token still waiting for its own: `None` when no such
    /// AUTH is waiting. Above 0, the server had not yet answered the
    /// commands in front of it.
    pub(crate) fn owed_before_auth(&self) -> Option<usize> {
        self.queue
            .iter()
            .rposition(|e| matches!(e, Expect::Auth { .. } | Expect::Hello { auth: Some(_) }))
    }

    /// Replies owed, protocol and subscriptions, for an expiry report.
    pub(crate) fn describe(&self) -> String {
        let [channels, patterns, shards] = self.subscriptions.each_ref().map(HashSet::len);
        format!(
            "{} replies owed (first: {:?}), {}, subscriptions {channels}/{patterns}/{shards}{}",
            self.queue.len(),
            self.queue.front(),
            if self.resp3 { "RESP3" } else { "RESP2" },
            if self.untracked { ", untracked" } else { "" },
        )
    }

    /// Queues the record for the next command sent to the backend.
    pub(crate) fn push(&mut self, record: Expect) {
        self.queue.push_back(record);
    }

    /// Moves every complete frame (and streamable part) from `buf` to `out`;
    /// returns the expiry of each AUTH that succeeded, in order.
    pub(crate) fn process(
        &mut self,
        buf: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Vec<SystemTime>, ReplyError> {
        let mut succeeded = Vec::new();
        loop {
            if self.current.is_none() {
                while let Some(Expect::Local(reply)) = self.queue.front() {
                    out.extend_from_slice(reply);
                    self.queue.pop_front();
                }
                if !self.untracked && self.queue.front() == Some(&Expect::Untracked) {
                    self.queue.clear();
                    self.untracked = true;
                }
                if buf.is_empty() {
                    return Ok(succeeded);
                }
                if self.untracked {
                    out.unsplit(buf.split());
                    return Ok(succeeded);
                }
                match self.role(buf) {
                    Some(role) => self.current = Some(role),
                    None => return Ok(succeeded),
                }
            }
            match self.current.expect("set above") {
                Role::Stream { in_band, first } => {
                    let progress = self.scanner.advance(buf)?;
                    out.unsplit(buf.split_to(progress.consumed));
                    if !progress.done {
                        return Ok(succeeded);
                    }
                    if in_band {
                        self.reply(first, None, &mut succeeded);
                    }
                }
                role => {
                    let progress = ReplyScanner::default().advance(buf)?;
                    if !progress.done {
                        return Ok(succeeded);
                    }
                    let frame = buf.split_to(progress.consumed);
                    match role {
                        Role::Confirmation(kind) if is_confirmation(&frame) => {
                            self.confirmation(kind, &frame)
                        }
                        // A push that only looked like a confirmation.
                        Role::Confirmation(_) if frame[0] == b'>' => {}
                        _ => self.reply(frame[0], Some(&frame), &mut succeeded),
                    }
                    out.unsplit(frame);
                }
            }
            self.current = None;
        }
    }

    fn subscribed(&self) -> bool {
        self.subscriptions.iter().any(|s| !s.is_empty())
    }

    /// Decides what the frame at the start of `buf` is; `None` when more
    /// bytes are needed to tell.
    fn role(&self, buf: &[u8]) -> Option<Role> {
        let first = buf[0];
        let subscribing = matches!(self.queue.front(), Some(Expect::Subscribe { .. }));
        if first == b'>' || (first == b'*' && !self.resp3 && (subscribing || self.subscribed())) {
            match shape(buf) {
                Shape::NeedMore => return None,
                Shape::Confirmation(kind) => return Some(Role::Confirmation(kind)),
                Shape::Message => {
                    return Some(Role::Stream {
                        in_band: false,
                        first,
                    })
                }
                Shape::Other if first == b'>' => {
                    return Some(Role::Stream {
                        in_band: false,
                        first,
                    })
                }
                Shape::Other => {}
            }
        }
        Some(match self.queue.front() {
            Some(Expect::Auth { .. } | Expect::Hello { .. } | Expect::Reset) => Role::Tracked,
            _ => Role::Stream {
                in_band: true,
                first,
            },
        })
    }

    /// Counts a confirmation against the command at the head of the queue
    /// (if it is the one being confirmed) and tracks the subscriptions.
    fn confirmation(&mut self, kind: SubscribeKind, frame: &[u8]) {
        let set = &mut self.subscriptions[kind.set()];
        if let Some(&Expect::Subscribe {
            kind: expected,
            channels,
        }) = self.queue.front()
        {
            if expected == kind {
                let left = self.confirmations_left.unwrap_or(if channels == 0 {
                    set.len().max(1) as u32
                } else {
                    channels
                });
                if left <= 1 {
                    self.queue.pop_front();
                    self.confirmations_left = None;
                } else {
                    self.confirmations_left = Some(left - 1);
                }
            }
        }
        if let Some(Some(channel)) = pubsub::confirmed_channel(frame) {
            if kind.adds() {
                set.insert(channel);
            } else {
                set.remove(&channel);
            }
        }
    }

    /// An in-band reply ended: it answers the queue head. `frame` is the
    /// whole frame for [`Role::Tracked`] replies.
    fn reply(&mut self, first: u8, frame: Option<&[u8]>, succeeded: &mut Vec<SystemTime>) {
        let Some(head) = self.queue.pop_front() else {
            tracing::debug!("front: a reply arrived with no command waiting for it");
            return;
        };
        match head {
            Expect::Auth { expires_at } if frame == Some(b"+OK\r\n") => succeeded.push(expires_at),
            Expect::Hello { auth } if matches!(first, b'%' | b'*') => {
                self.resp3 = first == b'%';
                succeeded.extend(auth);
            }
            Expect::Reset if frame.is_some_and(|f| f.starts_with(b"+RESET\r\n")) => {
                self.resp3 = false;
                self.subscriptions = Default::default();
            }
            // Its one error reply (or a reply after all its confirmations).
            Expect::Subscribe { .. } => self.confirmations_left = None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Feeds `input` in reads of `chunk` bytes; returns the relayed bytes and
    /// the successful AUTHs' expiries.
    fn feed(tracker: &mut ReplyTracker, input: &[u8], chunk: usize) -> (Vec<u8>, Vec<SystemTime>) {
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let mut succeeded = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            succeeded.extend(tracker.process(&mut buf, &mut out).unwrap());
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        (out.to_vec(), succeeded)
    }

    fn tracker(records: Vec<Expect>) -> ReplyTracker {
        let mut tracker = ReplyTracker::default();
        records.into_iter().for_each(|r| tracker.push(r));
        tracker
    }

    /// Checks at every read size that the bytes pass untouched and which
    /// AUTHs succeed; returns the tracker from the one-read run.
    fn check(records: Vec<Expect>, input: &[u8], expected: &[SystemTime]) -> ReplyTracker {
        for chunk in [1, 2, 3, 7, 64] {
            let (out, succeeded) = feed(&mut tracker(records.clone()), input, chunk);
            assert_eq!(out, input, "chunk {chunk}");
            assert_eq!(succeeded, expected, "chunk {chunk}");
        }
        let mut whole = tracker(records);
        feed(&mut whole, input, input.len());
        whole
    }

    #[test]
    fn only_ok_replies_to_auth_succeed() {
        let records = vec![
            Expect::Auth { expires_at: at(1) },
            Expect::Reply,
            Expect::Auth { expires_at: at(2) },
            Expect::Auth { expires_at: at(3) },
            Expect::Auth { expires_at: at(4) },
        ];
        let input = b"+OK\r\n$3\r\nabc\r\n-WRONGPASS invalid\r\n+QUEUED\r\n+OK\r\n";
        let tracker = check(records, input, &[at(1), at(4)]);
        assert!(tracker.queue.is_empty());
    }

    #[test]
    fn hello_success_is_a_map_or_array_and_sets_the_protocol() {
        let hello3 = b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n";
        let records = vec![Expect::Hello { auth: Some(at(9)) }];
        let tracker = check(records, hello3, &[at(9)]);
        assert!(tracker.resp3);
        let records = vec![Expect::Hello { auth: Some(at(9)) }];
        check(records, b"-NOPROTO unsupported\r\n", &[]);
        let records = vec![Expect::Hello { auth: None }];
        let tracker = check(records, b"*2\r\n$6\r\nserver\r\n$5\r\nredis\r\n", &[]);
        assert!(!tracker.resp3);
    }

    #[test]
    fn pubsub_traffic_in_resp2_is_out_of_band() {
        let records = vec![
            Expect::Subscribe {
                kind: SubscribeKind::Subscribe,
                channels: 2,
            },
            Expect::Reply,
            Expect::Auth { expires_at: at(5) },
        ];
        let input = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n\
*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n\
*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\na\r\n$2\r\nhi\r\n\
*2\r\n$4\r\npong\r\n$0\r\n\r\n\
*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nyo\r\n\
-ERR Can't execute 'auth': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
        let tracker = check(records, input, &[]);
        assert!(tracker.queue.is_empty());
        assert_eq!(tracker.subscriptions[0].len(), 2);
    }

    #[test]
    fn unsubscribe_from_all_expects_one_confirmation_per_subscription() {
        let mut tracker = tracker(vec![Expect::Subscribe {
            kind: SubscribeKind::Subscribe,
            channels: 2,
        }]);
        let subscribed =
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n";
        feed(&mut tracker, subscribed, 5);
        tracker.push(Expect::Subscribe {
            kind: SubscribeKind::Unsubscribe,
            channels: 0,
        });
        tracker.push(Expect::Auth { expires_at: at(7) });
        let input = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n+OK\r\n";
        let (out, succeeded) = feed(&mut tracker, input, 4);
        assert_eq!(out, input);
        assert_eq!(succeeded, vec![at(7)]);
        assert!(!tracker.subscribed());
    }

    #[test]
    fn a_subscribe_error_answers_the_subscribe() {
        let records = vec![
            Expect::Subscribe {
                kind: SubscribeKind::Subscribe,
                channels: 0,
            },
            Expect::Auth { expires_at: at(3) },
        ];
        check(
            records,
            b"-ERR wrong number of arguments for 'subscribe' command\r\n+OK\r\n",
            &[at(3)],
        );
    }

    #[test]
    fn arrays_that_look_like_pubsub_are_replies_when_not_subscribed() {
        let records = vec![Expect::Reply, Expect::Auth { expires_at: at(1) }];
        let lrange = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n+OK\r\n";
        check(records, lrange, &[at(1)]);
    }

    #[test]
    fn resp3_pushes_are_out_of_band_and_confirm_subscriptions() {
        let mut records = vec![Expect::Hello { auth: None }];
        records.push(Expect::Subscribe {
            kind: SubscribeKind::Subscribe,
            channels: 1,
        });
        records.push(Expect::Auth { expires_at: at(4) });
        let input = b"%1\r\n$5\r\nproto\r\n:3\r\n\
>3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n\
>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n\
+OK\r\n";
        check(records, input, &[at(4)]);
    }

    #[test]
    fn reset_returns_to_resp2_without_subscriptions() {
        let records = vec![
            Expect::Subscribe {
                kind: SubscribeKind::Subscribe,
                channels: 1,
            },
            Expect::Reset,
            Expect::Reply,
        ];
        let input = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+RESET\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n";
        let tracker = check(records, input, &[]);
        assert!(tracker.queue.is_empty(), "the array was taken as the reply");
    }

    #[test]
    fn untracked_relays_everything_from_its_place_in_the_queue() {
        let records = vec![
            Expect::Auth { expires_at: at(1) },
            Expect::Untracked,
            Expect::Auth { expires_at: at(2) },
        ];
        let input = b"+OK\r\n+OK\r\n$5\r\nraw\r\n";
        let tracker = check(records, input, &[at(1)]);
        assert!(tracker.untracked);
    }

    #[test]
    fn large_replies_stream_through() {
        let mut input = b"$100000\r\n".to_vec();
        input.resize(input.len() + 100_000, b'v');
        input.extend_from_slice(b"\r\n+OK\r\n");
        let records = vec![Expect::Reply, Expect::Auth { expires_at: at(6) }];
        let mut tracker = tracker(records);
        let (out, succeeded) = feed(&mut tracker, &input, 4096);
        assert_eq!(out, input);
        assert_eq!(succeeded, vec![at(6)]);
    }

    #[test]
    fn local_replies_go_out_in_their_place() {
        let local = Bytes::from_static(b"-ERR local\r\n");
        let records = vec![
            Expect::Reply,
            Expect::Local(local.clone()),
            Expect::Local(local.clone()),
            Expect::Auth { expires_at: at(2) },
            Expect::Local(local.clone()),
        ];
        let mut tracker = tracker(records);
        let mut out = BytesMut::new();
        // Nothing from the backend yet: the first reply is still owed.
        assert!(tracker
            .process(&mut BytesMut::new(), &mut out)
            .unwrap()
            .is_empty());
        assert!(out.is_empty());
        let (out, succeeded) = feed(&mut tracker, b"$2\r\nab\r\n+OK\r\n", 3);
        assert_eq!(
            out,
            b"$2\r\nab\r\n-ERR local\r\n-ERR local\r\n+OK\r\n-ERR local\r\n"
        );
        assert_eq!(succeeded, vec![at(2)]);
        assert!(tracker.queue.is_empty());
    }

    #[test]
    fn garbage_from_the_backend_is_an_error() {
        let mut tracker = tracker(vec![Expect::Reply]);
        let mut buf = BytesMut::from(&b"hello\r\n"[..]);
        assert!(tracker.process(&mut buf, &mut BytesMut::new()).is_err());
    }
}
