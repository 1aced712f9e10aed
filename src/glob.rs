//! The `ignore_watch` rule: which paths under a watched folder do not count as changes.
//!
//! A pattern without `/` is tried on every component of the path (so `node_modules` and
//! `*.log` ignore at any depth); a pattern with `/` is tried on the whole path relative
//! to the app's cwd, or on the absolute path when it starts with `/`. `*` and `?` never
//! cross a `/`, `**` does. Runner always ignores `node_modules` and any component that
//! starts with `.` (PM2's default `/[\/\\]\.|node_modules/`), unless it is itself a
//! watched root.

use std::path::Path;

/// True when `path` (absolute) is ignored for an app whose cwd is `cwd`.
pub fn ignored(path: &Path, cwd: &Path, roots: &[std::path::PathBuf], patterns: &[String]) -> bool {
    // What lies above a watched root is the user's choice, not a reason to ignore.
    let below_root = roots
        .iter()
        .filter_map(|r| path.strip_prefix(r).ok())
        .min_by_key(|rel| rel.as_os_str().len());
    let Some(rel_to_root) = below_root else {
        return false;
    };
    let components: Vec<String> = rel_to_root
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if components
        .iter()
        .any(|c| c == "node_modules" || (c.starts_with('.') && c != "." && c != ".."))
    {
        return true;
    }
    let rel_cwd = path
        .strip_prefix(cwd)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let abs = path.to_string_lossy();
    patterns.iter().any(|p| {
        let p = p.trim_end_matches('/');
        let p = p.strip_prefix("./").unwrap_or(p);
        if p.starts_with('/') {
            prefix_matches(p, &abs)
        } else if p.contains('/') {
            rel_cwd.as_deref().is_some_and(|r| prefix_matches(p, r))
        } else {
            components
                .iter()
                .any(|c| matches(p.as_bytes(), c.as_bytes()))
        }
    })
}

/// The pattern matches the path or one of its parent folders (ignoring a folder ignores
/// what is in it).
fn prefix_matches(pattern: &str, path: &str) -> bool {
    if matches(pattern.as_bytes(), path.as_bytes()) {
        return true;
    }
    path.match_indices('/')
        .any(|(i, _)| matches(pattern.as_bytes(), &path.as_bytes()[..i]))
}

/// Glob match of a whole string: `*` and `?` within one component, `**` across them.
pub fn matches(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            // `**/` also matches no folder at all.
            if rest.first() == Some(&b'/') && matches(&rest[1..], s) {
                return true;
            }
            (0..=s.len()).any(|i| matches(rest, &s[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if matches(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    return false;
                }
            }
            false
        }
        Some(b'?') => !s.is_empty() && s[0] != b'/' && matches(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && matches(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn ig(path: &str, patterns: &[&str]) -> bool {
        let pats: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        ignored(
            Path::new(path),
            Path::new("/app"),
            &[PathBuf::from("/app")],
            &pats,
        )
    }

    #[test]
    fn node_modules_and_dot_folders_are_ignored_by_default() {
        assert!(ig("/app/node_modules/x/index.js", &[]));
        assert!(ig("/app/.git/HEAD", &[]));
        assert!(ig("/app/src/.cache", &[]));
        assert!(!ig("/app/src/index.js", &[]));
    }

    #[test]
    fn patterns_without_slash_match_any_component() {
        assert!(ig("/app/logs/a.txt", &["logs"]));
        assert!(ig("/app/src/debug.log", &["*.log"]));
        assert!(!ig("/app/src/debug.log.js", &["*.log"]));
        assert!(ig("/app/tmp-1/x", &["tmp-?"]));
    }

    #[test]
    fn patterns_with_slash_match_from_the_cwd_or_the_root() {
        assert!(ig("/app/data/cache/x.bin", &["data/cache"]));
        assert!(!ig("/app/other/data/cache/x.bin", &["data/cache"]));
        assert!(ig("/app/a/b/c.tmp", &["**/*.tmp"]));
        assert!(ig("/app/c.tmp", &["**/*.tmp"]));
        assert!(ig("/app/public/img/a.png", &["/app/public"]));
        assert!(ig("/app/src/x.js", &["./src/"]));
        assert!(!ig("/app/srcx/x.js", &["src"]));
    }

    #[test]
    fn a_watched_root_is_never_ignored_by_the_defaults() {
        let roots = [PathBuf::from("/app/.config")];
        assert!(!ignored(
            Path::new("/app/.config/settings.json"),
            Path::new("/app"),
            &roots,
            &[]
        ));
    }
}
