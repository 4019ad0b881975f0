//! Reply-frame boundaries in server output, RESP2 and RESP3 alike.
//!
//! [`ReplyScanner`] keeps its place inside a frame between reads: aggregate
//! nesting as a small stack of counts, and the bytes left in a bulk payload.
//! A 100 MB bulk reply therefore passes through in read-sized pieces.
//! Attributes (`|`) are scanned as part of the frame they decorate.

use super::find_near;
use super::number::parse_i64;

/// Longest line (simple string, error, number) accepted from the server
/// before the connection is judged broken. Redis's own lines are far shorter.
const LINE_MAX: usize = 64 * 1024 * 1024;

/// Server output that is not RESP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("unexpected byte {0:#04x} where a RESP type was expected")]
    UnknownType(u8),
    #[error("bad length in a `{}` header", char::from(*.0))]
    BadLength(u8),
    #[error("a line of more than {LINE_MAX} bytes")]
    LineTooLong,
    #[error("streamed RESP3 types are not supported")]
    Streamed,
}

/// One open aggregate: elements still expected, and whether it is an attribute
/// (an attribute does not count as an element of its parent).
#[derive(Debug, Clone, Copy)]
struct Open {
    left: u64,
    attribute: bool,
}

/// Incremental scanner for one reply frame at a time.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    open: Vec<Open>,
    /// Bytes left in the current bulk payload, CRLF included.
    bulk_left: u64,
    /// Whether a frame has been started and not finished.
    in_frame: bool,
}

/// How far [`ReplyScanner::advance`] got.
#[derive(Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes scanned; they belong to the current frame and can be passed on.
    pub consumed: usize,
    /// Whether the frame ended within them.
    pub done: bool,
}

impl ReplyScanner {
    /// Whether the scanner is between frames.
    pub fn at_boundary(&self) -> bool {
        !self.in_frame
    }

    /// Scans `buf` until the current frame ends or the bytes run out. Partial
    /// lines are left unconsumed; partial bulk payloads are consumed.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Progress, ReplyError> {
        // The common reply, one line at a frame's start (`+OK`, `:1`), found
        // without the loop: what the loop would find.
        if !self.in_frame && matches!(buf.first(), Some(b'+' | b'-' | b':')) {
            if let Some(nl) = find_near(b'\n', buf) {
                return Ok(self.finished(nl + 1));
            }
        }
        let mut pos = 0;
        loop {
            if self.bulk_left > 0 {
                let step = ((buf.len() - pos) as u64).min(self.bulk_left);
                pos += step as usize;
                self.bulk_left -= step;
                if self.bulk_left > 0 {
                    return Ok(self.partial(pos));
                }
                if self.element_done() {
                    return Ok(self.finished(pos));
                }
            }
            let rest = &buf[pos..];
            let Some(&kind) = rest.first() else {
                return Ok(self.partial(pos));
            };
            let Some(nl) = find_near(b'\n', rest) else {
                if rest.len() > LINE_MAX {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(self.partial(pos));
            };
            // A line may be nothing but its LF: then there is no type byte.
            let line = rest.get(1..nl).unwrap_or_default();
            let body = line.strip_suffix(b"\r").unwrap_or(line);
            pos += nl + 1;
            let complete = match kind {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => self.element_done(),
                b'$' | b'!' | b'=' => match length(kind, body)? {
                    None => self.element_done(),
                    Some(len) => {
                        self.bulk_left = len + 2;
                        false
                    }
                },
                b'*' | b'~' | b'>' => self.open_aggregate(kind, body, 1, false)?,
                b'%' => self.open_aggregate(kind, body, 2, false)?,
                b'|' => self.open_aggregate(kind, body, 2, true)?,
                other => return Err(ReplyError::UnknownType(other)),
            };
            if complete {
                return Ok(self.finished(pos));
            }
        }
    }

    fn partial(&mut self, consumed: usize) -> Progress {
        self.in_frame |= consumed > 0;
        Progress {
            consumed,
            done: false,
        }
    }

    fn finished(&mut self, consumed: usize) -> Progress {
        self.in_frame = false;
        Progress {
            consumed,
            done: true,
        }
    }

