//! Putting one client reply together from the parts several nodes sent.

use crate::resp::frame;
use bytes::{BufMut, Bytes, BytesMut};

/// How an entry's parts become the client's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Combine {
    /// One part, passed on as it came (possibly several frames: the
    /// confirmations of a SUBSCRIBE).
    One,
    /// Integer replies added up (`DEL`, `EXISTS`, `DBSIZE` …).
    Sum,
    /// Arrays joined in part order (`KEYS`).
    Concat,
    /// `+OK` when every part is; else the first error (`MSET`, `FLUSHALL`).
    AllOk,
    /// The first part, unless another is an error (`SCRIPT LOAD`: every
    /// primary answers the same digest).
    First,
    /// One of the parts that is not a null, picked at random (`RANDOMKEY`:
    /// a key from any primary that has one); a null if all are.
    AnyNonNull,
    /// `MGET` split by slot: `order[i]` is (part, index in that part) of the
    /// client's i-th key.
    Gather(Vec<(usize, usize)>),
    /// A `SCAN` page from primary `index` of `count`: the cursor is made to
    /// say which primary to go on with.
    Scan { index: usize, count: usize },
    /// `+OK` if any part is, else the first part (`SCRIPT KILL`: the one
    /// primary running a script kills it, the others answer `-NOTBUSY`).
    AnyOk,
    /// `INFO` reports: the home node's, with the counters added up ([`super::info`]).
    Info,
    /// Answered by the router itself.
    Local(Bytes),
}

/// The first error among `parts`, if any.
fn first_error(parts: &[Bytes]) -> Option<&Bytes> {
    parts.iter().find(|p| p.first() == Some(&b'-'))
}

/// Bits of a routed SCAN cursor that say which primary it is on.
pub(super) const SCAN_NODE_BITS: u32 = 10;

/// Builds the reply.
pub(super) fn combine(how: &Combine, parts: &[Bytes]) -> Bytes {
    match how {
        Combine::Local(reply) => reply.clone(),
        Combine::One => parts.first().cloned().unwrap_or_default(),
        Combine::AnyOk => parts
            .iter()
            .find(|p| p.starts_with(b"+OK"))
            .or(parts.first())
            .cloned()
            .unwrap_or_default(),
        _ if first_error(parts).is_some() => first_error(parts).cloned().unwrap_or_default(),
        Combine::Sum => {
            let mut total: i64 = 0;
            for part in parts {
                match parse_integer(part) {
                    Some(n) => total = total.saturating_add(n),
                    None => return unexpected(part),
                }
            }
            Bytes::from(format!(":{total}\r\n"))
        }
        Combine::Concat => {
            let mut count = 0;
            let mut body = BytesMut::new();
            for part in parts {
                let elements = frame::elements(part);
                if !part.starts_with(b"*") {
                    return unexpected(part);
                }
                count += elements.len();
                for e in elements {
                    body.put_slice(e);
                }
            }
            let mut out = BytesMut::from(format!("*{count}\r\n").as_bytes());
            out.unsplit(body);
            out.freeze()
        }
        Combine::AllOk => Bytes::from_static(b"+OK\r\n"),
        Combine::First => parts.first().cloned().unwrap_or_default(),
        Combine::AnyNonNull => {
            let found: Vec<&Bytes> = parts
                .iter()
                .filter(|p| !matches!(&p[..], b"$-1\r\n" | b"_\r\n"))
                .collect();
            match found.len() {
                0 => parts.first().cloned().unwrap_or_default(),
                n => found[rand::random_range(0..n)].clone(),
            }
        }
        Combine::Gather(order) => {
            let split: Vec<Vec<&[u8]>> = parts.iter().map(|p| frame::elements(p)).collect();
            let mut out = BytesMut::from(format!("*{}\r\n", order.len()).as_bytes());
            for &(part, index) in order {
                match split.get(part).and_then(|e| e.get(index)) {
                    Some(element) => out.put_slice(element),
                    None => return unexpected(parts.get(part).map_or(&[][..], |p| p)),
                }
            }
            out.freeze()
        }
        Combine::Scan { index, count } => scan_page(&parts[0], *index, *count),
        Combine::Info => super::info::merge(parts),
    }
}

