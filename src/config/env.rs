//! The environment, read through a trait so tests never touch the process's own.

use super::settings::{Settings, Shape, KEYS};
use std::collections::HashMap;

/// Source of environment variables.
pub trait Environment {
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// The variable that holds the upstream password (there is no flag for it).
pub const PASSWORD_VAR: &str = "REDAUTH_PASSWORD";
/// The variable that names the configuration file.
pub const CONFIG_VAR: &str = "REDAUTH_CONFIG";

/// The name of the variable for a setting: `REDAUTH_` + its key in upper case.
pub fn var_name(key: &str) -> String {
    format!("REDAUTH_{}", key.to_ascii_uppercase())
}

/// Reads the `REDAUTH_*` settings. Lists are comma-separated; flags take
/// true/false/1/0/yes/no; numbers are decimal.
pub fn settings_from_env(env: &dyn Environment) -> Result<Settings, String> {
    let mut table = toml::Table::new();
    for (key, shape) in KEYS {
        let name = var_name(key);
        let Some(text) = env.var(&name) else { continue };
        let value = match shape {
            Shape::Text => toml::Value::String(text),
            Shape::List => toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            Shape::Number => match text.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => return Err(format!("{name}: expected a whole number, got {text:?}")),
            },
            Shape::Flag => toml::Value::Boolean(match text.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => return Err(format!("{name}: expected true or false, got {text:?}")),
            }),
        };
        table.insert((*key).to_string(), value);
    }
    Settings::deserialize(table).map_err(|e| format!("environment: {e}"))
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_flags_and_text() {
        let env: HashMap<String, String> = [
            ("REDAUTH_LISTEN", "127.0.0.1:1, 127.0.0.1:2"),
            ("REDAUTH_ALLOW_PLAINTEXT_UPSTREAM", "yes"),
            ("REDAUTH_UPSTREAM", "rediss://x:1"),
            ("REDAUTH_MAX_CONNECTIONS", "25"),
            ("UNRELATED", "z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = settings_from_env(&env).unwrap();
        assert_eq!(s.listen.unwrap(), vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(s.allow_plaintext_upstream, Some(true));
        assert_eq!(s.upstream.as_deref(), Some("rediss://x:1"));
        assert_eq!(s.max_connections, Some(25));
        assert!(s.auth.is_none());
    }

    #[test]
    fn bad_flag_is_an_error_naming_the_variable() {
        let env: HashMap<String, String> = [(
            "REDAUTH_ALLOW_PLAINTEXT_UPSTREAM".to_string(),
            "maybe".to_string(),
        )]
        .into();
        assert!(settings_from_env(&env)
            .unwrap_err()
            .contains("REDAUTH_ALLOW_PLAINTEXT_UPSTREAM"));
        let env: HashMap<String, String> =
            [("REDAUTH_MAX_CONNECTIONS".to_string(), "many".to_string())].into();
        assert!(settings_from_env(&env)
            .unwrap_err()
            .contains("REDAUTH_MAX_CONNECTIONS"));
    }
}
