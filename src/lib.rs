//! redauth: a sidecar that lets applications reach a managed Redis without
//! holding a credential.
//!
//! Clients connect in plaintext to a local listener, as they would to a local
//! `redis-server`; redauth relays their commands over TLS to the upstream and
//! authenticates every upstream connection itself.
//!
//! # Layout
//!
//! - [`config`]: flags, `REDAUTH_*` environment and TOML file, merged and validated;
//! - [`resp`]: RESP framing and command classification, without copying payloads;
//! - [`credentials`]: credentials, their redacted secrets, and how the current one is published;
//! - [`upstream`]: TLS configuration, dialing and authenticating upstream connections;
//! - [`session`]: one task per client (on a relay thread) relaying both ways, intercepting AUTH/HELLO/RESET/QUIT;
//! - [`server`]: listeners, accept loops, `--max-connections`, and waiting for sessions on shutdown;
//! - [`shards`]: the relay threads sessions run on, each with its own event loop and pool share;
//! - [`lifecycle`]: why redauth stops, the phases of the drain, exit statuses;
//! - [`logging`]: where the log goes and how it looks;
//! - [`admin`]: `/livez`, `/startupz`, `/readyz`, `/metrics`, `POST /quitquitquit`;
//! - [`metrics`]: process-wide counters and their OpenMetrics rendering;
//! - [`notify`]: systemd's `READY=1` and `STOPPING=1`;
//! - [`version`]: the version and git commit of this build;
//! - [`emulator`]: the emulated Azure cloud (token endpoint, token-checking TLS
//!   front) for tests and the demo — never used in production.

pub mod admin;
pub mod config;
pub mod credentials;
pub mod emulator;
pub mod environment;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod resp;
pub mod server;
pub mod session;
pub mod shards;
pub mod upstream;
pub mod version;
