#!/usr/bin/env python3
"""Measurement driver for bench/idle.sh: what a supervisor costs while its 50 children sleep.

runner (with and without max_memory_restart), supervisord and PM2 (with and without
max_memory_restart) each supervise 50 `sleep 100000`. Once all 50 exist and a settle time
has passed, the supervisor process is sampled at the start and end of a window: CPU time,
context switches (= wake-ups) and RSS. Tools run one after the other, never together.

Run through bench/idle.sh, which installs the peers and builds runner first. Prints one
markdown report on stdout. Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
N = 50


# ---------------------------------------------------------------- /proc helpers

def read_stat(pid):
    """(ppid, comm, utime+stime in ticks) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    lpar, rpar = raw.find(b"("), raw.rfind(b")")
    comm = raw[lpar + 1:rpar].decode(errors="replace")
    rest = raw[rpar + 2:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(rest[1]), comm, int(rest[11]) + int(rest[12])


def descendants(root):
    """{pid: comm} of every live descendant of root."""
    parent, comm = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st:
                parent[int(d)], comm[int(d)] = st[0], st[1]
    out = {}
    for pid in parent:
        p, seen = parent.get(pid), 0
        while p and p != root and p in parent and seen < 64:
            p, seen = parent[p], seen + 1
        if p == root:
            out[pid] = comm[pid]
    return out


def nprocs():
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


def sample(pid):
    """Counters of a process, summed over its threads where they are per thread."""
    st = read_stat(pid)
    if st is None:
        raise RuntimeError(f"pid {pid} is gone")
    vol = nonvol = 0
    sched_ms = 0.0
    threads = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        nonvol += int(line.split()[1])
            threads += 1
        except OSError:
            continue  # a thread that ended between listdir and open
        try:
            with open(f"/proc/{pid}/task/{tid}/sched") as f:
                for line in f:
                    if line.startswith("se.sum_exec_runtime"):
                        sched_ms += float(line.split(":")[1])
        except OSError:
            pass
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {"t": time.monotonic(), "ticks": st[2], "vol": vol, "nonvol": nonvol,
            "sched_ms": sched_ms, "rss_kib": rss, "threads": threads}


def wait_children(root, comm, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = sorted(p for p, c in descendants(root).items() if c == comm)
        if len(kids) >= count:
            return kids
        time.sleep(0.05)
    return None


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


# ---------------------------------------------------------------- tools

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    def __init__(self, binary, tmp, name, limit, metrics=False, scheduled=False):
        self.binary, self.tmp, self.name, self.limit = binary, tmp, name, limit
        self.dir = os.path.join(tmp, name.replace(" ", "_").replace("=", "-").replace('"', "").replace(",", ""))
        os.makedirs(self.dir)
        self.eco = os.path.join(self.dir, "ecosystem.toml")
        with open(self.eco, "w") as f:
            if metrics:
                # Enabled and never scraped: the listener alone must cost no wake-up.
                f.write(f'[runner]\nmetrics = "127.0.0.1:{free_port()}"\n\n')
            n = N - 2 if scheduled else N
            f.write(f'[[apps]]\nname = "s"\nscript = "sleep"\nargs = "100000"\ninstances = {n}\n')
            if limit:
                f.write('max_memory_restart = "1G"\n')
            if scheduled:
                # One cron app whose next run is hours away, one watched folder that
                # nothing changes: both must cost no wake-up.
                hour = (datetime.datetime.now().hour + 6) % 24
                os.makedirs(os.path.join(self.dir, "site", "src"))
                f.write(f'\n[[apps]]\nname = "cron"\nscript = "sleep"\nargs = "100000"\n'
                        f'cron_restart = "0 {hour} * * *"\n'
                        f'\n[[apps]]\nname = "watched"\nscript = "sleep"\nargs = "100000"\n'
                        f'cwd = "site"\nwatch = true\n')
        self.env = dict(os.environ, RUNNER_SOCKET=os.path.join(self.dir, "runner.sock"))
        self.proc = None

    def start(self):
        self.err = open(os.path.join(self.dir, "runner.log"), "w")
        self.proc = subprocess.Popen([self.binary, self.eco], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err,
                                     start_new_session=True, env=self.env)
        return self.proc.pid

    def stop(self, kids):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        kill_pids(kids)
        self.err.close()


class Supervisord:
    def __init__(self, binary, tmp):
        self.binary = binary
        self.dir = os.path.join(tmp, "supervisord")
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "supervisord.conf")
        d = self.dir
        with open(self.conf, "w") as f:
            f.write(f"""[supervisord]
nodaemon=true
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
loglevel=warn
user=root

[program:s]
command=sleep 100000
numprocs=50
process_name=%(program_name)s_%(process_num)02d
""")

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-n", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        return self.proc.pid

    def stop(self, kids):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        kill_pids(kids)


class PM2:
    def __init__(self, binary, tmp, name, limit, worker_interval=None):
        self.binary, self.name = binary, name
        self.dir = os.path.join(tmp, name.replace(" ", "_").replace("=", "-").replace(",", ""))
        os.makedirs(self.dir)
        self.home = os.path.join(self.dir, "home")
        self.eco = os.path.join(self.dir, "ecosystem.config.js")
        extra = ", max_memory_restart: '1G'" if limit else ""
        with open(self.eco, "w") as f:
            f.write("module.exports = {apps: [{name: 's', script: 'sleep', args: '100000', instances: 50, "
                    f"exec_mode: 'fork', interpreter: 'none'{extra}}}]}};\n")
        self.env = dict(os.environ, PM2_HOME=self.home)
        if worker_interval:
            self.env["PM2_WORKER_INTERVAL"] = str(worker_interval)
        self.daemon = None

    def pm2(self, *args, timeout=120):
        with open(os.path.join(self.dir, "pm2-cli.log"), "a") as log_f:
            return subprocess.run([self.binary, *args], stdin=subprocess.DEVNULL, stdout=log_f,
                                  stderr=subprocess.STDOUT, env=self.env, cwd=self.dir, timeout=timeout)

    def start(self):
        r = self.pm2("start", self.eco)
        if r.returncode != 0:
            raise RuntimeError(f"pm2 start exited {r.returncode}, see {self.dir}/pm2-cli.log")
        with open(os.path.join(self.home, "pm2.pid")) as f:
            self.daemon = int(f.read().strip())
        return self.daemon

    def stop(self, kids):
        try:
            self.pm2("kill", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if self.daemon:
            for _ in range(100):
                if read_stat(self.daemon) is None:
                    break
                time.sleep(0.1)
            kill_pids([self.daemon])
        kill_pids(kids)


# ---------------------------------------------------------------- measurement

def measure(tool, window, settle):
    log(f"{tool.name}: starting")
    pid = tool.start()
    kids = []
    try:
        t_start = time.monotonic()
        kids = wait_children(pid, "sleep", N, 90)
        if kids is None:
            raise RuntimeError(f"{tool.name}: {N} x sleep did not appear within 90 s")
        up = time.monotonic() - t_start
        time.sleep(settle)
        kids0 = set(p for p, c in descendants(pid).items() if c == "sleep")
        procs = nprocs()
        s0 = sample(pid)
        log(f"{tool.name}: {N} children after {up:.1f} s; measuring {window:.0f} s")
        time.sleep(window)
        s1 = sample(pid)
        kids1 = set(p for p, c in descendants(pid).items() if c == "sleep")
        dt = s1["t"] - s0["t"]
        return {
            "pid": pid, "up_s": up, "dt": dt,
            "cpu_ms_ticks": (s1["ticks"] - s0["ticks"]) * 1000.0 / CLK_TCK,
            "cpu_ms": s1["sched_ms"] - s0["sched_ms"],
            "vol": s1["vol"] - s0["vol"], "nonvol": s1["nonvol"] - s0["nonvol"],
            "rss_kib": s1["rss_kib"], "threads": s1["threads"],
            "replaced": len(kids0 - kids1), "children": len(kids1), "procs": procs,
        }
    finally:
        tool.stop(kids or [])


# ---------------------------------------------------------------- formatting

def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cmd_out(argv, env=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - informational only
        return f"? ({e})"


def pm2_version(pm2):
    """PM2's version from its package.json: `pm2 --version` would start a daemon."""
    try:
        pkg = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(pm2))), "package.json")
        with open(pkg) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def cpu_busy(interval=1.0):
    def s():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = s()
    time.sleep(interval)
    t1, i1 = s()
    return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def ratio(v, ref):
    if v is None or ref is None:
        return "—"
    if ref == 0:
        return "— (runner: 0)" if v else "= (both 0)"
    return f"{v / ref:.1f}x"


