//! A long mixed workload against the emulated cloud with tokens rotating every few seconds:
//! pipelined SET/GET, transactions, a RESP2 and a RESP3 subscriber with their publishers, a
//! BLPOP consumer with its producer, and clients coming and going. Nothing may fail, the front
//! must close nothing for expiry, and redauth's resident memory must level off.
//!
//! Ignored by default (it runs for `REDAUTH_SOAK_SECS`, 600 unless set):
//! `REDAUTH_SOAK_SECS=600 cargo test --release --test soak -- --ignored --nocapture`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::cloud::{TestCloud, OID};
use support::*;

#[test]
#[ignore = "long: run by hand with REDAUTH_SOAK_SECS"]
fn soak_mixed_workload_with_rotating_tokens() {
    let secs: u64 = std::env::var("REDAUTH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let cloud = TestCloud::start(Duration::from_secs(4));
    let redauth = cloud.redauth_cmd("managed-identity").start();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();

    // Pipelined SET/GET on long-lived connections.
    for w in 0..4 {
        let mut c = redauth.connect();
        let (stop, ops) = (stop.clone(), ops.clone());
        workers.push(thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("soak:{w}:{}", n % 1000);
                let mut batch = cmd(&["SET", &key, &n.to_string()]);
                batch.extend(cmd(&["GET", &key]));
                c.send(&batch);
                assert_eq!(c.read_reply(), b"+OK\r\n");
                assert_eq!(c.read_reply(), bulk(&n.to_string()));
                n += 1;
                ops.fetch_add(2, Ordering::Relaxed);
            }
        }));
    }
    // Transactions.
    {
        let mut c = redauth.connect();
        let (stop, ops) = (stop.clone(), ops.clone());
        workers.push(thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(c.request(&["MULTI"]), b"+OK\r\n");
                assert_eq!(c.request(&["INCR", "soak:tx"]), b"+QUEUED\r\n");
                thread::sleep(Duration::from_millis(50));
                n += 1;
                assert_eq!(c.request(&["EXEC"]), format!("*1\r\n:{n}\r\n").into_bytes());
                ops.fetch_add(3, Ordering::Relaxed);
            }
        }));
    }
    // Clients coming and going.
    {
        let port = redauth.port();
        let (stop, ops) = (stop.clone(), ops.clone());
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut c = RespConn::connect(port);
                assert_eq!(c.request(&["ACL", "WHOAMI"]), bulk(OID));
                ops.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    // A RESP2 and a RESP3 subscriber, each with its publisher; counted at the end.
    let mut subscribers = Vec::new();
    for (resp3, channel) in [(false, "soak:ch2"), (true, "soak:ch3")] {
        let mut sub = redauth.connect();
        if resp3 {
            assert!(sub.request(&["HELLO", "3"]).starts_with(b"%"));
        }
        sub.request(&["SUBSCRIBE", channel]);
        let mut publisher = redauth.connect();
        let stop = stop.clone();
        let sent = thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sent += 1;
                assert_eq!(publisher.request(&["PUBLISH", channel, "m"]), b":1\r\n");
                thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(publisher.request(&["PUBLISH", channel, "end"]), b":1\r\n");
            sent
        });
        let received = thread::spawn(move || {
            let mut received = 0u64;
            loop {
                let frame = sub.read_reply();
                if frame.ends_with(b"$3\r\nend\r\n") {
                    return received;
                }
                assert!(frame.ends_with(b"$1\r\nm\r\n"), "{}", show(&frame));
                received += 1;
            }
        });
        subscribers.push((channel, sent, received));
    }
    // A BLPOP consumer (blocking across rotations) and a slow producer.
    let mut consumer = redauth.connect();
    let mut producer = redauth.connect();
    let blpops = {
        thread::spawn(move || {
            let mut got = 0u64;
            loop {
                let reply = consumer.request(&["BLPOP", "soak:list", "0"]);
                if reply.ends_with(b"$4\r\nlast\r\n") {
                    return got;
                }
                assert!(reply.starts_with(b"*2\r\n"), "{}", show(&reply));
                got += 1;
            }
        })
    };

    let start = Instant::now();
    let pid = redauth.pid();
    let mut pushed = 0u64;
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        thread::sleep(Duration::from_secs(5));
        let pushed_reply = producer.request(&["RPUSH", "soak:list", "x"]);
        assert_eq!(pushed_reply.first(), Some(&b':'), "{}", show(&pushed_reply));
        pushed += 1;
        let rss = rss_kib(pid);
        samples.push((start.elapsed().as_secs(), rss));
        eprintln!(
            "soak: {:>4} s, {} ops, RSS {rss} KiB",
            start.elapsed().as_secs(),
            ops.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::SeqCst);
    let last = producer.request(&["RPUSH", "soak:list", "last"]);
    assert_eq!(last.first(), Some(&b':'), "{}", show(&last));
    for w in workers {
        w.join().expect("a worker failed");
    }
    for (channel, sent, received) in subscribers {
        let (sent, received) = (sent.join().unwrap(), received.join().unwrap());
        eprintln!("soak: {channel}: {sent} published, {received} received");
        assert_eq!(sent, received, "{channel}");
    }
    assert_eq!(blpops.join().unwrap(), pushed);
    let logs = redauth.stop();
    let rotations = log_events(&logs, "token refreshed").len();
    eprintln!(
        "soak: {secs} s, {} ops, {rotations} token rotations, RSS samples (s, KiB): {samples:?}",
        ops.load(Ordering::Relaxed)
    );
    assert_eq!(
        cloud.expired_closes(),
        0,
        "the front closed connections for expiry"
    );
    assert!(!logs.contains("session failed"), "{logs}");
    // Memory levels off: the last third of the run grows by less than 10 % over the middle.
    let third = samples.len() / 3;
    if third > 0 {
        let middle = samples[third].1;
        let last = samples.last().unwrap().1;
        assert!(
            last < middle + middle / 10,
            "RSS grew from {middle} to {last} KiB"
        );
    }
}
