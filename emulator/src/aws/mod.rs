//! The emulated AWS: what an ElastiCache or MemoryDB cache with IAM
//! authentication looks like from a client, for tests and the demo.
//!
//! Only the cloud is faked; redauth's own code, the real `aws-config`
//! credential chain and a real `redis-server` run as they would against AWS.
//! [`AwsCloud::start`] brings up:
//!
//! - [`credentials`]: the emulated STS, issuing rotating temporary
//!   credentials (access key id, secret, session token) with a lifetime of
//!   seconds, and remembering every set it issued;
//! - [`credentials_endpoint`]: the ECS / EKS Pod Identity container
//!   credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN`, see [`AwsCloud::env_vars`]);
//! - [`verifier`] (on [`sigv4`]): recomputes each IAM auth token's SigV4
//!   signature and checks every field, as ElastiCache does;
//! - a plain `redis-server` with an ACL user named after the IAM user id,
//!   behind the same TLS [`Front`](crate::Front) Azure uses, with
//!   [`Checker::Aws`](crate::Checker::Aws): connections live a set time after
//!   their last good AUTH (AWS's 12 hours, shortened), and AUTH inside MULTI
//!   is refused.
//!
//! [`ClusterCloud::start_aws`](crate::ClusterCloud::start_aws) is the same
//! with a cluster-mode-enabled cache. Secrets (secret keys, session tokens,
//! the container authorization token) are never logged, and every `Debug`
//! output here redacts them.

mod cloud;
pub mod credentials;
pub mod credentials_endpoint;
mod iam;
pub mod sigv4;
pub mod verifier;

pub use cloud::{AwsCloud, AwsCloudConfig, DEFAULT_CACHE_NAME, DEFAULT_REGION, DEFAULT_USER_ID};
pub use credentials::{CredentialIssuer, Credentials};
pub use credentials_endpoint::CredentialsEndpoint;
pub use iam::AwsIam;
pub use verifier::{AwsCache, AwsService, AwsVerifier, Rejection, Verified};

#[cfg(test)]
mod tests;
