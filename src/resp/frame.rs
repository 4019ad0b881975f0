//! Reading small frames that are already whole: the elements of a reply
//! aggregate and the arguments of a request.
//!
//! The scanners ([`super::reply`], [`super::request`]) only find where frames
//! end; the few frames redauth must read (pub/sub confirmations, an EXEC
//! array, `XINFO STREAM`, the commands it intercepts) are taken apart here.

use super::find_near;
use super::number::parse_i64;
use super::reply::ReplyScanner;
use super::request::short_count;
use bytes::Bytes;

/// One line starting at `pos`: its type byte, its text after the type byte,
/// and the position after it; `None` until its LF has arrived. Like
/// [`ReplyScanner`], a line may end in a bare LF (and may be nothing else).
pub(super) fn line(buf: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let rest = buf.get(pos..)?;
    let nl = find_near(b'\n', rest)?;
    let text = rest.get(1..nl).unwrap_or_default();
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Some((rest[0], text, pos + nl + 1))
}

/// A bulk string at `pos`: `Some(Some(bytes))`, `Some(None)` for a null, or
/// `None` when incomplete or not a bulk string.
pub fn bulk(buf: &[u8], pos: usize) -> Option<(Option<&[u8]>, usize)> {
    let (kind, text, start) = line(buf, pos)?;
    match kind {
        b'_' => Some((None, start)),
        b'$' => match parse_i64(text)? {
            -1 => Some((None, start)),
            n if n >= 0 => {
                let end = start + n as usize;
                buf.get(start..end)?;
                Some((Some(&buf[start..end]), end + 2))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The elements of a whole aggregate reply frame (empty for anything else);
/// a RESP3 map's keys and values alternate.
pub fn elements(frame: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let Some((kind, count, mut pos)) = line(frame, 0) else {
        return out;
    };
    let per_entry = match kind {
        b'*' | b'>' | b'~' => 1,
        b'%' => 2,
        _ => return out,
    };
    for _ in 0..parse_i64(count).unwrap_or(0).max(0) * per_entry {
        let mut scanner = ReplyScanner::default();
        match scanner.advance(&frame[pos..]) {
            Ok(p) if p.done => {
                out.push(&frame[pos..pos + p.consumed]);
                pos += p.consumed;
            }
            _ => break,
        }
    }
    out
}

/// The arguments of a complete multibulk request that the request scanner
/// has already validated, as slices of `frame` (no copy).
pub fn arguments(frame: &Bytes, argc: u32) -> Vec<Bytes> {
    let mut args = Vec::with_capacity(argc as usize);
    each_argument(frame, argc, |arg| args.push(frame.slice_ref(arg)));
    args
}

/// Calls `each` with every argument of a complete, validated multibulk
/// request, in order, as a slice of `frame`.
pub fn each_argument<'a>(frame: &'a [u8], argc: u32, mut each: impl FnMut(&'a [u8])) {
    let mut pos = match short_count(frame, b'*') {
        Some((_, line_len)) => line_len,
        None => match find_near(b'\r', frame) {
            Some(cr) => cr + 2,
            None => return,
        },
    };
    for _ in 0..argc {
        let (len, start) = match short_count(&frame[pos..], b'$') {
            Some((len, line_len)) => (len as usize, pos + line_len),
            None => {
                let Some(cr) = find_near(b'\r', &frame[pos..]) else {
                    break;
                };
                let digits = &frame[pos + 1..pos + cr];
                let len = parse_i64(digits).map_or(0, |n| n.max(0) as usize);
                (len, pos + cr + 2)
            }
        };
        let end = (start + len).min(frame.len());
        each(&frame[start..end]);
        pos = end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_line_may_end_in_a_bare_lf() {
        assert_eq!(bulk(b"$2\nch\r\n", 0), Some((Some(&b"ch"[..]), 7)));
        assert_eq!(bulk(b"$-1\r\n", 0), Some((None, 5)));
        assert_eq!(bulk(b"_\r\n", 0), Some((None, 3)));
        assert_eq!(bulk(b"$5\r\nab", 0), None);
    }

    #[test]
    fn lists_the_elements_of_an_exec_reply() {
        let exec = b"*2\r\n+OK\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n";
        let parts = elements(exec);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], b"+OK\r\n");
        assert_eq!(parts[1], b"*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n");
        assert!(elements(b"+OK\r\n").is_empty());
        assert_eq!(
            elements(b"%1\r\n+a\r\n:1\r\n"),
            vec![&b"+a\r\n"[..], b":1\r\n"]
        );
    }

    #[test]
    fn arguments_are_sliced_out_of_the_frame() {
        let frame = Bytes::from_static(b"*3\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$0\r\n\r\n");
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(arguments(&frame, 3), vec![b("HELLO"), b("3"), b("")]);
    }
}
