#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      SECONDS per target, default 600
#
#   JOBS=2 fuzz/run.sh 600                 two targets at a time (one core each)
#   FUZZ_TOOLCHAIN=nightly fuzz/run.sh     use a real nightly instead of stable+RUSTC_BOOTSTRAP
#
# Each run: -max_total_time=SECONDS, -rss_limit_mb=2048 (unbounded allocation is a
# finding), -timeout=5 (an input taking over 5 s is a hang), a dictionary of the format's
# keys, and the corpus seeded from the repository's real files (fuzz/make_seeds.py).
# Logs: fuzz/logs/TARGET.log; crashes: fuzz/artifacts/TARGET/. Exit 1 if any target
# found something. Not part of `cargo test`.
set -uo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(config_load control_request pm2_json procfs_stat node_ipc)
JOBS=${JOBS:-1}
export RUSTUP_TOOLCHAIN=${FUZZ_TOOLCHAIN:-stable}
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, -Cpasses=sancov-module...);
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. Harmless on nightly.
export RUSTC_BOOTSTRAP=1

mkdir -p fuzz/logs fuzz/corpus fuzz/artifacts
python3 -W ignore fuzz/make_seeds.py fuzz/corpus || exit 1
cargo fuzz build -O 2>&1 | tail -n 3
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz/run.sh: build failed" >&2; exit 1; }

dict_for() {
    case "$1" in
        config_load) echo fuzz/dict/toml.dict ;;
        pm2_json) echo fuzz/dict/json.dict ;;
        control_request) echo fuzz/dict/control.dict ;;
        procfs_stat) echo fuzz/dict/procfs.dict ;;
        node_ipc) echo fuzz/dict/json.dict ;;
    esac
}

run_one() {
    local t=$1 log=fuzz/logs/$1.log
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "fuzz/run.sh: $t for ${SECS}s -> $log"
    cargo fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=5 \
        -dict="$(dict_for "$t")" -print_final_stats=1 \
        >"$log" 2>&1
    local rc=$?
    local stats
    stats=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1)
    local execs
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    printf '%s rc=%s execs=%s last: %s\n' "$t" "$rc" "${execs:-?}" "$stats" | tee -a fuzz/logs/summary.txt
    return $rc
}
export -f run_one dict_for
export SECS

date -u +"== %Y-%m-%dT%H:%M:%SZ fuzz/run.sh $SECS s, jobs $JOBS" >>fuzz/logs/summary.txt
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}
rc=$?
ls fuzz/artifacts/*/ 2>/dev/null | grep -E 'crash|oom|timeout|leak' && rc=1
exit $rc
