//! `INFO` in routing mode: one report for the cluster that looks like one
//! Redis's.
//!
//! Every primary is asked; the report is the home node's (the first part),
//! with the counters that a single server would count across all its
//! clients and keys added up over the primaries: clients connected and
//! blocked, commands and connections served, keyspace hits and misses,
//! expired and evicted keys, pub/sub channels and patterns, and each
//! database's `keys` and `expires`. Everything else (server, memory,
//! persistence, replication, CPU) is the home node's, as it describes one
//! process. A client's blocked command runs on its key's node, so without
//! the sums `blocked_clients` would not show it.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// The fields added up over the primaries.
const SUMMED: &[&str] = &[
    "connected_clients",
    "blocked_clients",
    "tracking_clients",
    "clients_in_timeout_table",
    "total_blocking_keys",
    "total_blocking_keys_on_nokey",
    "total_connections_received",
    "total_commands_processed",
    "instantaneous_ops_per_sec",
    "total_net_input_bytes",
    "total_net_output_bytes",
    "rejected_connections",
    "expired_keys",
    "evicted_keys",
    "keyspace_hits",
    "keyspace_misses",
    "pubsub_channels",
    "pubsub_patterns",
    "pubsubshard_channels",
    "total_error_replies",
];

/// The text of an INFO reply (a bulk or a verbatim string), and whether it
/// was verbatim.
fn text(part: &[u8]) -> Option<(&str, bool)> {
    let header_end = part.windows(2).position(|w| w == b"\r\n")?;
    let body = part.get(header_end + 2..part.len().checked_sub(2)?)?;
    let (body, verbatim) = match part.first()? {
        b'$' => (body, false),
        b'=' => (body.get(4..)?, true),
        _ => return None,
    };
    Some((std::str::from_utf8(body).ok()?, verbatim))
}

/// One database's line of the keyspace section: `db0:keys=1,expires=0,avg_ttl=0`.
#[derive(Debug, Default)]
struct Database {
    keys: i64,
    expires: i64,
    /// The rest of the line (`avg_ttl=…` and any later field), the first seen.
    rest: Option<String>,
}

fn database(line: &str) -> Option<(u32, &str)> {
    let (name, fields) = line.split_once(':')?;
    Some((name.strip_prefix("db")?.parse().ok()?, fields))
}

/// The merged report; the first part unchanged when any part is not an
/// INFO report (an error is passed on before this is called).
pub(super) fn merge(parts: &[Bytes]) -> Bytes {
    let Some(first) = parts.first() else {
        return Bytes::new();
    };
    let Some(texts) = parts
        .iter()
        .map(|p| text(p))
        .collect::<Option<Vec<(&str, bool)>>>()
    else {
        return first.clone();
    };
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    let mut databases: BTreeMap<u32, Database> = BTreeMap::new();
    for (text, _) in &texts {
        for line in text.split("\r\n") {
            if let Some((db, fields)) = database(line) {
                let entry = databases.entry(db).or_default();
                let mut rest = Vec::new();
                for field in fields.split(',') {
                    match field.split_once('=') {
                        Some(("keys", n)) => entry.keys += n.parse::<i64>().unwrap_or(0),
                        Some(("expires", n)) => entry.expires += n.parse::<i64>().unwrap_or(0),
                        _ => rest.push(field),
                    }
                }
                entry.rest.get_or_insert_with(|| rest.join(","));
            } else if let Some((name, value)) = line.split_once(':') {
                if let (Some(name), Ok(value)) = (
                    SUMMED.iter().find(|&&s| s == name),
                    value.parse::<i64>(),
                ) {
                    *sums.entry(name).or_default() += value;
                }
            }
        }
    }
    let (home, verbatim) = texts[0];
    let mut out = String::with_capacity(home.len() + 64);
    for line in home.split("\r\n") {
        if database(line).is_some() {
            // Every database is written after the section's header.
            continue;
        }
        match line.split_once(':').and_then(|(name, _)| sums.get(name).map(|s| (name, s))) {
            Some((name, sum)) => out.push_str(&format!("{name}:{sum}")),
            None => out.push_str(line),
        }
        out.push_str("\r\n");
        if line == "# Keyspace" {
            for (db, d) in &databases {
                out.push_str(&format!("db{db}:keys={},expires={}", d.keys, d.expires));
                if let Some(rest) = d.rest.as_deref().filter(|r| !r.is_empty()) {
                    out.push(',');
                    out.push_str(rest);
                }
                out.push_str("\r\n");
            }
        }
    }
    // Each line was given its "\r\n" back; the report ends as it did.
    out.truncate(out.len() - 2);
    encode(&out, verbatim)
}

fn encode(text: &str, verbatim: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 16);
    let (kind, prefix) = if verbatim { (b'=', "txt:") } else { (b'$', "") };
    out.put_u8(kind);
    out.put_slice((prefix.len() + text.len()).to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(prefix.as_bytes());
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Bytes {
        Bytes::from(format!("${}\r\n{text}\r\n", text.len()))
    }

    #[test]
    fn counters_and_keyspaces_are_added_up_the_rest_is_the_home_nodes() {
        let home = bulk(
            "# Server\r\nredis_version:7.0.15\r\ntcp_port:7000\r\n\r\n# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=500\r\n",
        );
        let other = bulk(
            "# Server\r\nredis_version:7.0.15\r\ntcp_port:7001\r\n\r\n# Clients\r\nconnected_clients:2\r\nblocked_clients:1\r\n\r\n# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\ndb9:keys=1,expires=0,avg_ttl=0\r\n",
        );
        let merged = merge(&[home, other]);
        let (text, verbatim) = text(&merged).expect("a bulk string");
        assert!(!verbatim);
        assert_eq!(
            text,
            "# Server\r\nredis_version:7.0.15\r\ntcp_port:7000\r\n\r\n# Clients\r\nconnected_clients:5\r\nblocked_clients:1\r\n\r\n# Keyspace\r\ndb0:keys=7,expires=1,avg_ttl=500\r\ndb9:keys=1,expires=0,avg_ttl=0\r\n"
        );
    }

    #[test]
    fn a_resp3_report_stays_verbatim_and_an_empty_keyspace_fills_in() {
        let verbatim = |t: &str| Bytes::from(format!("={}\r\ntxt:{t}\r\n", t.len() + 4));
        let merged = merge(&[
            verbatim("# Keyspace\r\n"),
            verbatim("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"),
        ]);
        assert_eq!(
            &merged[..],
            &verbatim("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n")[..]
        );
    }

    #[test]
    fn anything_but_a_report_is_passed_on_from_the_first_part() {
        let odd = Bytes::from_static(b":1\r\n");
        assert_eq!(merge(&[odd.clone(), bulk("# Clients\r\n")]), odd);
    }
}
