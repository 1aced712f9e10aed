//! POSIX shell word splitting (for `args` strings) and quoting (for `runner check`),
//! without running a shell: no expansion, no globbing, no comments.

/// Splits a string into words the way `sh` would before expansion: whitespace separates,
/// single quotes are literal, double quotes allow `\"`, `\\`, `\$` and `` \` ``, and a
/// backslash outside quotes escapes the next character.
pub fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once any part of it is seen, so `''` yields an empty word.
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            // Backslash-newline is a line continuation.
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("a lone backslash at the end".into()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes a word so that `sh` reads it back as the same single word.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Joins argv for display, quoting only what needs it.
pub fn join(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn whitespace_separates_words() {
        assert_eq!(w("  a b\tc\n d "), ["a", "b", "c", "d"]);
        assert!(w("").is_empty());
        assert!(w("   ").is_empty());
    }

    #[test]
    fn quotes_group_and_backslashes_escape() {
        assert_eq!(w(r#"--name 'a b' "c d""#), ["--name", "a b", "c d"]);
        assert_eq!(w(r#"a\ b"#), ["a b"]);
        assert_eq!(w(r#"'it'\''s'"#), ["it's"]);
        assert_eq!(w(r#""say \"hi\" \$HOME \n""#), [r#"say "hi" $HOME \n"#]);
        assert_eq!(w(r#"'$HOME' "$HOME""#), ["$HOME", "$HOME"]);
        assert_eq!(w(r#"pre"mid"'post'"#), ["premidpost"]);
        assert_eq!(w(r#"'' """#), ["", ""]);
        assert_eq!(w("a\\\nb"), ["ab"]);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert!(split("'abc").unwrap_err().contains("single quote"));
        assert!(split("\"abc").unwrap_err().contains("double quote"));
        assert!(split("\"abc\\").is_err());
        assert!(split("abc\\").is_err());
    }

    #[test]
    fn quoting_round_trips_through_split() {
        for word in ["plain", "a b", "it's", "", "$HOME", "x=1,y", "é"] {
            assert_eq!(split(&quote(word)).unwrap(), [word], "{word}");
        }
        assert_eq!(quote("--port=8080"), "--port=8080");
        assert_eq!(
            join(&["sh".into(), "-c".into(), "echo hi".into()]),
            "sh -c 'echo hi'"
        );
    }
}
