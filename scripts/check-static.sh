#!/usr/bin/env bash
# Builds runner as a static binary (the Dockerfile's build stage does the same) and
# proves it needs no shared library: it runs as PID 1 of a new PID namespace chrooted
# into a folder holding only itself and a static test program, and passes the
# program's exit code on. Prints the binary's size for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet --target "$target"
bin="target/$target/release/runner"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
printf '#include <unistd.h>\nint main(void){ return getpid() == 2 && getppid() == 1 ? 3 : 1; }\n' > "$work/hello.c"
cc -static -O2 -o "$work/root/hello" "$work/hello.c"
cp "$bin" "$work/root/runner"

set +e
unshare --pid --fork --mount chroot "$work/root" /runner -- /hello 2>"$work/stderr"
rc=$?
set -e
if [ "$rc" != 3 ]; then
    echo "check-static: expected exit code 3 from the empty root, got $rc" >&2
    cat "$work/stderr" >&2
    exit 1
fi
if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "check-static: $bin links shared libraries:" >&2
    ldd "$bin" >&2
    exit 1
fi
echo "check-static: ok: $(stat -c %s "$bin") bytes, runs as PID 1 from an empty root"
