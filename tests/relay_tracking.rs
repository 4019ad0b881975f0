//! Client-side caching through redauth. A RESP2 connection that subscribes runs in RESP3
//! upstream (so it can be re-authenticated while subscribed); Redis then sends it
//! invalidations as RESP3 pushes, which must reach the client exactly as a RESP2 connection
//! gets them: `message __redis__:invalidate <keys | null>` while it is subscribed to anything,
//! nothing otherwise, and never a `tracking-redir-broken` push. Each scenario runs once with the
//! subscriber straight on redis-server and once through redauth (the tracking clients are
//! direct in both runs); the subscriber's transcripts must be byte-identical.

mod support;

use std::time::Duration;
use support::*;

/// How long to wait for bytes that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// What the subscriber received, one entry per reply or push, and `(nothing)` where it must
/// have received nothing.
type Transcript = Vec<String>;

struct Run<'a> {
    redis: &'a TlsRedis,
    sub: RespConn,
    transcript: Transcript,
}

impl Run<'_> {
    fn sub(&mut self, args: &[&str]) {
        let reply = self.sub.request(args);
        self.transcript.push(show(&reply));
    }

    fn read(&mut self) {
        let reply = self.sub.read_reply();
        self.transcript.push(show(&reply));
    }

    fn nothing(&mut self) {
        match self.sub.next_reply(QUIET) {
            Ok(reply) => self.transcript.push(format!("unexpected {}", show(&reply))),
            Err(_) => self.transcript.push("(nothing)".into()),
        }
    }

    /// The subscriber's id on the server (its upstream connection's, through redauth).
    fn id(&mut self) -> String {
        let reply = String::from_utf8(self.sub.request(&["CLIENT", "ID"])).expect("utf-8");
        reply.trim_start_matches(':').trim_end().to_string()
    }

    /// A direct connection tracking its reads with invalidations sent to the subscriber.
    fn tracker(&self, id: &str, extra: &[&str]) -> RespConn {
        let mut tracker = self.redis.direct();
        let mut args = vec!["CLIENT", "TRACKING", "on", "REDIRECT", id];
        args.extend_from_slice(extra);
        assert_eq!(tracker.request(&args), b"+OK\r\n");
        tracker
    }
}

/// Runs `scenario` with the subscriber direct, then through redauth; returns both transcripts.
fn both(scenario: fn(&mut Run)) -> (Transcript, Transcript) {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let mut transcripts = Vec::new();
    for sub in [redis.direct(), redauth.connect()] {
        assert_eq!(redis.direct().request(&["FLUSHALL"]), b"+OK\r\n");
        let mut run = Run {
            redis: &redis,
            sub,
            transcript: Vec::new(),
        };
        scenario(&mut run);
        transcripts.push(run.transcript);
    }
    let relayed = transcripts.pop().expect("two runs");
    let direct = transcripts.pop().expect("two runs");
    (direct, relayed)
}

fn assert_same((direct, relayed): (Transcript, Transcript)) {
    assert_eq!(relayed, direct, "through redauth (left) vs direct (right)");
    assert!(
        direct
            .iter()
            .any(|line| line.contains("__redis__:invalidate")),
        "the scenario saw no invalidation at all: {direct:?}"
    );
}

/// The tracker reads a missing `key` (so it is tracked), then sets it: one invalidation.
fn track_then_change(tracker: &mut RespConn, key: &str) {
    assert_eq!(tracker.request(&["GET", key]), b"$-1\r\n");
    assert_eq!(tracker.request(&["SET", key, "v"]), b"+OK\r\n");
}

#[test]
fn a_subscribed_resp2_redirect_target_gets_invalidations_as_messages() {
    assert_same(both(|run| {
        let id = run.id();
        run.sub(&["SUBSCRIBE", "__redis__:invalidate"]);
        let mut tracker = run.tracker(&id, &[]);
        // A key the tracker read changes: one message with the key.
        track_then_change(&mut tracker, "k1");
        run.read();
        // A flush: the payload is a null bulk string in RESP2.
        assert_eq!(tracker.request(&["GET", "k1"]), bulk("v"));
        assert_eq!(tracker.request(&["FLUSHALL"]), b"+OK\r\n");
        run.read();
        // Broadcast mode: every key under the prefix, several in one message.
        let mut bcast = run.tracker(&id, &["BCAST", "PREFIX", "b:"]);
        assert_eq!(bcast.request(&["MSET", "b:1", "x", "b:2", "y"]), b"+OK\r\n");
        run.read();
        run.sub(&["PING"]);
    }));
}

#[test]
fn invalidations_follow_any_subscription_and_stop_without_one() {
    assert_same(both(|run| {
        let id = run.id();
        // Subscribed to some other channel: Redis still delivers the message.
        run.sub(&["SUBSCRIBE", "elsewhere"]);
        let mut tracker = run.tracker(&id, &[]);
        track_then_change(&mut tracker, "k2");
        run.read();
        // No subscription left: a RESP2 connection gets nothing.
        run.sub(&["UNSUBSCRIBE"]);
        assert_eq!(tracker.request(&["GET", "k2"]), bulk("v"));
        assert_eq!(tracker.request(&["SET", "k2", "w"]), b"+OK\r\n");
        run.nothing();
        run.sub(&["GET", "k2"]);
        // Subscribed again (by pattern): delivered again.
        run.sub(&["PSUBSCRIBE", "p*"]);
        track_then_change(&mut tracker, "k3");
        run.read();
    }));
}

#[test]
fn a_broken_redirect_is_never_pushed_to_a_resp2_client() {
    assert_same(both(|run| {
        // The subscriber tracks its own reads, redirected to a connection that then leaves.
        let gone_id = {
            let mut gone = run.redis.direct();
            let id = String::from_utf8(gone.request(&["CLIENT", "ID"])).expect("utf-8");
            let id = id.trim_start_matches(':').trim_end().to_string();
            run.sub(&["CLIENT", "TRACKING", "on", "REDIRECT", &id]);
            run.sub(&["GET", "k4"]);
            id
        };
        let mut side = run.redis.direct();
        // Wait until the server has let the redirect target go.
        wait_for(
            "the redirect target to leave",
            Duration::from_secs(10),
            || {
                let list = side.request(&["CLIENT", "LIST", "ID", &gone_id]);
                list.starts_with(b"$0\r\n")
            },
        );
        run.sub(&["SUBSCRIBE", "__redis__:invalidate"]);
        // The invalidation for k4 cannot be delivered: RESP3 would say so, RESP2 hears nothing.
        assert_eq!(side.request(&["SET", "k4", "v"]), b"+OK\r\n");
        run.nothing();
        // Other subscribers' redirects still reach it.
        let id = run.id_while_subscribed(&mut side);
        let mut tracker = run.tracker(&id, &[]);
        track_then_change(&mut tracker, "k5");
        run.read();
    }));
}

impl Run<'_> {
    /// The subscriber's id, found from another connection (a subscribed RESP2 connection cannot
    /// run CLIENT ID): the one connection subscribed to `__redis__:invalidate`.
    fn id_while_subscribed(&mut self, side: &mut RespConn) -> String {
        let list = String::from_utf8(side.request(&["CLIENT", "LIST"])).expect("utf-8");
        let line = list
            .lines()
            .find(|l| l.contains(" sub=1 "))
            .unwrap_or_else(|| panic!("no subscribed client in {list}"));
        line.split_whitespace()
            .find_map(|f| f.strip_prefix("id="))
            .expect("an id field")
            .to_string()
    }
}
