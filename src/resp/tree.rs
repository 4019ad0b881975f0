//! A whole reply frame as a tree that encodes back to the same bytes.
//!
//! The few replies redauth must change (cluster topology, redirects) are
//! small; they are read into a [`Value`], changed where an address sits, and
//! written out again. Every value keeps its RESP type byte, so RESP2 stays
//! RESP2, a RESP3 map keeps its order, and a null keeps its spelling: a frame
//! read and written back unchanged is byte-for-byte the server's (for the
//! CRLF-terminated frames Redis writes).
//!
//! Why not `redis-protocol`'s frames: its RESP3 maps are hash maps (order
//! lost) and its nulls are one kind, so a round trip would change replies
//! that redauth only meant to relay.

use super::frame::line;
use super::number::parse_i64;
use bytes::{BufMut, Bytes, BytesMut};

/// How deep aggregates may nest before a frame is refused; topology replies
/// need four levels, and a hostile server must not exhaust the stack.
const MAX_DEPTH: usize = 16;

/// One RESP value, spelled as it was on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A one-line value: `+` simple string, `-` error, `:` integer, `_` null,
    /// `#` boolean, `,` double, `(` big number; `text` is the line after the type byte.
    Line { kind: u8, text: Bytes },
    /// A length-prefixed value: `$` bulk string, `!` bulk error, `=` verbatim
    /// string; `None` is the RESP2 null (`$-1`).
    Blob { kind: u8, data: Option<Bytes> },
    /// An aggregate: `*` array, `%` map (keys and values alternate in
    /// `items`), `~` set, `>` push; `None` is the RESP2 null array (`*-1`).
    Aggregate { kind: u8, items: Option<Vec<Value>> },
}

impl Value {
    /// A bulk string, as Redis writes string data.
    pub fn bulk(data: impl Into<Bytes>) -> Value {
        Value::Blob {
            kind: b'$',
            data: Some(data.into()),
        }
    }

    /// The bytes of a string-like value: simple, bulk or verbatim string
    /// (with its `txt:` format prefix), error line.
    pub fn text(&self) -> Option<&Bytes> {
        match self {
            Value::Line {
                kind: b'+' | b'-',
                text,
            } => Some(text),
            Value::Blob { data: Some(d), .. } => Some(d),
            _ => None,
        }
    }

    /// An integer value (`:`), or a string holding one.
    pub fn integer(&self) -> Option<i64> {
        match self {
            Value::Line { kind: b':', text } => parse_i64(text),
            other => parse_i64(other.text()?),
        }
    }

    /// The elements of an array, set or push, or the alternating keys and
    /// values of a map.
    pub fn items(&self) -> Option<&[Value]> {
        match self {
            Value::Aggregate {
                items: Some(items), ..
            } => Some(items),
            _ => None,
        }
    }

