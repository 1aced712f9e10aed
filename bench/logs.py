#!/usr/bin/env python3
"""Measurement driver for bench/logs.sh: lines/s through runner's log capture vs a pipe.

Run through bench/logs.sh, which builds runner and compiles the producer first. Prints one
markdown report on stdout. Standard library only.

Every case runs the same producer (N numbered lines of WIDTH bytes, written 64 KiB at a
time). Baselines put `cat` between the producer and the destination; the runner cases make
the producer an app of runner with `log_prefix` (and `time`, or `out_file`), so runner reads
it through a pipe, decorates each line and writes it out.
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MB = 1e6
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET = 0.70  # the issue: at least 70% of the pipe baseline's lines/s


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


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_busy(interval=1.0):
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))


def cpu_seconds(pid):
    """CPU time of pid itself (not its children's), in seconds: the main thread's time on
    CPU from /proc/PID/schedstat (ns; runner and cat are single-threaded), or utime + stime
    from /proc/PID/stat (10 ms ticks, every thread) when that is larger or schedstat is
    missing. Works on a zombie, so read it after the exit and before the reaping."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    rest = raw[raw.rfind(b")") + 2:].split()
    ticks = (int(rest[11]) + int(rest[12])) / CLK_TCK
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            ns = int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return ticks
    return ticks if ticks > ns + 0.05 else ns


def wait_keep(proc, deadline):
    """Waits for proc's exit without reaping it (its /proc entry stays readable)."""
    while True:
        try:
            r = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            return
        if r is not None and r.si_pid == proc.pid:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {proc.pid} ({proc.args[0]}) did not exit in time")
        time.sleep(0.002)


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


class Case:
    """One way to move the producer's lines to a destination."""

    def __init__(self, key, title, kind, dest, keys=""):
        self.key, self.title, self.kind, self.dest, self.keys = key, title, kind, dest, keys


def ecosystem(work, key, producer, lines, width, keys):
    d = os.path.join(work, key)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "ecosystem.toml")
    with open(path, "w") as f:
        f.write("[[apps]]\n"
                "name = \"p\"\n"
                f"script = \"{producer}\"\n"
                f"args = [\"{lines}\", \"{width}\"]\n"
                "interpreter = \"none\"\n"
                "autorestart = false\n"
                f"{keys}\n")
    return d, path


def run_case(case, a, timeout):
    """One run; returns dict(wall, cpu (runner's or cat's), out_bytes)."""
    devnull = open(os.devnull, "wb")
    outfile = os.path.join(a.work, f"{case.key}.out")
    if os.path.exists(outfile):
        os.unlink(outfile)
    procs = []
    deadline = time.monotonic() + timeout
    try:
        if case.kind == "pipe":
            dest = devnull if case.dest == "null" else open(outfile, "wb")
            t0 = time.monotonic()
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=dest)
            procs.append(cat)
            prod = subprocess.Popen([a.producer, str(a.lines), str(a.width)], stdout=cat.stdin)
            procs.append(prod)
            cat.stdin.close()
            prod.wait()
            wait_keep(cat, deadline)
            wall = time.monotonic() - t0
            cpu = cpu_seconds(cat.pid)
            cat.wait()
            code = prod.returncode
        else:
            d, eco = ecosystem(a.work, case.key, a.producer, a.lines, a.width,
                               case.keys.replace("OUTFILE", outfile))
            env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"))
            env.pop("RUNNER_LOG", None)
            err = open(os.path.join(d, "runner.err"), "wb")
            t0 = time.monotonic()
            cat = None
            if case.dest == "pipe":
                cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=devnull)
                procs.append(cat)
                stdout = cat.stdin
            else:
                stdout = devnull
            run = subprocess.Popen([a.runner, eco], stdout=stdout, stderr=err, env=env, cwd=d)
            procs.append(run)
            if cat:
                cat.stdin.close()
            wait_keep(run, deadline)
            cpu = cpu_seconds(run.pid)
            run.wait()
            if cat:
                wait_keep(cat, deadline)
                cat.wait()
            wall = time.monotonic() - t0
            code = run.returncode
            err.close()
            with open(os.path.join(d, "runner.err"), "rb") as f:
                errtext = f.read().decode(errors="replace")
            if "drop" in errtext.lower():
                log(f"{case.key}: runner reported dropped lines:\n{errtext}")
        if code != 0:
            raise RuntimeError(f"{case.key}: exit code {code}")
        out_bytes = os.path.getsize(outfile) if os.path.exists(outfile) else None
        return {"wall": wall, "cpu": cpu, "out_bytes": out_bytes}
    finally:
        kill_all(procs)
        devnull.close()


