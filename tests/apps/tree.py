# tree.py OUT: builds a process tree that a group signal alone would not stop, writes the
# pids (one "role pid" per line) to OUT, then waits for signals.
#   group    a child in the instance's process group
#   session  a child that called setsid (left the group)
#   orphan   a grandchild in its own session whose parent exited (re-parented)
import os, signal, subprocess, sys, time

out = sys.argv[1]
group = subprocess.Popen(["sleep", "1000"])
session = subprocess.Popen(["sleep", "1000"], start_new_session=True)
r, w = os.pipe()
mid = os.fork()
if mid == 0:
    os.setsid()
    gc = subprocess.Popen(["sleep", "1000"])
    os.write(w, str(gc.pid).encode())
    os._exit(0)
os.close(w)
os.waitpid(mid, 0)
orphan = int(os.read(r, 64))
with open(out + ".tmp", "w") as f:
    f.write(f"main {os.getpid()}\ngroup {group.pid}\nsession {session.pid}\norphan {orphan}\n")
os.rename(out + ".tmp", out)
while True:
    signal.pause()
