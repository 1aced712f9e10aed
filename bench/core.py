#!/usr/bin/env python3
"""Measurement driver for bench/core.sh: runner vs tini vs dumb-init (and supervisord).

Run through bench/core.sh, which installs the peers, builds runner and compiles
bench/orphans.c first. Prints one markdown report on stdout.
Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from exec_interleaved import interleave

MiB = 1024 * 1024


# ---------------------------------------------------------------- /proc helpers

def read_stat(pid):
    """(ppid, comm, state) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    lpar, rpar = raw.find(b"("), raw.rfind(b")")
    comm = raw[lpar + 1:rpar].decode(errors="replace")
    rest = raw[rpar + 2:].split()
    return int(rest[1]), comm, rest[0].decode()


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root):
    """{pid: comm} of every live descendant of root."""
    parent, comm = {}, {}
    for pid in all_pids():
        st = read_stat(pid)
        if st:
            parent[pid], comm[pid] = st[0], st[1]
    out = {}
    for pid in parent:
        p, seen = parent.get(pid), 0
        while p and p != root and p in parent and seen < 64:
            p, seen = parent[p], seen + 1
        if p == root:
            out[pid] = comm[pid]
    return out


def mem_of(pid):
    """VmRSS, VmHWM, RssAnon, RssFile from status and Pss from smaps_rollup, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Pss_Anon", "Private_Dirty", "Private_Clean"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def smaps_breakdown(pid):
    """{mapping name: (Rss KiB, Pss KiB)} from /proc/PID/smaps."""
    out, name = {}, "?"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    name = parts[5] if len(parts) > 5 else "[anon]"
                elif first in ("Rss:", "Pss:"):
                    rss, pss = out.get(name, (0, 0))
                    v = int(line.split()[1])
                    out[name] = (rss + v, pss) if first == "Rss:" else (rss, pss + v)
    except OSError:
        pass
    return out


def wait_children(root, comm, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [p for p, c in descendants(root).items() if c == comm]
        if len(kids) >= count:
            return kids
        time.sleep(0.005)
    return None


def stop(proc, extra_pids, grace=10.0):
    """SIGTERM the supervisor, SIGKILL it after grace, then kill whatever is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in extra_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def measure_supervisor(argv, child_comm, count, settle, env, timeout=30.0):
    """Start argv, wait for `count` descendants named child_comm, read the supervisor's memory."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    kids = []
    try:
        kids = wait_children(proc.pid, child_comm, count, timeout)
        if kids is None:
            raise RuntimeError(f"{argv[0]}: {count} x {child_comm} did not appear within {timeout}s "
                               f"(exit status {proc.poll()})")
        time.sleep(settle)
        m = mem_of(proc.pid)
        m["children"] = len(kids)
        m["smaps"] = smaps_breakdown(proc.pid)
        return m
    finally:
        stop(proc, kids or [])


# ---------------------------------------------------------------- formatting

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_kib(k):
    return f"{k / 1024:.2f} MiB" if k >= 1024 else f"{k:.0f} KiB"


def ratio(v, ref):
    if ref in (None, 0) or v is None:
        return "—"
    return f"{v / ref:.2f}x"


def verdict(ok):
    return "**met**" if ok else "**NOT met**"


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


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cmd_out(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - informational only
        return f"? ({e})"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def cpu_busy(interval=1.0):
    """Share of all CPUs busy over `interval` seconds (from /proc/stat), in percent."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- measurements

