# life.py LABEL FILE: appends "LABEL start" to FILE, and "LABEL stop" when SIGINT or
# SIGTERM arrives, then exits 0.
import signal, sys

label, out = sys.argv[1], sys.argv[2]

def log(what):
    with open(out, "a") as f:
        f.write(f"{label} {what}\n")

def stop(_n, _f):
    log("stop")
    sys.exit(0)

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
log("start")
while True:
    signal.pause()
