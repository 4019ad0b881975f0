//! Where each setting came from, so a message names it the way the user
//! wrote it: `--log-level`, `REDAUTH_LOG_LEVEL`, or `log_level in
//! /etc/redauth.toml`. A setting nobody gave (a default) is named by its flag.

use super::env::var_name;
use super::settings::Settings;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Which keys each source set; flags win over the environment, the
/// environment over the file, as when the layers merge.
#[derive(Debug, Clone, Default)]
pub struct Names {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
    file: Option<(PathBuf, BTreeSet<String>)>,
}

impl Names {
    pub fn new(flags: &Settings, env: &Settings, file: Option<(&Path, &Settings)>) -> Names {
        Names {
            flags: flags.keys_set(),
            env: env.keys_set(),
            file: file.map(|(path, s)| (path.to_path_buf(), s.keys_set())),
        }
    }

    /// How the user named `key` (a snake_case setting key).
    pub fn name(&self, key: &str) -> String {
        if self.flags.contains(key) {
            return flag_name(key);
        }
        if self.env.contains(key) {
            return var_name(key);
        }
        match &self.file {
            Some((path, keys)) if keys.contains(key) => in_file(key, path),
            _ => flag_name(key),
        }
    }
}

/// `--log-level` for `log_level`.
pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// `log_level in /etc/redauth.toml`.
pub fn in_file(key: &str, path: &Path) -> String {
    format!("{key} in {}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_source_that_won() {
        let flags = Settings {
            listen: Some(vec![]),
            ..Settings::default()
        };
        let env = Settings {
            listen: Some(vec![]),
            log_level: Some("x".into()),
            ..Settings::default()
        };
        let file = Settings {
            log_level: Some("x".into()),
            pool_size: Some(1),
            ..Settings::default()
        };
        let names = Names::new(&flags, &env, Some((Path::new("/r.toml"), &file)));
        assert_eq!(names.name("listen"), "--listen");
        assert_eq!(names.name("log_level"), "REDAUTH_LOG_LEVEL");
        assert_eq!(names.name("pool_size"), "pool_size in /r.toml");
        assert_eq!(names.name("admin_listen"), "--admin-listen");
    }
}
