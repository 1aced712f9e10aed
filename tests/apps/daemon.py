# daemon.py OUT SECONDS: double-forks a daemon (setsid, parent exits) that lives SECONDS
# and exits; writes the daemon's pid to OUT; the main process stays until stopped.
import os, signal, sys, time

out, secs = sys.argv[1], float(sys.argv[2])
mid = os.fork()
if mid == 0:
    os.setsid()
    if os.fork() == 0:
        pid = os.getpid()
        # wait until re-parented (the middle process has exited) before announcing
        while os.getppid() == mid:
            time.sleep(0.01)
        with open(out + ".tmp", "w") as f:
            f.write(str(pid))
        os.rename(out + ".tmp", out)
        time.sleep(secs)
        os._exit(0)
    os._exit(0)
os.waitpid(mid, 0)
while True:
    signal.pause()
