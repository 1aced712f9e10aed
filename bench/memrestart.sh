#!/usr/bin/env bash
# Memory-restart reaction time: an app that jumps from ~10 MiB to 200 MiB over a 100M
# `max_memory_restart`, time until the replacement runs, runner vs PM2 (default 30 s worker
# interval), in one run. Prints a markdown report and writes it to
# bench/results/memrestart-<date>.md. See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             3 runner trials, PM2 not run (its first check comes 30 s after its start)
#   TRIALS=N            runner trials (default 5)
#   PM2_TRIALS=N        PM2 trials (default 3: about 95 s; QUICK: 0)
#   BOUND=S             longest wait for a restart (default 45)
#   PM2_DIR=dir         where PM2 is npm-installed (default ~/.cache/runner-bench/pm2)
#   JSON_OUT=path       also write the results as JSON
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
install_missing
command -v python3 >/dev/null || { say "error: python3 is required"; exit 1; }
ensure_pm2
[[ -x $pm2 ]] || say "warning: no PM2, its row will be missing"

build_runner
trials=${TRIALS:-5}
pm2_trials=${PM2_TRIALS:-3}
if [[ -n ${QUICK:-} ]]; then trials=${TRIALS:-3}; pm2_trials=${PM2_TRIALS:-0}; fi
args=(--runner "$runner" --trials "$trials" --pm2-trials "$pm2_trials" --bound "${BOUND:-45}")
[[ -x $pm2 ]] && args+=(--pm2 "$pm2")
run_report memrestart "${args[@]}"
