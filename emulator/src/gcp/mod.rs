//! The emulated GCP: what a Memorystore for Redis Cluster (or Valkey)
//! instance with IAM authentication looks like from a client, for tests and
//! the demo.
//!
//! Only the cloud is faked; redauth's own code, Google's auth library and a
//! real `redis-server` run as they would against GCP. [`GcpCloud::start`]
//! brings up:
//!
//! - [`tokens`]: the emulated OAuth2 token service, issuing opaque `ya29.`
//!   access tokens with a lifetime of seconds and remembering each one
//!   (expiry, scopes);
//! - [`metadata`]: the GCE metadata-server stand-in Google's auth libraries
//!   read tokens from (`GCE_METADATA_HOST`, see [`GcpCloud::env_vars`]);
//! - [`verifier`] and [`rate`]: what the front checks: `AUTH <token>` (or
//!   `AUTH default <token>`, `HELLO 3 AUTH default <token>`) with a token
//!   issued here and not expired, and at most so many such AUTHs a second
//!   per front;
//! - a plain `redis-server` whose `default` user has a password only the
//!   front knows, behind the same TLS [`Front`](crate::Front) Azure and AWS
//!   use, with [`Checker::Gcp`](crate::Checker::Gcp). As on Memorystore, an
//!   authenticated connection is never closed when its token expires.
//!
//! Memorystore answers a bad or expired token with `-WRONGPASS invalid
//! username-password pair or user is disabled` (documented, and the
//! backend's own answer here). Its wording for the connection-rate limit is
//! not published; the front answers [`IAM_RATE_LIMITED`](crate::IAM_RATE_LIMITED), the text
//! Memorystore documents for its IAM backend's quota being exceeded.
//!
//! [`ClusterCloud::start_gcp`](crate::ClusterCloud::start_gcp) is the same
//! with a cluster (Memorystore for Redis Cluster is always clustered).
//! Tokens are never logged, and every `Debug` output here redacts them.

mod cloud;
mod iam;
pub mod metadata;
pub mod rate;
pub mod tokens;
pub mod verifier;

pub use cloud::{GcpCloud, GcpCloudConfig, DEFAULT_PROJECT_ID};
pub use iam::GcpIam;
pub use metadata::{MetadataServer, ServiceAccount};
pub use rate::AuthRateLimit;
pub use tokens::{AccessToken, AccessTokens, Rejection, CLOUD_PLATFORM_SCOPE};
pub use verifier::{GcpRefusal, GcpVerifier, IAM_USER};

#[cfg(test)]
mod tests;
