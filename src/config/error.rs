//! Diagnostics with file, line and column, and the error type `load` returns.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One finding about an ecosystem file (or a file it names, like an `env_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the finding has no position (e.g. an `--only` name).
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// Every problem found in an ecosystem file; nothing may start when this is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub(crate) fn new(diagnostics: Vec<Diagnostic>) -> Self {
        ConfigError { diagnostics }
    }

    /// An error about the file as a whole (unreadable, not UTF-8, ...).
    pub(crate) fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError::new(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
        }])
    }

    /// The findings, in the order they were found (file order within one app).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A text with its name, able to turn byte offsets (TOML spans) into line and column.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset; offsets past the end clamp.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        // Spans come from the parser and sit on char boundaries; if one ever does not,
        // counting bytes is a harmless approximation.
        let col = match self.text.get(start..offset) {
            Some(s) => s.chars().count(),
            None => offset - start,
        };
        (line + 1, col + 1)
    }

    pub fn diagnostic(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.position(span.start);
        Diagnostic {
            file: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_line_and_char_column() {
        let p = Path::new("f.toml");
        let s = Source::new(p, "ab\ncé d\n\nx");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(2), (1, 3));
        assert_eq!(s.position(3), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(s.position(6), (2, 3));
        assert_eq!(s.position(9), (3, 1));
        assert_eq!(s.position(10), (4, 1));
        assert_eq!(s.position(999), (4, 2));
    }

    #[test]
    fn error_display_is_one_diagnostic_per_line() {
        let p = Path::new("e.toml");
        let s = Source::new(p, "a\nb");
        let e = ConfigError::new(vec![
            s.diagnostic(&(2..3), "first"),
            Diagnostic {
                file: p.into(),
                line: 0,
                col: 0,
                message: "second".into(),
            },
        ]);
        assert_eq!(e.to_string(), "e.toml:2:1: first\ne.toml: second");
    }
}
