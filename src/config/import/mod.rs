//! Converters from other tools' files to ecosystem TOML: PM2 (`ecosystem.config.js`,
//! `.json`), supervisord (`.conf`, `.ini`) and process-compose (`.yaml`). `runner import`
//! prints what they produce; `runner FILE` loads a foreign file through the same
//! converter, so [`crate::config::load`] calls them too.

pub mod compose;
mod ini;
pub mod pm2;
pub mod supervisord;
mod toml_text;

use super::error::Diagnostic;

/// A converted file and what it could not carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub toml: String,
    /// Formatted `FILE:LINE: message`, for `runner` to log and `import` to print.
    pub warnings: Vec<String>,
}

impl Converted {
    /// The conversion's result: the TOML when nothing was wrong, else every error, in
    /// file and line order.
    pub fn or_errors(
        toml: String,
        warnings: Vec<String>,
        mut errors: Vec<Diagnostic>,
    ) -> Result<Converted, Vec<Diagnostic>> {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        if errors.is_empty() {
            Ok(Converted { toml, warnings })
        } else {
            Err(errors)
        }
    }
}