    /// Mutable [`Value::items`].
    pub fn items_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Aggregate {
                items: Some(items), ..
            } => Some(items),
            _ => None,
        }
    }

    /// Replaces the content of a string-like or integer value, keeping its
    /// type (a verbatim string keeps its format prefix only if `text` has it).
    pub fn set_text(&mut self, new: Bytes) {
        match self {
            Value::Line { text, .. } => *text = new,
            Value::Blob { data, .. } => *data = Some(new),
            Value::Aggregate { .. } => {}
        }
    }

    /// Reads one whole frame; `None` if `frame` is not exactly one complete,
    /// well-formed value (trailing bytes included).
    pub fn parse(frame: &Bytes) -> Option<Value> {
        let (value, end) = parse_at(frame, 0, 0)?;
        (end == frame.len()).then_some(value)
    }

    /// Writes the value as RESP.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Line { kind, text } => put_line(out, *kind, text),
            Value::Blob { kind, data: None } | Value::Aggregate { kind, items: None } => {
                put_line(out, *kind, b"-1")
            }
            Value::Blob {
                kind,
                data: Some(d),
            } => {
                put_line(out, *kind, d.len().to_string().as_bytes());
                out.put_slice(d);
                out.put_slice(b"\r\n");
            }
            Value::Aggregate {
                kind,
                items: Some(items),
            } => {
                let count = if *kind == b'%' {
                    items.len() / 2
                } else {
                    items.len()
                };
                put_line(out, *kind, count.to_string().as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }

    /// [`Value::encode`] into fresh bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// One line: the type byte, `text`, CRLF.
fn put_line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn parse_at(frame: &Bytes, pos: usize, depth: usize) -> Option<(Value, usize)> {
    let (kind, text, next) = line(frame, pos)?;
    match kind {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Some((
            Value::Line {
                kind,
                text: frame.slice_ref(text),
            },
            next,
        )),
        b'$' | b'!' | b'=' => {
            let len = parse_i64(text)?;
            if len == -1 {
                return Some((Value::Blob { kind, data: None }, next));
            }
            let end = next.checked_add(usize::try_from(len).ok()?)?;
            if frame.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            let data = Some(frame.slice(next..end));
            Some((Value::Blob { kind, data }, end + 2))
        }
        b'*' | b'%' | b'~' | b'>' => {
            let count = parse_i64(text)?;
            if count == -1 {
                return Some((Value::Aggregate { kind, items: None }, next));
            }
            if depth >= MAX_DEPTH {
                return None;
            }
            let per_entry = if kind == b'%' { 2 } else { 1 };
            let count = usize::try_from(count).ok()?.checked_mul(per_entry)?;
            // Each element takes at least 3 bytes: never reserve more than the frame can hold.
            let mut items = Vec::with_capacity(count.min(frame.len() / 3));
            let mut pos = next;
            for _ in 0..count {
                let (item, end) = parse_at(frame, pos, depth + 1)?;
                items.push(item);
                pos = end;
            }
            Some((
                Value::Aggregate {
                    kind,
                    items: Some(items),
                },
                pos,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(wire: &[u8]) {
        let frame = Bytes::copy_from_slice(wire);
        let value = Value::parse(&frame).expect("parses");
        assert_eq!(value.to_bytes(), frame, "{value:?}");
    }

    #[test]
    fn every_type_round_trips_byte_for_byte() {
        round_trip(b"+OK\r\n");
        round_trip(b"-MOVED 1 a:1\r\n");
        round_trip(b":-12\r\n");
        round_trip(b"_\r\n");
        round_trip(b"#t\r\n");
        round_trip(b",1.5\r\n");
        round_trip(b"(123456789012345678901234567890\r\n");
        round_trip(b"$-1\r\n");
        round_trip(b"$0\r\n\r\n");
        round_trip(b"$5\r\na\r\nbc\r\n");
        round_trip(b"!3\r\nERR\r\n");
        round_trip(b"=7\r\ntxt:abc\r\n");
        round_trip(b"*-1\r\n");
        round_trip(b"*0\r\n");
        round_trip(b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n");
        round_trip(b"%2\r\n$1\r\nb\r\n:2\r\n$1\r\na\r\n:1\r\n");
        round_trip(b"~1\r\n+x\r\n");
        round_trip(b">2\r\n$7\r\nmessage\r\n$1\r\nc\r\n");
    }

    #[test]
    fn incomplete_trailing_or_malformed_frames_are_refused() {
        for wire in [
            &b"*2\r\n:1\r\n"[..],
            b"$5\r\nab\r\n",
            b"$2\r\nabcd\r\n",
            b"+OK\r\n+OK\r\n",
            b"?x\r\n",
            b"*x\r\n",
            b"$-2\r\n",
            b"*99999999999999\r\n",
        ] {
            assert_eq!(
                Value::parse(&Bytes::copy_from_slice(wire)),
                None,
                "{wire:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut wire = b"*1\r\n".repeat(MAX_DEPTH + 1);
        wire.extend_from_slice(b":1\r\n");
        assert_eq!(Value::parse(&Bytes::from(wire)), None);
        let mut wire = b"*1\r\n".repeat(MAX_DEPTH);
        wire.extend_from_slice(b":1\r\n");
        assert!(Value::parse(&Bytes::from(wire)).is_some());
    }
}
