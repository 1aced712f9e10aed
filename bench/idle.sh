#!/usr/bin/env bash
# Idle benchmark: CPU time, wake-ups and RSS of runner, supervisord and PM2 while each
# supervises 50 sleeping instances, side by side in one run. Prints a markdown report and
# writes it to bench/results/idle-<date>.md. See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             10 s windows instead of 60 s (smoke test)
#   WINDOW=S            measurement window in seconds (default 60, QUICK 10)
#   ONLY=prefix         measure only the rows whose name starts with prefix (e.g. ONLY=runner)
#   PM2_DIR=dir         where PM2 is npm-installed (default ~/.cache/runner-bench/pm2)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
results="$here/results"
mkdir -p "$results"

say() { echo "bench: $*" >&2; }

# --- peers -----------------------------------------------------------------------------
missing=()
command -v supervisord >/dev/null || missing+=(supervisor)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
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
for t in node npm python3; do
    command -v "$t" >/dev/null || { say "error: $t is required"; exit 1; }
done
command -v supervisord >/dev/null || say "warning: no supervisord, its row will be missing"

# PM2 goes into a cache directory outside the repository (nothing to gitignore).
pm2_dir=${PM2_DIR:-$HOME/.cache/runner-bench/pm2}
pm2="$pm2_dir/node_modules/.bin/pm2"
if [[ ! -x $pm2 ]]; then
    say "npm install pm2 into $pm2_dir"
    mkdir -p "$pm2_dir"
    [[ -f $pm2_dir/package.json ]] || echo '{"private": true}' >"$pm2_dir/package.json"
    (cd "$pm2_dir" && npm install --no-audit --no-fund --silent pm2 >&2)
fi
[[ -x $pm2 ]] || { say "error: PM2 is not installed in $pm2_dir"; exit 1; }

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

# --- run -------------------------------------------------------------------------------
work=$(mktemp -d /tmp/runner-bench-idle.XXXXXX)
trap 'rm -rf "$work"' EXIT
window=${WINDOW:-60}
args=(--runner "$runner" --pm2 "$pm2" --build-note "$build_note")
if [[ -n ${QUICK:-} ]]; then
    window=${WINDOW:-10}
    args+=(--quick --settle 2)
fi
args+=(--window "$window")
[[ -n ${ONLY:-} ]] && args+=(--only "$ONLY")
py=$(command -v /usr/bin/python3 || command -v python3)
out="$results/idle-${QUICK:+quick-}$(date +%Y-%m-%d_%H%M%S).md"
"$py" "$here/idle.py" "${args[@]}" >"$work/report.md"
cp "$work/report.md" "$out"
cat "$out"
say "written to ${out#"$repo"/}"
