#!/usr/bin/env bash
# How runner's costs grow with the number of instances (10, 100, 1,000, 5,000), beside
# supervisord (numprocs) and PM2 (-i N), with the growth exponent of each figure. Prints a
# markdown report, writes it to bench/results/scale-<date>.md and the chart to
# bench/charts/scale.svg. See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             N = 10, 100, 1000; supervisord up to 100, PM2 up to 10
#   NS=10,100,1000,5000 the instance counts
#   SD_MAX=N            largest N for supervisord (default 1000: its start-up alone takes minutes beyond)
#   PM2_MAX=N           largest N for PM2 (default 100: each instance is a ~40 MiB Node process)
#   PM2_DIR=dir         where PM2 is npm-installed (default ~/.cache/runner-bench/pm2)
#   JSON_OUT=path       also write the results as JSON
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

missing=()
command -v supervisord >/dev/null || missing+=(supervisor)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
install_missing
command -v python3 >/dev/null || { say "error: python3 is required"; exit 1; }
ensure_pm2
[[ -x $pm2 ]] || say "warning: no PM2, its rows will be missing"

# 5,000 instances: each is a process (pids limit) and runner holds a few fds per instance
# at most (none for a plain `sleep`); the bound is raised so the run does not measure a limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ulimit -u unlimited 2>/dev/null || true
limits="ulimit -n $(ulimit -n), ulimit -u $(ulimit -u), kernel.pid_max $(cat /proc/sys/kernel/pid_max)"
say "limits: $limits"

build_runner
ns=${NS:-10,100,1000,5000}
sd_max=${SD_MAX:-1000}
pm2_max=${PM2_MAX:-100}
if [[ -n ${QUICK:-} ]]; then ns=${NS:-10,100,1000}; sd_max=${SD_MAX:-100}; pm2_max=${PM2_MAX:-10}; fi
args=(--runner "$runner" --ns "$ns" --supervisord-max "$sd_max" --pm2-max "$pm2_max"
    --chart "$here/charts/scale.svg" --limits "$limits")
[[ -x $pm2 ]] && args+=(--pm2 "$pm2")
run_report scale "${args[@]}"
