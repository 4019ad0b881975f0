//! Integration-test harness for redauth: a real TLS `redis-server`, the real `redauth` binary,
//! and raw RESP clients to talk to both.
//!
//! Layout:
//! - [`certs`] — an in-process test PKI (CA, server and client certificates, an unrelated CA);
//! - [`cloud`] — the emulated Azure cloud (token endpoint, token-checking front) and a fake `az`;
//! - [`http`] — a minimal HTTP client for the admin endpoints;
//! - [`redis_server`] — [`TlsRedis`], one redis-server per test with a TLS and a plaintext port;
//! - [`redauth`] — [`Redauth`]/[`RedauthCmd`], the binary as a child process, logs captured;
//! - [`resp`] — [`RespConn`], send bytes / read exactly one reply, and RESP helpers;
//! - [`script`] — the same conversation directly and through redauth, compared byte for byte.
//!
//! Every wait has a deadline and panics with what was seen so far; nothing relies on sleeping.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod cloud;
pub mod http;
pub mod redauth;
pub mod redis_server;
pub mod resp;
pub mod script;

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
