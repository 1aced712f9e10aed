#!/bin/sh
# Chaos test crash-looper: runs ~60 ms, then exits 1 (ignores the forwarded signals).
trap '' HUP USR1 USR2
sleep 0.06
exit 1
