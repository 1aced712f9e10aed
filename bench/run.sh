#!/usr/bin/env bash
# Every benchmark in one run, side by side on this machine, then BENCHMARKS.md and the SVG
# charts in bench/charts/. See bench/README.md ("All benchmarks in one run").
#
#   sudo bench/run.sh            # full run: about 13 minutes plus the build on 2 CPUs
#   sudo bench/run.sh --quick    # smoke run: about 1 min 45 s; skips cluster.sh, PM2 in memrestart
#
# It installs what is missing (Debian: tini dumb-init catatonit supervisor wrk hyperfine
# gcc nodejs npm systemd; npm: pm2 into ~/.cache/runner-bench/pm2), builds runner once, runs
# core, signals, startup, logs, idle, memrestart, cluster and scale one after the other with
# SKIP_BUILD=1 (and QUICK=1 for --quick), keeps their reports in bench/results/, writes the
# run's metadata and JSON results to bench/results/run-<date>/ and calls bench/report.py.
# Environment knobs:
#   SKIP_BUILD=1        use target/release/runner as it is
#   ONLY="core idle"    run only these benchmarks (the others show as skipped)
#   PM2_DIR=dir         where PM2 is npm-installed (default ~/.cache/runner-bench/pm2)
#   Per-benchmark knobs (ORPHANS, WINDOW, DURATION, ROUNDS, LINES, RUNS, TRIALS, PM2_TRIALS,
#   ...) are not passed through: run that script alone to change them.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
quick=""
for arg in "$@"; do
    case $arg in
        --quick) quick=1 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
    esac
done

