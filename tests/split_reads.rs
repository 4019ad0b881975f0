//! However a client's or a server's bytes are cut into reads, redauth relays the same bytes.
//!
//! Properties over the real session pumps, run in memory (`redauth::session::harness`):
//! - a pipeline of ordinary commands (random names and binary arguments, empty and
//!   large ones, multibulk and inline) goes upstream byte for byte as sent (inline
//!   commands as their multibulk form), in whatever reads it arrives;
//! - a pipeline that also holds the commands redauth intercepts goes upstream the same
//!   in split reads as in one, with the same records for the reply side;
//! - an end of input (the client closing or half-closing) at any byte forwards every whole
//!   command before it and drops the incomplete one, whose partly streamed bytes (a large
//!   argument) are marked abandoned; the client is then closed once it has its replies;
//! - any run of valid RESP2/RESP3 replies and pushes reaches the client byte for byte,
//!   in whatever reads it arrives.
//!
//! `PROPTEST_CASES` sets the number of cases (default 128 per property). Built only with the
//! feature `harness` (scripts/test turns it on); without it this test is empty.
#![cfg(feature = "harness")]

use proptest::prelude::*;
use redauth::resp::encode;
use redauth::session::harness::{relay_replies, relay_requests, ReplyEnd, RequestStop};
use redauth::session::Expect;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128);
    ProptestConfig::with_cases(cases)
}

/// Binary bytes: mostly short (empty included), sometimes longer than a read buffer.
fn argument() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::collection::vec(any::<u8>(), 0..24),
        2 => prop::collection::vec(prop::sample::select(b"\r\n\0 \"'\\$*".to_vec()), 0..8),
        1 => (16_000usize..40_000, any::<u8>())
            .prop_map(|(len, seed)| (0..len).map(|i| seed.wrapping_add((i * 31) as u8)).collect()),
    ]
}

/// A command name redauth does not intercept, in any letter case.
fn ordinary_name() -> impl Strategy<Value = Vec<u8>> {
    let names = [
        "GET", "SET", "HSET", "LPUSH", "ECHO", "INCR", "DEL", "MSET", "APPEND", "XADD",
    ];
    (prop::sample::select(names.to_vec()), any::<bool>()).prop_map(|(name, lower)| {
        if lower {
            name.to_ascii_lowercase().into_bytes()
        } else {
            name.as_bytes().to_vec()
        }
    })
}

/// A command as sent: its arguments (name first) and whether it goes inline.
#[derive(Debug, Clone)]
struct Command {
    args: Vec<Vec<u8>>,
    inline: bool,
}

impl Command {
    /// The bytes a client sends. Inline arguments are double-quoted with every
    /// byte but letters and digits escaped as `\xHH`, so any bytes survive.
    fn wire(&self) -> Vec<u8> {
        if !self.inline {
            return encode::command(&self.args).to_vec();
        }
        let mut line = self.args[0].clone();
        for arg in &self.args[1..] {
            line.extend_from_slice(b" \"");
            for &b in arg {
                if b.is_ascii_alphanumeric() {
                    line.push(b);
                } else {
                    line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
            }
            line.push(b'"');
        }
        line.extend_from_slice(b"\r\n");
        line
    }

    /// What a command redauth does not intercept becomes upstream.
    fn forwarded(&self) -> Vec<u8> {
        encode::command(&self.args).to_vec()
    }
}

fn command(name: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Command> {
    (name, prop::collection::vec(argument(), 0..4), any::<bool>()).prop_map(
        |(name, rest, inline)| {
            // Inline lines are capped at 64 KiB: long arguments go multibulk.
            let inline = inline && rest.iter().all(|a| a.len() < 1000);
            let mut args = vec![name];
            args.extend(rest);
            Command { args, inline }
        },
    )
}

/// A command redauth intercepts or must follow, or an ordinary one.
fn any_command() -> impl Strategy<Value = Command> {
    let fixed: Vec<&[&str]> = vec![
        &["PING"],
        &["PING", "hello"],
        &["AUTH", "password"],
        &["AUTH", "user", "password"],
        &["HELLO", "3", "AUTH", "user", "password", "SETNAME", "app"],
        &["HELLO", "2"],
        &["MULTI"],
        &["EXEC"],
        &["DISCARD"],
        &["CLIENT", "REPLY", "OFF"],
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "ON"],
        &["SUBSCRIBE", "news", "weather"],
        &["UNSUBSCRIBE"],
        &["PSUBSCRIBE", "n*"],
        &["RESET"],
        &["BLPOP", "queue", "0"],
        &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
        &["QUIT"],
    ];
    let special = (prop::sample::select(fixed), any::<bool>()).prop_map(|(args, inline)| Command {
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        inline,
    });
    prop_oneof![3 => command(ordinary_name()), 2 => special]
}

/// Read sizes, from one byte up to more than a read buffer.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![1usize..4, 1usize..64, 1usize..4096, 1usize..40_000];
    prop::collection::vec(size, 1..6)
}

