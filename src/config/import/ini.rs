//! The INI dialect supervisord reads (Python's `RawConfigParser` as supervisord sets it
//! up): `[section]` headers, `key = value` or `key: value`, keys case-insensitive,
//! `;` and `#` comments on their own line or after whitespace, and indented lines that
//! continue the value above. Written by hand: it is small, and a general INI crate
//! differs from Python's on exactly these points.

/// One `key = value` with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lowercased, as Python's `optionxform` does.
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// One `[name]` section and its entries in file order (a repeated key: the last wins,
/// as in Python with `strict=False`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// A syntax error: the 1-based line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses the whole text; every malformed line is reported.
pub fn parse(text: &str) -> Result<Vec<Section>, Vec<SyntaxError>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut errors = Vec::new();
    // Whether the last line was a key, so an indented line continues its value.
    let mut in_value = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            in_value = false;
            continue;
        }
        if trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if indented && in_value {
            if let Some(e) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
                let more = strip_inline_comment(trimmed);
                if !more.is_empty() {
                    if !e.value.is_empty() {
                        e.value.push('\n');
                    }
                    e.value.push_str(more);
                }
            }
            continue;
        }
        in_value = false;
        let content = strip_inline_comment(trimmed);
        if let Some(rest) = content.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if !name.trim().is_empty() => sections.push(Section {
                    name: name.trim().to_string(),
                    line,
                    entries: Vec::new(),
                }),
                _ => errors.push(SyntaxError {
                    line,
                    message: format!(
                        "malformed section header `{content}`: write `[program:NAME]`"
                    ),
                }),
            }
            continue;
        }
        let Some(at) = content.find(['=', ':']) else {
            errors.push(SyntaxError {
                line,
                message: format!("`{content}` is not `key = value`"),
            });
            continue;
        };
        let key = content[..at].trim().to_ascii_lowercase();
        let value = content[at + 1..].trim().to_string();
        if key.is_empty() {
            errors.push(SyntaxError {
                line,
                message: format!("`{content}` has no key before `{}`", &content[at..=at]),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            errors.push(SyntaxError {
                line,
                message: format!("`{key}` comes before any [section] header"),
            });
            continue;
        };
        section.entries.push(Entry { key, value, line });
        in_value = true;
    }
    if errors.is_empty() {
        Ok(sections)
    } else {
        Err(errors)
    }
}

/// Cuts a `;` or `#` comment that follows whitespace, as Python's
/// `inline_comment_prefixes` does (so `a;b` and `http://x#y` are kept).
fn strip_inline_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b';' || bytes[i] == b'#') && bytes[i - 1].is_ascii_whitespace() {
            return s[..i].trim_end();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_comments_and_continuations() {
        let text = "; top comment\n[program:web]\nCommand = /bin/app --x ; inline\n\
                    url=http://h/#frag\nenvironment = A=1,\n   B=\"2,3\"\n\n# done\n[group:g]\nprograms: web\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "program:web");
        assert_eq!(s[0].get("command").unwrap().value, "/bin/app --x");
        assert_eq!(s[0].get("command").unwrap().line, 3);
        assert_eq!(s[0].get("url").unwrap().value, "http://h/#frag");
        assert_eq!(s[0].get("environment").unwrap().value, "A=1,\nB=\"2,3\"");
        assert_eq!(s[1].get("programs").unwrap().value, "web");
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line() {
        let e = parse("x = 1\n[program:a\n[program:b]\njunk\n").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 4]);
    }
}
