//! What build this is: the crate version and the git commit it was built
//! from (see `build.rs`), for `--version`, the startup line and the
//! `redauth_build_info` metric.

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short git commit, or `unknown` when built outside a checkout without
/// `REDAUTH_GIT_COMMIT`.
pub const COMMIT: &str = env!("REDAUTH_GIT_COMMIT");

/// `0.1.0 (abc123def456)`, as `redauth --version` prints it.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("REDAUTH_GIT_COMMIT"),
    ")"
);
