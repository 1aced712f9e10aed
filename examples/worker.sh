#!/bin/sh
# A background worker for the bundled example: does a unit of "work" every few seconds.
interval=2
[ "$1" = "--interval" ] && interval="$2"
n=0
# A background job of a non-interactive shell ignores SIGINT, so the trap ends it too.
trap 'kill "$pid" 2>/dev/null; echo "stopping after $n jobs"; exit 0' INT TERM
# `runner signal SIGUSR2 worker` asks for a progress report.
trap 'echo "$n jobs done so far"' USR2
while :; do
    n=$((n + 1))
    echo "job $n done"
    sleep "$interval" &
    pid=$!
    # A trapped signal interrupts `wait`; wait again until the sleep has really ended.
    while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
done
