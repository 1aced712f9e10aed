#!/usr/bin/env bash
# Start-up to all-online: runner (wait_ready apps saying READY=1 over sd_notify, and without
# wait_ready) vs supervisord (startsecs=0) vs PM2 (cold and warm daemon), 1 and 20 instances,
# side by side in one run. Prints a markdown report and writes it to
# bench/results/startup-<date>.md. See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             2 rounds, PM2 1 round (~15 s)
#   ROUNDS=N            rounds (default 5); PM2_ROUNDS=N for PM2 alone
#   PM2_DIR=dir         where PM2 is npm-installed (default ~/.cache/runner-bench/pm2)
#   JSON_OUT=path       also write the results as JSON
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

missing=()
command -v supervisord >/dev/null || missing+=(supervisor)
command -v systemd-notify >/dev/null || missing+=(systemd)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
install_missing
command -v python3 >/dev/null || { say "error: python3 is required"; exit 1; }
ensure_pm2
[[ -x $pm2 ]] || say "warning: no PM2, its rows will be missing"

build_runner
rounds=${ROUNDS:-5}
[[ -n ${QUICK:-} ]] && rounds=${ROUNDS:-2}
args=(--runner "$runner" --rounds "$rounds")
[[ -x $pm2 ]] && args+=(--pm2 "$pm2")
if [[ -n ${PM2_ROUNDS:-} ]]; then args+=(--pm2-rounds "$PM2_ROUNDS")
elif [[ -n ${QUICK:-} ]]; then args+=(--pm2-rounds 1); fi
run_report startup "${args[@]}"
