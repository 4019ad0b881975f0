//! `INFO` in routing mode: one report for the cluster that looks like one
//! Redis's.
//!
//! Every primary is asked; the report is the home node's (the first part),
//! with the counters that a single server would count across all its
//! clients and keys added up over the primaries: clients connected and
//! blocked, commands and connections served, keyspace hits and misses,
//! expired and evicted keys, pub/sub channels and patterns, each database's
//! `keys` and `expires`, and each command's and error's counts. Everything else (server, memory,
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
    "rdb_changes_since_last_save",
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

/// The sections made of one line per thing (a database, a command, an
/// error), each line `name:field=value,…`: merged line by line, fields
/// added up (`avg_ttl` taken from the first node that has the line,
/// `usec_per_call` worked out again).
const PER_LINE: &[&str] = &["# Keyspace", "# Commandstats", "# Errorstats"];

/// One line of a [`PER_LINE`] section, merged so far.
#[derive(Debug)]
struct Line<'a> {
    name: &'a str,
    fields: Vec<(&'a str, Field<'a>)>,
}

#[derive(Debug)]
enum Field<'a> {
    Sum(i64),
    /// Not added up: the first node's value.
    First(&'a str),
}

impl<'a> Line<'a> {
    fn add(&mut self, fields: &'a str) {
        for field in fields.split(',') {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let summed = !matches!(key, "avg_ttl" | "usec_per_call");
            match self.fields.iter_mut().find(|(k, _)| *k == key) {
                Some((_, Field::Sum(total))) => *total += value.parse::<i64>().unwrap_or(0),
                Some((_, Field::First(_))) => {}
                None => self.fields.push((
                    key,
                    match value.parse::<i64>() {
                        Ok(n) if summed => Field::Sum(n),
                        _ => Field::First(value),
                    },
                )),
            }
        }
    }

    fn write(&self, out: &mut String) {
        out.push_str(self.name);
        out.push(':');
        let sum = |key: &str| {
            self.fields.iter().find_map(|(k, f)| match f {
                Field::Sum(n) if *k == key => Some(*n),
                _ => None,
            })
        };
        // A command's mean time, worked out again from the sums.
        let per_call = match (sum("usec"), sum("calls")) {
            (Some(usec), Some(calls)) if calls > 0 => Some(usec as f64 / calls as f64),
            _ => None,
        };
        for (i, (key, field)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let value = match (*key, field, per_call) {
                ("usec_per_call", _, Some(mean)) => format!("{mean:.2}"),
                (_, Field::Sum(n), _) => n.to_string(),
                (_, Field::First(v), _) => (*v).to_owned(),
            };
            out.push_str(key);
            out.push('=');
            out.push_str(&value);
        }
        out.push_str("\r\n");
    }
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
    // Per section of PER_LINE, its lines in the order first seen.
    let mut sections: Vec<Vec<Line>> = PER_LINE.iter().map(|_| Vec::new()).collect();
    for (text, _) in &texts {
        let mut section = None;
        for line in text.split("\r\n") {
            if line.starts_with('#') {
                section = PER_LINE.iter().position(|&s| s == line);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if let Some(at) = section {
                let lines = &mut sections[at];
                let index = match lines.iter().position(|l| l.name == name) {
                    Some(index) => index,
                    None => {
                        lines.push(Line {
                            name,
                            fields: Vec::new(),
                        });
                        lines.len() - 1
                    }
                };
                lines[index].add(value);
            } else if let (Some(name), Ok(value)) =
                (SUMMED.iter().find(|&&s| s == name), value.parse::<i64>())
            {
                *sums.entry(name).or_default() += value;
            }
        }
    }
    let (home, verbatim) = texts[0];
    let mut out = String::with_capacity(home.len() + 64);
    let mut section = None;
    for line in home.split("\r\n") {
        if line.starts_with('#') {
            section = PER_LINE.iter().position(|&s| s == line);
        } else if section.is_some() && line.contains(':') {
            // Every merged line is written after the section's header.
            continue;
        }
        match line
            .split_once(':')
            .and_then(|(name, _)| sums.get(name).map(|s| (name, s)))
        {
            Some((name, sum)) => out.push_str(&format!("{name}:{sum}")),
            None => out.push_str(line),
        }
        out.push_str("\r\n");
        if let Some(at) = section.filter(|_| line.starts_with('#')) {
            let lines = &mut sections[at];
            if PER_LINE[at] == "# Keyspace" {
                lines.sort_by_key(|l| l.name.trim_start_matches("db").parse::<u32>().unwrap_or(0));
            }
            for merged in lines.iter() {
                merged.write(&mut out);
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
    fn command_and_error_counts_are_added_up_line_by_line() {
        let merged = merge(&[
            bulk("# Commandstats\r\ncmdstat_get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\r\n# Errorstats\r\n"),
            bulk("# Commandstats\r\ncmdstat_get:calls=2,usec=30,usec_per_call=15.00,rejected_calls=1,failed_calls=0\r\ncmdstat_xreadgroup:calls=1,usec=4,usec_per_call=4.00,rejected_calls=0,failed_calls=1\r\n\r\n# Errorstats\r\nerrorstat_NOGROUP:count=1\r\n"),
        ]);
        assert_eq!(
            text(&merged).expect("a bulk string").0,
            "# Commandstats\r\ncmdstat_get:calls=4,usec=40,usec_per_call=10.00,rejected_calls=1,failed_calls=0\r\ncmdstat_xreadgroup:calls=1,usec=4,usec_per_call=4.00,rejected_calls=0,failed_calls=1\r\n\r\n# Errorstats\r\nerrorstat_NOGROUP:count=1\r\n"
        );
    }

    #[test]
    fn anything_but_a_report_is_passed_on_from_the_first_part() {
        let odd = Bytes::from_static(b":1\r\n");
        assert_eq!(merge(&[odd.clone(), bulk("# Clients\r\n")]), odd);
    }
}
