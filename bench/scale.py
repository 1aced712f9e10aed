#!/usr/bin/env python3
"""How runner's costs grow with the number of instances, beside supervisord and PM2.

For each N: start the tool with N instances of a sleeping program, and measure
- online: time from the tool's start until N instances run (processes counted in /proc,
  the same way for every tool; runner also answers `runner status` with 0),
- list: latency of `runner list --json` / `supervisorctl status` / `pm2 jlist` (median),
- rss: the supervisor's VmRSS once everything is online (PM2: its God daemon),
- cpu: the supervisor's own CPU time (utime + stime) from its start to all online,
- reload: a rolling reload of all N instances (runner: cluster mode, `listen` on a Unix
  socket, `sleep` holds the inherited socket; PM2: `pm2 reload` of a Node cluster app;
  supervisord has no rolling reload),
- stop: SIGTERM to the supervisor (PM2: `pm2 kill`) until it has exited, every instance
  exiting at once on the signal.
Then the growth exponent of each figure: the slope of a least-squares fit of log(value)
on log(N). Standard library only. Prints a markdown report; --json writes the numbers.
"""

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def cpu_s(pid):
    """CPU time of the process in seconds: /proc/PID/schedstat (ns) where the kernel has it,
    else utime + stime (clock ticks)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        f = stat_fields(pid)
        return (int(f[11]) + int(f[12])) / TICK


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children_named(ppid, names):
    """Processes whose parent is ppid and whose comm is in names (one /proc scan)."""
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = stat_fields(int(d))
            with open(f"/proc/{d}/comm") as c:
                comm = c.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        # PM2 retitles its workers ("node /path/app.js"), so names match as prefixes.
        if int(f[1]) == ppid and comm.startswith(tuple(names)) and f[0] != b"Z":
            n += 1
    return n


def wait_until(cond, bound, step=0.02):
    end = time.monotonic() + bound
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def median_latency(cmd, env, runs=5):
    times = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        times.append(time.monotonic() - t)
    return statistics.median(times) * 1000


def measure_runner(runner, n, bound):
    d = tempfile.mkdtemp(prefix="runner-bench-scale.")
    try:
        eco = os.path.join(d, "ecosystem.toml")
        with open(eco, "w") as f:
            f.write(
                "[[apps]]\nname = \"s\"\nscript = \"sleep\"\nargs = \"1000\"\n"
                f"instances = {n}\nexec_mode = \"cluster\"\nlisten = [\"unix:{d}/s.sock\"]\n"
            )
        env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"), RUNNER_LOG="warn")
        t0 = time.monotonic()
        p = subprocess.Popen([runner, eco], env=env, stdin=subprocess.DEVNULL)
        ok = wait_until(lambda: children_named(p.pid, {"sleep"}) >= n, bound, 0.05)
        online = time.monotonic() - t0
        status_ok = wait_until(
            lambda: subprocess.run([runner, "status"], env=env, capture_output=True).returncode == 0, 30)
        r = {"online_s": online if ok and status_ok else None}
        r["cpu_start_s"] = cpu_s(p.pid)
        r["rss_mib"] = rss_mib(p.pid)
        r["list_ms"] = median_latency([runner, "list", "--json"], env)
        c0 = cpu_s(p.pid)
        t = time.monotonic()
        rc = subprocess.run([runner, "reload", "s"], env=env, capture_output=True, timeout=bound).returncode
        r["reload_s"] = time.monotonic() - t if rc == 0 else None
        r["cpu_reload_s"] = cpu_s(p.pid) - c0
        r["rss_after_mib"] = rss_mib(p.pid)
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=bound)
            r["stop_s"] = time.monotonic() - t
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            r["stop_s"] = None
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def measure_supervisord(n, bound):
    d = tempfile.mkdtemp(prefix="runner-bench-scale-sd.")
    try:
        conf = os.path.join(d, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(
                f"[supervisord]\nnodaemon=true\nlogfile={d}/sd.log\npidfile={d}/sd.pid\n"
                f"childlogdir={d}\nminfds=1024\nminprocs=200\n"
                f"[unix_http_server]\nfile={d}/sd.sock\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                f"[supervisorctl]\nserverurl=unix://{d}/sd.sock\n"
                f"[program:s]\ncommand=/bin/sleep 1000\nnumprocs={n}\n"
                "process_name=%(program_name)s_%(process_num)d\nstartsecs=0\n"
                "stdout_logfile=NONE\nstderr_logfile=NONE\n"
            )
        t0 = time.monotonic()
        p = subprocess.Popen(["supervisord", "-c", conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = wait_until(lambda: children_named(p.pid, {"sleep"}) >= n, bound, 0.05)
        r = {"online_s": time.monotonic() - t0 if ok else None}
        r["cpu_start_s"] = cpu_s(p.pid)
        r["rss_mib"] = rss_mib(p.pid)
        r["list_ms"] = median_latency(["supervisorctl", "-c", conf, "status"], None)
        r["reload_s"] = None
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=bound)
            r["stop_s"] = time.monotonic() - t
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            r["stop_s"] = None
        subprocess.run(["pkill", "-KILL", "-f", "^/bin/sleep 1000$"], capture_output=True)
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def measure_pm2(pm2, n, bound):
    d = tempfile.mkdtemp(prefix="runner-bench-scale-pm2.")
    env = dict(os.environ, PM2_HOME=os.path.join(d, "pm2"))
    try:
        app = os.path.join(d, "app.js")
        with open(app, "w") as f:
            f.write("require('http').createServer((q, s) => s.end('ok')).listen(0);\n")
        subprocess.run([pm2, "ping"], env=env, capture_output=True, timeout=60)
        with open(os.path.join(d, "pm2", "pm2.pid")) as f:
            god = int(f.read().strip())
        c_before = cpu_s(god)
        t0 = time.monotonic()
        subprocess.run([pm2, "start", app, "-i", str(n), "--name", "s"], env=env, capture_output=True, timeout=bound)
        ok = wait_until(lambda: children_named(god, {"node"}) >= n, bound, 0.05)
        r = {"online_s": time.monotonic() - t0 if ok else None}
        r["cpu_start_s"] = cpu_s(god) - c_before
        r["rss_mib"] = rss_mib(god)
        r["list_ms"] = median_latency([pm2, "jlist"], env)
        t = time.monotonic()
        rc = subprocess.run([pm2, "reload", "s"], env=env, capture_output=True, timeout=bound).returncode
        r["reload_s"] = time.monotonic() - t if rc == 0 else None
        t = time.monotonic()
        subprocess.run([pm2, "kill"], env=env, capture_output=True, timeout=bound)
        r["stop_s"] = time.monotonic() - t
        return r
    finally:
        subprocess.run([pm2, "kill"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def measure_memcheck(runner, extra, window):
    """runner's CPU per second while 10 instances have max_memory_restart (checked every
    second), with `extra` unrelated sleeping processes on the host."""
    others = [subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL) for _ in range(extra)]
    d = tempfile.mkdtemp(prefix="runner-bench-scale-mem.")
    try:
        eco = os.path.join(d, "ecosystem.toml")
        with open(eco, "w") as f:
            f.write("[[apps]]\nname = \"m\"\nscript = \"sleep\"\nargs = \"1000\"\ninstances = 10\n"
                    "max_memory_restart = \"1G\"\n")
        env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"), RUNNER_LOG="warn")
        p = subprocess.Popen([runner, eco], env=env, stdin=subprocess.DEVNULL)
        wait_until(lambda: subprocess.run([runner, "status"], env=env, capture_output=True).returncode == 0, 60)
        time.sleep(2)
        c0, t0 = cpu_s(p.pid), time.monotonic()
        time.sleep(window)
        per_s = (cpu_s(p.pid) - c0) / (time.monotonic() - t0)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        return per_s * 1000
    finally:
        for o in others:
            o.kill()
        for o in others:
            o.wait()
        shutil.rmtree(d, ignore_errors=True)


def exponent(ns, values):
    pts = [(math.log(n), math.log(v)) for n, v in zip(ns, values) if v is not None and v > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None


METHOD = ("One app of `sleep 1000` with N instances (runner: cluster mode with a `listen` Unix socket "
          "that every `sleep` inherits and ignores, so the same run does a rolling reload), started from a shell. "
          "all online: until N instances run (children counted in /proc, same way for every tool; runner also "
          "answers `runner status` 0). list: median of 5 `runner list --json` / `supervisorctl status` / "
          "`pm2 jlist`, client start-up included. rolling reload: `runner reload s` (each replacement starts, "
          "then the old process stops) / `pm2 reload s`; supervisord has none. stop: SIGTERM to the supervisor "
          "(PM2: `pm2 kill`) until it has exited, every instance ending at once on its signal. RSS and CPU: the "
          "supervisor process itself (PM2: its God daemon). supervisord (numprocs, startsecs=0, no log files) "
          "runs up to N={sd} and PM2 (`-i N` on a 1-line Node HTTP server, ~40 MiB per instance) up to "
          "N={pm2}, to keep the run within minutes and memory. exponent: least-squares slope of log(value) on "
          "log(N); a fixed base (the binary's own RSS, a client's start-up) pulls it below 1.")

FIGURES = [
    ("online_s", "all online (s)", "{:.3f}"),
    ("list_ms", "list latency (ms)", "{:.1f}"),
    ("reload_s", "rolling reload (s)", "{:.2f}"),
    ("stop_s", "stop (s)", "{:.3f}"),
    ("rss_mib", "RSS (MiB)", "{:.1f}"),
    ("cpu_start_s", "CPU to online (s)", "{:.3f}"),
    ("cpu_reload_s", "CPU of the reload (s)", "{:.3f}"),
]


def fmt(v, f):
    return "–" if v is None else f.format(v)


COLORS = {"runner": "#2563eb", "supervisord": "#d97706", "PM2": "#dc2626"}
PANELS = [("online_s", "all online", "s"), ("stop_s", "stop everything", "s"),
          ("list_ms", "list latency", "ms"), ("reload_s", "rolling reload", "s"),
          ("rss_mib", "supervisor RSS", "MiB"), ("cpu_start_s", "supervisor CPU to online", "s")]


def chart(data):
    """Small multiples, log-log: one panel per figure, one line per tool."""
    from html import escape
    results = data["results"]
    pw, ph, ml, mt, mb = 290, 190, 52, 34, 30
    cols = 3
    rows = (len(PANELS) + cols - 1) // cols
    w, h = cols * pw + 20, rows * ph + 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           '<text x="10" y="18" font-size="14" font-weight="bold">Cost against the number of instances '
           '(log-log; slope 1 = linear)</text>']
    lx = 10
    for tool in ("runner", "supervisord", "PM2"):
        if results.get(tool):
            out.append(f'<rect x="{lx + 470}" y="9" width="12" height="4" fill="{COLORS[tool]}"/>'
                       f'<text x="{lx + 486}" y="16">{tool}</text>')
            lx += 95
    for i, (key, title, unit) in enumerate(PANELS):
        ox, oy = (i % cols) * pw + 10, (i // cols) * ph + 30
        pts = {t: [(int(n), r.get(key)) for n, r in rows_.items() if r.get(key)]
               for t, rows_ in results.items() if rows_}
        allv = [v for p in pts.values() for _, v in p if v and v > 0]
        alln = [n for p in pts.values() for n, _ in p]
        out.append(f'<text x="{ox + ml}" y="{oy + 14}" font-weight="bold">{escape(title)} ({unit})</text>')
        if not allv:
            continue
        x0, x1 = math.log10(min(alln)), math.log10(max(alln))
        y0, y1 = math.floor(math.log10(min(allv))), math.ceil(math.log10(max(allv)))
        if y1 == y0:
            y1 += 1
        if x1 == x0:
            x1 += 1
        ax, ay, aw, ah = ox + ml, oy + mt - 12, pw - ml - 20, ph - mt - mb
        X = lambda n: ax + (math.log10(n) - x0) / (x1 - x0) * aw
        Y = lambda v: ay + ah - (math.log10(v) - y0) / (y1 - y0) * ah
        out.append(f'<rect x="{ax}" y="{ay}" width="{aw}" height="{ah}" fill="none" stroke="#d1d5db"/>')
        for e in range(y0, y1 + 1):
            y = Y(10 ** e)
            out.append(f'<line x1="{ax}" x2="{ax + aw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>'
                       f'<text x="{ax - 4}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
        for n in sorted(set(alln)):
            out.append(f'<text x="{X(n):.1f}" y="{ay + ah + 14}" text-anchor="middle">{n:,}</text>')
        for t, p in pts.items():
            if not p:
                continue
            path = " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in p if v > 0)
            out.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[t]}" stroke-width="2"/>')
            for n, v in p:
                if v > 0:
                    out.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="3" fill="{COLORS[t]}"/>')
        out.append(f'<text x="{ax + aw / 2}" y="{ay + ah + 26}" text-anchor="middle" fill="#6b7280">instances</text>')
    out.append("</svg>")
    return "\n".join(out)


def section(data, chart_rel):
    """The BENCHMARKS.md section for one scale run (used by report.py and --section)."""
    res = data["results"]
    sec = ["## Scale: 10 to 5,000 instances (bench/scale.sh)", ""]
    sec += [data.get("method", ""), ""]
    for tool in ("runner", "supervisord", "PM2"):
        rows = res.get(tool) or {}
        if not rows:
            continue
        keys = [k for k, _, _ in FIGURES if any(r.get(k) is not None for r in rows.values())]
        sec += [f"**{tool}**", "", "| N | " + " | ".join(h for k, h, _ in FIGURES if k in keys) + " |",
                "|---" * (len(keys) + 1) + "|"]
        for n, r in rows.items():
            sec.append(f"| {int(n):,} | " + " | ".join(fmt(r.get(k), f) for k, _, f in FIGURES if k in keys) + " |")
        e = data["exponents"].get(tool, {})
        sec.append("| **exponent** | " + " | ".join(fmt(e.get(k), "{:.2f}") for k in keys) + " |")
        sec.append("")
    sec += [f"![Cost against the number of instances]({chart_rel})", ""]
    mc = data.get("memcheck") or {}
    if mc:
        sec += ["**Memory check against unrelated processes** (issue 18): runner's own CPU while 10 "
                "instances have `max_memory_restart` (checked every second), with and without 1,000 "
                "unrelated `sleep` processes on the host. The check reads the instances' trees and the pids "
                "created since its last look, not every process.", "",
                "| extra processes on the host | runner CPU (ms per second) |", "|---|---|"]
        sec += [f"| {int(k):,} | {v:.2f} |" for k, v in mc.items()]
        sec.append("")
    return sec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", required=True)
    ap.add_argument("--ns", default="10,100,1000,5000")
    ap.add_argument("--supervisord-max", type=int, default=1000)
    ap.add_argument("--pm2", default="")
    ap.add_argument("--pm2-max", type=int, default=100)
    ap.add_argument("--bound", type=float, default=300)
    ap.add_argument("--json", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-note", default="")
    ap.add_argument("--chart", default="", help="write the SVG chart here")
    ap.add_argument("--limits", default="", help="the limits the script raised, for the report")
    ap.add_argument("--section", default="", help="print the BENCHMARKS.md section of this JSON and exit")
    a = ap.parse_args()
    if a.section:
        with open(a.section) as f:
            print("\n".join(section(json.load(f), "bench/charts/scale.svg")))
        return
    ns = [int(x) for x in a.ns.split(",")]
    results = {"runner": {}, "supervisord": {}, "PM2": {}}
    for n in ns:
        print(f"scale: runner N={n}", file=sys.stderr)
        results["runner"][n] = measure_runner(a.runner, n, a.bound)
        print(f"scale:   {results['runner'][n]}", file=sys.stderr)
        if shutil.which("supervisord") and n <= a.supervisord_max:
            print(f"scale: supervisord N={n}", file=sys.stderr)
            results["supervisord"][n] = measure_supervisord(n, a.bound)
            print(f"scale:   {results['supervisord'][n]}", file=sys.stderr)
        if a.pm2 and n <= a.pm2_max:
            print(f"scale: PM2 N={n}", file=sys.stderr)
            results["PM2"][n] = measure_pm2(a.pm2, n, a.bound)
            print(f"scale:   {results['PM2'][n]}", file=sys.stderr)

    memcheck = {}
    for extra in (0, 1000):
        print(f"scale: memory check with {extra} extra processes", file=sys.stderr)
        memcheck[extra] = measure_memcheck(a.runner, extra, 5 if a.quick else 10)

    out = []
    out.append(f"# Scale: N instances{' (QUICK)' if a.quick else ''}{a.build_note}\n")
    out.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs, "
               f"load before {open('/proc/loadavg').read().split()[0]}. "
               f"supervisord up to N={a.supervisord_max}, PM2 up to N={a.pm2_max} "
               "(each PM2 instance is a Node process of ~40 MiB).\n")
    exps = {}
    for tool, rows in results.items():
        if not rows:
            continue
        out.append(f"\n## {tool}\n")
        keys = [k for k, _, _ in FIGURES if any(r.get(k) is not None for r in rows.values())]
        heads = [h for k, h, _ in FIGURES if k in keys]
        out.append("| N | " + " | ".join(heads) + " |")
        out.append("|---" * (len(heads) + 1) + "|")
        for n, r in rows.items():
            cells = [fmt(r.get(k), f) for k, _, f in FIGURES if k in keys]
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        e = {k: exponent(list(rows), [rows[n].get(k) for n in rows]) for k in keys}
        exps[tool] = e
        out.append("| exponent | " + " | ".join(fmt(e[k], "{:.2f}") for k in keys) + " |")
    out.append("\n## Memory check against unrelated processes\n")
    out.append("| extra sleeping processes on the host | runner CPU (ms per second) |")
    out.append("|---|---|")
    for extra, v in memcheck.items():
        out.append(f"| {extra} | {v:.2f} |")
    out.append("\nexponent: slope of log(value) on log(N), least squares over the rows above "
               "(1 = linear; a fixed base such as the binary's own RSS pulls it below 1).")
    print("\n".join(out))
    data = {"ns": ns, "results": {t: {str(n): r for n, r in rows.items()} for t, rows in results.items()},
            "exponents": exps, "memcheck": {str(k): v for k, v in memcheck.items()}, "method": METHOD.format(sd=a.supervisord_max, pm2=a.pm2_max),
            "limits": a.limits, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(data, f, indent=1)
    if a.chart:
        with open(a.chart, "w") as f:
            f.write(chart(data))


if __name__ == "__main__":
    main()
