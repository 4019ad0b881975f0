//! "Did you mean …?": the closest of a few known words to a misspelt one.
//! Pure string distance, nothing else.

/// The candidate closest to `word`, if it is close enough to be a typo of it.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let allowed = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| {
            let c_lower = c.to_ascii_lowercase();
            // "warning" for "warn": a longer spelling is a near miss too.
            let prefix = word.starts_with(&c_lower) || c_lower.starts_with(&word);
            let distance = if prefix {
                1
            } else {
                edit_distance(&word, &c_lower)
            };
            (distance, c)
        })
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `" (did you mean X?)"`, or nothing when no candidate is close.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_nothing_else() {
        let keys = ["upstream", "username", "listen"];
        assert_eq!(closest("upstrem", keys), Some("upstream"));
        assert_eq!(closest("USERNAM", keys), Some("username"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(did_you_mean("lsiten", keys), " (did you mean listen?)");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
