//! Client request scanning: `Request::parse` finds a command's head,
//! `RequestBody::advance` walks its remaining arguments — the work the
//! session's request side does on every byte a client sends.
//!
//! Inputs are what clients send most: pipelines of 16 SETs (3-byte and 1 KiB
//! values) and 16 GETs, one `SET` with a 1 MiB value arriving in 16 KiB reads
//! (the session's read size), and a single inline `PING`. Throughput is in
//! bytes of client input scanned.
//!
//! The multibulk inputs also go through redis-protocol's RESP2 decoder
//! (`decode_range`, its least-allocating form), for the comparison that
//! justifies a hand-written scanner. (Inline commands are not RESP frames:
//! redis-protocol does not read them at all.)
//!
//! Run: `cargo bench --bench request_scan` (add `-- --quick` for a smoke run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redauth::resp::encode;
use redauth::resp::{Request, DEFAULT_MAX_BULK};
use std::hint::black_box;
use std::time::Duration;

/// The session reads clients in chunks of this size.
const READ_CHUNK: usize = 16 * 1024;

/// `depth` copies of one command, back to back, as a pipelining client sends them.
fn pipeline(args: &[&[u8]], depth: usize) -> Vec<u8> {
    encode::command(args).repeat(depth)
}

/// Scans every request in `buf`, which holds only whole requests, the way the
/// session does at a command boundary; returns the number of requests.
fn scan_all(buf: &[u8]) -> usize {
    let mut pos = 0;
    let mut count = 0;
    while pos < buf.len() {
        match Request::parse(&buf[pos..], DEFAULT_MAX_BULK) {
            Ok(Some(Request::Multibulk {
                head_len, mut body, ..
            })) => {
                pos += head_len;
                let adv = body
                    .advance(&buf[pos..], DEFAULT_MAX_BULK)
                    .expect("bench input is valid RESP");
                assert!(adv.done, "bench input holds whole requests");
                pos += adv.consumed;
            }
            Ok(Some(Request::Inline { len, .. } | Request::Ignored { len })) => pos += len,
            Ok(None) | Err(_) => panic!("bench input is whole, valid requests"),
        }
        count += 1;
    }
    count
}

/// Scans one request whose bytes arrive in reads of `chunk` bytes: the head
/// from the first read, the body streamed through the rest.
fn scan_streamed(buf: &[u8], chunk: usize) -> usize {
    let first = &buf[..chunk.min(buf.len())];
    let Ok(Some(Request::Multibulk {
        head_len, mut body, ..
    })) = Request::parse(first, DEFAULT_MAX_BULK)
    else {
        panic!("bench input starts with a multibulk head");
    };
    let mut pos = head_len;
    let mut read_end = first.len();
    let mut reads = 1;
    while !body.is_done() {
        let adv = body
            .advance(&buf[pos..read_end], DEFAULT_MAX_BULK)
            .expect("bench input is valid RESP");
        pos += adv.consumed;
        if !adv.done && pos == read_end {
            read_end = (read_end + chunk).min(buf.len());
            reads += 1;
        }
    }
    assert_eq!(pos, buf.len());
    reads
}

/// Decodes every command in `buf` with redis-protocol, a whole frame at a
/// time, tried again from the frame's start after each read until it is all
/// there; returns the number of commands.
fn decode(buf: &[u8], chunk: usize) -> usize {
    let mut pos = 0;
    let mut read_end = chunk.min(buf.len());
    let mut commands = 0;
    while pos < buf.len() {
        match redis_protocol::resp2::decode::decode_range(&buf[pos..read_end])
            .expect("bench input is valid RESP")
        {
            Some((_, consumed)) => {
                pos += consumed;
                commands += 1;
            }
            None => read_end = (read_end + chunk).min(buf.len()),
        }
    }
    commands
}

fn pipelines(c: &mut Criterion) {
    let small = vec![b'v'; 3];
    let kib = vec![b'v'; 1024];
    let cases: [(&str, Vec<u8>); 4] = [
        ("set_3B_x16", pipeline(&[b"SET", b"key:000042", &small], 16)),
        ("set_1KiB_x16", pipeline(&[b"SET", b"key:000042", &kib], 16)),
        ("get_x16", pipeline(&[b"GET", b"key:000042"], 16)),
        ("inline_ping", b"PING\r\n".to_vec()),
    ];
    let mut group = c.benchmark_group("request_scan");
    for (name, buf) in &cases {
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), buf, |b, buf| {
            b.iter(|| scan_all(black_box(buf)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("redis_protocol_decode");
    for (name, buf) in cases.iter().filter(|(name, _)| *name != "inline_ping") {
        assert_eq!(decode(buf, buf.len()), 16, "{name}");
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), buf, |b, buf| {
            b.iter(|| decode(black_box(buf), buf.len()))
        });
    }
    group.finish();
}

fn large_bulk(c: &mut Criterion) {
    let value = vec![b'v'; 1024 * 1024];
    let buf = encode::command(&[&b"SET"[..], b"big", &value]).to_vec();
    let mut group = c.benchmark_group("request_scan");
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("set_1MiB_in_16KiB_reads", |b| {
        b.iter(|| scan_streamed(black_box(&buf), READ_CHUNK))
    });
    group.finish();
    let mut group = c.benchmark_group("redis_protocol_decode");
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("set_1MiB_in_16KiB_reads", |b| {
        b.iter(|| decode(black_box(&buf), READ_CHUNK))
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
    targets = pipelines, large_bulk
}
criterion_main!(benches);
