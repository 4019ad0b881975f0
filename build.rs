//! Records the git commit redauth is built from, for `--version`, the startup
//! line and the `redauth_build_info` metric, as `REDAUTH_GIT_COMMIT`.
//!
//! Taken from the `REDAUTH_GIT_COMMIT` variable when set (the container build
//! passes it, as its context holds no `.git`), else from `git rev-parse`, else
//! `unknown`. Reruns only when the variable or the checked-out commit changes.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=REDAUTH_GIT_COMMIT");
    let commit = std::env::var("REDAUTH_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=REDAUTH_GIT_COMMIT={}", commit.trim());
}

/// The short commit of HEAD, watching the files a new commit, checkout or
/// reset touches: HEAD, its reflog, the branch's loose ref and packed-refs.
///
/// Only files that exist are watched: cargo reruns a build script on every
/// build while a watched path is missing, and with it recompiles the crate
/// and every test binary (a repository without `packed-refs`, the usual
/// case, did exactly that). The reflog covers a commit to a branch whose
/// ref is only packed, where the loose ref file appears afterwards.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let mut watched = vec!["HEAD".to_string(), "logs/HEAD".into(), "packed-refs".into()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
