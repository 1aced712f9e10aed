"""Chaos test app that keeps orphaning children: every 50-250 ms it double-forks a daemon
(setsid, middle process exits, so the daemon is re-parented to runner, the subreaper)
that lives 20-400 ms and exits. Bounded: at most 20000 daemons per run."""
import os
import random
import signal
import time

for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)
rng = random.Random(os.getpid())
for _ in range(20000):
    life = rng.uniform(0.02, 0.4)
    mid = os.fork()
    if mid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                time.sleep(life)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.waitpid(mid, 0)
    time.sleep(rng.uniform(0.05, 0.25))