def bench_rss(rep, tools, runs, env):
    log(f"1. supervisor RSS with one `sleep 1000` child, {runs} runs each")
    res = {name: [] for name in tools}
    for i in range(runs):
        order = list(tools)[i % len(tools):] + list(tools)[:i % len(tools)]
        for name in order:
            res[name].append(measure_supervisor(tools[name] + ["sleep", "1000"], "sleep", 1, 0.2, env))
    rep.add("## 1. Supervisor memory, one child (`X -- sleep 1000`)", "",
            f"Median of {runs} runs. Read 200 ms after the `sleep` child appeared. "
            "VmRSS/VmHWM from `/proc/PID/status`, Pss from `/proc/PID/smaps_rollup` "
            "(shared pages divided among the processes mapping them). RssAnon (heap, stack, written "
            "data) is the memory the supervisor adds on top of the pages of its binary and libraries.", "")
    ref = {k: med([r[k] for r in res["tini"]]) for k in ("VmRSS", "Pss")}
    rows = []
    for name in tools:
        rss = med([r["VmRSS"] for r in res[name]])
        hwm = med([r["VmHWM"] for r in res[name]])
        anon = med([r.get("RssAnon", 0) for r in res[name]])
        pss = med([r.get("Pss", 0) for r in res[name]])
        rows.append([f"`{' '.join([os.path.basename(tools[name][0])] + tools[name][1:])} sleep 1000`",
                     fmt_kib(rss), ratio(rss, ref["VmRSS"]), fmt_kib(hwm), fmt_kib(anon),
                     fmt_kib(pss), ratio(pss, ref["Pss"]),
                     " ".join(str(r["VmRSS"]) for r in res[name])])
    rep.table(["tool", "VmRSS", "RSS / tini", "VmHWM (peak)", "RssAnon", "Pss", "Pss / tini",
               "all VmRSS runs (KiB)"], rows)
    rep.add("Where the resident pages are (last run, per mapping, KiB Rss / Pss):", "")
    names = sorted({n for t in ("runner", "tini") for n in res[t][-1]["smaps"]},
                   key=lambda n: -max(res[t][-1]["smaps"].get(n, (0, 0))[0] for t in ("runner", "tini")))
    brows = []
    for n in names:
        cells = []
        for t in ("runner", "tini"):
            rss, pss = res[t][-1]["smaps"].get(n, (0, 0))
            cells.append(f"{rss} / {pss}" if rss else "")
        if any(cells):
            brows.append([f"`{n}`"] + cells)
    rep.table(["mapping", "runner", "tini"], brows)
    r_rss = med([r["VmRSS"] for r in res["runner"]]) / ref["VmRSS"]
    r_pss = med([r["Pss"] for r in res["runner"]]) / ref["Pss"]
    rep.add(f"Target: RSS within 1.5x of tini — VmRSS {r_rss:.2f}x: {verdict(r_rss <= 1.5)}; "
            f"Pss {r_pss:.2f}x: {verdict(r_pss <= 1.5)}.", "")
    return res


