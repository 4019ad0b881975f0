//! RESP framing: where frames begin and end, and which commands matter.
//!
//! redauth relays bytes; it decodes only what it must. This module owns:
//! - [`request`]: scanning client requests exactly as redis-server parses them
//!   (multibulk and inline), with Redis's own protocol-error replies;
//! - [`reply`]: finding reply-frame boundaries in RESP2/RESP3 server output,
//!   streaming through large bulk payloads without buffering them;
//! - [`command`]: classifying a command by name into the few kinds the relay
//!   treats specially;
//! - [`frame`]: taking apart the few whole frames redauth must read;
//! - [`pubsub`]: recognising pub/sub pushes and confirmations in server output;
//! - [`encode`]: building the few commands redauth sends itself;
//! - [`tree`]: a whole reply as a tree that encodes back to the same bytes,
//!   for the few replies redauth rewrites (cluster topology, redirects).
//!
//! Scanners never copy payloads: they return byte counts so callers can
//! `split_to` and forward the very bytes they read. A scanner returning
//! "incomplete" is not an error; an error is a real protocol violation.

pub mod command;
pub mod encode;
pub mod frame;
pub mod inline;
mod number;
pub mod pubsub;
pub mod reply;
pub mod request;
pub mod tree;

pub use command::CommandKind;
pub use number::parse_i64;
pub use reply::{ReplyError, ReplyScanner};
pub use request::{ProtocolError, Request, RequestBody};

/// Redis refuses inline requests and count lines longer than this (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;

/// Redis's default `proto-max-bulk-len`: the largest bulk argument a client may send.
pub const DEFAULT_MAX_BULK: u64 = 512 * 1024 * 1024;

/// Bytes [`find_near`] looks at one by one before it hands over to `memchr`.
const NEAR: usize = 16;

/// Where the first `byte` in `haystack` is, for a byte expected near the
/// start: the end of a RESP line (`$3\r\n`, `+OK\r\n`) or a key's hash tag.
///
/// The same answer as `memchr`, found by a plain loop over the first few
/// bytes: `memchr`'s vector set-up and dispatch cost more than the whole
/// search of a short line, and the scanners search several lines per command.
#[inline]
pub fn find_near(byte: u8, haystack: &[u8]) -> Option<usize> {
    let near = haystack.len().min(NEAR);
    match haystack[..near].iter().position(|&b| b == byte) {
        Some(at) => Some(at),
        None => memchr::memchr(byte, &haystack[near..]).map(|at| near + at),
    }
}

/// `name` in ASCII lower case, in `buf`; `None` if it does not fit. One pass
/// (copying and then lower-casing calls `memcpy`, which for a command name of
/// a few bytes costs more than the rest).
#[inline]
pub fn lowercase<'a>(name: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let lower = buf.get_mut(..name.len())?;
    for (l, &b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_near_agrees_with_memchr_near_and_far() {
        let mut line = vec![b'x'; 40];
        for at in [0, 1, NEAR - 1, NEAR, NEAR + 1, 39] {
            line.fill(b'x');
            line[at] = b'\r';
            assert_eq!(find_near(b'\r', &line), Some(at));
            assert_eq!(find_near(b'\r', &line[..at]), None);
        }
        assert_eq!(find_near(b'\r', b""), None);
    }

    #[test]
    fn lowercase_fits_or_says_so() {
        let mut buf = [0u8; 4];
        assert_eq!(lowercase(b"GeT", &mut buf), Some(&b"get"[..]));
        assert_eq!(lowercase(b"", &mut buf), Some(&b""[..]));
        assert_eq!(lowercase(b"SCRIPT", &mut buf), None);
    }
}
