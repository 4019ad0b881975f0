//! A minimal HTTP/1.1 client for the admin endpoints: one request per connection
//! (`Connection: close`), the status and the body as text. Enough for probes and scrapes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// The header block, as received (for Content-Type and Allow checks).
    pub headers: String,
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path)
}

pub fn post(addr: SocketAddr, path: &str) -> Response {
    request(addr, "POST", path)
}

/// Sends `method path` and reads the whole response; panics on I/O errors.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to admin {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("sending request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the response: {e}"));
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end in {text:?}"));
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {headers:?}"));
    Response {
        status,
        body: body.to_string(),
        headers: headers.to_string(),
    }
}

/// The value of the sample `series` (name plus labels, exactly as rendered) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{series}: not a number"))
        })
}
