# orphans.py OUT N: run as a child of runner as PID 1 of a PID namespace. Creates N
# orphaned grandchildren (sh -c 'sleep 0.2 &': the sh exits, the sleep is re-parented to
# PID 1) and records how many it saw re-parented to PID 1; once they have all exited,
# samples /proc for zombies over a second and writes "orphans=A zombies=B" to OUT,
# where B counts zombies present in every sample. Exits 0.
import os, subprocess, sys, time

out, n = sys.argv[1], int(sys.argv[2])

def procs():
    res = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            rest = s[s.rfind(")") + 2:].split()
            res.append((int(d), rest[0], int(rest[1]), s[s.find("(") + 1:s.rfind(")")]))
    return res

for _ in range(n):
    subprocess.run(["sh", "-c", "sleep 0.3 &"])
orphans = {p for p, st, ppid, comm in procs() if ppid == 1 and comm == "sleep"}
time.sleep(1.0)  # every sleep 0.3 has ended by now
persistent = None
for _ in range(10):
    z = {p for p, st, ppid, comm in procs() if st == "Z"}
    persistent = z if persistent is None else persistent & z
    time.sleep(0.1)
with open(out + ".tmp", "w") as f:
    f.write(f"orphans={len(orphans)} zombies={len(persistent)}\n")
os.rename(out + ".tmp", out)
