#!/usr/bin/env python3
"""Measurement driver for bench/memrestart.sh: how soon a supervisor restarts an app that
went over `max_memory_restart`, runner vs PM2 (with its default 30 s worker interval).

The app (Python, written by this script) appends `start PID T` to an events file when it
starts (T = CLOCK_MONOTONIC ns), then polls for a trigger file every 5 ms. When the file
appears it deletes it, allocates and touches 200 MiB at once, and appends `alloc PID T0 T1
RSS` (T0/T1 = before/after the allocation, RSS in KiB after). The limit is 100M, so the app
is over it from somewhere inside [T0, T1] on; the benchmark counts from T1 (conservative
for the faster tool). Measured per trial:

- *reaction*: T1 → the `start` line of a new PID (the replacement is running);
- *kill*: T1 → the old PID gone (polled in /proc every 2 ms).

The trigger is created at a random moment for runner (uniform over its 1 s check period).
PM2's check runs on a fixed 30 s timer started with its daemon, so back-to-back trials would
all land just after a pass and wait the full 30 s; instead the k PM2 trials trigger at
stratified phases, (i + 0.5)/k of a period before the next pass (the first pass estimated
from the daemon's start time, later ones from the observed restarts), which samples PM2's
uniform 0-30 s wait evenly. A trial that sees no restart within --bound seconds is recorded as censored at the
bound. Both tools keep running across their trials (one runner, one PM2 daemon). runner
and PM2 stop the app with SIGINT (both defaults), and Python exits on it at once.

Prints a markdown report; --json PATH writes the raw results. Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PM2_INTERVAL = 30.0  # PM2_WORKER_INTERVAL's default, ms / 1000

APP = r"""
import os, sys, time
events, trigger = sys.argv[1], sys.argv[2]

def emit(line):
    with open(events, "a") as f:
        f.write(line + "\n")

