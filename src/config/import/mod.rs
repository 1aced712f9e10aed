//! Converters from other tools' files to ecosystem TOML: PM2 (`ecosystem.config.js`,
//! `.json`), supervisord (`.conf`, `.ini`) and process-compose (`.yaml`). `runner import`
//! prints what they produce; `runner FILE` loads a foreign file through the same
//! converter, so [`crate::config::load`] calls them too.

pub mod compose;
mod ini;
pub mod pm2;
pub mod supervisord;