/// Keeps a large input to a few thousand reads, so the suite stays fast.
fn bounded(chunks: &[usize], total: usize) -> Vec<usize> {
    let floor = total / 2000;
    chunks.iter().map(|&c| c.max(floor)).collect()
}

/// Where each command ends in the client's bytes.
fn command_ends(commands: &[Command]) -> Vec<usize> {
    commands
        .iter()
        .scan(0, |end, c| {
            *end += c.wire().len();
            Some(*end)
        })
        .collect()
}

/// Positions to end the input at: every one in a short input; in a long one,
/// each command boundary and the bytes either side of it, plus 32 spread out.
fn cut_points(len: usize, ends: &[usize]) -> Vec<usize> {
    if len <= 600 {
        return (0..=len).collect();
    }
    let mut cuts: Vec<usize> = ends
        .iter()
        .flat_map(|&e| [e.saturating_sub(1), e, e + 1])
        .chain((0..32).map(|i| i * len / 32))
        .chain([0, 1, len])
        .filter(|&c| c <= len)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn concat(commands: &[Command], part: impl Fn(&Command) -> Vec<u8>) -> Vec<u8> {
    commands.iter().flat_map(part).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ordinary_commands_go_upstream_as_sent_in_any_reads(
        commands in prop::collection::vec(command(ordinary_name()), 1..12),
        chunks in chunk_sizes(),
    ) {
        let client = concat(&commands, Command::wire);
        let chunks = bounded(&chunks, client.len());
        let split = relay_requests(&client, &chunks);
        let whole = relay_requests(&client, &[]);
        prop_assert_eq!(&split.stop, &RequestStop::InputEnded);
        prop_assert!(split.upstream == concat(&commands, Command::forwarded), "not relayed as sent");
        if commands.iter().all(|c| !c.inline) {
            prop_assert!(split.upstream == client);
        }
        prop_assert!(split.upstream == whole.upstream);
        prop_assert_eq!(
            split.merged_expects(),
            vec![Expect::Replies(commands.len() as u32), Expect::InputEnded]
        );
    }

    #[test]
    fn an_end_of_input_anywhere_forwards_every_whole_command_before_it(
        commands in prop::collection::vec(command(ordinary_name()), 1..8),
        chunks in chunk_sizes(),
    ) {
        let client = concat(&commands, Command::wire);
        let chunks = bounded(&chunks, client.len());
        let ends = command_ends(&commands);
        for cut in cut_points(client.len(), &ends) {
            let run = relay_requests(&client[..cut], &chunks);
            prop_assert_eq!(&run.stop, &RequestStop::InputEnded, "cut at {}", cut);
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            let forwarded = concat(&commands[..whole], Command::forwarded);
            prop_assert!(run.upstream.starts_with(&forwarded), "cut at {}: a whole command was not forwarded", cut);
            let tail = &run.upstream[forwarded.len()..];
            let mut expected = Vec::new();
            if tail.is_empty() {
                if whole > 0 {
                    expected.push(Expect::Replies(whole as u32));
                }
            } else {
                // Only a large argument streams: the partly sent command is
                // abandoned (its connection is then never reused).
                prop_assert!(commands[whole].forwarded().starts_with(tail), "cut at {}: stray bytes upstream", cut);
                expected.push(Expect::Replies(whole as u32 + 1));
                expected.push(Expect::Abandoned);
            }
            expected.push(Expect::InputEnded);
            prop_assert_eq!(run.merged_expects(), expected, "cut at {}", cut);
        }
    }

    #[test]
    fn an_end_of_input_anywhere_relays_a_prefix_of_what_the_whole_input_relays(
        commands in prop::collection::vec(any_command(), 1..10),
    ) {
        let client = concat(&commands, Command::wire);
        let whole = relay_requests(&client, &[]);
        for cut in cut_points(client.len(), &command_ends(&commands)) {
            let run = relay_requests(&client[..cut], &[]);
            prop_assert!(
                matches!(run.stop, RequestStop::InputEnded | RequestStop::Closing),
                "cut at {}: {:?}", cut, run.stop
            );
            prop_assert!(whole.upstream.starts_with(&run.upstream), "cut at {}: upstream bytes diverge", cut);
            prop_assert!(!run.protocol_error(), "cut at {}", cut);
            // The client is always closed once it has its replies.
            prop_assert!(run.expects.contains(&Expect::InputEnded) || run.expects.contains(&Expect::Close), "cut at {}", cut);
        }
    }

    #[test]
    fn any_pipeline_goes_upstream_the_same_in_split_reads_as_in_one(
        commands in prop::collection::vec(any_command(), 1..16),
        chunks in chunk_sizes(),
    ) {
        let client = concat(&commands, Command::wire);
        let chunks = bounded(&chunks, client.len());
        let split = relay_requests(&client, &chunks);
        let whole = relay_requests(&client, &[]);
        prop_assert!(split.upstream == whole.upstream, "upstream bytes differ");
        prop_assert_eq!(split.merged_expects(), whole.merged_expects());
        prop_assert_eq!(&split.stop, &whole.stop);
        prop_assert!(!split.protocol_error());
    }

    #[test]
    fn replies_reach_the_client_as_sent_in_any_reads(
        frames in prop::collection::vec(frame(), 1..12),
        chunks in chunk_sizes(),
    ) {
        let replies = frames.iter().filter(|f| !f.push).count() as u32;
        let server: Vec<u8> = frames.iter().flat_map(|f| f.bytes.clone()).collect();
        let chunks = bounded(&chunks, server.len());
        let expects = if replies > 0 { vec![Expect::Replies(replies)] } else { vec![] };
        let run = relay_replies(&expects, &server, &chunks);
        prop_assert_eq!(&run.end, &ReplyEnd::InputEnded);
        prop_assert!(run.client == server, "client bytes differ from the server's");
    }
}

/// A top-level server frame: a reply, or a push (which answers no command).
#[derive(Debug, Clone)]
struct Frame {
    bytes: Vec<u8>,
    push: bool,
}

/// Text for simple strings, errors and the like: no CR or LF.
fn line_text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..16,
    )
}

