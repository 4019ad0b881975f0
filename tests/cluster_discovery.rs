//! Cluster detection (issue 16) against real servers: a TLS Redis cluster is recognised and its
//! topology read through an authenticated connection to the seed; a single server is recognised
//! as one; the topology maps onto stable local ports and the server's own replies are rewritten
//! to them.

mod support;

use ::redauth::cluster::{
    discover, rewrite, Discovery, LocalAddresses, LocalPorts, NodeAddr, Rewrite,
};
use ::redauth::credentials::{Credential, Secret};
use ::redauth::upstream::{tls, Connector, Endpoint};
use std::time::Duration;
use support::*;

fn connector(url: &str, ca: &std::path::Path) -> Connector {
    let settings = tls::TlsSettings {
        ca_file: Some(ca.to_path_buf()),
        ..Default::default()
    };
    let config = tls::client_config(&settings).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    Connector::new(
        Endpoint::parse(url).unwrap(),
        Some((config, name)),
        Duration::from_secs(5),
    )
}

fn credential() -> Credential {
    Credential::password(Some(USERNAME.into()), Secret::new(PASSWORD.into()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_tls_cluster_is_discovered_mapped_and_its_replies_rewritten() {
    let cluster = TlsCluster::start();
    let connector = connector(&cluster.seed_url(), &cluster.certs().ca);
    let discovery = runtime()
        .block_on(discover(&connector, &credential()))
        .unwrap();
    let Discovery::Cluster(topology) = discovery else {
        panic!("a cluster taken for a single endpoint");
    };
    assert!(topology.covers_all_slots());
    assert_eq!(topology.nodes.iter().filter(|n| n.primary).count(), 3);
    let mut announced: Vec<u16> = topology.nodes.iter().map(|n| n.dial.port).collect();
    announced.sort_unstable();
    let mut ports = cluster.ports();
    ports.sort_unstable();
    assert_eq!(announced, ports, "every node, each once, at its TLS port");
    for node in &topology.nodes {
        assert!(
            node.aliases
                .contains(&NodeAddr::new("localhost", node.dial.port)),
            "{node:?}"
        );
        assert!(
            node.aliases
                .contains(&NodeAddr::new("127.0.0.1", node.dial.port)),
            "{node:?}"
        );
    }

    let mut local = LocalPorts::new("127.0.0.1", 16380);
    let changes = local.update(&topology).unwrap();
    assert_eq!(changes.added.len(), 6);

    // The server's own CLUSTER NODES, read by redis-cli, rewritten: every node at a local port.
    let seed = cluster.ports()[0];
    let text = cluster.cli(seed, &["CLUSTER", "NODES"]).unwrap();
    let frame = bytes::Bytes::from(format!("${}\r\n{}\r\n", text.len(), text));
    let Rewrite::Rewritten(new) = rewrite::nodes(&frame, &local) else {
        panic!("CLUSTER NODES not rewritten")
    };
    let new = String::from_utf8_lossy(&new);
    for port in cluster.ports() {
        let upstream = NodeAddr::new("127.0.0.1", port);
        let to = local.local(&upstream).unwrap();
        assert!(new.contains(&format!(" {to}@")), "{to} missing in {new}");
        assert!(!new.contains(&format!(":{port}@")), "{port} left in {new}");
    }

    // A key owned by another primary: the server's MOVED, rewritten to that primary's local port.
    let slot_owner = |key: &str| cluster.cli(seed, &["CLUSTER", "KEYSLOT", key]).unwrap();
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let slot: u16 = slot_owner(k).trim().parse().unwrap();
            topology.primary_for(slot).unwrap().dial.port != seed
        })
        .unwrap();
    let moved = cluster.cli(seed, &["GET", &key]).unwrap();
    let moved = moved.trim();
    assert!(moved.starts_with("MOVED "), "{moved}");
    let frame = bytes::Bytes::from(format!("-{moved}\r\n"));
    let Rewrite::Rewritten(new) = rewrite::redirects(&frame, &local) else {
        panic!("{moved} not rewritten")
    };
    let target = NodeAddr::parse(moved.rsplit(' ').next().unwrap().as_bytes()).unwrap();
    let slot = moved.split(' ').nth(1).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&new),
        format!("-MOVED {slot} {}\r\n", local.local(&target).unwrap())
    );
}

#[test]
fn a_single_server_is_not_taken_for_a_cluster() {
    let redis = TlsRedis::start();
    let connector = connector(&redis.upstream_url(), &redis.certs().ca);
    let discovery = runtime()
        .block_on(discover(&connector, &credential()))
        .unwrap();
    assert_eq!(discovery, Discovery::Single);
}
