//! Arbitrary client bytes through the real request pump, in reads of sizes
//! taken from the input. It must never panic, and split reads must relay
//! what one read relays: the same upstream bytes and reply-side records when
//! the client made no protocol error; with one, the two runs agree up to it
//! (a streamed command may have been partly forwarded before the error).
//! The input also goes through once with an expiring token, where blocking
//! commands run in slices (their timeouts are random, so only "no panic"),
//! and once cut at a point taken from the input, as a client that ends its
//! input there: it must relay a prefix of what the whole input relays.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use redauth::session::harness::{expiring_token, relay_requests, relay_requests_as, RequestStop};
use redauth::session::Expect;

fuzz_target!(|data: &[u8]| {
    let (chunks, client) = common::chunks_and_payload(data);
    let split = relay_requests(client, &chunks);
    let whole = relay_requests(client, &[]);
    assert_ne!(split.stop, RequestStop::Stalled);
    if split.protocol_error() || whole.protocol_error() {
        assert!(
            common::one_prefixes_the_other(&split.upstream, &whole.upstream),
            "upstream bytes diverge before the protocol error"
        );
    } else {
        assert_eq!(split.upstream, whole.upstream, "upstream bytes differ");
        assert_eq!(split.merged_expects(), whole.merged_expects());
        assert_eq!(split.stop, whole.stop);
    }
    let sliced = relay_requests_as(expiring_token(), client, &chunks);
    assert_ne!(sliced.stop, RequestStop::Stalled);
    // The client ends its input part way (a half-close, or a close): what is
    // relayed is what the whole input relays up to there, and the client is
    // always closed once it has its replies.
    let cut = common::cut_point(data, client.len());
    let ended = relay_requests(&client[..cut], &chunks);
    assert_ne!(ended.stop, RequestStop::Stalled);
    if !ended.protocol_error() && !whole.protocol_error() {
        assert!(
            whole.upstream.starts_with(&ended.upstream),
            "an end of input changed what went upstream before it"
        );
        assert!(ended
            .expects
            .iter()
            .any(|e| matches!(e, Expect::InputEnded | Expect::Close)));
    }
});
