//! Integration-test harness for redauth: a real TLS `redis-server`, the real `redauth` binary,
//! and raw RESP clients to talk to both.
//!
//! Layout:
//! - [`authority`] — an emulated Entra authority for the client-certificate credential;
//! - [`aws`] — the emulated AWS (container credentials, SigV4-checking front; also clustered);
//! - [`certs`] — an in-process test PKI (CA, server and client certificates, an unrelated CA);
//! - [`churn`] — [`ClusterControl`], slots moved, a failover and a new primary on any emulated
//!   managed cluster;
//! - [`clients`] — redis-py and ioredis cluster workloads, installed on first use;
//! - [`cloud`] — the emulated Azure cloud (token endpoint, token-checking front; also clustered) and
//!   a fake `az`;
//! - [`gcp`] — the emulated GCP (metadata server, token-checking front with an AUTH rate limit;
//!   also clustered);
//! - [`cluster`] — [`TlsCluster`], a TLS redis cluster in password mode, and its resharding,
//!   failover and new nodes;
//! - [`http`] — a minimal HTTP client for the admin endpoints;
//! - [`redis_server`] — [`TlsRedis`], one redis-server per test with a TLS and a plaintext port;
//! - [`redauth`] — [`Redauth`]/[`RedauthCmd`], the binary as a child process, logs captured;
//! - [`resp`] — [`RespConn`], send bytes / read exactly one reply, and RESP helpers;
//! - [`script`] — the same conversation directly and through redauth, compared byte for byte.
//!
//! Every wait has a deadline and panics with what was seen so far; nothing relies on sleeping.
#![allow(dead_code, unused_imports)]

pub mod authority;
pub mod aws;
pub mod certs;
pub mod churn;
pub mod clients;
pub mod cloud;
pub mod cluster;
pub mod gcp;
pub mod http;
pub mod redauth;
pub mod redis_server;
pub mod resp;
pub mod script;

pub use churn::ClusterControl;
pub use clients::Clients;
pub use cluster::{free_ports, TlsCluster};
pub use redauth::{log_events, Exited, Listener, Redauth, RedauthCmd};
pub use redis_server::{free_port, ClientCerts, TlsRedis, PASSWORD, USERNAME};
pub use resp::{bulk, checksum, cmd, escape, show, RespConn};
pub use script::{assert_same, assert_same_as_direct, run_both, Step, Transcript};

impl TlsRedis {
    /// Starts redauth in front of this server (default flags, password auth) plus `extra` flags.
    pub fn redauth(&self, extra: &[&str]) -> Redauth {
        self.redauth_cmd().args(extra.iter().copied()).start()
    }

    /// The command for [`TlsRedis::redauth`], to add env or change what to wait for.
    pub fn redauth_cmd(&self) -> RedauthCmd {
        RedauthCmd::new().args(self.redauth_args())
    }
}

/// The `ACL WHOAMI` reply for the configured user.
pub fn whoami_reply() -> Vec<u8> {
    bulk(USERNAME)
}

/// Polls `f` every 20 ms until it yields a value; after `within`, panics with `what` and
/// redauth's output.
pub fn eventually<T>(
    redauth: &Redauth,
    within: std::time::Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("{what}: not within {within:?}\n{}", redauth.output());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Polls `done` every 50 ms until it holds; after `within`, panics with `what`.
pub fn wait_for(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Waits (up to a minute) until redauth has logged `n` token refreshes.
pub fn wait_for_refreshes(redauth: &Redauth, n: usize) {
    eventually(
        redauth,
        std::time::Duration::from_secs(60),
        "token rotations",
        || (log_events(&redauth.logs(), "token refreshed").len() >= n).then_some(()),
    );
}

/// Closes `stream` with a reset rather than a FIN: SO_LINGER with a zero timeout makes close()
/// send RST, as a crashed client or a server cutting connections does.
pub fn reset_connection(stream: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
}