def profile(a, rep):
    """perf record of runner in the prefix-to-pipe case: where runner's CPU time goes.
    Uses --perf-runner (the same build with symbols) when given."""
    perf = shutil.which("perf")
    if a.no_perf or not perf:
        rep.append(("profile", "perf not available" if not perf else "skipped (PERF=0)"))
        return
    d, eco = ecosystem(a.work, "perf", a.producer, a.lines, a.width, "log_prefix = true")
    data = os.path.join(d, "perf.data")
    env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"))
    with open(os.devnull, "wb") as null:
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=null)
        r = subprocess.run([perf, "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g", "-o", data,
                            "--", a.perf_runner or a.runner, eco], stdout=cat.stdin, stderr=subprocess.PIPE,
                           env=env, cwd=d, timeout=300)
        cat.stdin.close()
        cat.wait()
    if r.returncode != 0:
        rep.append(("profile", f"perf record failed: {r.stderr.decode(errors='replace')[-300:]}"))
        return
    # Self time of runner's own threads only (not the producer, which perf also follows).
    rpt = subprocess.run([perf, "report", "-i", data, "--comm", "runner", "--no-children",
                          "--stdio", "-g", "none", "--percent-limit", "1.5", "--sort", "dso,symbol"],
                         capture_output=True, text=True, timeout=120)
    lines = [l for l in rpt.stdout.splitlines() if l.strip() and not l.startswith("#")]
    rep.append(("profile", "\n".join(lines[:25])))
    st = subprocess.run([perf, "report", "-i", data, "--stdio", "--sort", "comm", "-g", "none"],
                        capture_output=True, text=True, timeout=120)
    rep.append(("by-comm", "\n".join(l for l in st.stdout.splitlines() if l.strip() and not l.startswith("#"))))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--producer", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--width", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--perf-runner", default=None, help="runner built with symbols, for the profile")
    a = ap.parse_args()
    own_work = a.work is None
    if own_work:
        a.work = tempfile.mkdtemp(prefix="runner-bench-logs-")

    cases = [
        Case("pipe", "`producer \\| cat > /dev/null` (baseline)", "pipe", "null"),
        Case("inherit", "`runner eco > /dev/null`, no log keys (fd 1 inherited)", "runner", "null"),
        Case("prefix", "`runner eco > /dev/null`, `log_prefix`", "runner", "null", "log_prefix = true"),
        Case("time", "`runner eco > /dev/null`, `log_prefix` + `time`", "runner", "null",
             "log_prefix = true\ntime = true"),
        Case("prefix-pipe", "`runner eco \\| cat > /dev/null`, `log_prefix`", "runner", "pipe",
             "log_prefix = true"),
        Case("pipe-file", "`producer \\| cat > file` (file baseline)", "pipe", "file"),
        Case("out-file", "`runner eco`, `out_file = file`", "runner", "file", "out_file = \"OUTFILE\""),
    ]
    results = {c.key: [] for c in cases}
    t0 = time.monotonic()
    load0, busy0 = loadavg(), cpu_busy()
    try:
        for c in cases:  # warm-up: page cache, binary, first-run effects
            run_case(c, argparse.Namespace(**{**vars(a), "lines": min(a.lines, 100_000)}), a.timeout)
        for rnd in range(a.runs):
            order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
            for c in order:
                r = run_case(c, a, a.timeout)
                results[c.key].append(r)
                log(f"round {rnd + 1}/{a.runs} {c.key}: {r['wall']:.3f} s, cpu {r['cpu']:.2f} s")
        extra = []
        profile(a, extra)
    finally:
        if own_work:
            shutil.rmtree(a.work, ignore_errors=True)
    busy1 = cpu_busy()

    mb = a.lines * a.width / MB
    med = {k: {f: statistics.median(r[f] for r in v) for f in ("wall", "cpu")} for k, v in results.items()}
    rev = cmd_out(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe", "--always", "--dirty"])
    out = [f"# runner log throughput benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
           f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, {cpu_model()}",
           f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}, tree `{rev}`){a.build_note}",
           f"- producer: {a.lines:,} lines of {a.width} bytes ({mb:.0f} MB), written 64 KiB at a time; "
           f"median of {a.runs} rounds (cases interleaved, order rotated each round)",
           "- lines/s and MB/s count the producer's lines and bytes (before decoration); "
           "CPU is the process in the middle (runner, or `cat` for the baselines): its time on CPU "
           "from /proc/PID/schedstat, read after its exit and before it is reaped", ""]
    if a.quick:
        out += ["**QUICK mode: few lines and runs, numbers are indicative only.**", ""]
    base = {"null": med["pipe"]["wall"], "pipe": med["pipe"]["wall"], "file": med["pipe-file"]["wall"]}
    out += ["| case | wall (median) | min–max | lines/s | MB/s | CPU of runner/cat | CPU ms per MB | "
            "lines/s vs baseline |", "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        m, walls = med[c.key], [r["wall"] for r in results[c.key]]
        ratio = base[c.dest] / m["wall"]
        out.append(f"| {c.title} | {m['wall']:.3f} s | {min(walls):.3f}–{max(walls):.3f} | "
                   f"{a.lines / m['wall']:,.0f} | {mb / m['wall']:.1f} | {m['cpu']:.3f} s | "
                   f"{1000 * m['cpu'] / mb:.2f} | {ratio:.2f}x |")
    out.append("")
    checks = []
    for key, base_key in (("prefix", "pipe"), ("prefix-pipe", "pipe"), ("time", "pipe"),
                          ("out-file", "pipe-file")):
        r = med[base_key]["wall"] / med[key]["wall"]
        checks.append(f"- `{key}`: {100 * r:.0f}% of `{base_key}` lines/s — target ≥ {100 * TARGET:.0f}%: "
                      + ("**met**" if r >= TARGET else "**NOT met**"))
    out += ["Target (issue): runner's prefix mode at least 70% of the pipe baseline's lines/s.", ""] + checks + [""]
    sizes = [r["out_bytes"] for r in results["out-file"] if r["out_bytes"] is not None]
    if sizes:
        want = a.lines * a.width
        out += [f"out_file size check: {sizes[0]:,} bytes written for {want:,} bytes produced "
                f"({'ok' if sizes[0] == want else 'MISMATCH'}).", ""]
    for name, text in extra:
        if name == "profile":
            out += ["## Where runner's CPU goes (prefix → pipe, `perf record -e cpu-clock`, runner's "
                    "own samples, self time)", "", "```", text, "```", ""]
        else:
            out += ["Samples per process in that profile:", "", "```", text, "```", ""]
    out += ["---", "", f"Measured in {time.monotonic() - t0:.0f} s. Before: CPUs {busy0:.0f}% busy over 1 s, "
            f"load average {load0}; after: CPUs {busy1:.0f}% busy. Other work on the machine skews every "
            "number: compare within one report, not across reports.", ""]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
