//! Checking `--log-level`. `tracing`'s `EnvFilter` takes any word it does not
//! know as a target name, so `verbose` or `warning` would be accepted and
//! silence every log line; here a bare word must be a level, and a
//! `target=level` directive must end in one.

/// The levels, most verbose first.
pub const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Whether `text` is a level or a list of filter directives, with what is
/// wrong when it is not.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let usage = "use trace, debug, info, warn, error or off, or directives like redauth=debug,info";
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if let Err(word) = check_directive(directive) {
            let hint = super::suggest::did_you_mean(word, LEVELS.iter().copied());
            return Err(format!("{word:?} is not a log level{hint}: {usage}"));
        }
    }
    if text.trim().is_empty() {
        return Err(format!("it is empty: {usage}"));
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(drop)
        .map_err(|e| format!("{text:?} is not a filter ({e}): {usage}"))
}

/// One directive: `level`, `target=level`, or a span filter `target[span]`
/// (which enables every level). On error, the word that is not a level.
fn check_directive(directive: &str) -> Result<(), &str> {
    if directive.ends_with(']') {
        return Ok(());
    }
    let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
    if LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_pass() {
        for ok in [
            "info",
            "WARN",
            "off",
            "redauth=debug,info",
            "redauth::session=trace",
            "h2[conn]",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn words_envfilter_would_take_as_targets_are_refused() {
        let e = check("warning").unwrap_err();
        assert!(
            e.contains("\"warning\" is not a log level (did you mean warn?)"),
            "{e}"
        );
        assert!(check("verbose").unwrap_err().contains("trace, debug, info"));
        assert!(check("redauth=loud,info").unwrap_err().contains("\"loud\""));
        assert!(check("").is_err());
    }
}
