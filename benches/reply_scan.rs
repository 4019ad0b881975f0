//! Reply scanning: `ReplyScanner::advance` finding frame boundaries in server
//! output — the work the session's reply side does on every byte the server
//! sends.
//!
//! Inputs are typical replies, 16 of a kind back to back as a pipelined
//! client receives them: `+OK`, bulk strings of 3 bytes and 1 KiB, nulls,
//! an `MGET` array of 10 bulks, a RESP3 `HGETALL` map of 10 fields, an
//! `XRANGE`-shaped nested array; and one 1 MiB bulk arriving in 16 KiB reads.
//! Throughput is in bytes of server output scanned.
//!
//! The same inputs also go through redis-protocol's decoder (`decode_range`,
//! its least-allocating form), read by read as the session would have to feed
//! it, for the comparison that justifies a hand-written scanner: a decoder
//! needs a whole frame before it answers, so a large reply is re-parsed from
//! its start on every read (and must be buffered whole), where the scanner
//! carries its place across reads and passes payload bytes on at once.
//!
//! Run: `cargo bench --bench reply_scan` (add `-- --quick` for a smoke run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redauth::resp::ReplyScanner;
use std::hint::black_box;
use std::time::Duration;

/// The session reads the server in chunks of about this size.
const READ_CHUNK: usize = 16 * 1024;

fn bulk(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn bulk_reply(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    bulk(&mut out, &vec![b'v'; len]);
    out
}

/// `MGET` of `n` keys: an array of `n` 16-byte bulks.
fn array_reply(n: usize) -> Vec<u8> {
    let mut out = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        bulk(&mut out, format!("value-{i:010}").as_bytes());
    }
    out
}

/// RESP3 `HGETALL` of `n` fields: a map of bulk keys to bulk values.
fn map_reply(n: usize) -> Vec<u8> {
    let mut out = format!("%{n}\r\n").into_bytes();
    for i in 0..n {
        bulk(&mut out, format!("field:{i}").as_bytes());
        bulk(&mut out, format!("value-{i:010}").as_bytes());
    }
    out
}

/// `XRANGE` of `n` entries: `[[id, [field, value, field, value]], …]`.
fn stream_reply(n: usize) -> Vec<u8> {
    let mut out = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        out.extend_from_slice(b"*2\r\n");
        bulk(&mut out, format!("1700000000000-{i}").as_bytes());
        out.extend_from_slice(b"*4\r\n");
        bulk(&mut out, b"temperature");
        bulk(&mut out, b"21.5");
        bulk(&mut out, b"sensor");
        bulk(&mut out, format!("s-{i}").as_bytes());
    }
    out
}

/// Scans `buf` in reads of `chunk` bytes, frame after frame, as the session's
/// reply side does; returns the number of frames.
fn scan(buf: &[u8], chunk: usize) -> usize {
    let mut scanner = ReplyScanner::default();
    let mut pos = 0;
    let mut read_end = chunk.min(buf.len());
    let mut frames = 0;
    while pos < buf.len() {
        let progress = scanner
            .advance(&buf[pos..read_end])
            .expect("bench input is valid RESP");
        pos += progress.consumed;
        if progress.done {
            frames += 1;
        } else {
            // The rest of this read is a partial line or nothing: read more,
            // keeping the unconsumed bytes in front, as `BytesMut` does.
            read_end = (read_end + chunk).min(buf.len());
        }
    }
    frames
}

/// The same walk with redis-protocol decoding whole frames: a frame is
/// decoded once all of it is buffered, and tried again from its start after
/// every read until then.
fn decode(buf: &[u8], chunk: usize, resp3: bool) -> usize {
    let mut pos = 0;
    let mut read_end = chunk.min(buf.len());
    let mut frames = 0;
    while pos < buf.len() {
        let window = &buf[pos..read_end];
        let decoded = if resp3 {
            redis_protocol::resp3::decode::complete::decode_range(window).map(|d| d.map(|(_, n)| n))
        } else {
            redis_protocol::resp2::decode::decode_range(window).map(|d| d.map(|(_, n)| n))
        };
        match decoded.expect("bench input is valid RESP") {
            Some(consumed) => {
                pos += consumed;
                frames += 1;
            }
            None => read_end = (read_end + chunk).min(buf.len()),
        }
    }
    frames
}

fn typical(c: &mut Criterion) {
    let cases: [(&str, Vec<u8>); 7] = [
        ("ok_x16", b"+OK\r\n".repeat(16)),
        ("bulk_3B_x16", bulk_reply(3).repeat(16)),
        ("bulk_1KiB_x16", bulk_reply(1024).repeat(16)),
        ("null_x16", b"$-1\r\n".repeat(16)),
        ("mget_10_x16", array_reply(10).repeat(16)),
        ("resp3_map_10_x16", map_reply(10).repeat(16)),
        ("xrange_10_x16", stream_reply(10).repeat(16)),
    ];
    let mut group = c.benchmark_group("reply_scan");
    for (name, buf) in &cases {
        assert_eq!(scan(buf, buf.len()), 16, "{name}");
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), buf, |b, buf| {
            b.iter(|| scan(black_box(buf), READ_CHUNK))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("redis_protocol_decode");
    for (name, buf) in &cases {
        let resp3 = name.starts_with("resp3");
        assert_eq!(decode(buf, buf.len(), resp3), 16, "{name}");
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), buf, |b, buf| {
            b.iter(|| decode(black_box(buf), READ_CHUNK, resp3))
        });
    }
    group.finish();
}

fn large_bulk(c: &mut Criterion) {
    let buf = bulk_reply(1024 * 1024);
    let mut group = c.benchmark_group("reply_scan");
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("bulk_1MiB_in_16KiB_reads", |b| {
        b.iter(|| scan(black_box(&buf), READ_CHUNK))
    });
    group.finish();
    let mut group = c.benchmark_group("redis_protocol_decode");
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("bulk_1MiB_in_16KiB_reads", |b| {
        b.iter(|| decode(black_box(&buf), READ_CHUNK, false))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = typical, large_bulk
}
criterion_main!(benches);
