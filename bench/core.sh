#!/usr/bin/env bash
# Core benchmark: runner vs tini vs dumb-init (and supervisord), side by side in one run.
# Prints a markdown report and writes it to bench/results/core-<date>.md.
# See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             fewer runs (smoke test, ~30 s plus the build)
#   ORPHANS=N           orphans per reaping run (default 5000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
results="$here/results"
mkdir -p "$results"

say() { echo "bench: $*" >&2; }

# --- peers -----------------------------------------------------------------------------
missing=()
command -v tini >/dev/null || missing+=(tini)
command -v dumb-init >/dev/null || missing+=(dumb-init)
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v supervisord >/dev/null || missing+=(supervisor)
command -v cc >/dev/null || missing+=(gcc)
command -v unshare >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        apt-get update -qq >&2
        # supervisor's postinst may try to start the service; there is no systemd here, ignore it.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
            say "warning: apt-get install failed; continuing with what is there"
    else
        say "missing ${missing[*]} (install them, or run as root on Debian/Ubuntu)"
    fi
fi
for t in tini dumb-init hyperfine cc unshare python3; do
    command -v "$t" >/dev/null || { say "error: $t is required"; exit 1; }
done
if [[ $(id -u) != 0 ]]; then
    say "error: the reaping benchmark needs root (unshare --pid --mount-proc)"
    exit 1
fi

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
# A freshly written binary sits dirty in the page cache; flush it so smaps sees clean pages.
sync "$runner" 2>/dev/null || sync

# --- orphan spawner --------------------------------------------------------------------
work=$(mktemp -d /tmp/runner-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/orphans" "$here/orphans.c"

# --- run -------------------------------------------------------------------------------
args=(--runner "$runner" --orphans "$work/orphans" --orphans-n "${ORPHANS:-5000}" --build-note "$build_note")
if [[ -n ${QUICK:-} ]]; then
    args+=(--quick --rss-runs 2 --eco-runs 1 --startup-runs 48 --warmup 5 --interleaved-runs 50 --orphan-rounds 1)
fi
py=$(command -v /usr/bin/python3 || command -v python3)
out="$results/core-${QUICK:+quick-}$(date +%Y-%m-%d_%H%M%S).md"
"$py" "$here/core.py" "${args[@]}" >"$work/report.md"
cp "$work/report.md" "$out"
cat "$out"
say "written to ${out#"$repo"/}"
