"""Chaos test app whose child leaves its process group (setsid) and sleeps: a group
signal misses it, so runner must find it in /proc to stop the instance's whole tree."""
import os
import signal
import time

for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    os.setsid()
    for _ in range(100000):
        time.sleep(1)
    os._exit(0)
for _ in range(100000):
    time.sleep(1)
