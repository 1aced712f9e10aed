//! dotenv files for `env_file`: `KEY=value` lines, `#` comments, blank lines, an optional
//! `export ` prefix, single or double quotes (which may span lines). No `${VAR}`
//! expansion: values are taken literally, as Docker's `--env-file` does.

/// A problem on a 1-based line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

fn valid_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Parses a whole file; returns the variables in file order (later ones win when merged)
/// and every malformed line.
pub fn parse(text: &str) -> (Vec<(String, String)>, Vec<DotenvError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = Vec::new();
    let mut errors = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let (consumed, result) = entry(rest);
        let here = line;
        line += rest[..consumed].matches('\n').count();
        rest = &rest[consumed..];
        match result {
            Ok(Some(kv)) => vars.push(kv),
            Ok(None) => {}
            Err(message) => errors.push(DotenvError {
                line: here,
                message,
            }),
        }
    }
    (vars, errors)
}

/// The end of the current line, newline included.
fn line_end(s: &str) -> usize {
    s.find('\n').map_or(s.len(), |i| i + 1)
}

/// Reads one entry (or a blank/comment line) from the start of `s`; returns how many bytes
/// it used, always at least one line, so a bad line never stops the rest being read.
fn entry(s: &str) -> (usize, Result<Option<(String, String)>, String>) {
    let eol = line_end(s);
    let line = s[..eol].trim_end_matches(['\n', '\r']);
    let body = line.trim_start();
    if body.is_empty() || body.starts_with('#') {
        return (eol, Ok(None));
    }
    let body = match body.strip_prefix("export") {
        Some(after) if after.starts_with([' ', '\t']) => after.trim_start(),
        _ => body,
    };
    let Some(eq) = body.find('=') else {
        return (
            eol,
            // Never the line itself: an env file holds secrets, and errors reach logs.
            Err("expected KEY=value (the line is not shown: env files hold secrets)".into()),
        );
    };
    let key = body[..eq].trim_end();
    if !valid_key(key) {
        return (
            eol,
            Err("the name before `=` is not a valid variable name (letters, digits, `_` and `.`, not starting with a digit; the line is not shown)".into()),
        );
    }
    // The value is read from `s`, not `line`, so that a quoted value can run past this line.
    let value_at = (body.as_ptr() as usize - s.as_ptr() as usize) + eq + 1;
    let value_start = s[value_at..].trim_start_matches([' ', '\t']);
    let start = s.len() - value_start.len();
    let quote = value_start.chars().next();
    match quote {
        Some(q @ ('"' | '\'')) => {
            let (value, used) = match quoted(&value_start[1..], q) {
                Some(v) => v,
                None => {
                    return (
                        eol,
                        Err(format!("`{key}`: unterminated {} quote", quote_name(q))),
                    )
                }
            };
            let after = start + 1 + used;
            let tail_end = after + line_end(&s[after..]);
            let tail = s[after..tail_end].trim();
            if !(tail.is_empty() || tail.starts_with('#')) {
                return (
                    tail_end,
                    Err(format!(
                        "`{key}`: unexpected text after the closing quote (not shown)"
                    )),
                );
            }
            (tail_end, Ok(Some((key.to_string(), value))))
        }
        _ => {
            let raw = &s[start..eol];
            let raw = raw.trim_end_matches(['\n', '\r']);
            // An unquoted `#` starts a comment only after whitespace, so `a#b` stays whole.
            let cut = raw
                .char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || raw[..i].ends_with([' ', '\t'])))
                .map_or(raw.len(), |(i, _)| i);
            (
                eol,
                Ok(Some((key.to_string(), raw[..cut].trim_end().to_string()))),
            )
        }
    }
}

fn quote_name(q: char) -> &'static str {
    if q == '"' {
        "double"
    } else {
        "single"
    }
}

/// The value up to the closing quote and the bytes used including that quote.
/// Double quotes understand `\n`, `\r`, `\t`, `\"`, `\\` and `\$`.
fn quoted(s: &str, q: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        if c == q {
            return Some((out, i + 1));
        }
        if c == '\\' && q == '"' {
            match it.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e @ ('"' | '\\' | '$'))) => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return None,
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        let (vars, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        vars
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn plain_lines_comments_blanks_and_export() {
        let text = "# top\n\nA=1\nexport B = two words \nC=\n  D=x # note\nE=a#b\r\n";
        assert_eq!(
            ok(text),
            [
                kv("A", "1"),
                kv("B", "two words"),
                kv("C", ""),
                kv("D", "x"),
                kv("E", "a#b")
            ]
        );
    }

    #[test]
    fn quoted_values_keep_spaces_and_may_span_lines() {
        let text = "A='  x # y '\nB=\"line1\\nline2 \\\"q\\\"\"  # c\nC=\"multi\nline\"\nD=after\n";
        assert_eq!(
            ok(text),
            [
                kv("A", "  x # y "),
                kv("B", "line1\nline2 \"q\""),
                kv("C", "multi\nline"),
                kv("D", "after")
            ]
        );
        assert_eq!(ok("A='$HOME \\n'"), [kv("A", "$HOME \\n")]);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line_and_the_rest_still_read() {
        let (vars, errors) = parse("A=1\nnot a pair\n1X=2\nB=\"open\nC=3\nD='x' junk\n");
        assert_eq!(vars, [kv("A", "1"), kv("C", "3")]);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 6]);
        assert!(errors[0].message.contains("KEY=value"));
        assert!(errors[1].message.contains("not a valid variable name"));
        assert!(errors[2].message.contains("unterminated double quote"));
        assert!(errors[3].message.contains("after the closing quote"));
    }

    #[test]
    fn errors_never_echo_the_files_content() {
        // An env file may be a secret (or a link to one): what is wrong is said, not shown.
        let (_, errors) = parse(
            "root:$6$hash:19000:0:99999:7:::
SECRET X=hunter2
A='x' hunter3
",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        for e in &errors {
            for secret in ["root", "$6$", "hash", "SECRET", "hunter"] {
                assert!(!e.message.contains(secret), "{e:?}");
            }
        }
    }

    #[test]
    fn odd_whitespace_and_unicode_do_not_break_parsing() {
        let (vars, _) = parse("A\u{3000}=1\nB=\u{3000}x\n\u{3000}C=é\n");
        assert!(vars.contains(&kv("B", "\u{3000}x")), "{vars:?}");
        for text in [
            "=",
            "A=\"",
            "A='",
            "A=\"\\",
            "\u{3000}",
            "A=\"x\"\u{3000}é",
            "é=1",
        ] {
            let _ = parse(text);
        }
    }

    #[test]
    fn export_alone_is_a_key_named_export() {
        assert_eq!(
            ok("export=1\nexported=2"),
            [kv("export", "1"), kv("exported", "2")]
        );
        assert_eq!(ok("\u{feff}A=1"), [kv("A", "1")]);
    }
}
