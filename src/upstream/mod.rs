//! The upstream side: where the managed Redis is, how TLS to it is set up,
//! and how a connection is dialed and authenticated.
//!
//! - [`Endpoint`] parses `rediss://host:port`;
//! - [`tls::client_config`] builds the rustls configuration once at startup;
//! - [`Connector::connect`] dials, handshakes and sends `AUTH`, within one
//!   deadline, and says which of those steps failed;
//! - [`auth`] writes `AUTH` and judges its reply, for every caller;
//! - [`health::DialHealth`] remembers how recent dials went, for readiness;
//! - [`Pool`] keeps connections dialed ahead of new clients, and takes back
//!   those whose clients left, undoing what each client set
//!   ([`leftovers::Leftovers`]).
//!
//! Relaying over an established connection is the session's job, not this module's.

pub mod auth;
mod connect;
mod endpoint;
pub mod health;
pub mod leftovers;
pub mod pool;
mod stream;
pub mod tls;

pub use connect::{read_reply_within, ConnectError, Connector, Stage, Upstream};
pub use endpoint::{redact_url, Endpoint, EndpointError};
pub use pool::{CheckoutError, Pool};
pub use stream::UpstreamStream;
