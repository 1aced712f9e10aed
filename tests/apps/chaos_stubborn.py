"""Chaos test app that ignores SIGINT (and the forwarded signals): only runner's SIGKILL
after kill_timeout ends it."""
import signal
import time

for s in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)
for _ in range(100000):
    time.sleep(1)
