//! Strips the release binary's symbols at link time (`RUNNER_KEEP_SYMBOLS=1` keeps them).
//!
//! Why here and not `strip = true` in Cargo.toml: a profile setting changes the crate's
//! symbol hashes, and `scripts/order-single.sh` reads the names of a release build with its
//! symbols kept. The code layout itself (single-program mode's functions first in `.text`,
//! issue 18) is made at link time by `scripts/link-gcc`, the linker `.cargo/config.toml`
//! names for x86_64 Linux GNU: only the link knows the mangled names to order.

fn main() {
    println!("cargo:rerun-if-env-changed=RUNNER_KEEP_SYMBOLS");
    println!("cargo:rerun-if-changed=single-program.order");
    println!("cargo:rerun-if-changed=scripts/link-gcc");
    // Release only: a debug build keeps its symbols for backtraces and debuggers.
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if release && std::env::var_os("RUNNER_KEEP_SYMBOLS").is_none_or(|v| v != "1") {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
}
