#!/usr/bin/env bash
# Log throughput benchmark: lines/s through runner's log capture (log_prefix, time,
# out_file) vs the same producer piped into `cat`, side by side in one run.
# Prints a markdown report and writes it to bench/results/logs-<date>.md.
# See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             fewer lines and runs (smoke test, ~20 s plus the build)
#   LINES=N             lines per run (default 2000000; QUICK: 300000)
#   RUNS=N              rounds (default 5; QUICK: 2)
#   PERF=0              skip the `perf record` profile of runner (and the build with symbols
#                       it uses outside QUICK mode, into target/perf-logs, about a minute)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
results="$here/results"
mkdir -p "$results"

say() { echo "bench: $*" >&2; }

# --- peers -----------------------------------------------------------------------------
missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v python3 >/dev/null || missing+=(python3)
if [[ ${PERF:-1} != 0 ]] && ! command -v perf >/dev/null; then missing+=(linux-perf); fi
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        apt-get update -qq >&2 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
            say "warning: apt-get install failed; continuing with what is there"
    else
        say "missing ${missing[*]} (install them, or run as root on Debian/Ubuntu)"
    fi
fi
for t in cc python3 cat; do
    command -v "$t" >/dev/null || { say "error: $t is required"; exit 1; }
done

# --- runner --------------------------------------------------------------------------
build_note=""
runner=${RUNNER_BIN:-$repo/target/release/runner}
if [[ -z ${SKIP_BUILD:-} && -z ${RUNNER_BIN:-} ]]; then
    ok=""
    for attempt in 1 2 3; do
        say "cargo build --release (attempt $attempt)"
        if (cd "$repo" && cargo build --release --quiet >&2); then ok=1; break; fi
        ((attempt < 3)) && { say "build failed (tree mid-edit?), retrying in 20 s"; sleep 20; }
    done
    if [[ -z $ok ]]; then
        [[ -x $runner ]] || { say "error: build failed and there is no $runner"; exit 1; }
        say "warning: build failed; benchmarking the existing binary"
        build_note=" — **build failed, stale binary from $(date -r "$runner" '+%F %T')**"
    fi
fi
[[ -x $runner ]] || { say "error: $runner is not executable"; exit 1; }

# A copy with symbols for the profile (same profile otherwise: opt-level, LTO), in its
# own target dir so the benchmarked binary stays the one users get.
perf_runner=""
if [[ ${PERF:-1} != 0 && -z ${QUICK:-} && -z ${RUNNER_BIN:-} ]] && command -v perf >/dev/null; then
    say "cargo build --release with symbols for perf (target/perf-logs)"
    if (cd "$repo" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --quiet --target-dir "$repo/target/perf-logs" >&2); then
        perf_runner="$repo/target/perf-logs/release/runner"
    else
        say "warning: symbol build failed; the profile shows addresses only"
    fi
fi

# --- producer ----------------------------------------------------------------------------
work=$(mktemp -d /tmp/runner-bench-logs.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/producer.c" <<'EOF'
/* producer N WIDTH: N numbered lines of WIDTH bytes (newline included) on stdout,
 * through a 64 KiB buffer and write(2). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[65536];
static size_t used;

static void flush(void) {
    size_t off = 0;
    while (off < used) {
        ssize_t n = write(1, buf + off, used - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(3);
        }
        off += (size_t)n;
    }
    used = 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: producer N WIDTH\n"); return 2; }
    long n = atol(argv[1]);
    int width = atoi(argv[2]);
    if (width < 24 || width > 4096) { fprintf(stderr, "WIDTH: 24..4096\n"); return 2; }
    char line[4097];
    memset(line, 'x', sizeof line);
    for (long i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "line %010ld ", i);
        line[k] = 'x';
        line[width - 1] = '\n';
        if (used + (size_t)width > sizeof buf) flush();
        memcpy(buf + used, line, (size_t)width);
        used += (size_t)width;
    }
    flush();
    return 0;
}
EOF
cc -O2 -Wall -o "$work/producer" "$work/producer.c"

# --- run -------------------------------------------------------------------------------
args=(--runner "$runner" --producer "$work/producer" --work "$work" --build-note "$build_note")
if [[ -n ${QUICK:-} ]]; then
    args+=(--quick --lines "${LINES:-300000}" --runs "${RUNS:-2}")
else
    args+=(--lines "${LINES:-2000000}" --runs "${RUNS:-5}")
fi
[[ ${PERF:-1} == 0 ]] && args+=(--no-perf)
[[ -n $perf_runner ]] && args+=(--perf-runner "$perf_runner")
py=$(command -v /usr/bin/python3 || command -v python3)
out="$results/logs-${QUICK:+quick-}$(date +%Y-%m-%d_%H%M%S).md"
"$py" "$here/logs.py" "${args[@]}" >"$work/report.md"
cp "$work/report.md" "$out"
cat "$out"
say "written to ${out#"$repo"/}"
