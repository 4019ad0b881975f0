//! Where redauth's own log goes and how it looks: stderr, as text or JSON
//! lines, at `--log-level`.
//!
//! Written for `kubectl logs` and journald as much as for a terminal:
//! colour only when stderr is a terminal and `NO_COLOR` is not set, and at
//! the default level the identity SDK's own INFO lines (which credential it
//! picked, every failed HTTP response) are left out, since redauth says what
//! matters of them itself. A level of `debug` or `trace`, or any explicit
//! directive, shows everything asked for, except the lines of crates that
//! would print key material (the AWS signer's), which stay at INFO.

use crate::config::LogFormat;
use std::io::IsTerminal;

/// Crates whose INFO lines repeat what redauth reports better.
const CHATTY: &[&str] = &["azure_core", "azure_identity", "typespec_client_core"];

/// Crates whose DEBUG and TRACE lines carry key material, held at INFO
/// whatever the level asked for: aws-sigv4 traces the canonical request,
/// session token included.
const SECRET_BEARING: &[&str] = &["aws_sigv4"];

/// The filter directives for `level`: a bare `info` keeps [`CHATTY`] crates
/// at WARN; anything else is taken as given. [`SECRET_BEARING`] crates come
/// last, at INFO (a later directive for the same target replaces an earlier).
pub fn directives(level: &str) -> String {
    let guarded: Vec<String> = SECRET_BEARING.iter().map(|c| format!("{c}=info")).collect();
    let guarded = guarded.join(",");
    if level.trim().eq_ignore_ascii_case("info") {
        let quiet: Vec<String> = CHATTY.iter().map(|c| format!("{c}=warn")).collect();
        format!("info,{},{guarded}", quiet.join(","))
    } else {
        format!("{level},{guarded}")
    }
}

/// Whether to colour text logs: stderr is a terminal and `NO_COLOR` is
/// unset or empty (<https://no-color.org>).
fn colour(no_color: Option<&str>) -> bool {
    no_color.is_none_or(str::is_empty) && std::io::stderr().is_terminal()
}

/// Installs the global subscriber. `level` was validated with the rest of
/// the configuration.
pub fn init(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::new(directives(level));
    let no_color = std::env::var("NO_COLOR").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed: `redauth 2>&1 | head`)
        // is dropped. Left on, the formatter reports the failed write with
        // `eprintln!` to the same closed stderr, which panics.
        .log_internal_errors(false)
        .with_ansi(colour(no_color.as_deref()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_level_quiets_the_sdk_and_others_are_kept() {
        assert_eq!(
            directives("info"),
            "info,azure_core=warn,azure_identity=warn,typespec_client_core=warn,aws_sigv4=info"
        );
        assert_eq!(directives("debug"), "debug,aws_sigv4=info");
        assert_eq!(
            directives("info,azure_identity=info"),
            "info,azure_identity=info,aws_sigv4=info"
        );
        // Asked for by name, still held back.
        assert_eq!(
            directives("aws_sigv4=trace"),
            "aws_sigv4=trace,aws_sigv4=info"
        );
    }

    #[test]
    fn no_color_turns_colour_off() {
        assert!(!colour(Some("1")));
        // Under the test harness stderr is not a terminal anyway.
        assert!(!colour(None));
    }
}
