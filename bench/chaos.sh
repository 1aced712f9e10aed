#!/usr/bin/env bash
# Long-form chaos run of runner (tests/chaos.rs::chaos_under_load for DURATION seconds):
# a cluster HTTP app under constant load while instances are SIGKILLed, signals burst at
# runner, the control socket is abused, the cluster app is reloaded and the others
# restarted; every invariant of RELIABILITY.md is checked throughout.
#
#   bench/chaos.sh                      600 s, the issue's target
#   DURATION=60 bench/chaos.sh          shorter
#   SEED=123 RELOAD_MS=2000 bench/chaos.sh
#
# Needs python3 and a Rust toolchain; builds the release test binary. Prints the figures
# and checks the long-form target: >= 10 000 instance restarts, >= 100 reloads under load,
# zero failed requests, zero invariant violations (the test itself fails on a violation).
# The log and figures go to bench/results/chaos-<date>_<time>.{log,txt}.
set -uo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
SEED=${SEED:-0x5eedc4a05}
RELOAD_MS=${RELOAD_MS:-2000}
MIN_RESTARTS=${MIN_RESTARTS:-10000}
MIN_RELOADS=${MIN_RELOADS:-100}
STAMP=$(date -u +%F_%H%M%S)
mkdir -p bench/results
LOG=bench/results/chaos-$STAMP.log
FIG=bench/results/chaos-$STAMP.txt

echo "bench/chaos.sh: ${DURATION}s of chaos, seed $SEED, reload every ${RELOAD_MS} ms"
echo "bench/chaos.sh: log $LOG"
CHAOS_SECS=$DURATION CHAOS_SEED=$((SEED)) CHAOS_RELOAD_MS=$RELOAD_MS CHAOS_REPORT=$FIG \
    timeout $((DURATION + 900)) \
    cargo test --release --test chaos chaos_under_load -- --exact --nocapture >"$LOG" 2>&1
rc=$?
if [ ! -s "$FIG" ]; then
    echo "bench/chaos.sh: the run produced no figures (exit $rc); tail of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
fi
{
    echo "host: $(uname -srm), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)"
    echo "command: DURATION=$DURATION SEED=$SEED RELOAD_MS=$RELOAD_MS bench/chaos.sh"
    echo "test exit: $rc"
} >>"$FIG"
cat "$FIG"

restarts=$(awk '/^instance restarts/ {print $3}' "$FIG")
reloads=$(awk '/^reloads/ {print $2}' "$FIG")
failed=$(awk '/^failed requests/ {print $3}' "$FIG")
violations=$(awk '/^violations/ {print $2}' "$FIG")
verdict=PASS
[ "$rc" -eq 0 ] || verdict=FAIL
[ "${restarts:-0}" -ge "$MIN_RESTARTS" ] || { echo "target: restarts $restarts < $MIN_RESTARTS"; verdict=FAIL; }
[ "${reloads:-0}" -ge "$MIN_RELOADS" ] || { echo "target: reloads $reloads < $MIN_RELOADS"; verdict=FAIL; }
[ "${failed:-1}" -eq 0 ] || { echo "target: $failed failed requests"; verdict=FAIL; }
[ "${violations:-1}" -eq 0 ] || { echo "target: $violations violations (see $LOG)"; verdict=FAIL; }
echo "long-form target: $verdict" | tee -a "$FIG"
[ "$verdict" = PASS ]
