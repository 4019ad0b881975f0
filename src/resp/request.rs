//! Client requests, scanned with redis-server's own rules (`processMultibulkBuffer`
//! and `processInlineBuffer` in redis `networking.c`), so redauth finds exactly
//! the command boundaries the server will and rejects exactly what it rejects.
//!
//! A request is read in two steps. [`Request::parse`] looks at a command's head
//! at a command boundary: the `*N` line plus the first argument (the command
//! name). [`RequestBody`] then walks the remaining arguments, possibly across
//! many reads, so a 512 MB argument is relayed as it arrives.

use super::inline::split_args;
use super::number::parse_i64;
use super::{find_near, INLINE_MAX};
use bytes::Bytes;
use memchr::memchr;
use std::ops::Range;

/// Command names longer than this are not looked at (no Redis command is).
const NAME_MAX: usize = 64;

/// A request that violates the protocol; the text is Redis's reply, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: expected '$', got '{}'", printable(*.0))]
    ExpectedDollar(u8),
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
}

/// Redis replaces newlines in error replies with spaces; do the same so the
/// reply stays one line.
fn printable(byte: u8) -> char {
    match byte {
        b'\r' | b'\n' => ' ',
        other => char::from(other),
    }
}

impl ProtocolError {
    /// The `-ERR …\r\n` line redis-server sends before closing the connection.
    pub fn reply(&self) -> Bytes {
        Bytes::from(format!("-ERR {self}\r\n"))
    }
}

/// The head of the next request in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Bytes Redis skips without replying: an empty inline line, `*0`, `*-1`.
    Ignored { len: usize },
    /// An inline command (`PING\r\n`), `len` bytes long, split into arguments.
    Inline { len: usize, args: Vec<Bytes> },
    /// A multibulk command. `head_len` bytes hold the `*argc` line and as much
    /// of the first argument as was parsed; `body` walks the rest.
    Multibulk {
        argc: u32,
        head_len: usize,
        /// Position of the command name in the buffer, when it is short enough
        /// to be a command name at all.
        name: Option<Range<usize>>,
        body: RequestBody,
    },
}

impl Request {
    /// Parses the head of the request at the start of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed. `max_bulk` is the largest bulk
    /// argument accepted (Redis's `proto-max-bulk-len`).
    pub fn parse(buf: &[u8], max_bulk: u64) -> Result<Option<Request>, ProtocolError> {
        match buf.first() {
            None => Ok(None),
            Some(b'*') => parse_multibulk_head(buf, max_bulk),
            Some(_) => parse_inline(buf),
        }
    }
}

