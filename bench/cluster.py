#!/usr/bin/env python3
"""Measurement driver for bench/cluster.sh: requests/s during reloads, runner vs PM2 cluster.

The same unmodified Node.js app (bench/apps/server.js, plain `listen(PORT)`) runs with 2
instances under runner (cluster mode, no `listen` key: runner is the Node cluster primary,
binds the port once and passes it to every worker, the kernel balances) and under PM2
(exec_mode 'cluster': Node's cluster module, the PM2 daemon accepts and hands connections
to the workers round-robin), and alone as a baseline. wrk loads each for a fixed time while the app is reloaded 3 times
(`runner reload api` / `pm2 reload api`), once with keep-alive and once with one connection
per request. Runs never overlap; the order of the tools rotates between rounds.

Run through bench/cluster.sh, which installs the peers and builds runner first. Prints one
markdown report on stdout. Standard library only.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "apps", "server.js")
CLK_TCK = os.sysconf("SC_CLK_TCK")

SCENARIOS = {
    "keep-alive": [],
    "connection: close": ["-H", "Connection: close"],
}


# ---------------------------------------------------------------- helpers

def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/", headers={"Connection": "close"})
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def cpu_ticks(pid):
    """utime+stime of pid itself (not of its reaped children), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def children_of(root):
    """Live descendants of root."""
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


def proc_table():
    """{pid: (ppid, starttime, utime+stime)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2:].split()
        out[int(d)] = (int(rest[1]), int(rest[19]), int(rest[11]) + int(rest[12]))
    return out


class CpuSampler(threading.Thread):
    """Splits the machine's CPU time during a run into ours (the roots' trees: supervisor,
    instances, wrk) and everyone else's (builds, tests), from /proc every 0.5 s. A process
    that starts and ends between two samples is not seen; a share of the sampler itself is
    in "other"."""

    def __init__(self, roots):
        super().__init__(daemon=True)
        self.roots = set(roots)
        self.ours = self.other = 0
        self.stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def add_root(self, pid):
        self.roots.add(pid)

    def run(self):
        prev = proc_table()
        while not self.stop_ev.wait(0.5):
            cur = proc_table()
            for pid, (ppid, start, ticks) in cur.items():
                old = prev.get(pid)
                if not old or old[1] != start:
                    continue
                p, n, ours = pid, 0, False
                while p and n < 64:
                    if p in self.roots:
                        ours = True
                        break
                    p, n = cur.get(p, (0,))[0], n + 1
                if ours:
                    self.ours += ticks - old[2]
                else:
                    self.other += ticks - old[2]
            prev = cur
        self.dt = time.monotonic() - self.t0

    def finish(self):
        self.stop_ev.set()
        self.join()
        cap = self.dt * (os.cpu_count() or 1) * CLK_TCK
        return self.ours / cap, self.other / cap


def wait_quiet(max_wait, threshold=25.0):
    """Waits (up to max_wait s) for two consecutive seconds with the CPUs under threshold % busy."""
    t0 = time.monotonic()
    calm = 0
    busy = 100.0
    while time.monotonic() - t0 < max_wait:
        busy = cpu_busy()
        calm = calm + 1 if busy < threshold else 0
        if calm >= 2:
            break
    return busy, time.monotonic() - t0


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


# ---------------------------------------------------------------- tools

class Baseline:
    """One plain `node server.js` with PORT: no supervisor, no reloads."""
    name = "node alone (1 process)"
    reloads = False

    def __init__(self, a):
        self.a = a

    def start(self, d, port, stats):
        env = dict(os.environ, PORT=str(port), STATS_FILE=stats)
        self.out = open(os.path.join(d, "node.log"), "w")
        self.proc = subprocess.Popen(["node", APP], env=env, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(lambda: http_ok(port), 20):
            raise RuntimeError("node did not answer within 20 s")
        return self.proc.pid

    def reload(self):
        raise NotImplementedError

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()

    def log_excerpt(self):
        return ""


class Runner:
    name = "runner"
    reloads = True

    def __init__(self, a):
        self.a = a

    def start(self, d, port, stats):
        self.dir = d
        eco = os.path.join(d, "ecosystem.toml")
        with open(eco, "w") as f:
            f.write(f"""[[apps]]
