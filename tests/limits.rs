//! Limits and backpressure: a client that pipelines without reading its replies, and a subscriber
//! that stops reading, hold neither redauth's memory nor each other's service hostage; past
//! `--output-timeout` they are closed, as Redis closes clients past their output buffer limits.

mod support;

use std::io::Write;
use std::time::Duration;
use support::*;

#[test]
fn a_client_that_never_reads_is_held_back_then_closed() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--output-timeout", "3s"]);
    let mut setup = redauth.connect();
    let value = "v".repeat(64 * 1024);
    assert_eq!(setup.request(&["SET", "big", &value]), b"+OK\r\n");
    let before = rss_kib(redauth.pid());

    // Pipeline GETs of a 64 KiB value and never read: 1 GiB of replies if all were answered.
    let hog = redauth.connect();
    let mut writer = hog.writer();
    writer
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let batch: Vec<u8> = (0..1000).flat_map(|_| cmd(&["GET", "big"])).collect();
    let mut sent = 0usize;
    let blocked_at = loop {
        match writer.write(&batch) {
            Ok(n) => sent += n,
            // redauth stopped reading: the client's writes block.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break sent,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break sent,
            Err(_) => break sent, // closed already
        }
        assert!(
            sent < 512 << 20,
            "redauth kept reading a client that never reads"
        );
    };
    eprintln!(
        "the client could send {} KiB of commands before being held back",
        blocked_at >> 10
    );

    // Everyone else is served meanwhile, and redauth's memory stays flat.
    for _ in 0..10 {
        assert_eq!(setup.request(&["PING"]), b"+PONG\r\n");
    }
    let during = rss_kib(redauth.pid());
    eprintln!("redauth RSS: {before} KiB before, {during} KiB while held back");
    assert!(
        during < before + 32 * 1024,
        "redauth grew by {} KiB",
        during - before
    );

    // Past the output timeout the client is closed and the log says why.
    wait_for("the output-limit close", Duration::from_secs(30), || {
        redauth.logs().contains("output limit")
    });
    assert_eq!(setup.request(&["PING"]), b"+PONG\r\n");
}

#[test]
fn a_subscriber_that_stops_reading_is_closed_without_holding_memory() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--output-timeout", "3s"]);
    let mut subscriber = redauth.connect();
    assert_eq!(
        subscriber.request(&["SUBSCRIBE", "firehose"]),
        b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n"
    );
    let before = rss_kib(redauth.pid());
    let mut publisher = redauth.connect();
    let message = "m".repeat(16 * 1024);
    let mut peak = before;
    // 64 MiB of messages the subscriber never reads.
    for i in 0..4096 {
        publisher.request(&["PUBLISH", "firehose", &message]);
        if i % 256 == 0 {
            peak = peak.max(rss_kib(redauth.pid()));
        }
    }
    eprintln!("redauth RSS: {before} KiB before, at most {peak} KiB while publishing 64 MiB");
    assert!(
        peak < before + 32 * 1024,
        "redauth grew by {} KiB",
        peak - before
    );
    wait_for("the subscriber closed", Duration::from_secs(60), || {
        redauth.logs().contains("session failed")
    });
    assert_eq!(publisher.request(&["PING"]), b"+PONG\r\n");
}

/// Raises this process's open-file limit to its hard limit (each client here is one descriptor).
fn raise_own_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

#[test]
fn two_thousand_concurrent_clients_are_all_answered() {
    const CLIENTS: usize = 2000;
    let limit = raise_own_file_limit();
    assert!(
        limit >= 2 * CLIENTS as u64 + 100,
        "open-file limit {limit} is too low"
    );
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&[]);
    let before = rss_kib(redauth.pid());
    let mut clients: Vec<RespConn> = (0..CLIENTS).map(|_| redauth.connect()).collect();
    // All of them at once: every client has a command in flight before any reply is read.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&cmd(&["ECHO", &i.to_string()]));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.read_reply(), bulk(&i.to_string()), "client {i}");
    }
    let during = rss_kib(redauth.pid());
    eprintln!(
        "{CLIENTS} clients: redauth RSS {before} KiB before, {during} KiB with all open ({:.1} KiB per client)",
        (during - before) as f64 / CLIENTS as f64
    );
    assert!(
        !redauth.logs().contains("session failed"),
        "{}",
        redauth.output()
    );
}
