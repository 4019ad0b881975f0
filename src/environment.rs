//! The process environment, read through a trait so tests never touch the
//! process's own: configuration reads its `REDAUTH_*` settings through it,
//! and the Entra ID credential its identity variables (`IDENTITY_ENDPOINT`,
//! `AZURE_*`).

use std::collections::HashMap;

/// Source of environment variables.
pub trait Environment {
    fn var(&self, key: &str) -> Option<String>;
    /// The names of every variable set.
    fn names(&self) -> Vec<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }

    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect()
    }
}

/// A given set of variables, for tests.
impl Environment for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}