/// A SCAN reply (`[cursor, [keys…]]`) with the node's cursor turned into
/// the router's: the node's shifted left, the primary's index below it; 0
/// only after the last primary's last page.
fn scan_page(part: &Bytes, index: usize, count: usize) -> Bytes {
    let elements = frame::elements(part);
    let [cursor, keys] = elements[..] else {
        return unexpected(part);
    };
    let Some((Some(text), _)) = frame::bulk(cursor, 0) else {
        return unexpected(part);
    };
    let Some(node_cursor) = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
    else {
        return unexpected(part);
    };
    let next = if node_cursor == 0 {
        if index + 1 >= count {
            0
        } else {
            (index + 1) as u64
        }
    } else if node_cursor >> (64 - SCAN_NODE_BITS) != 0 {
        return Bytes::from_static(b"-ERR redauth: a node's SCAN cursor is too large to route\r\n");
    } else {
        (node_cursor << SCAN_NODE_BITS) | index as u64
    };
    let next = next.to_string();
    let mut out = BytesMut::from(format!("*2\r\n${}\r\n{next}\r\n", next.len()).as_bytes());
    out.put_slice(keys);
    out.freeze()
}

/// A reply of a shape the merge did not expect, as an error.
fn unexpected(part: &[u8]) -> Bytes {
    let head = part.iter().take(40).map(|&b| b as char).collect::<String>();
    crate::resp::encode::error(&format!(
        "ERR redauth: a node sent an unexpected reply to a split command: {head:?}"
    ))
}

fn parse_integer(part: &[u8]) -> Option<i64> {
    let line = part.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(line).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    #[test]
    fn sums_concatenations_and_errors() {
        assert_eq!(
            combine(&Combine::Sum, &[b(":2\r\n"), b(":3\r\n")]),
            b(":5\r\n")
        );
        assert_eq!(
            combine(&Combine::Sum, &[b(":2\r\n"), b("-ERR x\r\n")]),
            b("-ERR x\r\n")
        );
        assert_eq!(
            combine(
                &Combine::Concat,
                &[b("*1\r\n$1\r\na\r\n"), b("*0\r\n"), b("*1\r\n$1\r\nb\r\n")]
            ),
            b("*2\r\n$1\r\na\r\n$1\r\nb\r\n")
        );
        assert_eq!(
            combine(&Combine::AllOk, &[b("+OK\r\n"), b("+OK\r\n")]),
            b("+OK\r\n")
        );
    }

    #[test]
    fn a_kill_succeeds_where_a_script_was_running() {
        let notbusy = b("-NOTBUSY No scripts in execution right now.\r\n");
        assert_eq!(
            combine(
                &Combine::AnyOk,
                &[notbusy.clone(), b("+OK\r\n"), notbusy.clone()]
            ),
            b("+OK\r\n")
        );
        assert_eq!(
            combine(&Combine::AnyOk, &[notbusy.clone(), notbusy.clone()]),
            notbusy
        );
    }

    #[test]
    fn mget_parts_are_put_back_in_key_order() {
        // Keys a, b, c: a and c went to part 0, b to part 1.
        let order = vec![(0, 0), (1, 0), (0, 1)];
        let parts = [b("*2\r\n$1\r\n1\r\n$-1\r\n"), b("*1\r\n$1\r\n2\r\n")];
        assert_eq!(
            combine(&Combine::Gather(order), &parts),
            b("*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n")
        );
    }

    #[test]
    fn scan_cursors_carry_the_primary_and_end_after_the_last() {
        let page = |cursor: &str| {
            Bytes::from(format!(
                "*2\r\n${}\r\n{cursor}\r\n*1\r\n$1\r\nk\r\n",
                cursor.len()
            ))
        };
        let at = |reply: Bytes| {
            let e = frame::elements(&reply);
            String::from_utf8(frame::bulk(e[0], 0).unwrap().0.unwrap().to_vec()).unwrap()
        };
        let scan = |index, cursor| combine(&Combine::Scan { index, count: 3 }, &[page(cursor)]);
        assert_eq!(at(scan(0, "17")), (17u64 << SCAN_NODE_BITS).to_string());
        assert_eq!(
            at(scan(1, "17")),
            ((17u64 << SCAN_NODE_BITS) | 1).to_string()
        );
        assert_eq!(at(scan(0, "0")), "1", "on to the next primary");
        assert_eq!(at(scan(2, "0")), "0", "done after the last");
        assert!(scan(0, &u64::MAX.to_string()).starts_with(b"-ERR"));
    }
}
