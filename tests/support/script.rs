//! Scripted conversations, played once straight against redis-server and once through redauth,
//! so a test can demand byte-identical transcripts.
//!
//! A script is a list of [`Step`]s. The *client* is the connection under test (an authenticated
//! plaintext connection to redis-server in the direct run, a fresh unauthenticated connection to
//! redauth in the relayed run). The *side* connection is always a direct, authenticated
//! connection to redis-server, used to publish messages, unblock BLPOP, and so on. The database is
//! flushed before each run.

use std::time::{Duration, Instant};

use super::redauth::Redauth;
use super::redis_server::TlsRedis;
use super::resp::{cmd, escape, show, RespConn};

/// One step of a conversation.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes on the client connection (possibly nothing), then read `replies` replies.
    Client { send: Vec<u8>, replies: usize },
    /// Same, on the side connection.
    Side { send: Vec<u8>, replies: usize },
    /// Wait (polling the side connection) until redis-server reports this many blocked clients.
    WaitBlocked(usize),
    /// Assert the client receives nothing for this long (a command that must not reply).
    Silence(Duration),
}

impl Step {
    /// Client sends one command, reads one reply.
    pub fn cmd(args: &[&str]) -> Step {
        Step::Client {
            send: cmd(args),
            replies: 1,
        }
    }

    /// Client sends raw bytes, reads `replies` replies.
    pub fn raw(bytes: &[u8], replies: usize) -> Step {
        Step::Client {
            send: bytes.to_vec(),
            replies,
        }
    }

    /// Client sends one command and expects `replies` replies (0 for blocking, N for SUBSCRIBE).
    pub fn cmd_n(args: &[&str], replies: usize) -> Step {
        Step::Client {
            send: cmd(args),
            replies,
        }
    }

    /// Client reads `n` more replies (pushes, a blocked command's answer).
    pub fn read(n: usize) -> Step {
        Step::Client {
            send: Vec::new(),
            replies: n,
        }
    }

    /// Side connection sends one command, reads one reply.
    pub fn side(args: &[&str]) -> Step {
        Step::Side {
            send: cmd(args),
            replies: 1,
        }
    }
}

/// What one run looked like: one line per request and per reply, `\r\n` escaped.
pub type Transcript = Vec<String>;

/// Runs `steps` directly and through `redauth`, and returns `(direct, relayed)`.
pub fn run_both(redis: &TlsRedis, redauth: &Redauth, steps: &[Step]) -> (Transcript, Transcript) {
    flush(redis);
    let direct = run(&mut redis.direct(), redis, steps);
    flush(redis);
    let relayed = run(&mut redauth.connect(), redis, steps);
    (direct, relayed)
}

/// Runs `steps` both ways, asserts the transcripts are identical, and returns the transcript.
pub fn assert_same_as_direct(redis: &TlsRedis, redauth: &Redauth, steps: &[Step]) -> Transcript {
    let (direct, relayed) = run_both(redis, redauth, steps);
    assert_same(&direct, &relayed);
    relayed
}

/// Panics with the first differing line and both full transcripts if they differ.
pub fn assert_same(direct: &Transcript, relayed: &Transcript) {
    if direct == relayed {
        return;
    }
    let first = direct
        .iter()
        .zip(relayed)
        .position(|(d, r)| d != r)
        .unwrap_or(direct.len().min(relayed.len()));
    panic!(
        "transcripts differ at line {first}:\n  direct:  {}\n  relayed: {}\n\n\
         --- direct ---\n{}\n--- through redauth ---\n{}\n",
        direct.get(first).map_or("<end>", String::as_str),
        relayed.get(first).map_or("<end>", String::as_str),
        direct.join("\n"),
        relayed.join("\n"),
    );
}

/// Plays `steps` on `client`, with a fresh side connection to `redis`.
pub fn run(client: &mut RespConn, redis: &TlsRedis, steps: &[Step]) -> Transcript {
    let mut side = redis.direct();
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Client { send, replies } => exchange(client, "C", send, *replies, &mut out),
            Step::Side { send, replies } => exchange(&mut side, "S", send, *replies, &mut out),
            Step::WaitBlocked(n) => wait_blocked(&mut side, *n),
            Step::Silence(d) => client.expect_silence(*d),
        }
    }
    if !client.pending().is_empty() {
        out.push(format!(
            "C? unexpected extra bytes: {}",
            show(client.pending())
        ));
    }
    out
}

fn exchange(conn: &mut RespConn, who: &str, send: &[u8], replies: usize, out: &mut Transcript) {
    if !send.is_empty() {
        conn.send(send);
        out.push(format!("{who}> {}", escape(send)));
    }
    for _ in 0..replies {
        out.push(format!(
            "{who}< {}",
            show(&mask_client_id(&conn.read_reply()))
        ));
    }
}

/// Replaces the value of an `id` field (HELLO's map) by `<id>`: client ids differ between runs.
pub fn mask_client_id(reply: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"$2\r\nid\r\n:";
    let Some(at) = reply.windows(KEY.len()).position(|w| w == KEY) else {
        return reply.to_vec();
    };
    let digits = at + KEY.len();
    let end = digits
        + reply[digits..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    [&reply[..digits], b"<id>", &reply[end..]].concat()
}

fn flush(redis: &TlsRedis) {
    let reply = redis.direct().request(&["FLUSHALL"]);
    assert_eq!(reply, b"+OK\r\n", "FLUSHALL: {}", show(&reply));
}

/// Polls `INFO clients` until `blocked_clients:<n>`, so the next step really unblocks someone.
fn wait_blocked(side: &mut RespConn, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = side.request(&["INFO", "clients"]);
        if String::from_utf8_lossy(&info).contains(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {want:?} in INFO clients: {}",
            show(&info)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
