//! Relay threads (`--threads`): sessions are spread over the threads, each thread carries its
//! share of the traffic, and every client is served.

mod support;

use std::time::Duration;
use support::*;

/// The relay threads of a process: name and the bytes each has written so far (to sockets,
/// through write/writev: the TLS records it sends upstream).
fn relay_threads(pid: u32) -> Vec<(String, u64)> {
    let mut threads: Vec<(String, u64)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let name = name.trim().to_string();
            if !name.starts_with("redauth-relay-") {
                return None;
            }
            let io = std::fs::read_to_string(dir.join("io")).ok()?;
            let written = io
                .lines()
                .find_map(|l| l.strip_prefix("wchar:"))?
                .trim()
                .parse()
                .ok()?;
            Some((name, written))
        })
        .collect();
    threads.sort();
    threads
}

#[test]
fn sessions_are_spread_over_the_relay_threads() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--threads", "3"]);
    // A relay thread takes its name when it first runs, which may be just after redauth
    // reports ready (sessions handed to it meanwhile wait in its queue): wait for all three.
    let expected = ["redauth-relay-0", "redauth-relay-1", "redauth-relay-2"];
    let before = eventually(
        &redauth,
        Duration::from_secs(10),
        "three named relay threads",
        || {
            let threads = relay_threads(redauth.pid());
            let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
            (names == expected).then_some(threads)
        },
    );

    // 30 clients open at once (each is handed to the thread with the fewest sessions), each
    // doing 100 round trips.
    let mut clients: Vec<RespConn> = (0..30).map(|_| redauth.connect()).collect();
    for client in &mut clients {
        assert_eq!(client.request(&["PING"]), b"+PONG\r\n");
    }
    std::thread::scope(|scope| {
        for (i, mut client) in clients.into_iter().enumerate() {
            scope.spawn(move || {
                let key = format!("threads:{i}");
                for j in 0..100 {
                    let value = format!("{i}-{j}");
                    assert_eq!(client.request(&["SET", &key, &value]), b"+OK\r\n");
                    assert_eq!(client.request(&["GET", &key]), bulk(&value));
                }
            });
        }
    });

    // Every thread took part, about evenly: 10 clients each.
    let after = relay_threads(redauth.pid());
    let total: u64 = before
        .iter()
        .zip(&after)
        .map(|((_, b), (_, a))| a - b)
        .sum();
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        eprintln!("{name}: wrote {} bytes upstream", now - was);
        assert!(
            (now - was) * 3 * 2 >= total,
            "{name} wrote {} of {total} bytes: the sessions were not spread",
            now - was
        );
    }
}

#[test]
fn one_relay_thread_serves_everyone() {
    let redis = TlsRedis::start();
    let redauth = redis.redauth(&["--threads", "1"]);
    eventually(
        &redauth,
        Duration::from_secs(10),
        "one named relay thread",
        || (relay_threads(redauth.pid()).len() == 1).then_some(()),
    );
    let mut clients: Vec<RespConn> = (0..20).map(|_| redauth.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let key = format!("one:{i}");
        assert_eq!(client.request(&["SET", &key, "v"]), b"+OK\r\n");
        assert_eq!(client.request(&["GET", &key]), bulk("v"));
    }
}
