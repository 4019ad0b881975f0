//! The admin endpoints, on their own listener (`--admin-listen`, default
//! `127.0.0.1:9180`), for probes, scrapes and orderly stops:
//!
//! - `GET /livez`: 200 `ok` while the process and its runtime answer;
//! - `GET /startupz`: 200 once the client listeners are bound and a first
//!   credential was obtained, else 503 with the reason on one line;
//! - `GET /readyz`: 200 while a valid, unexpired credential is held, recent
//!   dials say the upstream takes it, and redauth is not draining, else 503
//!   with the reason (`draining`, `no credential yet: …`, `the credential
//!   expired at …`, `upstream rejected the credential …`). It reads state
//!   others keep; the probe itself never dials the upstream;
//! - `GET /metrics`: every metric of [`crate::metrics`], OpenMetrics text;
//! - `POST /quitquitquit` (loopback peers only): begins the same graceful
//!   shutdown as SIGTERM, for Kubernetes Jobs whose main container is done;
//! - other methods: 405; other paths: 404.
//!
//! No body ever holds a secret. [`Health`] is the state the probes read;
//! running the shutdown itself is `main`'s job. [`wait`] is the client side:
//! `redauth wait` polls another redauth's `/startupz`.

mod health;
mod routes;
mod server;
pub mod wait;

pub use health::Health;
pub use server::AdminServer;
