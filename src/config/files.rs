//! The files named in the settings: each must be a readable regular file,
//! checked before anything binds; secret files are read here (one trailing
//! newline dropped) and draw a warning when others can read them.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why `path` cannot be read as a file, in a few words; `None` when it can.
fn unreadable(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => return Some(io_reason(&e)),
        Ok(meta) if meta.is_dir() => return Some("is a directory, not a file".into()),
        Ok(meta) if !meta.is_file() => return Some("is not a regular file".into()),
        Ok(_) => {}
    }
    std::fs::File::open(path).err().map(|e| io_reason(&e))
}

/// `"{name} {path}: {reason}"` when the file named by setting `name` cannot
/// be read.
pub(crate) fn check(name: &str, path: &Path) -> Result<(), String> {
    match unreadable(path) {
        Some(reason) => Err(format!("{name} {}: {reason}", path.display())),
        None => Ok(()),
    }
}

/// Reads a secret file, dropping one trailing newline; errors name the
/// setting and the path, never the content.
pub(crate) fn read_secret(name: &str, path: &Path) -> Result<String, String> {
    check(name, path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{name} {}: {}", path.display(), io_reason(&e)))?;
    Ok(crate::credentials::password_file::content(&text).to_string())
}

/// A warning when a file holding a secret can be read by group or others.
pub(crate) fn loose_permissions(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds a secret and is readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        )
    })
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "pw\r\n").unwrap();
        assert_eq!(check("--ca-file", &file), Ok(()));
        assert_eq!(read_secret("--password-file", &file).unwrap(), "pw");
        let missing = dir.path().join("nope");
        assert_eq!(
            check("--ca-file", &missing).unwrap_err(),
            format!("--ca-file {}: no such file", missing.display())
        );
        assert!(check("--client-key", dir.path())
            .unwrap_err()
            .ends_with("is a directory, not a file"));
    }
}
