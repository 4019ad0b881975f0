//! Records the git commit redauth is built from, for `--version`, the startup
//! line and the `redauth_build_info` metric, as `REDAUTH_GIT_COMMIT`.
//!
//! Taken from the `REDAUTH_GIT_COMMIT` variable when set (the container build
//! passes it, as its context holds no `.git`), else from `git rev-parse`, else
//! `unknown`. Reruns only when the variable or the checked-out commit changes.

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

/// The short commit of HEAD, watching HEAD and the branch it points to.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--git-path", "HEAD"])?;
    println!("cargo:rerun-if-changed={head}");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={path}");
        }
        if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
