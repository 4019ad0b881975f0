//! Inline commands (`SET a "b c"` typed into telnet), split the way Redis's
//! `sdssplitargs` does, quotes and escapes included.

use bytes::Bytes;

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line into arguments; `None` for unbalanced quotes.
///
/// Like the C original, which works on NUL-terminated strings, the line ends
/// at its first NUL byte.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Some(args);
        }
        let (arg, next) = split_one(line, p)?;
        args.push(Bytes::from(arg));
        p = next;
    }
}

/// Reads one argument starting at `p`; returns it and where scanning resumes.
fn split_one(line: &[u8], mut p: usize) -> Option<(Vec<u8>, usize)> {
    let at = |i: usize| line.get(i).copied();
    let mut current = Vec::new();
    let mut in_double = false;
    let mut in_single = false;
    loop {
        if in_double {
            let c = at(p)?;
            if c == b'\\' && at(p + 1) == Some(b'x') {
                if let (Some(hi), Some(lo)) =
                    (at(p + 2).and_then(hex_value), at(p + 3).and_then(hex_value))
                {
                    current.push(hi * 16 + lo);
                    p += 4;
                    continue;
                }
            }
            if c == b'\\' && at(p + 1).is_some() {
                let escaped = at(p + 1)?;
                current.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                p += 2;
                continue;
            }
            if c == b'"' {
                // A closing quote must be followed by a space or the end.
                if at(p + 1).is_some_and(|n| !is_space(n)) {
                    return None;
                }
                return Some((current, p + 1));
            }
            current.push(c);
            p += 1;
        } else if in_single {
            let c = at(p)?;
            if c == b'\\' && at(p + 1) == Some(b'\'') {
                current.push(b'\'');
                p += 2;
                continue;
            }
            if c == b'\'' {
                if at(p + 1).is_some_and(|n| !is_space(n)) {
                    return None;
                }
                return Some((current, p + 1));
            }
            current.push(c);
            p += 1;
        } else {
            match at(p) {
                None => return Some((current, p)),
                Some(b' ' | b'\n' | b'\r' | b'\t') => return Some((current, p)),
                Some(b'"') => in_double = true,
                Some(b'\'') => in_single = true,
                Some(c) => current.push(c),
            }
            p += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_args;

    fn split(s: &str) -> Option<Vec<String>> {
        split_args(s.as_bytes()).map(|v| {
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        })
    }

    #[test]
    fn plain_words() {
        assert_eq!(
            split("  SET  a b "),
            Some(vec!["SET".into(), "a".into(), "b".into()])
        );
        assert_eq!(split(""), Some(vec![]));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            split(r#"SET "a b" 'c d' "\x41\n" 'it\'s'"#),
            Some(vec![
                "SET".into(),
                "a b".into(),
                "c d".into(),
                "A\n".into(),
                "it's".into()
            ])
        );
        // A quote inside a word opens a quoted part, as in redis-cli.
        assert_eq!(split(r#"a"b c""#), Some(vec!["ab c".into()]));
    }

    #[test]
    fn unbalanced_or_glued_quotes_fail() {
        assert_eq!(split(r#"PING "a"#), None);
        assert_eq!(split("PING 'a"), None);
        assert_eq!(split(r#"PING "a"b"#), None);
        assert_eq!(split(r#"a"b"c"#), None);
    }
}
