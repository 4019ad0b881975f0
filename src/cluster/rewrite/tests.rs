//! Every rewrite against replies captured from a real Redis 7.0 cluster
//! (`tests/fixtures/cluster/`: six nodes on 127.0.0.1:7101–7106, each
//! announcing `node-<port>.example`; captured in RESP2 and RESP3 with
//! `cluster-preferred-endpoint-type` `ip` and `hostname`).
//!
//! Each rewritten reply is compared with the server's leaf by leaf: the only
//! leaves allowed to differ are an upstream host that became the local host
//! and an upstream port that became its local port.

use super::*;
use crate::cluster::fixture;
use std::collections::HashMap;

const LOCAL_HOST: &str = "127.0.0.9";

fn local_port(upstream: u16) -> u16 {
    upstream - 7101 + 6380
}

/// Every node under both the names it is known by.
fn map() -> HashMap<NodeAddr, NodeAddr> {
    let mut map = HashMap::new();
    for port in 7101..=7106 {
        let local = NodeAddr::new(LOCAL_HOST, local_port(port));
        map.insert(NodeAddr::new("127.0.0.1", port), local.clone());
        map.insert(NodeAddr::new(format!("node-{port}.example"), port), local);
    }
    map
}

fn upstream_host(text: &[u8]) -> bool {
    text == b"127.0.0.1" || (text.starts_with(b"node-71") && text.ends_with(b".example"))
}

/// One `CLUSTER NODES` address field, server's and rewritten.
fn same_node_address(old: &[u8], new: &[u8]) {
    let (old_addr, old_rest) = old.split_at(old.iter().position(|&b| b == b'@').unwrap());
    let (new_addr, new_rest) = new.split_at(new.iter().position(|&b| b == b'@').unwrap());
    let old_addr = NodeAddr::parse(old_addr).unwrap();
    let new_addr = NodeAddr::parse(new_addr).unwrap();
    assert_eq!(
        new_addr,
        NodeAddr::new(LOCAL_HOST, local_port(old_addr.port))
    );
    let old_rest: Vec<&[u8]> = old_rest.split(|&b| b == b',').collect();
    let new_rest: Vec<&[u8]> = new_rest.split(|&b| b == b',').collect();
    assert_eq!(old_rest[0], new_rest[0], "the bus port is kept");
    assert_eq!(old_rest.len(), new_rest.len());
    for (o, n) in old_rest.iter().zip(&new_rest).skip(1) {
        assert!(
            o == n || (upstream_host(o) && *n == LOCAL_HOST.as_bytes()),
            "{o:?} -> {n:?}"
        );
    }
}

fn same_node_text(old: &[u8], new: &[u8]) -> usize {
    let old: Vec<&[u8]> = old.split(|&b| b == b'\n').collect();
    let new: Vec<&[u8]> = new.split(|&b| b == b'\n').collect();
    assert_eq!(old.len(), new.len());
    let mut changed = 0;
    for (o, n) in old.iter().zip(&new) {
        let of: Vec<&[u8]> = o.split(|&b| b == b' ').collect();
        let nf: Vec<&[u8]> = n.split(|&b| b == b' ').collect();
        assert_eq!(of.len(), nf.len());
        for (i, (a, b)) in of.iter().zip(&nf).enumerate() {
            if i == 1 {
                same_node_address(a, b);
                changed += 1;
            } else {
                assert_eq!(a, b);
            }
        }
    }
    changed
}

