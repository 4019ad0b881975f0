//! Arbitrary server bytes through the real reply pump, with an arbitrary
//! queue of `Expect` records, in reads of sizes taken from the input. It must
//! never panic (failing on invalid RESP is fine). Split reads must deliver
//! what one read delivers when neither run failed; when one did, the two
//! agree up to the failure (a frame may have been partly relayed first).
//! Runs that turn raw (SYNC, MONITOR) are checked for panics only (see below).

#![no_main]

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use redauth::resp::command::SubscribeKind;
use redauth::session::harness::{relay_replies, ReplyEnd};
use redauth::session::Expect;

const KINDS: [SubscribeKind; 6] = [
    SubscribeKind::Subscribe,
    SubscribeKind::Unsubscribe,
    SubscribeKind::PSubscribe,
    SubscribeKind::PUnsubscribe,
    SubscribeKind::SSubscribe,
    SubscribeKind::SUnsubscribe,
];

/// One record from a tag byte and a parameter byte.
fn record(tag: u8, param: u8) -> Expect {
    match tag % 23 {
        0..=4 => Expect::Replies(u32::from(param % 8) + 1),
        5 => Expect::AuthAfterReset,
        6 => Expect::Reauth,
        7 => Expect::StandIn(Bytes::from_static(b"+OK\r\n")),
        8 => Expect::Local(Bytes::from_static(b"-ERR local\r\n")),
        9 => Expect::Close,
        10 => Expect::Abandoned,
        11 => Expect::Protocol(2 + param % 2),
        12 => Expect::Hello([None, Some(2), Some(3)][usize::from(param % 3)]),
        13 => Expect::Reset,
        14 => Expect::ExecWithSubscribe,
        15 => Expect::Passthrough,
        16 => Expect::Monitor,
        17 => Expect::Slice,
        18 => Expect::LastId,
        19 => Expect::InputEnded,
        20 => Expect::Blocking,
        21 => Expect::ReplyOn,
        _ => Expect::Subscribe {
            kind: KINDS[usize::from(param % 6)],
            channels: u32::from(param / 6 % 4),
        },
    }
}

/// After the read sizes: a byte counting records (0 to 15), two bytes per
/// record, then the server's bytes.
fn records(data: &[u8]) -> (Vec<Expect>, &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(count % 16).min(rest.len() / 2);
    let expects = rest[..2 * n]
        .chunks_exact(2)
        .map(|pair| record(pair[0], pair[1]))
        .collect();
    (expects, &rest[2 * n..])
}

fuzz_target!(|data: &[u8]| {
    let (chunks, rest) = common::chunks_and_payload(data);
    let (expects, server) = records(rest);
    let split = relay_replies(&expects, server, &chunks);
    let whole = relay_replies(&expects, server, &[]);
    let failed = |end: &ReplyEnd| matches!(end, ReplyEnd::Failed(_));
    if failed(&split.end) || failed(&whole.end) {
        assert!(
            common::one_prefixes_the_other(&split.client, &whole.client),
            "client bytes diverge before the failure"
        );
    } else {
        assert_eq!(split.client, whole.client, "client bytes differ");
        assert_eq!(split.end, whole.end);
    }
});