def bench_eco(rep, runner, runs, env, tmp):
    log(f"2. runner with 50 sleeping instances, {runs} runs")
    eco = os.path.join(tmp, "ecosystem.toml")
    with open(eco, "w") as f:
        f.write('[[apps]]\nname = "sleepers"\nscript = "sleep"\nargs = "1000"\ninstances = 50\n')
    res = []
    for _ in range(runs):
        res.append(measure_supervisor([runner, eco], "sleep", 50, 0.5, env))
    rows = []
    rss = med([r["VmRSS"] for r in res])
    rows.append(["runner (ecosystem.toml, `instances = 50`)", fmt_kib(rss),
                 fmt_kib(med([r["VmHWM"] for r in res])), fmt_kib(med([r["Pss"] for r in res])),
                 " ".join(str(r["VmRSS"]) for r in res), "this run"])

    sup = shutil.which("supervisord")
    sup_note = None
    if sup:
        log(f"2b. supervisord with numprocs=50, {runs} runs")
        conf = os.path.join(tmp, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(f"""[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}
loglevel=warn
user=root

[program:sleepers]
command=/bin/sleep 1000
numprocs=50
process_name=%(program_name)s_%(process_num)02d
startsecs=0
autorestart=false
""")
        sres = []
        try:
            for _ in range(runs):
                sres.append(measure_supervisor([sup, "-n", "-c", conf], "sleep", 50, 1.0, env, timeout=60))
            srss = med([r["VmRSS"] for r in sres])
            rows.append([f"supervisord {cmd_out([sup, '--version'])} (`numprocs = 50`, default child logs)",
                         fmt_kib(srss), fmt_kib(med([r["VmHWM"] for r in sres])),
                         fmt_kib(med([r["Pss"] for r in sres])),
                         " ".join(str(r["VmRSS"]) for r in sres), "this run"])
        except RuntimeError as e:
            sup_note = f"supervisord could not be measured: {e}"
    else:
        sup_note = "supervisord is not installed (`apt-get install -y supervisor`), not measured"
    rows.append(["supervisord (earlier, someone else's measurement)", "31 MiB", "", "", "",
                 "**not from this run**"])
    rows.append(["PM2 (earlier, someone else's measurement)", "67 MiB", "", "", "",
                 "**not from this run**"])

    rep.add("## 2. Supervisor memory, 50 sleeping instances", "",
            f"Median of {runs} runs, read 0.5 s (supervisord: 1 s) after the 50th `sleep` appeared. "
            "Only the supervisor process itself is counted, not the children. "
            "tini and dumb-init supervise a single program, so they have no row here.", "")
    rep.table(["supervisor", "VmRSS", "VmHWM (peak)", "Pss", "all VmRSS runs (KiB)", "source"], rows)
    if sup_note:
        rep.add(sup_note, "")
    rep.add(f"Target: runner under 3 MiB with 50 instances — {fmt_kib(rss)}: {verdict(rss < 3 * 1024)}.", "")
    return res


def bench_startup(rep, tools, env, tmp, runs, warmup, chunks=3):
    log(f"3. wall time of `X -- true` with hyperfine ({runs} runs each, in {chunks} rotated chunks)")
    true = shutil.which("true")
    cmds = [("true (baseline)", true)] + [(n, " ".join(p + [true])) for n, p in tools.items()]
    # Diagnostics: the cost of merely loading each binary (exec, dynamic linking, runtime init).
    cmds += [("runner --version", f"{tools['runner'][0]} --version"),
             ("tini --version", f"{tools['tini'][0]} --version")]
    times = {n: [] for n, _ in cmds}
    per = max(1, runs // chunks)
    for c in range(chunks):
        # hyperfine runs its commands one after the other; rotating the order between
        # chunks spreads slow phases of the machine over every command.
        order = cmds[c % len(cmds):] + cmds[:c % len(cmds)]
        out = os.path.join(tmp, f"hyperfine-{c}.json")
        argv = ["hyperfine", "-N", "--warmup", str(warmup), "--runs", str(per), "--style", "none",
                "--export-json", out]
        for name, cmd in order:
            argv += ["-n", name, cmd]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        with open(out) as f:
            for r in json.load(f)["results"]:
                times[r["command"]].extend(r["times"])
    st = {n: {"mean": statistics.fmean(t), "stddev": statistics.stdev(t), "median": statistics.median(t),
              "min": min(t), "n": len(t)} for n, t in times.items()}
    base = st["true (baseline)"]["median"]
    tref = st["tini"]
    rows = []
    for name, r in st.items():
        diag = name.endswith("--version")
        over = r["median"] - base
        tover = tref["median"] - base
        rows.append([("*" + name + "* (diagnostic)") if diag else name,
                     f"{r['mean'] * 1e3:.3f} ± {r['stddev'] * 1e3:.3f}", f"{r['median'] * 1e3:.3f}",
                     f"{r['min'] * 1e3:.3f}", ratio(r["mean"], tref["mean"]),
                     ratio(r["median"], tref["median"]),
                     "—" if name.startswith("true") or diag else f"{over * 1e3:.3f}",
                     "—" if name.startswith("true") or diag else ratio(over, tover)])
    rep.add("## 3. Start-up and exit: wall time of `X -- true`", "",
            f"`hyperfine -N --warmup {warmup}`, {per * chunks} runs per command in {chunks} invocations of "
            f"{per} runs with the command order rotated (hyperfine itself runs commands one after the "
            "other, not interleaved). Times in ms. \"overhead\" = median minus the median of `true` alone. "
            "The `--version` rows only load the binary and exit: what start-up costs before any "
            "supervising.", "")
    rep.table(["command", "mean ± σ", "median", "min", "mean / tini", "median / tini", "overhead",
               "overhead / tini"], rows)
    rr = st["runner"]["median"] / tref["median"]
    rm = st["runner"]["mean"] / tref["mean"]
    rep.add(f"Target: start-up within 1.5x of tini — median {rr:.2f}x, mean {rm:.2f}x: "
            f"{verdict(rr <= 1.5)}.", "")
    return st


def bench_startup_interleaved(rep, tools, env, runs):
    """`X -- true` timed run by run in turn (exec_interleaved.py): hyperfine's back-to-back
    runs of one command let a slow phase of the machine land on that command only."""
    log(f"3b. wall time of `X -- true`, {runs} interleaved runs each")
    true = shutil.which("true")
    cmds = {"true (baseline)": ([true], env)}
    cmds.update({n: (p + [true], env) for n, p in tools.items()})
    times = interleave(cmds, runs)
    med = {n: statistics.median(t) for n, t in times.items()}
    rows = [[n, f"{med[n] * 1e3:.3f}", ratio(med[n], med["tini"])] for n in cmds]
    rep.add("## 3b. The same, interleaved", "",
            f"{runs} runs per command, one run of each in turn with the order rotated every round "
            "(`bench/exec_interleaved.py`), timed from `posix_spawn` to `waitpid`. Medians, ms.", "")
    rep.table(["command", "median", "median / tini"], rows)
    r = med["runner"] / med["tini"]
    rep.add(f"Issue 18's target: `X -- true` no slower than tini — runner {med['runner'] * 1e3:.3f} ms, "
            f"tini {med['tini'] * 1e3:.3f} ms ({r:.2f}x): {verdict(r <= 1.0)}.", "")


def parse_result(line):
    return {k: (float(v) if k not in ("mode",) else v)
            for k, v in (kv.split("=", 1) for kv in line.split()[1:])}


def bench_orphans(rep, tools, orphans, n, rounds, env):
    modes = ("burst", "stream")
    log(f"4. reaping {n} orphans as PID 1, {rounds} rounds x {len(modes)} modes x {len(tools)} tools")
    unshare = shutil.which("unshare")
    res = {(t, m): [] for t in tools for m in modes}
    fails = []
    for i in range(rounds):
        order = list(tools)[i % len(tools):] + list(tools)[:i % len(tools)]
        for mode in modes:
            for name in order:
                argv = ["timeout", "120", unshare, "--pid", "--fork", "--mount-proc"] + tools[name] + \
                       [orphans, str(n), mode]
                r = subprocess.run(argv, capture_output=True, text=True, env=env)
                lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
                if not lines:
                    fails.append(f"{name} {mode}: no result (exit {r.returncode}): {r.stderr.strip()[-300:]}")
                    continue
                d = parse_result(lines[-1])
                if d["left"] > 0:
                    fails.append(f"{name} {mode}: {int(d['left'])} processes left unreaped after 30 s")
                res[(name, mode)].append(d)
    rep.add(f"## 4. Reaping {n} orphans as PID 1", "",
            f"`unshare --pid --fork --mount-proc X -- bench/orphans {n} MODE`: the spawner double-forks "
            f"{n} grandchildren that are re-parented to X (PID 1) and exit; it then polls `/proc` every "
            "1 ms until only PID 1 and itself are left (a zombie keeps its `/proc` entry until reaped). "
            f"Median of {rounds} rounds, tools alternated. Times in ms.", "",
            "- **burst**: all orphans first block on a pipe, then exit together when it closes — "
            "reap throughput. *drain* = pipe closed → zero left.",
            "- **stream**: each orphan exits as soon as it is forked, while the spawner keeps forking "
            "(it shares the 2 CPUs with the supervisor). *drain* = last fork → zero left.",
            "- *tail* = exit of the last orphan (timestamp it wrote just before `_exit`) → zero left; "
            "±1 poll period.",
            "- *PID 1 CPU* = utime+stime of the supervisor during the run (10 ms ticks).", "")
    for mode in modes:
        rows = []
        ref = {k: med([d[k] for d in res[("tini", mode)]]) for k in ("drain_ms", "total_ms", "tail_ms")}
        for name in tools:
            ds = res[(name, mode)]
            if not ds:
                rows.append([name, "failed", "", "", "", "", "", "", ""])
                continue
            drain, tail, total = (med([d[k] for d in ds]) for k in ("drain_ms", "tail_ms", "total_ms"))
            # Below ~2 ms the drain is one or two /proc polls: a ratio would be noise.
            dr = ratio(drain, ref["drain_ms"]) if max(drain, ref["drain_ms"]) >= 2 else "≈ (poll res.)"
            rows.append([name, f"{drain:.1f}", dr, f"{tail:.1f}",
                         f"{med([d['spawn_ms'] for d in ds]):.0f}", f"{total:.0f}",
                         ratio(total, ref["total_ms"]), f"{med([d['sup_cpu_ms'] for d in ds]):.0f}",
                         " ".join(f"{d['drain_ms']:.0f}" for d in ds)])
        rep.add(f"### {mode}", "")
        rep.table(["tool", "drain", "drain / tini", "tail", "spawn", "total", "total / tini",
                   "PID 1 CPU", "all drains"], rows)
    if fails:
        rep.add("Failures:", "", *[f"- {f}" for f in fails], "")
    rb = med([d["drain_ms"] for d in res[("runner", "burst")]]) / \
        med([d["drain_ms"] for d in res[("tini", "burst")]]) if res[("runner", "burst")] else float("inf")
    rep.add(f"Target: reaping as fast as tini — burst drain {rb:.2f}x of tini: "
            f"{verdict(rb <= 1.1 and not fails)} (met = median drain at most 1.1x tini's and nothing left "
            "unreaped; see \"all drains\" for the spread, which on a shared machine is often larger).", "")
    return res


def describe_binary(path):
    real = os.path.realpath(path)
    size = os.stat(real).st_size
    info = cmd_out(["file", "-b", real])
    stripped = "stripped" if ", stripped" in info else ("not stripped" if "not stripped" in info else "?")
    link = "static" if "statically linked" in info or "static-pie" in info else "dynamic"
    return size, stripped, link


def bench_size(rep, bins):
    log("5. binary sizes")
    tsize = describe_binary(bins["tini"])[0]
    tssize = describe_binary(bins["tini-static"])[0] if "tini-static" in bins else None
    rows = []
    for name, path in bins.items():
        size, stripped, link = describe_binary(path)
        rows.append([name, f"`{path}`", f"{size:,} B ({size / MiB:.2f} MiB)", stripped, link,
                     ratio(size, tsize), ratio(size, tssize)])
    rep.add("## 5. Binary size", "")
    rep.table(["tool", "path", "size", "file(1)", "linking", "/ tini", "/ tini-static"], rows)
    rsize, rstripped, _ = describe_binary(bins["runner"])
    rep.add(f"Target: stripped release binary under 1.5 MiB — {rsize / MiB:.2f} MiB, {rstripped}: "
            f"{verdict(rsize < 1.5 * MiB and rstripped == 'stripped')}.", "")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--orphans", required=True)
    ap.add_argument("--rss-runs", type=int, default=5)
    ap.add_argument("--eco-runs", type=int, default=3)
    ap.add_argument("--startup-runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--interleaved-runs", type=int, default=1000)
    ap.add_argument("--orphans-n", type=int, default=5000)
    ap.add_argument("--orphan-rounds", type=int, default=5)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()

    bins = {"runner": a.runner, "tini": shutil.which("tini"), "tini-static": shutil.which("tini-static"),
            "dumb-init": shutil.which("dumb-init")}
    bins = {k: v for k, v in bins.items() if v}
    for k in ("runner", "tini", "dumb-init"):
        if k not in bins:
            sys.exit(f"bench: {k} not found")
    # Same command lines as the issue: `runner -- P`, `tini -- P`, `dumb-init P`.
    tools = {"runner": [bins["runner"], "--"], "tini": [bins["tini"], "--"]}
    if "tini-static" in bins:
        tools["tini-static"] = [bins["tini-static"], "--"]
    tools["dumb-init"] = [bins["dumb-init"]]
    reap_tools = {k: v for k, v in tools.items() if k != "tini-static"}

    tmp = tempfile.mkdtemp(prefix="runner-bench-")
    env = dict(os.environ)
    # Never touch the default /run/runner.sock another runner (or a test) may be using.
    env["RUNNER_SOCKET"] = os.path.join(tmp, "runner.sock")

    rep = Report()
    t0 = time.monotonic()
    load0 = loadavg()
    busy0 = cpu_busy()
    rev = cmd_out(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe", "--always", "--dirty"])
    rep.add(f"# runner core benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
            f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, "
            f"{cpu_model()}",
            f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}, tree `{rev}`){a.build_note}",
            f"- tini: {cmd_out([bins['tini'], '--version'])}; dumb-init: {cmd_out([bins['dumb-init'], '--version'])}; "
            f"{cmd_out(['hyperfine', '--version'])}",
            "- ratios are runner (or the other tool) divided by tini (dynamic `/usr/bin/tini`)", "")
    if a.quick:
        rep.add("**QUICK mode: few runs, numbers are indicative only.**", "")
    try:
        bench_rss(rep, tools, a.rss_runs, env)
        bench_eco(rep, a.runner, a.eco_runs, env, tmp)
        bench_startup(rep, tools, env, tmp, a.startup_runs, a.warmup)
        bench_startup_interleaved(rep, tools, env, a.interleaved_runs)
        bench_orphans(rep, reap_tools, a.orphans, a.orphans_n, a.orphan_rounds, env)
        bench_size(rep, bins)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    busy1 = cpu_busy()
    rep.add("---", "", f"Measured in {time.monotonic() - t0:.0f} s. Before: CPUs {busy0:.0f}% busy over 1 s, "
            f"load average {load0}; after: CPUs {busy1:.0f}% busy. Other work on the machine skews every "
            "number: compare within one report, not across reports.", "")
    sys.stdout.write(rep.text())


if __name__ == "__main__":
    main()
