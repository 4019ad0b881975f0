//! The crate keeps the layout `src/lib.rs` documents: each top-level module builds only on the
//! modules listed before it there (so there are no import loops), and no source file grows past
//! what a reader takes in at once.
//!
//! Both are read from the sources themselves: the order from the `# Layout` list of `lib.rs`
//! (`//! - [`name`]: …` lines), the imports from every `crate::name` path in code (comment lines
//! are skipped, so doc links to a later module are fine).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Lines a file in `src/` may have; the session redesign (issue 15) brought every file under it.
const MAX_LINES: usize = 500;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("read src/ entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules in the order `lib.rs`'s layout section lists them.
fn layout() -> Vec<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    lib.lines()
        .filter_map(|line| line.strip_prefix("//! - [`"))
        .filter_map(|rest| rest.split_once("`]"))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The module names that follow `crate::` in `line`.
fn crate_paths(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b::{c, d}};`: the first name of each top-level element.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let name = &group[i..];
                        let end = name
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .unwrap_or(name.len());
                        found.push(&name[..end]);
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            found.push(&rest[..end]);
        }
    }
    found
}

#[test]
fn modules_import_only_those_listed_before_them() {
    let order = layout();
    assert!(
        order.len() >= 10,
        "lib.rs's layout lists only {order:?}: is its `//! - [`name`]:` format still the same?"
    );
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(src()).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(&own) = rank.get(top.as_str()) else {
            continue; // lib.rs, main.rs
        };
        let text = fs::read_to_string(file).unwrap();
        // A multi-line `use crate::{…};` is joined so its group reads as one line.
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let joined = code.join(" ");
        for name in crate_paths(&joined) {
            if let Some(&theirs) = rank.get(name) {
                if theirs > own {
                    upward.push(format!("{} uses crate::{name}", relative.display()));
                }
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "modules import from modules listed after them in lib.rs's layout ({order:?}):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_a_reader_takes_in() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let mut long: Vec<String> = files
        .iter()
        .map(|f| (f, fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(f, lines)| format!("{} has {lines} lines", f.display()))
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by what they own):\n{}",
        long.join("\n")
    );
}

#[test]
fn crate_paths_reads_single_and_grouped_imports() {
    assert_eq!(crate_paths("use crate::resp::encode;"), vec!["resp"]);
    assert_eq!(
        crate_paths("use crate::{metrics::X, session, upstream::{a, b}};"),
        vec!["metrics", "session", "upstream"]
    );
    assert_eq!(
        crate_paths("let x = crate::config::parse(crate::version::V);"),
        vec!["config", "version"]
    );
    assert!(crate_paths("use super::x;").is_empty());
}
