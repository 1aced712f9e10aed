# notify.py [options]: an sd_notify-speaking app for the readiness tests.
#   --stamp FILE        append "<ms> start <label>" at launch, "<ms> ready <label>" just
#                       before READY=1, "<ms> stop <label>" on SIGINT/SIGTERM (then exit 0)
#   --label L           label in the stamp lines (default: pid)
#   --env-file FILE     write NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and the pid there
#   --ready-after S     send READY=1 after S seconds (default: never)
#   --status TEXT       send STATUS=TEXT along with READY=1
#   --watchdog N        after READY=1 send WATCHDOG=1 N times (-1: forever) ...
#   --watchdog-every S  ... every S seconds (default 0.1)
import os, signal, socket, sys, time

opts = {}
args = sys.argv[1:]
while args:
    k = args.pop(0)
    opts[k] = args.pop(0)

label = opts.get("--label", str(os.getpid()))
stamp = opts.get("--stamp")

def log(what):
    if stamp:
        with open(stamp, "a") as f:
            f.write(f"{int(time.time() * 1000)} {what} {label}\n")

def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(addr)
        s.send(msg.encode())
    finally:
        s.close()

def stop(_n, _f):
    log("stop")
    sys.exit(0)

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
log("start")
if "--env-file" in opts:
    tmp = opts["--env-file"] + ".tmp"
    with open(tmp, "w") as f:
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            f.write(f"{k}={os.environ.get(k, '')}\n")
        f.write(f"PID={os.getpid()}\n")
    os.rename(tmp, opts["--env-file"])
if "--ready-after" in opts:
    time.sleep(float(opts["--ready-after"]))
    msg = "READY=1"
    if "--status" in opts:
        msg += "\nSTATUS=" + opts["--status"]
    log("ready")
    notify(msg)
    n = int(opts.get("--watchdog", "0"))
    every = float(opts.get("--watchdog-every", "0.1"))
    while n != 0:
        time.sleep(every)
        notify("WATCHDOG=1")
        n -= 1
while True:
    signal.pause()
