# Shared by startup.sh, signals.sh and memrestart.sh (sourced, not run): paths, peer
# installation, the runner build and the report writer.
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
results="$here/results"
mkdir -p "$results"

say() { echo "bench: $*" >&2; }

install_missing() {
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
}

ensure_pm2() {
    # PM2 goes into a cache directory outside the repository, shared with idle.sh and cluster.sh.
    pm2_dir=${PM2_DIR:-$HOME/.cache/runner-bench/pm2}
    pm2="$pm2_dir/node_modules/.bin/pm2"
    if [[ ! -x $pm2 ]] && command -v npm >/dev/null; then
        say "npm install pm2 into $pm2_dir"
        mkdir -p "$pm2_dir"
        [[ -f $pm2_dir/package.json ]] || echo '{"private": true}' >"$pm2_dir/package.json"
        (cd "$pm2_dir" && npm install --no-audit --no-fund --silent pm2 >&2) || say "warning: npm install pm2 failed"
    fi
}

build_runner() {
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
}

# Runs $here/$1.py with the remaining arguments, saves the report as results/$1-<date>.md.
run_report() {
    local name=$1; shift
    local out py
    work=$(mktemp -d "/tmp/runner-bench-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    py=$(command -v /usr/bin/python3 || command -v python3)
    out="$results/$name-${QUICK:+quick-}$(date +%Y-%m-%d_%H%M%S).md"
    "$py" "$here/$name.py" "$@" ${JSON_OUT:+--json "$JSON_OUT"} ${QUICK:+--quick} \
        --build-note "$build_note" >"$work/report.md"
    cp "$work/report.md" "$out"
    cat "$out"
    say "written to ${out#"$repo"/}"
}
