//! The RESP scanners on their own: `Request::parse` and `RequestBody::advance`
//! over a pipeline of requests, `CommandKind::of` on every name,
//! `ReplyScanner::advance` frame by frame in one read and in reads of sizes
//! taken from the input (the frame boundaries must agree), and the pub/sub
//! peeks on every frame. Nothing may panic or claim more bytes than it got.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use redauth::resp::{frame, pubsub, CommandKind, ReplyScanner, Request, DEFAULT_MAX_BULK};

/// Scans requests at the start of `buf` one after the other; stops at the
/// first incomplete or invalid one.
fn requests(mut buf: &[u8], max_bulk: u64) {
    while let Ok(Some(request)) = Request::parse(buf, max_bulk) {
        let len = match request {
            Request::Ignored { len } => len,
            Request::Inline { len, args } => {
                assert!(!args.is_empty());
                let _ = CommandKind::of(&args[0]);
                len
            }
            Request::Multibulk {
                head_len,
                name,
                mut body,
                ..
            } => {
                assert!(head_len <= buf.len());
                if let Some(name) = name {
                    let _ = CommandKind::of(&buf[name]).needs_arguments();
                }
                let Ok(advance) = body.advance(&buf[head_len..], max_bulk) else {
                    return;
                };
                assert!(head_len + advance.consumed <= buf.len());
                if !advance.done {
                    return;
                }
                assert!(body.is_done());
                head_len + advance.consumed
            }
        };
        assert!(len > 0 && len <= buf.len());
        buf = &buf[len..];
    }
}

/// Frame end offsets found scanning `buf` in reads of `chunks` (cycled; empty:
/// one read), until the bytes run out or an error; and whether it erred.
fn reply_boundaries(buf: &[u8], chunks: &[usize]) -> (Vec<usize>, bool) {
    let mut scanner = ReplyScanner::default();
    let mut ends = Vec::new();
    let (mut start, mut available, mut next) = (0, 0, 0);
    while available < buf.len() {
        let size = chunks
            .get(next % chunks.len().max(1))
            .copied()
            .unwrap_or(buf.len());
        next += 1;
        available = (available + size).min(buf.len());
        // Like the pump: scan what is buffered until a read is needed.
        while start < available {
            let progress = match scanner.advance(&buf[start..available]) {
                Ok(progress) => progress,
                Err(_) => return (ends, true),
            };
            assert!(progress.consumed <= available - start);
            start += progress.consumed;
            if progress.done {
                ends.push(start);
                assert!(scanner.at_boundary());
            } else {
                break;
            }
        }
    }
    (ends, false)
}

fuzz_target!(|data: &[u8]| {
    let (chunks, buf) = common::chunks_and_payload(data);
    requests(buf, DEFAULT_MAX_BULK);
    requests(buf, chunks.first().map_or(0, |&c| c as u64));

    let (whole, whole_failed) = reply_boundaries(buf, &[]);
    let (split, split_failed) = reply_boundaries(buf, &chunks);
    if whole_failed || split_failed {
        let n = whole.len().min(split.len());
        assert_eq!(whole[..n], split[..n]);
    } else {
        assert_eq!(whole, split, "frame boundaries depend on read sizes");
    }
    let mut start = 0;
    for end in whole {
        let frame_bytes = &buf[start..end];
        let _ = pubsub::peek(frame_bytes);
        let _ = pubsub::confirmed_channel(frame_bytes);
        let _ = frame::elements(frame_bytes);
        let _ = frame::bulk(frame_bytes, 0);
        start = end;
    }
    let _ = pubsub::peek(buf);
});
