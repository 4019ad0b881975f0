//! The TOML configuration file, checked key by key so that every mistake in
//! it is reported at once: an unknown key (with the key it most likely
//! meant), a value of the wrong type, and `password`, which has no place in
//! a file. The keys that are right are still read, so that their own
//! values are checked too.

use super::names::in_file;
use super::settings::{keys, shape_of, Settings};
use super::suggest::did_you_mean;
use serde::Deserialize;
use std::path::Path;

/// Reads the TOML file at `path`: the settings of its good keys and a
/// message for each bad one, or why it cannot be read or parsed at all.
/// `name` is how the user named the file (`--config` or `REDAUTH_CONFIG`).
pub fn load_file(name: &str, path: &Path) -> Result<(Settings, Vec<String>), String> {
    super::files::check(name, path)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{name} {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
    let mut good = toml::Table::new();
    let mut errors = Vec::new();
    for (key, value) in table {
        match check_key(&key, &value) {
            Ok(()) => {
                good.insert(key, value);
            }
            Err(problem) => errors.push(format!("{}: {problem}", in_file(&key, path))),
        }
    }
    let settings = Settings::deserialize(good).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((settings, errors))
}

/// What is wrong with `key = value`, if anything. Never shows the value.
fn check_key(key: &str, value: &toml::Value) -> Result<(), String> {
    if key == "password" {
        return Err(
            "a password does not go in the config file: use password_file, or the REDAUTH_PASSWORD variable"
                .into(),
        );
    }
    let Some(shape) = shape_of(key) else {
        let hint = did_you_mean(key, keys().iter().map(|(k, _)| k.as_str()));
        return Err(format!("not a setting{hint}"));
    };
    let alone = toml::Table::from_iter([(key.to_string(), value.clone())]);
    match Settings::deserialize(alone) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "expected {}, got {}",
            shape.expected(),
            a_type(value)
        )),
    }
}

/// "a string", "an integer"…: what a TOML value is.
fn a_type(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(n) if *n < 0 => "a negative number".into(),
        toml::Value::Integer(_) => "an integer".into(),
        toml::Value::Array(_) => "an array".into(),
        other => format!("a {}", other.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (std::path::PathBuf, Result<(Settings, Vec<String>), String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, text).unwrap();
        (path.clone(), load_file("--config", &path))
    }

    #[test]
    fn reports_every_bad_key() {
        let (path, loaded) = load(
            "upstrem = \"rediss://x:1\"\npool_size = \"four\"\npassword = \"hunter2\"\nthreads = -1\nlisten = [\"6379\"]\n",
        );
        let (settings, errors) = loaded.unwrap();
        assert_eq!(settings.listen, Some(vec!["6379".to_string()]));
        let p = path.display();
        assert_eq!(
            errors,
            vec![
                format!("password in {p}: a password does not go in the config file: use password_file, or the REDAUTH_PASSWORD variable"),
                format!("pool_size in {p}: expected a whole number (0 or more), got a string"),
                format!("threads in {p}: expected a whole number (0 or more), got a negative number"),
                format!("upstrem in {p}: not a setting (did you mean upstream?)"),
            ]
        );
        assert!(!errors.iter().any(|e| e.contains("hunter2")));
    }

    #[test]
    fn good_keys_are_read() {
        let (_, loaded) = load("upstream = \"rediss://x:1\"\npool_size = 2\n");
        let (s, errors) = loaded.unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            (s.upstream.as_deref(), s.pool_size),
            (Some("rediss://x:1"), Some(2))
        );
    }

    #[test]
    fn a_missing_file_names_the_flag() {
        let e = load_file("REDAUTH_CONFIG", Path::new("/nonexistent/r.toml")).unwrap_err();
        assert_eq!(e, "REDAUTH_CONFIG /nonexistent/r.toml: no such file");
    }
}