emit(f"start {os.getpid()} {time.monotonic_ns()}")
hog = None
while True:
    if hog is None and os.path.exists(trigger):
        try:
            os.unlink(trigger)
        except OSError:
            pass
        t0 = time.monotonic_ns()
        hog = b"x" * (200 << 20)   # malloc + memset: every page is touched, RSS grows at once
        t1 = time.monotonic_ns()
        with open("/proc/self/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        emit(f"alloc {os.getpid()} {t0} {t1} {rss}")
    time.sleep(0.005)
"""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cmd_out(argv, env=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        lines = (r.stdout + r.stderr).strip().splitlines()
        return lines[0] if lines else "?"
    except Exception as e:  # noqa: BLE001 - informational only
        return f"? ({e})"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        return raw[raw.rfind(b")") + 2:raw.rfind(b")") + 3] != b"Z"
    except OSError:
        return False


def descendants(root):
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        parent[int(d)] = int(raw[raw.rfind(b")") + 2:].split()[1])
    out = []
    for pid in parent:
        p, n = parent.get(pid), 0
        while p and p != root and p in parent and n < 64:
            p, n = parent[p], n + 1
        if p == root:
            out.append(pid)
    return out


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class Events:
    def __init__(self, path):
        self.path = path
        self.seen = 0

    def new(self):
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            return []
        # Only complete lines: one read may catch the app in the middle of a write.
        lines = text.split("\n")[:-1]
        out = lines[self.seen:]
        self.seen = len(lines)
        return [l.split() for l in out]


def trial(tool, ev, trigger, cur_pid, bound, pre_wait):
    """One trigger → restart. Returns a dict; cur_pid is the app's current pid."""
    time.sleep(pre_wait)
    open(trigger, "w").close()
    t_trig = time.monotonic_ns()
    alloc = None
    t_gone = None
    new = None
    deadline = time.monotonic() + bound + 5
    while time.monotonic() < deadline:
        for e in ev.new():
            if e[0] == "alloc" and int(e[1]) == cur_pid and alloc is None:
                alloc = {"t0": int(e[2]), "t1": int(e[3]), "rss_kib": int(e[4])}
                deadline = alloc["t1"] / 1e9 + bound
            elif e[0] == "start" and int(e[1]) != cur_pid:
                new = {"pid": int(e[1]), "t": int(e[2])}
        if t_gone is None and not alive(cur_pid):
            t_gone = time.monotonic_ns()
        if new:
            break
        time.sleep(0.002)
    if alloc is None:
        raise RuntimeError(f"{tool}: the app did not allocate within {bound} s of the trigger")
    r = {"alloc_ms": (alloc["t1"] - alloc["t0"]) / 1e6, "trigger_to_alloc_ms": (alloc["t1"] - t_trig) / 1e6,
         "rss_mib": alloc["rss_kib"] / 1024, "censored": new is None}
    if new:
        r["reaction_s"] = (new["t"] - alloc["t1"]) / 1e9
        r["new_pid"] = new["pid"]
    else:
        r["reaction_s"] = bound
        r["new_pid"] = None
        try:
            os.unlink(trigger)
        except OSError:
            pass
    r["kill_s"] = (t_gone - alloc["t1"]) / 1e9 if t_gone else None
    r["gone_mono_s"] = t_gone / 1e9 if t_gone else None
    return r


def wait_start(ev, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in ev.new():
            if e[0] == "start":
                return int(e[1])
        time.sleep(0.01)
    raise RuntimeError(f"the app did not start within {timeout} s")


def run_runner(a, tmp, trials, py):
    d = os.path.join(tmp, "runner")
    os.makedirs(d)
    app, events, trigger = os.path.join(tmp, "app.py"), os.path.join(d, "events"), os.path.join(d, "trigger")
    eco = os.path.join(d, "ecosystem.toml")
    with open(eco, "w") as f:
        f.write(f'[[apps]]\nname = "hog"\nscript = "{py}"\nargs = ["{app}", "{events}", "{trigger}"]\n'
                f'interpreter = "none"\nmax_memory_restart = "100M"\n')
    env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"))
    err = open(os.path.join(d, "runner.log"), "w")
    proc = subprocess.Popen([a.runner, eco], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            start_new_session=True, env=env)
    out = []
    try:
        ev = Events(events)
        pid = wait_start(ev, 10)
        for i in range(trials):
            r = trial("runner", ev, trigger, pid, a.bound, random.uniform(0.2, 1.2))
            out.append(r)
            log(f"runner trial {i + 1}/{trials}: reaction {r['reaction_s'] * 1000:.0f} ms"
                + (" (censored)" if r["censored"] else ""))
            if r["censored"]:
                break
            pid = r["new_pid"]
    finally:
        kids = descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        kill_pids(kids)
        err.close()
    return out


def run_pm2(a, tmp, trials, py):
    d = os.path.join(tmp, "pm2")
    os.makedirs(d)
    app, events, trigger = os.path.join(tmp, "app.py"), os.path.join(d, "events"), os.path.join(d, "trigger")
    home = os.path.join(d, "home")
    env = dict(os.environ, PM2_HOME=home)
    env.pop("PM2_WORKER_INTERVAL", None)
    eco = os.path.join(d, "ecosystem.config.js")
    with open(eco, "w") as f:
        f.write("module.exports = {apps: [{name: 'hog', script: %s, args: %s, interpreter: 'none', "
                "max_memory_restart: '100M'}]};\n" % (json.dumps(py), json.dumps([app, events, trigger])))
    out = []
    daemon = None
    try:
        r = subprocess.run([a.pm2, "start", eco], env=env, cwd=d, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"pm2 start exited {r.returncode}: {r.stderr[-300:]}")
        with open(os.path.join(home, "pm2.pid")) as f:
            daemon = int(f.read().strip())
        ev = Events(events)
        pid = wait_start(ev, 20)
        # PM2's worker timer starts with the daemon and ticks every 30 s regardless of restarts.
        # First estimate of a tick: the daemon's start (from /proc, CLOCK_BOOTTIME jiffies, equal to
        # CLOCK_MONOTONIC on a machine that never suspended) plus its ~0.5 s boot, plus one period;
        # after each restart the tick is re-anchored on the moment the old pid went away.
        with open(f"/proc/{daemon}/stat", "rb") as f:
            raw = f.read()
        started = int(raw[raw.rfind(b")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")
        tick = started + 0.5 + PM2_INTERVAL
        # Stratified phases: the trigger lands (i + 0.5)/k of a period before the next tick, so
        # the k trials sample PM2's uniform 0-30 s wait evenly (the median is its median).
        waits = sorted(((i + 0.5) / trials * PM2_INTERVAL for i in range(trials)), reverse=True)
        for i, w in enumerate(waits):
            now = time.monotonic()
            while tick - w < now + 0.2:
                tick += PM2_INTERVAL
            r = trial("PM2", ev, trigger, pid, a.bound, tick - w - now)
            r["planned_wait_s"] = w
            out.append(r)
            log(f"PM2 trial {i + 1}/{trials} (trigger {w:.1f} s before the estimated worker pass): "
                f"reaction {r['reaction_s']:.1f} s" + (" (censored at the bound)" if r["censored"] else ""))
            if r["censored"]:
                break
            pid = r["new_pid"]
            if r["kill_s"] is not None:
                tick = r["gone_mono_s"] - 0.05 + PM2_INTERVAL
    finally:
        kids = descendants(daemon) if daemon else []
        try:
            subprocess.run([a.pm2, "kill"], env=env, cwd=d, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if daemon:
            for _ in range(100):
                if not alive(daemon):
                    break
                time.sleep(0.05)
            kill_pids([daemon])
        kill_pids(kids)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--pm2", default=None)
    ap.add_argument("--trials", type=int, default=5, help="runner trials")
    ap.add_argument("--pm2-trials", type=int, default=3, help="PM2 trials (0: skip PM2)")
    ap.add_argument("--bound", type=float, default=45.0, help="seconds to wait for a restart")
    ap.add_argument("--json", default=None)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()

    py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else shutil.which("python3")
    tmp = tempfile.mkdtemp(prefix="runner-bench-memrestart-")
    with open(os.path.join(tmp, "app.py"), "w") as f:
        f.write(APP)
    t_start = time.monotonic()
    load0 = loadavg()
    res, fails = {}, []
    try:
        try:
            res["runner"] = run_runner(a, tmp, a.trials, py)
        except Exception as e:  # noqa: BLE001 - report and go on
            fails.append(f"runner: {e}")
            log(f"runner: FAILED: {e}")
        if a.pm2 and a.pm2_trials > 0:
            try:
                res["PM2"] = run_pm2(a, tmp, a.pm2_trials, py)
            except Exception as e:  # noqa: BLE001
                fails.append(f"PM2: {e}")
                log(f"PM2: FAILED: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    pm2_version = "not run"
    if a.pm2:
        try:
            with open(os.path.join(os.path.dirname(os.path.realpath(a.pm2)), "..", "package.json")) as f:
                pm2_version = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            pm2_version = "?"
    summary = {}
    for name, rs in res.items():
        if not rs:
            continue
        xs = [r["reaction_s"] for r in rs]
        ks = [r["kill_s"] for r in rs if r["kill_s"] is not None]
        summary[name] = {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs),
                         "runs": xs, "censored": sum(r["censored"] for r in rs),
                         "kill_median_s": statistics.median(ks) if ks else None,
                         "alloc_ms_median": statistics.median(r["alloc_ms"] for r in rs),
                         "rss_mib_median": statistics.median(r["rss_mib"] for r in rs), "trials": rs}
    out = [f"# runner memory-restart benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
           f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, {cpu_model()}",
           f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}){a.build_note}",
           f"- PM2 {pm2_version} (default worker interval: 30 s) on Node.js {cmd_out(['node', '--version'])}",
           f"- app: Python, allocates and touches 200 MiB at once when a trigger file appears; "
           f"`max_memory_restart = 100M`; wait bounded at {a.bound:g} s; runner {a.trials} trials, "
           f"PM2 {a.pm2_trials if a.pm2 else 0}", ""]
    if a.quick:
        out += ["**QUICK mode: few trials" + ("" if a.pm2_trials and a.pm2 else ", PM2 not run") +
                "; numbers are indicative only.**", ""]
    out += ["*reaction* = end of the allocation → the replacement's first line (a new pid is running); "
            "*kill* = end of the allocation → the old pid gone. Seconds.", "",
            "| tool | reaction median | min | max | trials | censored | kill median | app RSS after alloc | "
            "/ runner |", "|---|---|---|---|---|---|---|---|---|"]
    rmed = summary.get("runner", {}).get("median_s")
    for name, s in summary.items():
        out.append(f"| {name} | {s['median_s']:.3f} | {s['min_s']:.3f} | {s['max_s']:.3f} | {len(s['runs'])} | "
                   f"{s['censored']} | " + (f"{s['kill_median_s']:.3f}" if s["kill_median_s"] is not None else "—")
                   + f" | {s['rss_mib_median']:.0f} MiB | " + (f"{s['median_s'] / rmed:.1f}x" if rmed else "—")
                   + " |")
    out.append("")
    out += ["Every trial (reaction s): " + "; ".join(
        f"{n}: " + ", ".join(f"{x:.3f}" + ("+" if r["censored"] else "") for x, r in zip(s["runs"], s["trials"]))
        for n, s in summary.items()), ""]
    if "runner" in summary and "PM2" in summary:
        ratio = summary["PM2"]["median_s"] / summary["runner"]["median_s"]
        cens = " (PM2 censored at the bound: a lower bound)" if summary["PM2"]["censored"] else ""
        out += [f"Target: memory restarts at least 10x sooner than PM2 — PM2 / runner median reaction "
                f"{ratio:.1f}x{cens}: {'**met**' if ratio >= 10 else '**NOT met**'}.", ""]
    if fails:
        out += ["Failures:", ""] + [f"- {f}" for f in fails] + [""]
    out += ["Notes: runner checks the memory of every instance's process tree once a second; PM2 checks "
            "the main pid's memory in its worker, every 30 s by default (`PM2_WORKER_INTERVAL`), so its "
            "reaction is spread over 0–30 s. Its trials trigger at stratified phases of that timer "
            "((i + 0.5)/k of a period before a pass), so their median is the median of a uniformly random "
            "moment; runner's trials trigger at random moments.", "",
            "---", "", f"Measured in {time.monotonic() - t_start:.0f} s. Load average before {load0}, "
            f"after {loadavg()}.", ""]
    sys.stdout.write("\n".join(out) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "memrestart", "quick": a.quick, "date": datetime.datetime.now().isoformat(),
                       "bound_s": a.bound, "results": summary, "fails": fails, "pm2_version": pm2_version}, f)


if __name__ == "__main__":
    main()
