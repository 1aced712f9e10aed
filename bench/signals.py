#!/usr/bin/env python3
"""Measurement driver for bench/signals.sh: signal forwarding latency of init-style supervisors.

runner in single-program mode (`runner -- APP`), tini, dumb-init and catatonit each
supervise the same tiny C program (compiled by this script), which blocks SIGUSR1 and
waits for it with sigwaitinfo(2); on each one it writes its CLOCK_MONOTONIC time to its
stdout (a pipe to this script). The benchmark takes CLOCK_MONOTONIC, sends SIGUSR1 to the
supervisor, and waits for the program's line: latency = receive time - send time. Both
clocks are the system-wide CLOCK_MONOTONIC, so they are comparable. "direct" sends the
signal to the program itself (no supervisor): the floor.

Every supervisor runs for the whole benchmark; signals go in chunks, the order of the
tools rotated per chunk, one signal in flight at a time, spaced by --gap-ms.

Prints a markdown report on stdout; --json PATH also writes the raw results.
Standard library only (plus a C compiler for the receiver; without one, a Python receiver
is used and the report says so).
"""

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

RECEIVER_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "ready %d\n", (int)getpid());
    if (write(1, buf, (size_t)n) != n) return 3;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) continue;
        if (sig != SIGUSR1) return 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        n = snprintf(buf, sizeof buf, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        if (write(1, buf, (size_t)n) != n) return 3;
    }
}
"""

RECEIVER_PY = r"""
import os, signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
os.write(1, b"ready %d\n" % os.getpid())
while True:
    sig = signal.sigwait({signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    if sig != signal.SIGUSR1:
        sys.exit(0)
    os.write(1, b"%d\n" % time.monotonic_ns())
"""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cmd_out(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
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


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Subject:
    """One supervisor (or none) with the receiver under it; stdout is a pipe to us."""

    def __init__(self, name, argv, env):
        self.name, self.argv = name, argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        self.fd = self.proc.stdout.fileno()
        self.buf = b""
        line = self.readline(10.0)
        if not line or not line.startswith(b"ready "):
            raise RuntimeError(f"{name}: receiver did not start (got {line!r}, exit {self.proc.poll()})")
        self.app_pid = int(line.split()[1])
        # The signal goes to the supervisor; "direct" has none, so it goes to the app.
        self.target = self.proc.pid
        self.lat_us = []
        self.lost = 0
        self.cpu_ns = 0

    def cpu_now(self):
        """The supervisor's CPU time so far (ns, /proc/PID/schedstat); None without one."""
        if self.target == self.app_pid:
            return None
        try:
            with open(f"/proc/{self.target}/schedstat") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    return None
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def one(self):
        t_send = time.monotonic_ns()
        os.kill(self.target, signal.SIGUSR1)
        line = self.readline(1.0)
        if line is None:
            self.lost += 1
            return
        self.lat_us.append((int(line) - t_send) / 1000.0)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.kill(self.app_pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.stdout.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--signals", type=int, default=200, help="signals per tool")
    ap.add_argument("--gap-ms", type=float, default=5.0)
    ap.add_argument("--chunks", type=int, default=4, help="interleaving: signals go in this many chunks")
    ap.add_argument("--json", default=None)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=PATH",
                    help="another supervisor run as `PATH -- PROGRAM` (an A/B against an older runner)")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="runner-bench-signals-")
    env = dict(os.environ, RUNNER_SOCKET=os.path.join(tmp, "runner.sock"))
    env.pop("NOTIFY_SOCKET", None)
    cc = shutil.which("cc") or shutil.which("gcc")
    receiver_kind = "C (sigwaitinfo)"
    if cc:
        src = os.path.join(tmp, "sigrecv.c")
        with open(src, "w") as f:
            f.write(RECEIVER_C)
        recv = [os.path.join(tmp, "sigrecv")]
        subprocess.run([cc, "-O2", "-Wall", "-o", recv[0], src], check=True)
    else:
        src = os.path.join(tmp, "sigrecv.py")
        with open(src, "w") as f:
            f.write(RECEIVER_PY)
        recv = [shutil.which("python3") or "/usr/bin/python3", src]
        receiver_kind = "Python (signal.sigwait; no C compiler)"

    tools = [("direct (no supervisor)", recv), ("runner", [a.runner, "--"] + recv)]
    for name, pre in (("tini", ["--"]), ("dumb-init", []), ("catatonit", ["--"])):
        b = shutil.which(name)
        if b:
            tools.append((name, [b] + pre + recv))
    for kv in a.extra:
        name, _, path = kv.partition("=")
        if name and path:
            tools.append((name, [path, "--"] + recv))
    missing = [n for n in ("tini", "dumb-init", "catatonit") if not shutil.which(n)]

    t0 = time.monotonic()
    load0 = loadavg()
    subjects = []
    fails = []
    try:
        for name, argv in tools:
            try:
                subjects.append(Subject(name, argv, env))
            except RuntimeError as e:
                fails.append(str(e))
                log(str(e))
        time.sleep(0.3)  # let every supervisor settle into its wait
        per_chunk = max(1, a.signals // a.chunks)
        gap = a.gap_ms / 1000.0
        log(f"{a.signals} x SIGUSR1 per tool to {', '.join(s.name for s in subjects)}, "
            f"{a.gap_ms:g} ms apart, {a.chunks} rotated chunks")
        nxt = time.monotonic()
        for c in range(a.chunks):
            order = subjects[c % len(subjects):] + subjects[:c % len(subjects)]
            for s in order:
                cpu0 = s.cpu_now()
                for _ in range(per_chunk):
                    nxt += gap
                    d = nxt - time.monotonic()
                    if d > 0:
                        time.sleep(d)
                    else:
                        nxt = time.monotonic()
                    s.one()
                cpu1 = s.cpu_now()
                if cpu0 is not None and cpu1 is not None:
                    s.cpu_ns += cpu1 - cpu0
    finally:
        for s in subjects:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    res = {}
    for s in subjects:
        if not s.lat_us:
            continue
        xs = s.lat_us
        res[s.name] = {"n": len(xs), "lost": s.lost, "p50_us": pct(xs, 50), "p90_us": pct(xs, 90),
                       "p99_us": pct(xs, 99), "min_us": min(xs), "max_us": max(xs),
                       "mean_us": statistics.fmean(xs),
                       "cpu_us_per_signal": (s.cpu_ns / 1000.0 / len(xs)) if s.target != s.app_pid else None,
                       "argv": " ".join(os.path.basename(x) for x in
                                                                            [s.argv[0]] + s.argv[1:2])}
    out = []
    out += [f"# runner signal forwarding benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
            f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, {cpu_model()}",
            f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}){a.build_note}",
            f"- tini: {cmd_out(['tini', '--version']) if shutil.which('tini') else 'missing'}; "
            f"dumb-init: {cmd_out(['dumb-init', '--version']) if shutil.which('dumb-init') else 'missing'}; "
            f"catatonit: {cmd_out(['catatonit', '-V']) if shutil.which('catatonit') else 'missing'}",
            f"- receiver: {receiver_kind}; {a.signals} SIGUSR1 per tool, one in flight at a time, "
            f"{a.gap_ms:g} ms apart, in {a.chunks} chunks with the tool order rotated", ""]
    if a.quick:
        out += ["**QUICK mode.**", ""]
    out += ["CPU / signal = the supervisor's own CPU time (/proc/PID/schedstat) over its chunks, "
            "divided by the signals it forwarded: waking up, reading, forwarding, going back to sleep. µs.", "",
            "Latency = the program's CLOCK_MONOTONIC when sigwaitinfo returned minus ours just before "
            "kill(2) to the supervisor. µs.", "",
            "| tool | p50 | p90 | p99 | min | max | mean | p50 − direct | p50 / runner | p99 / runner | lost | CPU / signal |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = res.get("direct (no supervisor)", {}).get("p50_us")
    rr = res.get("runner")
    for name, r in res.items():
        out.append(f"| {name} | {r['p50_us']:.1f} | {r['p90_us']:.1f} | {r['p99_us']:.1f} | {r['min_us']:.1f} | "
                   f"{r['max_us']:.1f} | {r['mean_us']:.1f} | "
                   + (f"{r['p50_us'] - base:.1f}" if base is not None else "—") + " | "
                   + (f"{r['p50_us'] / rr['p50_us']:.2f}x" if rr else "—") + " | "
                   + (f"{r['p99_us'] / rr['p99_us']:.2f}x" if rr else "—") + f" | {r['lost']} | "
                   + (f"{r['cpu_us_per_signal']:.1f}" if r['cpu_us_per_signal'] is not None else "—") + " |")
    out.append("")
    if missing:
        out += [f"Not installed, not measured: {', '.join(missing)}.", ""]
    if fails:
        out += ["Failures:", ""] + [f"- {f}" for f in fails] + [""]
    out += ["Notes: tini, dumb-init and catatonit are not PID 1 here (tini warns); as PID 1 in a "
            "container the forwarding path is the same. dumb-init forwards to the child's process "
            "group (its default setsid mode). The supervisor and the program share 2 CPUs with "
            "this script.", "",
            "---", "", f"Measured in {time.monotonic() - t0:.0f} s. Load average before {load0}, "
            f"after {loadavg()}.", ""]
    sys.stdout.write("\n".join(out) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "signals", "quick": a.quick, "date": datetime.datetime.now().isoformat(),
                       "signals": a.signals, "gap_ms": a.gap_ms, "receiver": receiver_kind,
                       "results": res, "raw_us": {s.name: s.lat_us for s in subjects}, "fails": fails,
                       "missing": missing}, f)


if __name__ == "__main__":
    main()
