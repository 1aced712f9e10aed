#!/bin/sh
# A background worker for the bundled example: does a unit of "work" every few seconds.
interval=2
[ "$1" = "--interval" ] && interval="$2"
# A background job of a non-interactive shell ignores SIGINT, so the trap ends it too.
trap 'kill "$pid" 2>/dev/null; echo "worker: stopping after $n jobs"; exit 0' INT TERM
n=0
while :; do
    n=$((n + 1))
    echo "worker: job $n done"
    sleep "$interval" &
    pid=$!
    wait "$pid"
done
