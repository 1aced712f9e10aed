#!/usr/bin/env bash
# Signal forwarding latency: runner -- APP vs tini, dumb-init and catatonit (and the signal
# sent to APP directly), p50/p99 over 200 SIGUSR1 each, side by side in one run.
# Prints a markdown report and writes it to bench/results/signals-<date>.md.
# See bench/README.md. Environment knobs:
#   SKIP_BUILD=1        use the existing target/release/runner (or $RUNNER_BIN) without building
#   RUNNER_BIN=path     benchmark this runner binary instead of target/release/runner
#   QUICK=1             mark the report QUICK (the run is already short: ~5 s)
#   SIGNALS=N           signals per tool (default 200)
#   GAP_MS=N            spacing between signals (default 5)
#   JSON_OUT=path       also write the results as JSON
#   EXTRA="a=PATH,b=PATH"  more subjects run as `PATH -- PROGRAM`: an older runner for an
#                       A/B, or "floor" to build bench/apps/epoll-forward.c (the design's floor)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

missing=()
command -v tini >/dev/null || missing+=(tini)
command -v dumb-init >/dev/null || missing+=(dumb-init)
command -v catatonit >/dev/null || missing+=(catatonit)
command -v cc >/dev/null || missing+=(gcc)
install_missing
command -v python3 >/dev/null || { say "error: python3 is required"; exit 1; }

build_runner
extra=()
IFS=, read -r -a wanted <<<"${EXTRA:-}"
for kv in "${wanted[@]}"; do
    if [ "$kv" = floor ]; then
        floor_bin="$(mktemp -d)/epoll-forward"
        cc -O2 -o "$floor_bin" "$here/apps/epoll-forward.c"
        kv="epoll+signalfd floor=$floor_bin"
    fi
    extra+=(--extra "$kv")
done
run_report signals --runner "$runner" --signals "${SIGNALS:-200}" --gap-ms "${GAP_MS:-5}" "${extra[@]}"
