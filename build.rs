//! Links the code that single-program mode runs (`runner -- PROGRAM`) into one contiguous
//! stretch of `.text`, from the symbol list in `single-program.order`.
//!
//! Why: the kernel maps a binary's code in 64 KiB windows around each page it executes
//! (fault-around), so code touched at start-up but scattered over the binary made
//! nearly all of `.text` resident (issue 18). Listing those functions first makes the
//! resident part follow what runs. `scripts/order-single.sh` regenerates the list;
//! names it lists that a build lacks (another toolchain) are skipped silently: the binary
//! is the same, only laid out as before.
//!
//! The release binary's symbols are stripped here too (`RUNNER_KEEP_SYMBOLS=1` keeps them).
//!
//! Ordering only where the linker is lld: x86_64 Linux GNU with Rust 1.90 or later (its default
//! linker). `RUNNER_NO_SYMBOL_ORDER=1` turns it off for unusual linker set-ups.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=single-program.order");
    println!("cargo:rerun-if-env-changed=RUNNER_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=RUNNER_KEEP_SYMBOLS");
    // What `strip = true` did; see Cargo.toml for why it moved here.
    // Release only: a debug build keeps its symbols for backtraces and debuggers.
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if release && std::env::var_os("RUNNER_KEEP_SYMBOLS").is_none_or(|v| v != "1") {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    if std::env::var_os("RUNNER_NO_SYMBOL_ORDER").is_some_and(|v| v == "1") {
        return;
    }
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let minor = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut parts = v.split_whitespace().nth(1)?.split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next()?.parse().ok()?;
            Some(if major == 1 { minor } else { 0 })
        })
        .unwrap_or(0);
    if minor < 90 {
        return;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = format!("{dir}/single-program.order");
    if std::path::Path::new(&order).is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