fn with_header(kind: u8, len: impl std::fmt::Display, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}{len}\r\n", char::from(kind)).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn bulk(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = with_header(kind, payload.len(), payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// One RESP2 or RESP3 value, nested aggregates included.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        line_text().prop_map(|t| [b"+".to_vec(), t, b"\r\n".to_vec()].concat()),
        line_text().prop_map(|t| [b"-ERR ".to_vec(), t, b"\r\n".to_vec()].concat()),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        argument().prop_map(|a| bulk(b'$', &a)),
        Just(b"$-1\r\n".to_vec()),
        Just(b"*-1\r\n".to_vec()),
        Just(b"_\r\n".to_vec()),
        Just(b"#t\r\n".to_vec()),
        prop::sample::select(vec!["1.5", "-0.25", "inf", "-inf", "nan", "10"])
            .prop_map(|d| format!(",{d}\r\n").into_bytes()),
        any::<u128>().prop_map(|n| format!("({n}\r\n").into_bytes()),
        line_text().prop_map(|t| bulk(b'=', &[b"txt:".to_vec(), t].concat())),
        line_text().prop_map(|t| bulk(b'!', &[b"ERR ".to_vec(), t].concat())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| aggregate(b'*', v.len(), v)),
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| aggregate(b'~', v.len(), v)),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(|pairs| {
                let n = pairs.len();
                aggregate(
                    b'%',
                    n,
                    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                )
            }),
            // An attribute decorates the value after it; together they are one value.
            (inner.clone(), inner.clone(), inner).prop_map(|(k, v, decorated)| {
                [aggregate(b'|', 1, vec![k, v]), decorated].concat()
            }),
        ]
    })
}

fn aggregate(kind: u8, count: usize, elements: Vec<Vec<u8>>) -> Vec<u8> {
    [with_header(kind, count, b""), elements.concat()].concat()
}

/// A reply, or a RESP3 push: a pub/sub message or another kind (`invalidate`).
fn frame() -> impl Strategy<Value = Frame> {
    let push_kind = prop::sample::select(vec!["message", "pmessage", "smessage", "invalidate"]);
    let push = (push_kind, prop::collection::vec(value(), 1..3)).prop_map(|(kind, rest)| {
        let mut elements = vec![bulk(b'$', kind.as_bytes())];
        elements.extend(rest);
        Frame {
            bytes: aggregate(b'>', elements.len(), elements),
            push: true,
        }
    });
    prop_oneof![
        6 => value().prop_map(|bytes| Frame { bytes, push: false }),
        1 => push,
    ]
}
