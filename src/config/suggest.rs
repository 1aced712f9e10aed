//! "Did you mean ...?" for unknown keys and names.

/// Edit distance over characters where swapping two neighbours counts as one edit
/// (optimal string alignment): `SIGTREM` is one edit from `SIGTERM`, the most common kind
/// of typo.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the previous is needed for transpositions.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Case and separator folded, so `killTimeout` and `kill-timeout` find `kill_timeout`.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The candidate closest to `word`, when it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Long inputs cannot be typos of short keys, and would make the quadratic distance
    // expensive on hostile input.
    if word.chars().count() > 64 {
        return None;
    }
    let folded = fold(word);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if fold(c) == folded {
            0
        } else {
            distance(word, c)
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (word.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

/// "; did you mean `x`?" or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["instances", "interpreter", "kill_timeout", "name", "script"];

    #[test]
    fn typos_find_the_intended_key() {
        assert_eq!(closest("instnces", KEYS.iter().copied()), Some("instances"));
        assert_eq!(closest("scirpt", KEYS.iter().copied()), Some("script"));
        assert_eq!(
            closest("killTimeout", KEYS.iter().copied()),
            Some("kill_timeout")
        );
        assert_eq!(
            closest("kill-timeout", KEYS.iter().copied()),
            Some("kill_timeout")
        );
        assert_eq!(closest("Name", KEYS.iter().copied()), Some("name"));
    }

    #[test]
    fn unrelated_words_get_no_suggestion() {
        assert_eq!(closest("zzzzzzzzzz", KEYS.iter().copied()), None);
        assert_eq!(closest(&"x".repeat(10_000), KEYS.iter().copied()), None);
        assert_eq!(did_you_mean("qq", std::iter::empty()), "");
        assert_eq!(distance("", "abc"), 3);
    }
}
