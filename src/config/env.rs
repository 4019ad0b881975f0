//! The environment layer of the configuration: the `REDAUTH_*` settings (every malformed one reported, naming the
//! variable and the type it needs) and a warning for each `REDAUTH_*`
//! variable that is no setting, since a typo would otherwise go unnoticed.

use super::settings::{keys, Settings, Shape};
use super::suggest::did_you_mean;
use crate::environment::Environment;
use serde::Deserialize;

/// The variable that holds the upstream password (there is no flag for it).
pub const PASSWORD_VAR: &str = "REDAUTH_PASSWORD";
/// The variable that names the configuration file.
pub const CONFIG_VAR: &str = "REDAUTH_CONFIG";

/// `REDAUTH_*` variables of this repository's scripts and tests, not of the
/// binary: set while it runs, they are no typo.
const TOOL_VARS: &[&str] = &[
    "REDAUTH_BIN",
    "REDAUTH_IMAGE",
    "REDAUTH_PORT",
    "REDAUTH_PID",
    "REDAUTH_APT_UPDATED",
];
const TOOL_PREFIXES: &[&str] = &["REDAUTH_DEMO_", "REDAUTH_BENCH_", "REDAUTH_SOAK_"];

/// The name of the variable for a setting: `REDAUTH_` + its key in upper case.
pub fn var_name(key: &str) -> String {
    format!("REDAUTH_{}", key.to_ascii_uppercase())
}

/// Reads the `REDAUTH_*` settings. Lists are comma-separated; flags take
/// true/false/1/0/yes/no/on/off; numbers are decimal. Returns the settings
/// of the well-formed variables and a message for each malformed one.
pub fn settings_from_env(env: &dyn Environment) -> (Settings, Vec<String>) {
    let mut table = toml::Table::new();
    let mut errors = Vec::new();
    for (key, shape) in keys() {
        let name = var_name(key);
        let Some(text) = env.var(&name) else { continue };
        let wrong = || format!("{name}: expected {}, got {text:?}", shape.expected());
        let Some(value) = value_of(&text, *shape) else {
            errors.push(wrong());
            continue;
        };
        // Each on its own, so a number out of range is caught here.
        let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
        if Settings::deserialize(alone).is_err() {
            errors.push(wrong());
            continue;
        }
        table.insert(key.clone(), value);
    }
    match Settings::deserialize(table) {
        Ok(settings) => (settings, errors),
        Err(e) => {
            errors.push(format!("environment: {e}"));
            (Settings::default(), errors)
        }
    }
}

/// A variable's text as a value of `shape`, or `None` if it is not one.
fn value_of(text: &str, shape: Shape) -> Option<toml::Value> {
    Some(match shape {
        Shape::Text => toml::Value::String(text.to_string()),
        Shape::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        Shape::Number => toml::Value::Integer(text.trim().parse::<i64>().ok()?),
        Shape::Flag => toml::Value::Boolean(match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" | "" => false,
            _ => return None,
        }),
    })
}

/// A warning for each `REDAUTH_*` variable that is no setting, with the
/// setting it most likely meant.
pub fn unknown_vars(env: &dyn Environment) -> Vec<String> {
    let known: Vec<String> = keys()
        .iter()
        .map(|(key, _)| var_name(key))
        .chain([PASSWORD_VAR.to_string(), CONFIG_VAR.to_string()])
        .collect();
    let mut names: Vec<String> = env
        .names()
        .into_iter()
        .filter(|n| n.starts_with("REDAUTH_") && !known.contains(n))
        .filter(|n| !TOOL_VARS.contains(&n.as_str()))
        .filter(|n| !TOOL_PREFIXES.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names
        .iter()
        .map(|name| {
            let hint = did_you_mean(name, known.iter().map(String::as_str));
            format!("{name} is not a redauth setting and is ignored{hint}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_lists_flags_and_text() {
        let env = env(&[
            ("REDAUTH_LISTEN", "127.0.0.1:1, 127.0.0.1:2"),
            ("REDAUTH_ALLOW_PLAINTEXT_UPSTREAM", "yes"),
            ("REDAUTH_UPSTREAM", "rediss://x:1"),
            ("REDAUTH_MAX_CONNECTIONS", "25"),
            ("REDAUTH_POOL_SIZE", "0"),
            ("UNRELATED", "z"),
        ]);
        let (s, errors) = settings_from_env(&env);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.listen.unwrap(), vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(s.allow_plaintext_upstream, Some(true));
        assert_eq!(s.upstream.as_deref(), Some("rediss://x:1"));
        assert_eq!(s.max_connections, Some(25));
        assert_eq!(s.pool_size, Some(0));
        assert!(s.auth.is_none());
    }

    #[test]
    fn every_malformed_variable_is_named_with_its_type() {
        let (s, errors) = settings_from_env(&env(&[
            ("REDAUTH_ALLOW_PLAINTEXT_UPSTREAM", "maybe"),
            ("REDAUTH_MAX_CONNECTIONS", "many"),
            ("REDAUTH_POOL_SIZE", "-1"),
            ("REDAUTH_THREADS", "2"),
        ]));
        assert_eq!(s.threads, Some(2));
        assert_eq!(
            errors,
            vec![
                "REDAUTH_ALLOW_PLAINTEXT_UPSTREAM: expected true or false, got \"maybe\"",
                "REDAUTH_POOL_SIZE: expected a whole number (0 or more), got \"-1\"",
                "REDAUTH_MAX_CONNECTIONS: expected a whole number (0 or more), got \"many\"",
            ]
        );
    }

    #[test]
    fn unknown_variables_are_named_with_a_guess() {
        let warnings = unknown_vars(&env(&[
            ("REDAUTH_UPSTREM", "x"),
            ("REDAUTH_PASSWORD", "x"),
            ("REDAUTH_LISTEN", "x"),
            ("REDAUTH_DEMO_PORT", "1"),
            ("REDAUTH_COLOUR", "x"),
            ("PATH", "x"),
        ]));
        assert_eq!(
            warnings,
            vec![
                "REDAUTH_COLOUR is not a redauth setting and is ignored",
                "REDAUTH_UPSTREM is not a redauth setting and is ignored (did you mean REDAUTH_UPSTREAM?)",
            ]
        );
    }
}
