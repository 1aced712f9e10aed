//! Arbitrary bytes as a PM2 JSON process file: serde_json, then `runner import`'s
//! converter. Beyond "no panic": whatever the converter emits must be valid TOML (a
//! user pipes `runner import` into a file), and the loader must then read it without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::config::{load_str, pm2::json_to_toml, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(text) = json_to_toml(&value) else {
        return;
    };
    if let Err(e) = toml::from_str::<toml::Table>(&text) {
        panic!("json_to_toml produced invalid TOML: {e}\n--- output ---\n{text}");
    }
    let dir = std::env::temp_dir().join("runner-fuzz-pm2");
    let _ = load_str(&text, &dir.join("ecosystem.toml"), &LoadOptions::default());
});
