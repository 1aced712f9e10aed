//! Arbitrary bytes, read as (lossy) UTF-8 TOML text, through the ecosystem loader.
//! Errors are expected and fine; a panic, a hang (-timeout) or unbounded allocation
//! (-rss_limit_mb) is a finding.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runner::config::{load_str, LoadOptions};

/// A private directory holding a few files the input may name (`app.sh`, `app.py`,
/// `.env`, a non-executable `data.txt`), so that the loader's script, interpreter and
/// env_file checks get past "not found" now and then.
fn eco_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("runner-fuzz-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let write = |name: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.join(name);
            let _ = std::fs::write(&p, text);
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
        };
        write("app.sh", "#!/bin/sh\nsleep 1\n", 0o755);
        write("app.py", "print(1)\n", 0o644);
        write("app.js", "1\n", 0o644);
        write("data.txt", "x\n", 0o644);
        write(".env", "A=1\n# c\nB=\"two words\"\nexport C='x'\n", 0o644);
        dir.join("ecosystem.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = eco_path();
    let _ = load_str(&text, path, &LoadOptions::default());
    // The same text under a profile and --only, which take other branches.
    if data.len().is_multiple_of(3) {
        let opts = LoadOptions {
            profile: Some("production".into()),
            only: vec!["web,api".into(), "worker".into()],
        };
        let _ = load_str(&text, path, &opts);
    }
});
