//! redauth: a sidecar that lets applications reach a managed Redis without
//! holding a credential.
//!
//! Clients connect in plaintext to a local listener, as they would to a local
//! `redis-server`; redauth relays their commands over TLS to the upstream and
//! authenticates every upstream connection itself.
//!
//! # Layout
//!
//! Each module builds only on those listed before it (no import loops;
//! `tests/layout.rs` checks it, and that no file here outgrows 500 lines):
//!
//! - [`version`]: the version and git commit of this build;
//! - [`environment`]: the process environment, behind a trait tests replace;
//! - [`resp`]: RESP framing and command classification, without copying payloads;
//! - [`metrics`]: process-wide counters and their OpenMetrics rendering;
//! - [`credentials`]: credentials, their redacted secrets, the token sources
//!   and the refresher that publishes the current one;
//! - [`upstream`]: TLS configuration, dialing and authenticating upstream
//!   connections, the warm pool;
//! - [`cluster`]: OSS cluster endpoints: node addresses and their rewriting in replies;
//! - [`session`]: one task per client (on a relay thread) relaying both ways,
//!   intercepting AUTH/HELLO/RESET/QUIT and re-authenticating live connections;
//! - [`router`]: cluster routing mode: one port that makes an OSS cluster look like one Redis;
//! - [`relays`]: the relay threads sessions run on, each with its own event loop and pool share;
//! - [`config`]: flags, `REDAUTH_*` environment and TOML file, merged and validated;
//! - [`server`]: listeners, accept loops, `--max-connections`, and waiting for sessions on shutdown;
//! - [`admin`]: `/livez`, `/startupz`, `/readyz`, `/metrics`, `POST /quitquitquit`;
//! - [`logging`]: where the log goes and how it looks;
//! - [`notify`]: systemd's `READY=1` and `STOPPING=1`;
//! - [`lifecycle`]: why redauth stops, the phases of the drain, exit statuses.
//!
//! The emulated Azure cloud the tests and the demo run against is not part
//! of this crate: it is the workspace crate `emulator/`.
//!
//! # Where to look first
//!
//! - **Where a command is classified**: by name in `src/resp/command.rs`
//!   ([`resp::CommandKind::of`]); what each kind then does in
//!   `src/session/dispatch.rs` (`RequestPump::command`), with the commands
//!   redauth answers itself in `src/session/local.rs`.
//! - **Where re-authentication is decided**: `src/session/reauth.rs`,
//!   `Reauth::take_if_safe` (what makes a point unsafe:
//!   `src/session/state.rs`, `Sent::reauth_blocker`).
//! - **Where a routed command goes**: `src/router/plan.rs` (by name and
//!   slot), its reply matched in `src/router/replies.rs` and merged in
//!   `src/router/merge.rs`.
//! - **Where a token is fetched**: `src/credentials/refresher.rs` (when, and
//!   what is published) calling [`credentials::TokenSource::fetch`]; Entra
//!   ID's in `src/credentials/entra.rs`.
//! - **Where AUTH is written**: `src/upstream/auth.rs`
//!   ([`upstream::auth::command`], and its reply judged by
//!   [`upstream::auth::judge`]) — for a dial, a pooled connection's reset and
//!   a live session alike.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod environment;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod relays;
pub mod resp;
pub mod router;
pub mod server;
pub mod session;
pub mod upstream;
pub mod version;
