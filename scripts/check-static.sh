#!/usr/bin/env bash
# Builds runner as a static binary (the Dockerfile's build stage does the same) and
# proves it needs no shared library: it runs as PID 1 of a new PID namespace chrooted
# into a folder holding only itself and a static test program, and passes the
# program's exit code on. Prints the binary's size for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
# The Dockerfile's build stage must say the same, or this script proves nothing about it.
for part in 'RUSTFLAGS="-C target-feature=+crt-static"' "cargo build --release --locked --target $target"; do
    if ! tr -d '\\\n' <Dockerfile | tr -s ' ' | grep -qF -- "$part"; then
        echo "check-static: the Dockerfile's build stage no longer runs: $part" >&2
        exit 1
    fi
done
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

# The final stage, as `docker run` would play it: the static binary as PID 1 of a PID
# namespace on the image's example, healthy by the HEALTHCHECK's `runner status`, then
# stopped with SIGTERM (what `docker stop` sends) and exiting 0.
if ! command -v python3 >/dev/null; then
    echo "check-static: python3 missing, final stage not played" >&2
    exit 0
fi
export RUNNER_SOCKET="$work/runner.sock"
unshare --pid --fork --mount-proc "$bin" examples/python-cluster/ecosystem.toml \
    >"$work/final.out" 2>&1 &
outer=$!
healthy=""
for _ in $(seq 300); do
    if "$bin" status >/dev/null 2>&1; then healthy=1; break; fi
    sleep 0.1
done
pid1=$(ps -o pid= --ppid "$outer" | tr -d ' ')
if [ -z "$healthy" ] || [ -z "$pid1" ]; then
    echo "check-static: the final stage never became healthy" >&2
    cat "$work/final.out" >&2
    kill -KILL "$outer" 2>/dev/null
    exit 1
fi
answer=$(python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8090/", timeout=5).read().decode().strip())')
kill -TERM "$pid1"
set +e
wait "$outer"
rc=$?
set -e
if [ "$rc" != 0 ]; then
    echo "check-static: the final stage exited $rc after SIGTERM" >&2
    cat "$work/final.out" >&2
    exit 1
fi
echo "check-static: ok: final stage healthy, answered \"$answer\", stopped with SIGTERM, exit 0"
