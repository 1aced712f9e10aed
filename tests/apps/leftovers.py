# leftovers.py DIR RUNNER SOCKET: leaves two double-forked daemons behind for runner's
# last sweep (run it with treekill = false), writing their pids to DIR/quitter.pid and
# DIR/stubborn.pid. The quitter exits on SIGTERM. The stubborn one ignores it: on SIGTERM
# it asks runner for `list --json` (answered while runner waits for the leftovers, not after
# a blocking wait), writes the reply to DIR/list (exit code, then the output) and, once
# the quitter's pid is gone from /proc (runner reaped it), "reaped" to DIR/reaped; then
# it waits for SIGKILL.
import os, signal, subprocess, sys, time

out, runner, sock = sys.argv[1], sys.argv[2], sys.argv[3]


def write(name, text):
    with open(os.path.join(out, name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))


def daemon(name, body):
    mid = os.fork()
    if mid == 0:
        os.setsid()
        if os.fork() == 0:
            while os.getppid() == mid:
                time.sleep(0.01)
            body()
            os._exit(0)
        os._exit(0)
    os.waitpid(mid, 0)


def quitter():
    write("quitter.pid", str(os.getpid()))
    while True:
        signal.pause()


def stubborn():
    termed = []
    signal.signal(signal.SIGTERM, lambda *_: termed.append(1))
    write("stubborn.pid", str(os.getpid()))
    while not termed:
        time.sleep(0.01)
    env = dict(os.environ, RUNNER_SOCKET=sock)
    r = subprocess.run([runner, "list", "--json"], env=env, capture_output=True, text=True)
    write("list", "%d\n%s" % (r.returncode, r.stdout))
    qpid = open(os.path.join(out, "quitter.pid")).read().strip()
    while os.path.exists("/proc/" + qpid):
        time.sleep(0.01)
    write("reaped", "reaped")
    while True:
        signal.pause()


daemon("quitter", quitter)
daemon("stubborn", stubborn)
while True:
    signal.pause()
