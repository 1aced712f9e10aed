# memhog.py MODE STAMP: appends "<ms> <pid>" to STAMP at start, then
#   grow:  allocates (and touches) 5 MB every 100 ms, up to 400 MB, then idles;
#   child: forks a child that does "grow" while this process stays small;
#   steady: allocates 10 MB once and idles.
import os, signal, sys, time

mode, stamp = sys.argv[1], sys.argv[2]
with open(stamp, "a") as f:
    f.write(f"{int(time.time() * 1000)} {os.getpid()}\n")

def grow():
    held = []
    for _ in range(80):
        held.append(bytearray(b"x" * (5 << 20)))
        time.sleep(0.1)
    while True:
        time.sleep(1)

signal.signal(signal.SIGINT, lambda *_: os._exit(0))
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
if mode == "grow":
    grow()
elif mode == "child":
    if os.fork() == 0:
        grow()
    while True:
        time.sleep(1)
else:
    held = bytearray(b"x" * (10 << 20))
    while True:
        time.sleep(1)
