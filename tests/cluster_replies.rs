//! The reply side of a session in cluster mode (issue 16), over the in-memory harness: node
//! addresses are rewritten where they appear — a `-MOVED`/`-ASK` among ordinary replies, inside an
//! `EXEC` array, the `CLUSTER SLOTS/SHARDS/NODES/REPLICAS` replies — and every other byte is relayed
//! as the server sent it, however the server's output is split into reads.
//!
//! The replies are the ones captured from a real cluster (`tests/fixtures/cluster/`).
#![cfg(feature = "harness")]

use bytes::Bytes;
use redauth::cluster::directory::Reply;
use redauth::cluster::{rewrite, Directory, LocalPorts, Rewrite, Topology};
use redauth::session::harness::{relay_replies, relay_replies_rewriting, ReplyEnd};
use redauth::session::Expect;
use std::sync::Arc;

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/cluster/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// The captured cluster's nodes on local ports from 16000, as redauth would map them.
fn ports(endpoint: &str) -> LocalPorts {
    let topology = Topology::from_slots(&fixture(&format!("slots-{endpoint}-resp2")), b"seed")
        .expect("the captured CLUSTER SLOTS reads");
    let mut ports = LocalPorts::new("127.0.0.1", 16000);
    ports.update(&topology).expect("ports for six nodes");
    ports
}

fn directory(endpoint: &str) -> Arc<Directory> {
    Directory::new(ports(endpoint))
}

fn rewritten(result: Rewrite) -> Vec<u8> {
    match result {
        Rewrite::Rewritten(new) => new.to_vec(),
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

/// Every read size from one byte up, and all at once.
const SPLITS: [&[usize]; 3] = [&[1], &[7, 3], &[1 << 20]];

#[test]
fn a_redirect_among_ordinary_replies_is_rewritten_and_nothing_else_changes() {
    for endpoint in ["ip", "hostname"] {
        let moved = fixture(&format!("moved-{endpoint}-resp2"));
        let expected_moved = rewritten(rewrite::redirects(&moved, &ports(endpoint)));
        assert!(String::from_utf8_lossy(&expected_moved).contains("127.0.0.1:160"));
        let mut server = b"+OK\r\n$5\r\nhello\r\n".to_vec();
        server.extend_from_slice(&moved);
        server.extend_from_slice(b"-WRONGTYPE Operation against a key\r\n*2\r\n:1\r\n:2\r\n");
        let mut expected = b"+OK\r\n$5\r\nhello\r\n".to_vec();
        expected.extend_from_slice(&expected_moved);
        expected.extend_from_slice(b"-WRONGTYPE Operation against a key\r\n*2\r\n:1\r\n:2\r\n");
        for chunks in SPLITS {
            let run = relay_replies_rewriting(
                &[Expect::Replies(5)],
                &server,
                chunks,
                Some(directory(endpoint)),
            );
            assert_eq!(run.end, ReplyEnd::InputEnded, "{endpoint} {chunks:?}");
            assert_eq!(
                String::from_utf8_lossy(&run.client),
                String::from_utf8_lossy(&expected),
                "{endpoint} {chunks:?}"
            );
        }
    }
}

#[test]
fn topology_replies_are_rewritten_in_both_protocols() {
    let cases = [
        ("slots", Reply::Slots),
        ("shards", Reply::Shards),
        ("nodes", Reply::Nodes),
        ("replicas", Reply::Nodes),
    ];
    for (command, reply) in cases {
        for endpoint in ["ip", "hostname"] {
            for proto in [2, 3] {
                let name = format!("{command}-{endpoint}-resp{proto}");
                let server = fixture(&name);
                let directory = directory(endpoint);
                let expected = rewritten(directory.rewrite(reply, &server));
                for chunks in SPLITS {
                    let run = relay_replies_rewriting(
                        &[Expect::Rewrite(reply), Expect::Replies(1)],
                        &[&server[..], b"+PONG\r\n"].concat(),
                        chunks,
                        Some(directory.clone()),
                    );
                    assert_eq!(run.end, ReplyEnd::InputEnded, "{name} {chunks:?}");
                    assert_eq!(
                        run.client,
                        [&expected[..], b"+PONG\r\n"].concat(),
                        "{name} {chunks:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_redirect_inside_an_exec_array_is_rewritten() {
    let moved = fixture("moved-ip-resp2");
    let mut exec = b"*3\r\n+OK\r\n".to_vec();
    exec.extend_from_slice(&moved);
    exec.extend_from_slice(b":7\r\n");
    let expected_moved = rewritten(rewrite::redirects(&moved, &ports("ip")));
    let mut expected = b"*3\r\n+OK\r\n".to_vec();
    expected.extend_from_slice(&expected_moved);
    expected.extend_from_slice(b":7\r\n");
    for chunks in SPLITS {
        let run = relay_replies_rewriting(
            &[Expect::Rewrite(Reply::Redirects)],
            &exec,
            chunks,
            Some(directory("ip")),
        );
        assert_eq!(run.client, expected, "{chunks:?}");
    }
}

#[test]
fn without_cluster_mode_every_reply_is_relayed_as_sent() {
    let moved = fixture("moved-ip-resp2");
    let slots = fixture("slots-ip-resp3");
    let server = [&moved[..], &slots[..]].concat();
    let expects = [Expect::Replies(1), Expect::Rewrite(Reply::Slots)];
    for chunks in SPLITS {
        assert_eq!(relay_replies(&expects, &server, chunks).client, server);
    }
}
