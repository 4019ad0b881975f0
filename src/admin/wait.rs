//! `redauth wait`: blocks until a running redauth answers `/startupz` with
//! 200 (its listeners are bound and it holds a first credential), for pods
//! whose application must not start before the sidecar, and Jobs.
//!
//! A few lines of blocking HTTP/1.0 over `std::net`: one GET to a local
//! admin port every [`POLL`] needs no runtime and no HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How often `/startupz` is asked.
pub const POLL: Duration = Duration::from_millis(200);

/// Bound on one probe (connect, send, read).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `redauth wait` options.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// The admin address of the redauth to wait for (its --admin-listen; an
    /// unspecified address such as 0.0.0.0 is asked on loopback)
    #[arg(
        long,
        env = "REDAUTH_ADMIN_LISTEN",
        default_value = "127.0.0.1:9180",
        value_name = "ADDR"
    )]
    pub admin: String,

    /// Give up after this long, with exit status 1
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Polls until `/startupz` answers 200 (`Ok`, with how long it took), or
/// `timeout` passes (`Err`, saying what the last probe saw).
pub fn wait(args: &WaitArgs) -> Result<Duration, String> {
    let addr = target(&args.admin)?;
    let started = Instant::now();
    loop {
        let seen = match probe(addr) {
            Ok((200, _)) => return Ok(started.elapsed()),
            Ok((status, body)) => format!("{status} {}", body.trim()),
            Err(e) => e,
        };
        if started.elapsed() >= args.timeout {
            return Err(format!(
                "http://{addr}/startupz did not answer 200 within {}; last: {seen}",
                humantime::format_duration(args.timeout)
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// The address to ask: `--admin` resolved, an unspecified IP replaced by
/// loopback, a bare port taken as loopback.
fn target(admin: &str) -> Result<SocketAddr, String> {
    let text = match admin.parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => admin.to_string(),
    };
    let mut addr = text
        .to_socket_addrs()
        .map_err(|e| format!("--admin {admin:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--admin {admin:?}: no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

/// One `GET /startupz`: the status and body, or why there was none.
fn probe(addr: SocketAddr) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("asking {addr}: {e}");
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(io)?;
    stream
        .write_all(b"GET /startupz HTTP/1.0\r\nHost: redauth\r\n\r\n")
        .map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    parse(&String::from_utf8_lossy(&response)).ok_or_else(|| format!("{addr} did not answer HTTP"))
}

/// The status code and body of an HTTP/1.x response.
fn parse(response: &str) -> Option<(u16, String)> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_responses() {
        assert_eq!(target("9180").unwrap(), "127.0.0.1:9180".parse().unwrap());
        assert_eq!(
            target("0.0.0.0:9180").unwrap(),
            "127.0.0.1:9180".parse().unwrap()
        );
        assert_eq!(target("[::]:9180").unwrap(), "[::1]:9180".parse().unwrap());
        assert!(target("nonsense").is_err());
        assert_eq!(
            parse("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 3\r\n\r\nno\n"),
            Some((503, "no\n".into()))
        );
        assert_eq!(parse("garbage"), None);
    }
}