class Report:
    def __init__(self):
        self.lines = []

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        for r in rows:
            self.add("| " + " | ".join(str(c) for c in r) + " |")
        self.add("")

    def text(self):
        return "\n".join(self.lines) + "\n"


def verdict(ok):
    return "**met**" if ok else "**NOT met**"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--pm2", default="")
    ap.add_argument("--only-runner", action="store_true",
                    help="measure runner's rows only (no peers needed)")
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="measure only the tools whose row name starts with this (e.g. runner)")
    a = ap.parse_args()

    sup = shutil.which("supervisord")
    tmp = tempfile.mkdtemp(prefix="runner-bench-idle-")
    tools = [
        ("runner", Runner(a.runner, tmp, "runner", False), False),
        ("runner, max_memory_restart", Runner(a.runner, tmp, "runner limit", True), True),
        ("runner, metrics (no scrape)", Runner(a.runner, tmp, "runner metrics", False, metrics=True), False),
        ("runner, cron_restart + watch", Runner(a.runner, tmp, "runner scheduled", False, scheduled=True), False),
    ]
    if a.only_runner:
        sup = None
    if sup:
        tools.append(("supervisord", Supervisord(sup, tmp), False))
    tools += [] if a.only_runner else [
        ("PM2", PM2(a.pm2, tmp, "pm2", False), False),
        ("PM2, max_memory_restart", PM2(a.pm2, tmp, "pm2 limit", True), True),
        ("PM2, max_memory_restart, PM2_WORKER_INTERVAL=1000",
         PM2(a.pm2, tmp, "pm2 limit 1s", True, worker_interval=1000), True),
    ]
    if a.only:
        tools = [t for t in tools if t[0].startswith(a.only)]
    for name, tool, _ in tools:
        tool.name = name

    rep = Report()
    t0 = time.monotonic()
    load0, busy0 = loadavg(), cpu_busy()
    rev = cmd_out(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe", "--always", "--dirty"])
    rep.add(f"# runner idle benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
            f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, {cpu_model()}",
            f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}, tree `{rev}`){a.build_note}",
            f"- supervisord {cmd_out([sup, '--version']) if sup else 'not installed'}; "
            f"PM2 {pm2_version(a.pm2)} on Node.js {cmd_out(['node', '--version'])}",
            f"- 50 × `sleep 100000` per supervisor; window {a.window:.0f} s after all 50 exist plus "
            f"{a.settle:.0f} s settle; tools one after the other", "")
    if a.quick:
        rep.add("**QUICK mode: short window, numbers are indicative only. PM2's worker runs every 30 s "
                "by default, so a 10 s window may or may not contain one of its passes.**", "")

    res, fails = {}, []
    try:
        for name, tool, _ in tools:
            try:
                res[name] = measure(tool, a.window, a.settle)
            except Exception as e:  # noqa: BLE001 - report and go on with the other tools
                fails.append(f"{name}: {e}")
                log(f"{name}: FAILED: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rep.add("## Supervisor cost with 50 sleeping children", "",
            "Only the supervisor process is measured (for PM2, the God Daemon; its threads summed), "
            "not the children. *CPU* = `se.sum_exec_runtime` from `/proc/PID/task/*/sched` "
            "(µs resolution), *ticks* = utime+stime from `/proc/PID/stat` (10 ms resolution). "
            "*Wake-ups* = voluntary + involuntary context switches of all its threads, from "
            "`/proc/PID/task/*/status`: every return from a blocking wait is one. RSS = VmRSS at the end "
            "of the window. Ratios: rows without a memory limit against runner, rows with one against "
            "runner with `max_memory_restart`.", "")
    ref_plain = res.get("runner")
    ref_limit = res.get("runner, max_memory_restart")
    rows = []
    for name, _, limited in tools:
        r = res.get(name)
        if not r:
            rows.append([name] + ["failed"] + [""] * 9)
            continue
        ref = ref_limit if limited else ref_plain
        wps = (r["vol"] + r["nonvol"]) / r["dt"]
        rwps = (ref["vol"] + ref["nonvol"]) / ref["dt"] if ref else None
        rows.append([
            name,
            f"{r['cpu_ms']:.1f}", f"{r['cpu_ms_ticks']:.0f}", f"{100 * r['cpu_ms'] / 1000 / r['dt']:.3f}%",
            f"{wps:.2f}", f"{r['vol']} / {r['nonvol']}",
            f"{r['rss_kib'] / 1024:.1f}", str(r["threads"]),
            ratio(r["cpu_ms"], ref["cpu_ms"] if ref else None),
            ratio(wps, rwps),
            ratio(r["rss_kib"], ref["rss_kib"] if ref else None),
        ])
    rep.table(["tool", "CPU ms in window", "ticks ms", "CPU %", "wake-ups/s", "vol / invol",
               "RSS MiB", "threads", "CPU / runner", "wake-ups / runner", "RSS / runner"], rows)
    notes = []
    for name, _, _ in tools:
        r = res.get(name)
        if r and (r["replaced"] or r["children"] != N):
            notes.append(f"- {name}: {r['replaced']} children replaced during the window, "
                         f"{r['children']} at the end")
    if notes:
        rep.add("Children that changed during the window (restarts would distort the figures):", "",
                *notes, "")
    if fails:
        rep.add("Failures:", "", *[f"- {f}" for f in fails], "")
    if res:
        any_r = next(iter(res.values()))
        rep.add(f"Start-up (50 children exist, seconds): " +
                ", ".join(f"{n} {r['up_s']:.1f}" for n, r in res.items()) + ". "
                f"Processes on the machine during the runs: about {any_r['procs']} "
                "(runner's memory check reads `/proc` once a second for the trees of its instances).", "")

    rep.add("## Targets", "")
    if ref_plain:
        w = ref_plain["vol"] + ref_plain["nonvol"]
        rep.add(f"- runner without limits does no periodic work: {w} wake-ups in "
                f"{ref_plain['dt']:.0f} s: {verdict(w == 0)}.")
    ref_metrics = res.get("runner, metrics (no scrape)")
    if ref_metrics:
        w = ref_metrics["vol"] + ref_metrics["nonvol"]
        rep.add(f"- runner with `[runner] metrics` and no scrape does no periodic work: {w} wake-ups in "
                f"{ref_metrics['dt']:.0f} s: {verdict(w == 0)}.")
    if ref_limit:
        for n in [n for n, _, _ in tools if not n.startswith("runner") and n in res and n != "PM2"]:
            c = res[n]["cpu_ms"]
            rep.add(f"- runner with `max_memory_restart` uses less CPU than {n}: "
                    f"{ref_limit['cpu_ms']:.1f} ms vs {c:.1f} ms ({n} / runner: {ratio(c, ref_limit['cpu_ms'])}): "
                    f"{verdict(ref_limit['cpu_ms'] < c)}.")
    rep.add("", "Notes:", "",
            "- supervisord has no memory limit of its own (superlance's `memmon` is a separate event "
            "listener), so it appears once, without a limit; it still wakes up on its own timer.",
            "- PM2 checks `max_memory_restart` in its worker, every `PM2_WORKER_INTERVAL` ms "
            "(default 30000); runner checks every second. The last row gives PM2 the same 1 s period.",
            "")

    busy1 = cpu_busy()
    rep.add("---", "", f"Measured in {time.monotonic() - t0:.0f} s. Before: CPUs {busy0:.0f}% busy over 1 s, "
            f"load average {load0}; after: CPUs {busy1:.0f}% busy, load average {loadavg()}. "
            "Context switches do not depend on load; CPU time does a little (cache misses, "
            "contention for `/proc`).", "")
    sys.stdout.write(rep.text())


if __name__ == "__main__":
    main()
