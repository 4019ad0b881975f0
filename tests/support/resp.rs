//! Raw RESP over a socket, for tests that must see the exact bytes a client would see.
//!
//! [`frame_len`] finds where one complete RESP2/RESP3 reply ends (it never decodes payloads, so a
//! 100 MB bulk costs nothing to scan). [`RespConn`] sends arbitrary bytes and reads one reply at a
//! time, to EOF, or "nothing within a while", always under a deadline so a hung relay fails the
//! test with the bytes received so far instead of hanging the suite.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long a reply may take before a test fails. Generous: CI machines are slow and shared.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Encodes a command as a RESP array of bulk strings.
pub fn cmd<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Encodes a bulk string reply, e.g. `bulk("v")` = `$1\r\nv\r\n`.
pub fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{}\r\n", s.len(), s).into_bytes()
}

/// Printable form of protocol bytes: CR, LF, backslash and non-ASCII escaped, quotes kept as
/// they are. Lossless, so two escaped strings are equal exactly when the bytes are.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// [`escape`], truncated for huge payloads: for messages, never for comparisons.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 400;
    if bytes.len() > MAX {
        format!(
            "{}… ({} bytes in total)",
            escape(&bytes[..MAX]),
            bytes.len()
        )
    } else {
        escape(bytes)
    }
}

/// Length of the complete reply at the start of `buf`; `Ok(None)` if more bytes are needed.
///
/// Handles every RESP2/RESP3 type Redis sends, including pushes (`>`), maps (`%`), sets (`~`),
/// nulls (`_`), doubles, big numbers, verbatim strings, and attributes (`|`), which are returned
/// together with the reply they annotate.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    scan(buf, 0)
}

fn scan(buf: &[u8], start: usize) -> Result<Option<usize>, String> {
    let Some(line_end) = find_crlf(buf, start) else {
        return Ok(None);
    };
    let kind = buf[start];
    let header = &buf[start + 1..line_end];
    let next = line_end + 2;
    let count = || -> Result<i64, String> {
        std::str::from_utf8(header)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad length in header {}", show(&buf[start..next])))
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(next)),
        b'$' | b'!' | b'=' => {
            let len = count()?;
            if len < 0 {
                return Ok(Some(next));
            }
            let end = next + len as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(format!(
                    "bulk not terminated by CRLF: {}",
                    show(&buf[start..end])
                ));
            }
            Ok(Some(end))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = count()?;
            let elements = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = next;
            for _ in 0..elements.max(0) {
                match scan(buf, pos)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute is followed by the reply it describes.
                return scan(buf, pos);
            }
            Ok(Some(pos))
        }
        other => Err(format!(
            "not a RESP reply type byte {:?} at start of {}",
            other as char,
            show(&buf[start..])
        )),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// A stream whose reads can time out (TCP or unix).
pub trait TimedStream: Read + Write {
    fn set_read_deadline(&self, timeout: Duration) -> std::io::Result<()>;
}
impl TimedStream for TcpStream {
    fn set_read_deadline(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
    }
}
impl TimedStream for UnixStream {
    fn set_read_deadline(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
    }
}

/// Why a read ended without a complete reply. Each variant carries the bytes buffered so far.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed the connection.
    Eof(Vec<u8>),
    /// Nothing complete arrived before the deadline.
    Timeout(Vec<u8>),
}

/// A client connection that speaks raw bytes and reads whole RESP replies.
pub struct RespConn<S: TimedStream = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    /// Name used in panic messages ("through redauth", "direct").
    pub label: String,
}

impl RespConn<TcpStream> {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16) -> Self {
        Self::connect_addr(([127, 0, 0, 1], port).into())
    }

    /// Connects to `addr`.
    pub fn connect_addr(addr: std::net::SocketAddr) -> Self {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_nodelay(true).ok();
        // A relay that stops reading must fail the test, not hang it.
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).ok();
        Self::new(stream, addr.to_string())
    }

    /// A second handle on the same socket, for writing from another thread while this one reads.
    pub fn writer(&self) -> TcpStream {
        self.stream.try_clone().expect("cloning socket")
    }
}

impl RespConn<UnixStream> {
    pub fn connect_unix(path: &std::path::Path) -> Self {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connecting to {path:?}: {e}"));
        Self::new(stream, format!("{}", path.display()))
    }
}

impl<S: TimedStream> RespConn<S> {
    pub fn new(stream: S, label: String) -> Self {
        RespConn {
            stream,
            buf: Vec::new(),
            label,
        }
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("[{}] writing {}: {e}", self.label, show(bytes)));
    }

    /// Sends one command (as a RESP array) and returns its reply.
    pub fn request<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send(&cmd(args));
        self.read_reply()
    }

    /// Reads one complete reply; panics (showing what arrived) on EOF or after [`REPLY_TIMEOUT`].
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.next_reply(REPLY_TIMEOUT) {
            Ok(reply) => reply,
            Err(ReadEnd::Eof(rest)) => panic!(
                "[{}] connection closed while waiting for a reply; partial bytes: {:?}",
                self.label,
                show(&rest)
            ),
            Err(ReadEnd::Timeout(rest)) => panic!(
                "[{}] no complete reply within {REPLY_TIMEOUT:?}; partial bytes: {:?}",
                self.label,
                show(&rest)
            ),
        }
    }

    /// Reads one complete reply, or says why none came within `wait`.
    pub fn next_reply(&mut self, wait: Duration) -> Result<Vec<u8>, ReadEnd> {
        let deadline = Instant::now() + wait;
        loop {
            match frame_len(&self.buf) {
                Ok(Some(n)) => return Ok(self.buf.drain(..n).collect()),
                Ok(None) => {}
                Err(e) => panic!("[{}] malformed reply: {e}", self.label),
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof => return Err(ReadEnd::Eof(self.buf.clone())),
                Fill::Timeout => return Err(ReadEnd::Timeout(self.buf.clone())),
            }
        }
    }

    /// Asserts no byte arrives within `wait` (for commands that must not reply).
    pub fn expect_silence(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.buf.is_empty() {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof => panic!(
                    "[{}] connection closed; expected it to stay open",
                    self.label
                ),
                Fill::Timeout => return,
            }
        }
        panic!(
            "[{}] expected no reply, got {:?}",
            self.label,
            show(&self.buf)
        );
    }

    /// Reads everything until the peer closes; panics if it stays open past [`REPLY_TIMEOUT`].
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof => return std::mem::take(&mut self.buf),
                Fill::Timeout => panic!(
                    "[{}] connection still open after {REPLY_TIMEOUT:?}; received {:?}",
                    self.label,
                    show(&self.buf)
                ),
            }
        }
    }

    /// Asserts the peer closes without sending anything more.
    pub fn expect_eof(&mut self) {
        let rest = self.read_to_eof();
        assert!(
            rest.is_empty(),
            "[{}] expected EOF, got {:?}",
            self.label,
            show(&rest)
        );
    }

    /// Bytes received but not yet returned as a reply.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Fill::Timeout;
            }
            self.stream
                .set_read_deadline(left)
                .expect("setting read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Fill::Eof,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Fill::Data;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "[{}] read failed ({e}); bytes received so far: {:?}",
                    self.label,
                    show(&self.buf)
                ),
            }
        }
    }
}

enum Fill {
    Data,
    Eof,
    Timeout,
}

/// FNV-1a 64, to compare big payloads without printing them.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