/// Walks both trees; returns how many leaves changed, after checking each.
fn compare(old: &Value, new: &Value, last_port: &mut Option<u16>) -> usize {
    match (old, new) {
        (Value::Aggregate { kind: a, items: x }, Value::Aggregate { kind: b, items: y }) => {
            assert_eq!(a, b);
            let (x, y) = (
                x.as_deref().unwrap_or_default(),
                y.as_deref().unwrap_or_default(),
            );
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(o, n)| compare(o, n, last_port)).sum()
        }
        (
            Value::Blob {
                kind: a,
                data: Some(x),
            },
            Value::Blob {
                kind: b,
                data: Some(y),
            },
        ) if x.contains(&b'\n') || x.starts_with(b"txt:") => {
            assert_eq!(a, b);
            let prefix = if *a == b'=' { 4 } else { 0 };
            assert_eq!(x[..prefix], y[..prefix]);
            same_node_text(&x[prefix..], &y[prefix..])
        }
        (Value::Blob { data: Some(x), .. }, Value::Blob { data: Some(y), .. })
            if x.split(|&b| b == b' ').count() >= 8 =>
        {
            same_node_text(x, y)
        }
        _ if old == new => 0,
        (
            Value::Line {
                kind: b':',
                text: x,
            },
            Value::Line {
                kind: b':',
                text: y,
            },
        ) => {
            let port: u16 = std::str::from_utf8(x).unwrap().parse().unwrap();
            assert!((7101..=7106).contains(&port), "only ports change: {x:?}");
            assert_eq!(y, local_port(port).to_string().as_bytes());
            *last_port = Some(port);
            1
        }
        (
            Value::Blob {
                kind: a,
                data: Some(x),
            },
            Value::Blob {
                kind: b,
                data: Some(y),
            },
        ) => {
            assert_eq!(a, b);
            assert!(upstream_host(x), "only hosts change: {x:?}");
            assert_eq!(y, LOCAL_HOST.as_bytes());
            1
        }
        _ => panic!("{old:?} became {new:?}"),
    }
}

