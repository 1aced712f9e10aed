#!/usr/bin/env bash
# Regenerates single-program.order: the functions `runner -- PROGRAM` executes (start,
# spawn, exec failure, signal forwarding, exit), which build.rs asks lld to place first
# in .text so that the resident code follows what runs (issue 18). Run it after a
# change that renames or moves what single-program mode runs. The list holds demangled
# paths without crate hashes (scripts/link-gcc maps them back to the names of each link),
# so toolchain and dependency updates and the static build's `--target` keep it valid.
# Needs valgrind. Builds the release binary with its symbols kept (RUNNER_KEEP_SYMBOLS=1),
# names it lists unchanged; run `cargo build --release` again afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "order-single: valgrind is required" >&2; exit 1; }
# The same profile as the release build (so the same symbol names), symbols kept.
RUNNER_KEEP_SYMBOLS=1 cargo build --release --quiet
bin=$(pwd)/target/release/runner
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# valgrind cannot follow the clone(CLONE_VM) that runner spawns with: fork instead, and
# add the clone path's own functions by name below.
export RUNNER_SPAWN=fork
grind() { valgrind --tool=callgrind --demangle=no --compress-strings=no --callgrind-out-file="$work/$1.out" "$bin" "${@:2}" 2>/dev/null; }
grind true -- true || true
grind fail -- sh -c 'exit 3' || true
grind missing -- /nonexistent/program || true
# A long child that runner forwards SIGTERM to.
valgrind --tool=callgrind --demangle=no --compress-strings=no \
    --callgrind-out-file="$work/term.out" "$bin" -- sleep 1000 2>/dev/null &
pid=$!
sleep 4
kill -TERM "$pid"
wait "$pid" || true
{
    for f in "$work"/*.out; do
        awk -v bin="$bin" '/^ob=/ { ob = substr($0, 4) } /^fn=/ { if (ob == bin) print substr($0, 4) }' "$f"
    done
    nm --defined-only --format=just-symbols "$bin" | grep -e clone_exec -e ChildStack
} | grep -v -e '^0x' -e '^(below main)$' | c++filt | sed -e 's/\[[0-9a-f]\{16\}\]//g' -e 's/::h[0-9a-f]\{16\}$//' |
    {
        cat
        # Run by the clone path only: the child itself (it shares runner's pages, so its
        # code is runner's resident code too) and the stack's page-size lookup.
        printf '%s\n' runner::supervisor::spawn::child runner::procfs::page_size \
            'std::sync::once_lock::OnceLock<T>::initialize' 'std::sync::once::Once::call_once_force::{{closure}}'
    } | sort -u >single-program.order
echo "order-single: $(wc -l <single-program.order) functions written to single-program.order"