fn parse_inline(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
    let Some(newline) = memchr(b'\n', buf) else {
        return if buf.len() > INLINE_MAX {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    let mut line = &buf[..newline];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let len = newline + 1;
    let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    if args.is_empty() {
        Ok(Some(Request::Ignored { len }))
    } else {
        Ok(Some(Request::Inline { len, args }))
    }
}

/// Finds a count line (`*12\r\n`, `$5\r\n`) at the start of `buf`, the way Redis
/// does: up to the first `\r`, which must be followed by one more byte.
/// Returns the number text and the line's full length. A line that starts
/// with its `\r` has empty text (the caller then finds no `$` or `*` there).
fn count_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let cr = find_near(b'\r', buf)?;
    if cr + 1 >= buf.len() {
        return None;
    }
    Some((buf.get(1..cr).unwrap_or_default(), cr + 2))
}

/// The common count line, `*3\r\n` or `$5\r\n` (`kind`, a short count
/// with no sign or leading zero, `\r` and at least one more byte), read in
/// one pass: its count and length. `None` for anything else, which the
/// general path ([`count_line`], [`parse_i64`]) then reads as Redis does.
/// The scanners read one such line per argument, twice in routing mode.
#[inline(always)]
pub(crate) fn short_count(buf: &[u8], kind: u8) -> Option<(u64, usize)> {
    /// Digits read here at most: no overflow, and far more than any count.
    const DIGITS: usize = 15;
    let (&first, rest) = buf.split_first()?;
    let (&lead, rest) = rest.split_first()?;
    if first != kind || !(b'1'..=b'9').contains(&lead) {
        return None;
    }
    let mut count = u64::from(lead - b'0');
    for (i, &b) in rest.iter().enumerate().take(DIGITS) {
        match b {
            b'0'..=b'9' => count = count * 10 + u64::from(b - b'0'),
            // The `\r` at `i + 2`, and a byte after it.
            b'\r' if i + 3 < buf.len() => return Some((count, i + 4)),
            _ => return None,
        }
    }
    None
}

fn parse_multibulk_head(buf: &[u8], max_bulk: u64) -> Result<Option<Request>, ProtocolError> {
    if let Some((argc, line_len)) = short_count(buf, b'*') {
        if argc <= i32::MAX as u64 {
            return multibulk_name(buf, argc as u32, line_len, max_bulk);
        }
    }
    let Some((digits, line_len)) = count_line(buf) else {
        return if buf.len() > INLINE_MAX {
            Err(ProtocolError::TooBigMultibulkCount)
        } else {
            Ok(None)
        };
    };
    let argc = match parse_i64(digits) {
        Some(n) if n <= i64::from(i32::MAX) => n,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if argc <= 0 {
        return Ok(Some(Request::Ignored { len: line_len }));
    }
    multibulk_name(buf, argc as u32, line_len, max_bulk)
}

/// The rest of a multibulk request's head after its `*argc` line, `line_len` long.
fn multibulk_name(
    buf: &[u8],
    argc: u32,
    line_len: usize,
    max_bulk: u64,
) -> Result<Option<Request>, ProtocolError> {
    let rest = &buf[line_len..];
    let Some((name_len, header_len)) = bulk_header(rest, max_bulk)? else {
        return Ok(None);
    };
    let name_start = line_len + header_len;
    if name_len as usize > NAME_MAX {
        // Not a command name Redis knows; relay it like any other argument.
        return Ok(Some(Request::Multibulk {
            argc,
            head_len: name_start,
            name: None,
            body: RequestBody {
                args_left: argc - 1,
                bulk_left: name_len + 2,
            },
        }));
    }
    let name_end = name_start + name_len as usize;
    if buf.len() < name_end + 2 {
        return Ok(None);
    }
    Ok(Some(Request::Multibulk {
        argc,
        head_len: name_end + 2,
        name: Some(name_start..name_end),
        body: RequestBody {
            args_left: argc - 1,
            bulk_left: 0,
        },
    }))
}

/// Parses a `$len` line at the start of `buf`: `Ok(Some((len, line_len)))`.
fn bulk_header(buf: &[u8], max_bulk: u64) -> Result<Option<(u64, usize)>, ProtocolError> {
    if let Some((len, line_len)) = short_count(buf, b'$') {
        if len <= max_bulk {
            return Ok(Some((len, line_len)));
        }
    }
    let Some((digits, line_len)) = count_line(buf) else {
        return if buf.len() > INLINE_MAX {
            Err(ProtocolError::TooBigBulkCount)
        } else {
            Ok(None)
        };
    };
    if buf[0] != b'$' {
        return Err(ProtocolError::ExpectedDollar(buf[0]));
    }
    match parse_i64(digits) {
        Some(n) if n >= 0 && n as u64 <= max_bulk => Ok(Some((n as u64, line_len))),
        _ => Err(ProtocolError::InvalidBulkLength),
    }
}

/// Where a multibulk request's scan stands: arguments still to come and bytes
/// left in the current one. Lives across reads, so large arguments stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBody {
    /// Arguments whose `$len` header has not been read yet.
    args_left: u32,
    /// Bytes still to pass in the current argument, its trailing CRLF included.
    bulk_left: u64,
}

/// How far [`RequestBody::advance`] got.
#[derive(Debug, PartialEq, Eq)]
pub struct Advance {
    /// Bytes of the request that can be passed on now.
    pub consumed: usize,
    /// Whether the request ended within them.
    pub done: bool,
}

impl RequestBody {
    /// Whether the request has been scanned to its end.
    pub fn is_done(&self) -> bool {
        self.args_left == 0 && self.bulk_left == 0
    }

    /// Walks over as much of the request as `buf` holds. Like Redis, the two
    /// bytes after a bulk payload are skipped without being checked.
    pub fn advance(&mut self, buf: &[u8], max_bulk: u64) -> Result<Advance, ProtocolError> {
        self.advance_noting(buf, max_bulk, |_| {})
    }

    /// [`Self::advance`], telling `noted` where in `buf` each argument whose
    /// header it reads lies (its payload, which may not all be in `buf`
    /// yet): a caller that needs the arguments of a whole request then
    /// need not read the headers a second time.
    pub fn advance_noting(
        &mut self,
        buf: &[u8],
        max_bulk: u64,
        mut noted: impl FnMut(Range<usize>),
    ) -> Result<Advance, ProtocolError> {
        let mut pos = 0;
        loop {
            if self.bulk_left > 0 {
                let available = (buf.len() - pos) as u64;
                let step = available.min(self.bulk_left);
                pos += step as usize;
                self.bulk_left -= step;
                if self.bulk_left > 0 {
                    return Ok(Advance {
                        consumed: pos,
                        done: false,
                    });
                }
            }
            if self.args_left == 0 {
                return Ok(Advance {
                    consumed: pos,
                    done: true,
                });
            }
            match bulk_header(&buf[pos..], max_bulk)? {
                None => {
                    return Ok(Advance {
                        consumed: pos,
                        done: false,
                    })
                }
                Some((len, line_len)) => {
                    pos += line_len;
                    noted(pos..pos.saturating_add(len as usize));
                    self.args_left -= 1;
                    self.bulk_left = len + 2;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::DEFAULT_MAX_BULK;

    fn parse(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
        Request::parse(buf, DEFAULT_MAX_BULK)
    }

    /// Scans one whole request from `buf`, returning its length and name.
    fn whole(buf: &[u8]) -> (usize, Vec<u8>) {
        match parse(buf).unwrap().unwrap() {
            Request::Multibulk {
                head_len,
                name,
                mut body,
                ..
            } => {
                let adv = body.advance(&buf[head_len..], DEFAULT_MAX_BULK).unwrap();
                assert!(adv.done);
                (head_len + adv.consumed, buf[name.unwrap()].to_vec())
            }
            other => panic!("not multibulk: {other:?}"),
        }
    }

    #[test]
    fn finds_the_end_of_a_command() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n";
        assert_eq!(whole(buf), (31, b"SET".to_vec()));
        assert_eq!(whole(&buf[31..]), (14, b"PING".to_vec()));
    }

    #[test]
    fn every_prefix_is_incomplete_or_partial_never_an_error() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for cut in 0..buf.len() {
            let part = &buf[..cut];
            match parse(part).unwrap() {
                None => {}
                Some(Request::Multibulk {
                    head_len, mut body, ..
                }) => {
                    let adv = body.advance(&part[head_len..], DEFAULT_MAX_BULK).unwrap();
                    assert!(!adv.done, "cut at {cut} claimed done");
                }
                Some(other) => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn streams_a_large_argument_across_reads() {
        let value = vec![b'x'; 100_000];
        let mut buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n".to_vec();
        buf.extend_from_slice(&value);
        buf.extend_from_slice(b"\r\n");
        let Some(Request::Multibulk {
            head_len, mut body, ..
        }) = parse(&buf).unwrap()
        else {
            panic!()
        };
        let mut pos = head_len;
        let mut reads = 0;
        while !body.is_done() {
            let end = (pos + 4096).min(buf.len());
            let adv = body.advance(&buf[pos..end], DEFAULT_MAX_BULK).unwrap();
            pos += adv.consumed;
            reads += 1;
        }
        assert_eq!(pos, buf.len());
        assert!(reads > 20);
    }

    #[test]
    fn ignores_what_redis_ignores() {
        assert_eq!(parse(b"*0\r\n").unwrap(), Some(Request::Ignored { len: 4 }));
        assert_eq!(
            parse(b"*-5\r\n").unwrap(),
            Some(Request::Ignored { len: 5 })
        );
        assert_eq!(parse(b"\r\n").unwrap(), Some(Request::Ignored { len: 2 }));
        assert_eq!(parse(b"   \n").unwrap(), Some(Request::Ignored { len: 4 }));
    }

    #[test]
    fn count_line_ends_at_cr_plus_any_byte_like_redis() {
        // redis-server answers PONG to "*1\rx$4\r\nPING\r\n".
        assert_eq!(whole(b"*1\rx$4\r\nPING\r\n").0, 14);
    }

    #[test]
    fn the_short_count_fast_path_reads_only_what_the_general_path_would() {
        let general = |line: &[u8]| {
            let (digits, len) = count_line(line)?;
            let n = parse_i64(digits)?;
            (n >= 0).then_some((n as u64, len))
        };
        for line in [
            &b"$3\r\n"[..],
            b"$3\rx",
            b"*12\r\n$",
            b"$123456789012345\r\n",
        ] {
            assert_eq!(short_count(line, line[0]), general(line), "{line:?}");
        }
        // Left to the general path: zero, signs, leading zeros, too many
        // digits, no byte after the CR, the wrong type.
        for line in [
            &b"$0\r\n"[..],
            b"$-1\r\n",
            b"$03\r\n",
            b"$1234567890123456\r\n",
            b"$3\r",
            b"$3",
            b"$ 3\r\n",
            b"*3\r\n",
        ] {
            assert_eq!(short_count(line, b'$'), None, "{line:?}");
        }
    }

    #[test]
    fn bulk_trailer_is_skipped_unchecked_like_redis() {
        assert_eq!(whole(b"*1\r\n$4\r\nPINGxx").0, 14);
    }

    #[test]
    fn inline_commands_split_like_redis() {
        match parse(b"SET a \"b c\"\r\nPING").unwrap().unwrap() {
            Request::Inline { len, args } => {
                assert_eq!(len, 13);
                assert_eq!(args, vec!["SET", "a", "b c"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(b"PING").unwrap(), None);
    }

    #[test]
    fn protocol_errors_match_redis() {
        use ProtocolError::*;
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*3000000000\r\n", InvalidMultibulkLength),
            (b"*01\r\n", InvalidMultibulkLength),
            (b"*x\r\n", InvalidMultibulkLength),
            (b"*1\r\n$-1\r\n", InvalidBulkLength),
            (b"*1\r\n$+4\r\n", InvalidBulkLength),
            (b"*1\r\n$ 4\r\n", InvalidBulkLength),
            (b"*1\r\n$600000000\r\n", InvalidBulkLength),
            (b"*1\r\nfoo\r\n", ExpectedDollar(b'f')),
            // Found by fuzzing (these used to panic slicing the empty line).
            (b"*1\r\n\r\n", ExpectedDollar(b'\r')),
            (b"*2\r$\r\n", ExpectedDollar(b'\r')),
            (b"PING \"a\r\n", UnbalancedQuotes),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).err().as_ref(), Some(expected), "{input:?}");
        }
        let mut big = b"*".to_vec();
        big.resize(INLINE_MAX + 2, b'1');
        assert_eq!(parse(&big).err(), Some(TooBigMultibulkCount));
        let big = vec![b'a'; INLINE_MAX + 2];
        assert_eq!(parse(&big).err(), Some(TooBigInline));
    }

    #[test]
    fn second_argument_errors_surface_from_the_body() {
        let buf = b"*2\r\n$4\r\nECHO\r\n:5\r\n";
        let Some(Request::Multibulk {
            head_len, mut body, ..
        }) = parse(buf).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            body.advance(&buf[head_len..], DEFAULT_MAX_BULK),
            Err(ProtocolError::ExpectedDollar(b':'))
        );
    }

    #[test]
    fn error_replies_are_redis_lines() {
        assert_eq!(
            &ProtocolError::ExpectedDollar(b'f').reply()[..],
            b"-ERR Protocol error: expected '$', got 'f'\r\n"
        );
    }
}