fn rewritten(rewrite: Rewrite) -> Bytes {
    match rewrite {
        Rewrite::Rewritten(bytes) => bytes,
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

fn check(
    command: &str,
    rewrite: fn(&Bytes, &HashMap<NodeAddr, NodeAddr>) -> Rewrite,
    min_changes: usize,
) {
    for endpoint in ["ip", "hostname"] {
        for proto in [2, 3] {
            let name = format!("{command}-{endpoint}-resp{proto}");
            let old = fixture(&name);
            let new = rewritten(rewrite(&old, &map()));
            let old_tree = Value::parse(&old).expect("the server's reply parses");
            assert_eq!(
                old_tree.to_bytes(),
                old,
                "{name}: read and written back unchanged"
            );
            let new_tree = Value::parse(&new).expect("the rewritten reply parses");
            let changes = compare(&old_tree, &new_tree, &mut None);
            assert!(changes >= min_changes, "{name}: {changes} changes");
            for port in 7101..=7106u16 {
                let needle = format!(":{port}");
                let needle2 = format!("\r\n{port}");
                assert!(
                    !new.windows(needle.len()).any(|w| w == needle.as_bytes())
                        && !new.windows(needle2.len()).any(|w| w == needle2.as_bytes()),
                    "{name}: upstream port {port} left in {new:?}"
                );
            }
            assert!(
                !new.windows(7).any(|w| w == b"example"),
                "{name}: upstream host name left"
            );
            assert!(
                !new.windows(9).any(|w| w == b"127.0.0.1"),
                "{name}: upstream IP left"
            );
            // A local address is not an upstream one: asked again, the map does not know it.
            assert!(
                matches!(rewrite(&new, &map()), Rewrite::Unknown(a) if a.host == LOCAL_HOST),
                "{name}"
            );
        }
    }
}

#[test]
fn cluster_slots_every_node_and_its_metadata() {
    // 3 ranges × (primary + replica): 6 ports, 6 first-element hosts, and metadata.
    check("slots", slots, 12);
}

#[test]
fn cluster_shards_every_node_port_and_host_field() {
    check("shards", shards, 6 * 3);
}

#[test]
fn cluster_nodes_every_line() {
    check("nodes", nodes, 6);
}

#[test]
fn cluster_replicas_each_line() {
    check("replicas", nodes, 1);
}

#[test]
fn moved_errors_with_ips_and_host_names() {
    for name in ["moved-ip-resp2", "moved-hostname-resp3"] {
        let new = rewritten(redirects(&fixture(name), &map()));
        assert_eq!(&new[..], b"-MOVED 12182 127.0.0.9:6382\r\n", "{name}");
    }
}

#[test]
fn ask_errors_and_redirects_inside_an_exec_array() {
    let ask = Bytes::from_static(b"-ASK 3999 node-7102.example:7102\r\n");
    assert_eq!(
        &rewritten(redirects(&ask, &map()))[..],
        b"-ASK 3999 127.0.0.9:6381\r\n"
    );
    let exec = Bytes::from_static(b"*3\r\n+OK\r\n-MOVED 1 127.0.0.1:7101\r\n$3\r\nASK\r\n");
    assert_eq!(
        &rewritten(redirects(&exec, &map()))[..],
        b"*3\r\n+OK\r\n-MOVED 1 127.0.0.9:6380\r\n$3\r\nASK\r\n"
    );
}

#[test]
fn replies_without_addresses_are_left_to_pass_byte_for_byte() {
    let map = map();
    for wire in [
        &b"+OK\r\n"[..],
        b"-ERR unknown command\r\n",
        b"-MOVEDX 1 127.0.0.1:7101\r\n",
        b"-MOVED 1 127.0.0.1\r\n",
        b"$-1\r\n",
        b"*2\r\n$5\r\n-MOVE\r\n:1\r\n",
        b"-ERR This instance has cluster support disabled\r\n",
        b"*0\r\n",
        b"*1\r\n*2\r\n:0\r\n:16383\r\n",
    ] {
        let frame = Bytes::copy_from_slice(wire);
        assert_eq!(redirects(&frame, &map), Rewrite::Unchanged, "{wire:?}");
        assert_eq!(slots(&frame, &map), Rewrite::Unchanged, "{wire:?}");
        assert_eq!(shards(&frame, &map), Rewrite::Unchanged, "{wire:?}");
        assert_eq!(nodes(&frame, &map), Rewrite::Unchanged, "{wire:?}");
    }
}

#[test]
fn an_address_the_map_does_not_know_asks_for_a_refresh() {
    let mut map = map();
    map.retain(|upstream, _| upstream.port != 7104);
    assert_eq!(
        redirects(&Bytes::from_static(b"-MOVED 5 127.0.0.1:7104\r\n"), &map),
        Rewrite::Unknown(NodeAddr::new("127.0.0.1", 7104))
    );
    for (name, rewrite) in [
        ("slots", slots as fn(&Bytes, &_) -> Rewrite),
        ("shards", shards),
        ("nodes", nodes),
    ] {
        for endpoint in ["ip", "hostname"] {
            let got = rewrite(&fixture(&format!("{name}-{endpoint}-resp3")), &map);
            assert!(
                matches!(&got, Rewrite::Unknown(a) if a.port == 7104),
                "{name}-{endpoint}: {got:?}"
            );
        }
    }
}

#[test]
fn a_tls_cluster_shard_node_has_both_ports_rewritten() {
    let node = b"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*8\r\n\
        $4\r\nport\r\n:6379\r\n$8\r\ntls-port\r\n:7101\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n\
        $4\r\nrole\r\n$6\r\nmaster\r\n";
    let new = rewritten(shards(&Bytes::from_static(node), &map()));
    let text = String::from_utf8_lossy(&new);
    assert!(
        text.contains("port\r\n:6380\r\n$8\r\ntls-port\r\n:6380\r\n"),
        "{text}"
    );
    assert!(text.contains("ip\r\n$9\r\n127.0.0.9\r\n"), "{text}");
}

#[test]
fn ipv6_nodes_lines_and_nodes_without_an_address_yet() {
    let mut map = map();
    map.insert(NodeAddr::new("::1", 7200), NodeAddr::new(LOCAL_HOST, 6390));
    let text =
        b"a ::1:7200@17200 master - 0 0 1 connected 0-1\nb :0@0 handshake - 0 0 0 disconnected\n";
    let frame = Value::bulk(&text[..]).to_bytes();
    let new = rewritten(nodes(&frame, &map));
    let expect = b"a 127.0.0.9:6390@17200 master - 0 0 1 connected 0-1\nb :0@0 handshake - 0 0 0 disconnected\n";
    assert_eq!(new, Value::bulk(&expect[..]).to_bytes());
}

#[test]
fn a_node_with_an_unknown_endpoint_keeps_it_and_gets_its_local_port() {
    use crate::cluster::{LocalPorts, Topology};
    // `?` as the endpoint: the client is to use the host it asked, i.e. redauth's.
    let reply =
        Bytes::from_static(b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7000\r\n$2\r\nab\r\n");
    let topology = Topology::from_slots(&reply, b"cache.example").unwrap();
    let mut ports = LocalPorts::new(LOCAL_HOST, 6380);
    ports.update(&topology).unwrap();
    assert_eq!(
        &rewritten(slots(&reply, &ports))[..],
        b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$1\r\n?\r\n:6380\r\n$2\r\nab\r\n"
    );
    // Redirects and CLUSTER NODES name such a node with an empty host.
    let moved = Bytes::from_static(b"-MOVED 5 :7000\r\n");
    assert_eq!(
        &rewritten(redirects(&moved, &ports))[..],
        b"-MOVED 5 127.0.0.9:6380\r\n"
    );
}