    /// Opens an aggregate of `count × per_entry` elements; returns whether the
    /// frame is complete (an empty or null aggregate can complete it).
    fn open_aggregate(
        &mut self,
        kind: u8,
        body: &[u8],
        per_entry: u64,
        attribute: bool,
    ) -> Result<bool, ReplyError> {
        match length(kind, body)? {
            Some(n) if n > 0 => {
                self.open.push(Open {
                    left: n * per_entry,
                    attribute,
                });
                Ok(false)
            }
            // An empty attribute decorates nothing visible; the frame goes on.
            _ if attribute => Ok(false),
            _ => Ok(self.element_done()),
        }
    }

    /// Records that one element ended; returns whether the whole frame did.
    fn element_done(&mut self) -> bool {
        while let Some(top) = self.open.last_mut() {
            top.left -= 1;
            if top.left > 0 {
                return false;
            }
            let closed = self.open.pop().expect("just looked at it");
            if closed.attribute {
                // The attribute is over; the element it decorates follows.
                return false;
            }
        }
        true
    }
}

/// Parses a length header: `None` for RESP2 nulls (`-1`).
fn length(kind: u8, body: &[u8]) -> Result<Option<u64>, ReplyError> {
    if body == b"?" {
        return Err(ReplyError::Streamed);
    }
    match parse_i64(body) {
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        _ => Err(ReplyError::BadLength(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `buf` into frames by scanning it in reads of `chunk` bytes.
    fn frames(buf: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut scanner = ReplyScanner::default();
        let mut out = Vec::new();
        let mut current = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in buf.chunks(chunk) {
            pending.extend_from_slice(piece);
            loop {
                let p = scanner.advance(&pending).unwrap();
                current.extend(pending.drain(..p.consumed));
                if p.done {
                    out.push(std::mem::take(&mut current));
                } else {
                    break;
                }
                if pending.is_empty() {
                    break;
                }
            }
        }
        assert!(current.is_empty() && pending.is_empty(), "trailing bytes");
        out
    }

    const MIXED: &[u8] = b"+OK\r\n-ERR x\r\n:12\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*0\r\n\
*2\r\n$1\r\na\r\n*1\r\n:1\r\n%1\r\n+k\r\n~2\r\n,1.5\r\n#t\r\n_\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n\
|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n=7\r\ntxt:abc\r\n(123\r\n!3\r\nbad\r\n";

    #[test]
    fn splits_every_type_at_any_read_size() {
        let expected = frames(MIXED, MIXED.len());
        assert_eq!(expected.len(), 15);
        assert_eq!(expected[8], b"%1\r\n+k\r\n~2\r\n,1.5\r\n#t\r\n");
        assert_eq!(expected[11], b"|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n");
        for chunk in 1..40 {
            assert_eq!(frames(MIXED, chunk), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn streams_large_bulks() {
        let mut buf = b"$1000000\r\n".to_vec();
        buf.resize(buf.len() + 1_000_000, b'v');
        buf.extend_from_slice(b"\r\n");
        let mut scanner = ReplyScanner::default();
        let first = scanner.advance(&buf[..5000]).unwrap();
        assert_eq!(
            first,
            Progress {
                consumed: 5000,
                done: false
            }
        );
        let rest = scanner.advance(&buf[5000..]).unwrap();
        assert_eq!(
            rest,
            Progress {
                consumed: buf.len() - 5000,
                done: true
            }
        );
        assert!(scanner.at_boundary());
    }

    #[test]
    fn rejects_garbage() {
        let mut scanner = ReplyScanner::default();
        assert_eq!(
            scanner.advance(b"hello\r\n"),
            Err(ReplyError::UnknownType(b'h'))
        );
        let mut scanner = ReplyScanner::default();
        assert_eq!(scanner.advance(b"$x\r\n"), Err(ReplyError::BadLength(b'$')));
        let mut scanner = ReplyScanner::default();
        assert_eq!(scanner.advance(b"$?\r\n"), Err(ReplyError::Streamed));
        // Found by fuzzing: a bare LF where a type byte belongs used to panic.
        let mut scanner = ReplyScanner::default();
        assert_eq!(scanner.advance(b"\n"), Err(ReplyError::UnknownType(b'\n')));
        let mut scanner = ReplyScanner::default();
        assert_eq!(
            scanner.advance(b"*2\r\n:1\r\n\n"),
            Err(ReplyError::UnknownType(b'\n'))
        );
    }
}
