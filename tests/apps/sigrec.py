# sigrec.py OUT [EXIT_ON] [EXIT_CODE]
# Records every signal it receives to OUT (one name or number per line), then
# touches OUT.ready once its handlers are in place. Exits with EXIT_CODE (default 0)
# on any signal named in EXIT_ON (comma-separated, default SIGTERM,SIGINT; "none").
import os, signal, sys

out = sys.argv[1]
exit_on = set((sys.argv[2] if len(sys.argv) > 2 else "SIGTERM,SIGINT").split(","))
code = int(sys.argv[3]) if len(sys.argv) > 3 else 0

def name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return str(n)

def handler(n, _frame):
    with open(out, "a") as f:
        f.write(name(n) + "\n")
    if name(n) in exit_on:
        sys.exit(code)

for n in range(1, signal.NSIG):
    if n in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
        continue
    try:
        signal.signal(n, handler)
    except (OSError, ValueError):
        pass
open(out + ".ready", "w").write(str(os.getpid()))
while True:
    signal.pause()
