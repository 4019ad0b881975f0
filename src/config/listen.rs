//! Listen addresses: what `--listen` and `--admin-listen` accept, and the
//! check, before anything is really bound, that every address can be bound.
//!
//! An address is `127.0.0.1:6379`, `[::1]:6379`, a bare port (`6379`:
//! loopback, 127.0.0.1) or `host:port`, where the host name is resolved once,
//! at startup, to every address it has.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;

/// A listener that could not be bound at startup. `setting` is the flag that
/// gave the address (`--listen`, `--admin-listen`, `--unix-socket`): a bind
/// failure is a configuration problem, reported as one.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {addr}: cannot bind: {cause}")]
pub struct BindError {
    pub setting: &'static str,
    pub addr: String,
    pub cause: std::io::Error,
}

impl BindError {
    /// The error-maker for binding `addr`, given by `setting`.
    pub fn maker(
        setting: &'static str,
        addr: impl ToString,
    ) -> impl Fn(std::io::Error) -> BindError {
        let addr = addr.to_string();
        move |cause| BindError {
            setting,
            addr: addr.clone(),
            cause,
        }
    }
}

/// The addresses `text` stands for.
pub(crate) fn addresses(text: &str) -> Result<Vec<SocketAddr>, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))]);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let usage = "give an address like 127.0.0.1:6379, a port, or host:port";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port: {usage}"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{text:?} is not an address: {usage}"));
    }
    let mut found: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve {host:?}: {e}"))?
        .collect();
    found.sort();
    found.dedup();
    if found.is_empty() {
        return Err(format!("{text:?}: {host:?} has no address"));
    }
    Ok(found)
}

/// Why each address cannot be bound, as `(index, reason)`. Every address is
/// bound at once (so one given twice is caught too), then all are released.
pub(crate) fn unbindable(addrs: &[SocketAddr]) -> Vec<(usize, String)> {
    let mut held = Vec::new();
    let mut problems = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        match TcpListener::bind(addr) {
            Ok(listener) => held.push(listener),
            Err(e) => problems.push((i, e.to_string())),
        }
    }
    problems
}

/// Why a Unix socket cannot be created at `path`, if that shows without
/// creating it: a missing directory, or something other than a socket there.
pub(crate) fn unix_socket_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Some(format!("directory {} does not exist", parent.display()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            Some("a file that is not a socket is in the way".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_addresses_and_names() {
        assert_eq!(
            addresses("6380").unwrap(),
            vec!["127.0.0.1:6380".parse().unwrap()]
        );
        assert_eq!(
            addresses("[::1]:1").unwrap(),
            vec!["[::1]:1".parse().unwrap()]
        );
        let local = addresses("localhost:6380").unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 6380),
            "{local:?}"
        );
        assert!(addresses("localhost").unwrap_err().contains("has no port"));
        assert!(addresses("port 9180").unwrap_err().contains("has no port"));
        assert!(addresses(":80").unwrap_err().contains("is not an address"));
        assert!(addresses("host:99999")
            .unwrap_err()
            .contains("is not an address"));
    }

    #[test]
    fn an_address_in_use_is_found() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let free: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let problems = unbindable(&[free, addr]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, 1);
    }

    #[test]
    fn unix_socket_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unix_socket_problem(&dir.path().join("s")), None);
        let missing = dir.path().join("no/s");
        assert!(unix_socket_problem(&missing)
            .unwrap()
            .contains("does not exist"));
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(unix_socket_problem(&file).unwrap().contains("not a socket"));
    }
}