name = "api"
script = "{APP}"
exec_mode = "cluster"
instances = 2
wait_ready = true
listen_timeout = 10000
kill_timeout = 5000
env = {{ PORT = "{port}", STATS_FILE = "{stats}" }}
""")
        self.env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"))
        self.logf = os.path.join(d, "runner.log")
        self.out = open(self.logf, "w")
        self.proc = subprocess.Popen([self.a.runner, eco], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited with {self.proc.returncode}")
            r = subprocess.run([self.a.runner, "status"], env=self.env, capture_output=True)
            return r.returncode == 0 and http_ok(port)
        if not wait_for(ready, 30, 0.2):
            raise RuntimeError("runner's instances were not online within 30 s")
        return self.proc.pid

    def reload(self):
        return subprocess.run([self.a.runner, "reload", "api"], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def stop(self):
        kids = children_of(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        kill_pids(kids)
        self.out.close()

    def log_excerpt(self):
        with open(self.logf, errors="replace") as f:
            lines = f.read().splitlines()
        bad = [l for l in lines if re.search(r"warn|error|kill|fail|refus", l, re.I)]
        return "\n".join(bad[-20:])


class PM2:
    name = "PM2 cluster"
    reloads = True

    def __init__(self, a):
        self.a = a

    def pm2(self, *args, timeout=120):
        return subprocess.run([self.a.pm2, *args], env=self.env, cwd=self.dir, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, d, port, stats):
        self.dir = d
        self.home = os.path.join(d, "pm2home")
        self.env = dict(os.environ, PM2_HOME=self.home)
        eco = os.path.join(d, "ecosystem.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = {apps: [{name: 'api', script: %s, exec_mode: 'cluster', instances: 2, "
                    "wait_ready: true, listen_timeout: 10000, kill_timeout: 5000, "
                    "env: {PORT: '%d', STATS_FILE: %s}}]};\n" % (json.dumps(APP), port, json.dumps(stats)))
        r = self.pm2("start", eco)
        if r.returncode != 0:
            raise RuntimeError(f"pm2 start exited {r.returncode}: {r.stdout[-500:]} {r.stderr[-500:]}")
        with open(os.path.join(self.home, "pm2.pid")) as f:
            self.daemon = int(f.read().strip())

        def ready():
            if not http_ok(port):
                return False
            r = self.pm2("jlist")
            try:
                procs = json.loads(r.stdout[r.stdout.find("["):])
            except ValueError:
                return False
            return sum(1 for p in procs if p["pm2_env"]["status"] == "online") == 2
        if not wait_for(ready, 30, 0.2):
            raise RuntimeError("PM2's workers were not online within 30 s")
        return self.daemon

    def reload(self):
        return self.pm2("reload", "api")

    def stop(self):
        kids = children_of(self.daemon)
        try:
            self.pm2("kill", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        wait_for(lambda: cpu_ticks(self.daemon) is None, 10)
        kill_pids([self.daemon] + kids)

    def log_excerpt(self):
        try:
            with open(os.path.join(self.home, "pm2.log"), errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        bad = [l for l in lines if re.search(r"error|SIGKILL|timeout|fail", l, re.I)]
        return "\n".join(bad[-20:])


# ---------------------------------------------------------------- one run

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out):
    r = {"rps": float("nan"), "requests": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0,
         "non2xx": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["connect"], r["read"], r["write"], r["timeout"] = (int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        r["max"] = to_ms(m.group(3))
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        if m:
            r[f"p{q}"] = to_ms(m.group(1))
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def wrk_argv(a, port, scenario, duration):
    return ["wrk", f"-t{a.threads}", f"-c{a.conns}", f"-d{duration}s", "--latency"] + \
        SCENARIOS[scenario] + [f"http://127.0.0.1:{port}/"]


def read_series(stats, t0, duration):
    """Requests answered per second of the run (wall-clock seconds from wrk's start)."""
    per = {}
    pids = set()
    try:
        with open(stats) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue
                pid, sec, n = (int(x) for x in parts)
                pids.add(pid)
                per[sec] = per.get(sec, 0) + n
    except OSError:
        return [], 0, 0
    base = int(t0)
    series = [per.get(base + i, 0) for i in range(duration + 1)]
    return series, sum(series), len(pids)


def run_once(a, tool, scenario, tmp, tag):
    d = os.path.join(tmp, tag)
    os.makedirs(d)
    port = free_port()
    stats = os.path.join(d, "stats.txt")
    busy, waited = wait_quiet(a.quiet_wait)
    log(f"{tag}: {tool.name}, {scenario}, port {port} (CPUs {busy:.0f}% busy after {waited:.0f} s wait)")
    pid = tool.start(d, port, stats)
    reloads = []
    try:
        time.sleep(a.settle)
        # Warm-up: the same load for a few seconds, so the JIT is warm for every tool alike.
        if a.warmup:
            subprocess.run(wrk_argv(a, port, scenario, a.warmup), capture_output=True, timeout=a.warmup + 30)
            time.sleep(1)
        with open(stats, "w"):
            pass  # the warm-up's counts are not part of the run
        cpu0 = cpu_ticks(pid)
        sampler = CpuSampler([pid])
        sampler.start()
        t0 = time.time()
        m0 = time.monotonic()
        wrk = subprocess.Popen(wrk_argv(a, port, scenario, a.duration), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        sampler.add_root(wrk.pid)
        if tool.reloads:
            for at in a.reload_at:
                delay = m0 + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                s = time.monotonic()
                try:
                    r = tool.reload()
                    rc, msg = r.returncode, (r.stdout + r.stderr).strip().splitlines()[-1:]
                except subprocess.TimeoutExpired:
                    rc, msg = "timeout", []
                reloads.append({"at": s - m0, "took": time.monotonic() - s, "rc": rc,
                                "msg": msg[0] if msg else ""})
        out, _ = wrk.communicate(timeout=a.duration + 60)
        cpu1 = cpu_ticks(pid)
        ours, other = sampler.finish()
    finally:
        tool.stop()
    time.sleep(0.3)  # the last flush of the stopped instances
    r = parse_wrk(out)
    r["series"], r["served"], r["pids"] = read_series(stats, t0, a.duration)
    r["reloads"] = reloads
    r["sup_cpu_s"] = (cpu1 - cpu0) / CLK_TCK if cpu0 is not None and cpu1 is not None else None
    r["ours"], r["other"], r["busy_before"] = ours, other, busy
    r["wrk_out"] = out
    r["log"] = tool.log_excerpt()
    r["tag"] = tag
    if r["errors"] or r["non2xx"] or any(x["rc"] != 0 for x in reloads):
        log(f"{tag}: {r['errors']} socket errors, {r['non2xx']} non-2xx, reloads {reloads}")
    return r


# ---------------------------------------------------------------- report

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


def cmd_out(argv, env=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        lines = (r.stdout + r.stderr).strip().splitlines()
        return lines[-1] if lines else "?"
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


def verdict(ok):
    return "**met**" if ok else "**NOT met**"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--pm2", required=True)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--reload-at", default="5,10,15")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=90.0)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    a.reload_at = [float(x) for x in a.reload_at.split(",") if x]

    tools = [Baseline(a), Runner(a), PM2(a)]
    tmp = tempfile.mkdtemp(prefix="runner-bench-cluster-")
    rep = Report()
    t_start = time.monotonic()
    load0, busy0 = loadavg(), cpu_busy()
    rev = cmd_out(["git", "-C", HERE, "describe", "--always", "--dirty"])
    wrk_v = cmd_out(["sh", "-c", "wrk -v 2>&1 | head -1"])
    rep.add(f"# runner cluster benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
            f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, {cpu_model()}",
            f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}, tree `{rev}`){a.build_note}",
            f"- PM2 {pm2_version(a.pm2)}, Node.js {cmd_out(['node', '--version'])}, "
            f"{wrk_v}",
            f"- app: `bench/apps/server.js` unmodified (`listen(PORT)`), 2 instances under runner and PM2 "
            f"(both `exec_mode = cluster`, no `listen` key), 1 process alone; "
            f"`wait_ready`, `listen_timeout = 10000`, `kill_timeout = 5000`",
            f"- load: `wrk -t{a.threads} -c{a.conns} -d{a.duration}s --latency` after a {a.warmup} s warm-up "
            f"with the same settings; reloads at t = {', '.join(f'{x:g}' for x in a.reload_at)} s; "
            f"{a.rounds} round(s), tool order rotated each round; wrk and the servers share the "
            f"{os.cpu_count()} CPUs", "")
    if a.quick:
        rep.add("**QUICK mode: short runs, one round; numbers are indicative only.**", "")

    res = {(t.name, s): [] for t in tools for s in SCENARIOS}
    fails = []
    try:
        k = 0
        for rnd in range(a.rounds):
            for si, scenario in enumerate(SCENARIOS):
                rot = (rnd + si) % len(tools)
                order = tools[rot:] + tools[:rot]
                if rnd % 2:
                    order = order[::-1]
                for tool in order:
                    k += 1
                    tag = f"{k:02d}-{tool.name.split()[0]}-{scenario.split(':')[0]}"
                    try:
                        res[(tool.name, scenario)].append(run_once(a, tool, scenario, tmp, tag))
                    except Exception as e:  # noqa: BLE001 - report and go on
                        fails.append(f"{tag}: {e}")
                        log(f"{tag}: FAILED: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # --- main table
    rep.add("## Requests/s while the app is reloaded 3 times", "",
            "req/s = wrk's Requests/sec, mean over the rounds (each round in brackets). *non-2xx* and "
            "*socket errors* (wrk: connect / read / write / timeout) are totals over the rounds. "
            "*worst s* = the slowest full second of the run (from the app's own per-second counters) "
            "relative to the median second: how deep the reloads cut. *sup. CPU* = CPU seconds of the "
            "supervisor process itself during the run (runner; PM2's God Daemon, which in cluster mode "
            "accepts every connection and passes it to a worker). *reload s* = how long each "
            "`reload` command took (mean), and its exit status. *other load* = CPU used by everything "
            "else on the machine during the runs (% of all CPUs; see the last table).", "")
    rows = []
    summary = {}
    for scenario in SCENARIOS:
        pm2_rps = None
        for tool in tools:
            rs = res[(tool.name, scenario)]
            if not rs:
                rows.append([scenario, tool.name, "failed"] + [""] * 10)
                continue
            rps = statistics.fmean(r["rps"] for r in rs)
            summary[(tool.name, scenario)] = rps
            non2xx = sum(r["non2xx"] for r in rs)
            errs = [sum(r[k] for r in rs) for k in ("connect", "read", "write", "timeout")]
            worst = []
            for r in rs:
                inner = r["series"][1:a.duration]  # full seconds only
                if inner and statistics.median(inner):
                    worst.append(min(inner) / statistics.median(inner))
            rel = [x for r in rs for x in r["reloads"]]
            rl = (f"{statistics.fmean(x['took'] for x in rel):.2f} s, rc "
                  + ",".join(sorted({str(x['rc']) for x in rel}))) if rel else "—"
            cpu = [r["sup_cpu_s"] for r in rs if r["sup_cpu_s"] is not None]
            rows.append([scenario, tool.name,
                         f"{rps:,.0f} (" + ", ".join(f"{r['rps']:,.0f}" for r in rs) + ")",
                         str(non2xx), " / ".join(str(e) for e in errs), str(sum(errs)),
                         f"{statistics.median(r['p50'] for r in rs):.2f} / "
                         f"{statistics.median(r['p99'] for r in rs):.1f} / "
                         f"{max(r['max'] for r in rs):.0f}",
                         (f"{min(worst):.0%}" if worst else "—"),
                         f"{statistics.fmean(cpu):.2f}" if cpu and tool.name != Baseline.name else "—",
                         rl, f"{100 * statistics.fmean(r['other'] for r in rs):.0f}%", ""])
        r_rps = summary.get((Runner.name, scenario))
        p_rps = summary.get((PM2.name, scenario))
        if r_rps and p_rps:
            rows[-2][-1] = f"**{r_rps / p_rps:.2f}x**"
    rep.table(["scenario", "tool", "req/s (rounds)", "non-2xx", "socket errors c/r/w/t", "errors",
               "latency p50 / p99 / max ms", "worst s", "sup. CPU s", "reload s, rc", "other load",
               "runner / PM2"], rows)

    # --- targets
    r_err = sum(r["errors"] + r["non2xx"] for s in SCENARIOS for r in res[(Runner.name, s)])
    r_rc = [x["rc"] for s in SCENARIOS for r in res[(Runner.name, s)] for x in r["reloads"]]
    rep.add("## Targets", "")
    rep.add(f"- runner: zero errors during reloads — {r_err} (socket errors + non-2xx over every runner run), "
            f"reload exit codes {sorted(set(map(str, r_rc)))}: {verdict(r_err == 0 and all(c == 0 for c in r_rc))}.")
    for scenario, factor in (("connection: close", 2.0), ("keep-alive", 1.0)):
        r_rps, p_rps = summary.get((Runner.name, scenario)), summary.get((PM2.name, scenario))
        if r_rps and p_rps:
            rep.add(f"- {scenario}: runner at least {factor:g}x PM2 cluster's req/s — "
                    f"{r_rps / p_rps:.2f}x: {verdict(r_rps >= factor * p_rps)}.")
    rep.add("")

    # --- time series
    rep.add("## Requests answered per second", "",
            "From the app's own counters (each instance appends `pid second count` to a file once a "
            "second and when it exits), by wall-clock second since wrk started; second 0 and the last "
            "one are partial. `R` marks the seconds in which a reload command was running. "
            "One column per run (round number after #).", "")
    for scenario in SCENARIOS:
        cols = [(t, i, r) for t in tools for i, r in enumerate(res[(t.name, scenario)])]
        if not cols:
            continue
        header = ["s"] + [f"{t.name.split()[0]} #{i + 1}" for t, i, _ in cols]
        rows = []
        for s in range(a.duration + 1):
            row = [str(s)]
            for _, _, r in cols:
                mark = any(x["at"] <= s + 1 and x["at"] + x["took"] >= s for x in r["reloads"])
                v = r["series"][s] if s < len(r["series"]) else 0
                row.append(f"{v:,}{' R' if mark else ''}")
            rows.append(row)
        rows.append(["sum (app)"] + [f"{r['served']:,}" for _, _, r in cols])
        rows.append(["wrk count"] + [f"{r['requests']:,}" for _, _, r in cols])
        rows.append(["processes"] + [str(r["pids"]) for _, _, r in cols])
        rep.add(f"### {scenario}", "")
        rep.table(header, rows)

    # --- details
    rep.add("## Reloads, run by run", "")
    rows = []
    for scenario in SCENARIOS:
        for tool in tools[1:]:
            for r in res[(tool.name, scenario)]:
                rows.append([r["tag"], scenario, tool.name,
                             "; ".join(f"t={x['at']:.1f} s took {x['took']:.2f} s rc {x['rc']}"
                                       for x in r["reloads"]),
                             f"{r['errors']} / {r['non2xx']}"])
    rep.table(["run", "scenario", "tool", "reloads", "errors / non-2xx"], rows)
    rep.add("Machine CPU during each run (% of all CPUs): *ours* = supervisor, instances and wrk; "
            "*other* = everything else on the machine (a busy neighbour makes that run slower).", "")
    rows = []
    for scenario in SCENARIOS:
        for tool in tools:
            for r in res[(tool.name, scenario)]:
                rows.append([r["tag"], f"{r['rps']:,.0f}", f"{r['busy_before']:.0f}%",
                             f"{100 * r['ours']:.0f}%", f"{100 * r['other']:.0f}%"])
    rep.table(["run", "req/s", "busy before start", "ours", "other"], rows)
    excerpts = [(r["tag"], t.name, r["log"]) for s in SCENARIOS for t in tools for r in res[(t.name, s)]
                if r["log"] and (r["errors"] or r["non2xx"])]
    if excerpts:
        rep.add("Log lines of runs with errors (warnings, errors, kills):", "")
        for tag, name, text in excerpts:
            rep.add(f"{tag} ({name}):", "", "```", text, "```", "")
    if fails:
        rep.add("Failures:", "", *[f"- {f}" for f in fails], "")

    busy1 = cpu_busy()
    rep.add("---", "", f"Measured in {time.monotonic() - t_start:.0f} s. Before: CPUs {busy0:.0f}% busy over "
            f"1 s, load average {load0}; after: CPUs {busy1:.0f}% busy, load average {loadavg()}. "
            "Other work on the machine skews every number: compare within one report.", "")
    sys.stdout.write(rep.text())


if __name__ == "__main__":
    main()