say() { echo "run: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

stamp=$(date +%Y-%m-%d_%H%M%S)
run_dir="$here/results/run-${quick:+quick-}$stamp"
mkdir -p "$run_dir"
meta="$run_dir/meta.tsv"
: >"$meta"
kv() { printf 'kv\t%s\t%s\n' "$1" "$2" >>"$meta"; }
t_all=$(now)
kv date "$(date '+%Y-%m-%d %H:%M:%S %Z')"
kv quick "${quick:-0}"
kv load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- peers ---------------------------------------------------------------------------
missing=()
for pair in tini:tini dumb-init:dumb-init catatonit:catatonit supervisord:supervisor wrk:wrk \
    hyperfine:hyperfine cc:gcc unshare:util-linux node:nodejs npm:npm systemd-notify:systemd file:file; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        apt-get update -qq >&2 || true
        # supervisor's postinst may try to start the service; there is no systemd here, ignore it.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
            say "warning: apt-get install failed; continuing with what is there"
    else
        say "missing ${missing[*]} (install them, or run as root on Debian/Ubuntu)"
    fi
fi
export PM2_DIR=${PM2_DIR:-$HOME/.cache/runner-bench/pm2}
pm2="$PM2_DIR/node_modules/.bin/pm2"
if [[ ! -x $pm2 ]] && command -v npm >/dev/null; then
    say "npm install pm2 into $PM2_DIR"
    mkdir -p "$PM2_DIR"
    [[ -f $PM2_DIR/package.json ]] || echo '{"private": true}' >"$PM2_DIR/package.json"
    (cd "$PM2_DIR" && npm install --no-audit --no-fund --silent pm2 >&2) || say "warning: npm install pm2 failed"
fi

# --- build once ------------------------------------------------------------------------
runner="$repo/target/release/runner"
t_build=$(now)
build_note=""
if [[ -z ${SKIP_BUILD:-} ]]; then
    ok=""
    for attempt in 1 2 3; do
        say "cargo build --release (attempt $attempt)"
        if (cd "$repo" && cargo build --release --quiet >&2); then ok=1; break; fi
        ((attempt < 3)) && { say "build failed (tree mid-edit?), retrying in 20 s"; sleep 20; }
    done
    if [[ -z $ok ]]; then
        [[ -x $runner ]] || { say "error: build failed and there is no $runner"; exit 1; }
        build_note="build failed, stale binary from $(date -r "$runner" '+%F %T')"
        say "warning: $build_note"
    fi
else
    build_note="SKIP_BUILD: binary from $(date -r "$runner" '+%F %T')"
fi
[[ -x $runner ]] || { say "error: $runner is not executable"; exit 1; }
kv build_s "$(since "$t_build")"
kv build_note "$build_note"
kv commit "$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo '?')"
kv describe "$(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')"
kv runner_version "$("$runner" --version 2>&1 | head -1)"
ver() {
    if command -v "$1" >/dev/null; then { "$@" 2>&1 || true; } | head -1; else echo "missing"; fi
}
pm2_v=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PM2_DIR/node_modules/pm2/package.json" 2>/dev/null | head -1)
kv peers "$(ver tini --version); $(ver dumb-init --version); catatonit $(ver catatonit -V | sed 's/.*version //'); supervisord $(ver supervisord --version); PM2 ${pm2_v:-missing} on Node.js $(ver node --version); $(ver wrk -v | cut -d' ' -f1-2); $(ver hyperfine --version); $(ver "$(command -v /usr/bin/python3 || command -v python3)" --version)"
export SKIP_BUILD=1
unset RUNNER_BIN
[[ -n $quick ]] && export QUICK=1 || unset QUICK

# --- benchmarks --------------------------------------------------------------------------
work=$(mktemp -d /tmp/runner-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT

# run_bench NAME "KNOB=V ..." [skip reason]
run_bench() {
    local name=$1 knobs=$2 skip=${3:-}
    if [[ -z $skip && -n ${ONLY:-} && " $ONLY " != *" $name "* ]]; then skip="not in ONLY"; fi
    if [[ -n $skip ]]; then
        say "$name: skipped ($skip)"
        printf 'bench\t%s\t0\t0\t\t%s\t%s\n' "$name" "$knobs" "$skip" >>"$meta"
        return
    fi
    say "$name: ${knobs:-defaults}"
    local t0 rc report secs
    t0=$(now)
    # shellcheck disable=SC2086 # knobs are words on purpose
    env $knobs JSON_OUT="$run_dir/$name.json" bash "$here/$name.sh" >"$work/$name.md" 2>"$run_dir/$name.stderr.log"
    rc=$?
    secs=$(since "$t0")
    report=$(sed -n 's/^bench: written to //p' "$run_dir/$name.stderr.log" | tail -1)
    [[ -s $run_dir/$name.json ]] || rm -f "$run_dir/$name.json"
    say "$name: exit $rc after $secs s${report:+, $report}"
    ((rc)) && tail -5 "$run_dir/$name.stderr.log" >&2
    printf 'bench\t%s\t%s\t%s\t%s\t%s\t\n' "$name" "$secs" "$rc" "$report" "$knobs" >>"$meta"
}

if [[ -n $quick ]]; then
    # About 100 s in all on 2 CPUs. cluster.sh is skipped: even with 4 s runs its six runs
    # (start, warm-up, settle, quiet wait, PM2 kill) take over a minute.
    if [[ $(id -u) == 0 ]]; then run_bench core "ORPHANS=2000"; else run_bench core "" "needs root"; fi
    run_bench signals "SIGNALS=200"
    run_bench startup "ROUNDS=2 PM2_ROUNDS=1"
    run_bench logs "LINES=300000 RUNS=2 PERF=0"
    run_bench idle "WINDOW=4"
    run_bench memrestart "TRIALS=3 PM2_TRIALS=0"
    run_bench cluster "" "quick mode: takes over a minute even with short runs; run bench/run.sh"
    run_bench scale "NS=10,100,1000 SD_MAX=100 PM2_MAX=10"
else
    if [[ $(id -u) == 0 ]]; then run_bench core ""; else run_bench core "" "needs root"; fi
    run_bench signals "SIGNALS=200"
    run_bench startup "ROUNDS=5"
    run_bench logs "PERF=0"
    run_bench idle "WINDOW=30"
    run_bench memrestart "TRIALS=5 PM2_TRIALS=3"
    run_bench cluster "DURATION=16 ROUNDS=2"
    run_bench scale ""
fi

kv load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
kv total_s "$(since "$t_all")"
py=$(command -v /usr/bin/python3 || command -v python3)
"$py" "$here/report.py" --run-dir "$run_dir" --out "$repo/BENCHMARKS.md" --charts "$here/charts" ||
    { say "error: report.py failed"; exit 1; }
say "total $(since "$t_all") s; run directory ${run_dir#"$repo"/}"
echo
cat "$run_dir/targets.md"
