//! Arbitrary bytes as a PM2 JSON process file: serde_json, then `runner import`'s
//! converter. Beyond "no panic": whatever the converter emits must be valid TOML (a
//! user pipes `runner import` into a file), and the loader must then read it without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::config::{load_str, pm2::json_to_toml, LoadOptions};

/// Known bug, reported (tests/chaos.rs::import_output_is_always_valid_toml): the
/// `# PM2 log_file = ...` comment is written without `comment()`, so a raw DEL (U+007F)
/// from the JSON fallback of `show_json` ends up in a TOML comment. Skipped unless
/// RUNNER_FUZZ_STRICT is set, so the run goes on to find other things.
fn known_bug(text: &str, err: &toml::de::Error) -> bool {
    if std::env::var_os("RUNNER_FUZZ_STRICT").is_some() {
        return false;
    }
    let Some(span) = err.span() else { return false };
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..].starts_with("# PM2 log_file = ")
        || text[line_start..].starts_with("# PM2 log = ")
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(text) = json_to_toml(&value) else {
        return;
    };
    if let Err(e) = toml::from_str::<toml::Table>(&text) {
        if known_bug(&text, &e) {
            return;
        }
        panic!("json_to_toml produced invalid TOML: {e}\n--- output ---\n{text}");
    }
    let dir = std::env::temp_dir().join("runner-fuzz-pm2");
    let _ = load_str(&text, &dir.join("ecosystem.toml"), &LoadOptions::default());
});
