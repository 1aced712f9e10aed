#!/bin/sh
# Chaos test sleeper: ignores the forwarded signals; SIGINT (kill_signal) ends it.
trap '' HUP USR1 USR2
exec sleep 100000
