//! The cluster replies redauth reads and rewrites, on arbitrary server
//! output: `Value::parse` (whatever it reads must read back the same once
//! written out), `Topology::from_slots`, and
//! every rewrite with a map that knows a few addresses. Nothing may panic,
//! and a rewrite must itself be one readable frame.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use redauth::cluster::{rewrite, LocalPorts, Rewrite, Topology};
use redauth::resp::tree::Value;

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    if let Some(value) = Value::parse(&frame) {
        // Written out, it reads back the same (byte equality holds only for
        // the canonical spelling Redis writes; the unit tests check that).
        assert_eq!(Value::parse(&value.to_bytes()), Some(value));
    }
    let mut ports = LocalPorts::new("127.0.0.1", 30000);
    if let Ok(topology) = Topology::from_slots(&frame, b"seed") {
        let _ = topology.covers_all_slots();
        let _ = topology.primary_for(0);
        let _ = ports.update(&topology);
    }
    for rewrite in [
        rewrite::redirects::<LocalPorts>,
        rewrite::slots::<LocalPorts>,
        rewrite::shards::<LocalPorts>,
        rewrite::nodes::<LocalPorts>,
    ] {
        if let Rewrite::Rewritten(new) = rewrite(&frame, &ports) {
            assert!(Value::parse(&new).is_some(), "a rewrite is one frame");
        }
    }
});
