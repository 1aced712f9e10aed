#!/usr/bin/env python3
"""Measurement driver for bench/startup.sh: time from a supervisor's start until it reports
every instance running, for 1 and 20 instances.

Every tool runs the same program: `/bin/sh -c 'systemd-notify --ready 2>/dev/null; exec
sleep 100000'` (it says READY=1 over sd_notify when it has a NOTIFY_SOCKET, then sleeps).
A second app, a tiny C program compiled here that sends READY=1 itself and pauses, shows
the supervisors' cost nearly without the app's: one `sh -c 'systemd-notify --ready'` is
~8 ms of CPU here (hyperfine: 4.4 ms user + 3.8 ms system), so 20 are ~160 ms of CPU, at least
80 ms on 2 CPUs, which a supervisor that waits for READY=1 cannot hide (PM2 is run with the
first app only: its figure is its CLI's and daemon's either way).

- runner, `wait_ready = true`: an instance is online only once its READY=1 has arrived.
  Clock: `runner ECO` is spawned → the first `runner status` that exits 0 (polled back to
  back, 1 ms apart).
- runner without `wait_ready`: online once spawned (the same criterion as the peers').
- floor, no supervisor (bench/apps/notify-floor.c): starts the N apps itself and counts their
  READY=1; the time no supervisor that waits for READY=1 can go below on this machine.
  Clock: the launcher is spawned → it prints "ready".
- runner, `wait_ready`, clock: its log: the same run as the first, timed to the Nth
  "online" line runner writes on stderr, with no poll beside it: like for like with the floor.
- supervisord, `startsecs = 0` (RUNNING as soon as spawned): `supervisord -n -c CONF` is
  spawned → the first `supervisor.getAllProcessInfo` over its unix socket (the XML-RPC call
  `supervisorctl status` makes, done in-process so the poll costs ~1 ms instead of
  supervisorctl's ~200 ms of Python start-up) showing every process RUNNING. `supervisorctl
  status` is run once afterwards to confirm.
- PM2, cold: fresh PM2_HOME, so `pm2 start ecosystem.config.js` also starts the God Daemon,
  as on a fresh container → the first `pm2 jlist` with every process online.
- PM2, warm daemon: the same with the daemon already running (`pm2 ping` beforehand, not
  timed): what a user sees when PM2 runs already.

PM2's clock necessarily includes its CLI (Node.js start-up) since that is the only way to
start apps and to ask for their state. Rounds rotate the tool order. Prints a markdown
report; --json PATH writes the raw results. Standard library only.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

APP_CMD = "systemd-notify --ready 2>/dev/null; exec sleep 100000"

# The same app without the cost of a shell and of systemd-notify (which loads libsystemd):
# READY=1 straight to $NOTIFY_SOCKET, then sleep.
NOTIFY_C = r"""
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(void) {
    const char *p = getenv("NOTIFY_SOCKET");
    if (p && (p[0] == '/' || p[0] == '@') && strlen(p) < sizeof(((struct sockaddr_un *)0)->sun_path)) {
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        memcpy(a.sun_path, p, strlen(p));
        if (p[0] == '@') a.sun_path[0] = 0;
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s >= 0) {
            sendto(s, "READY=1", 7, 0, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(p)));
            close(s);
        }
    }
    for (;;) pause();
}
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


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        return raw[raw.rfind(b")") + 2:raw.rfind(b")") + 3] != b"Z"
    except OSError:
        return False


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def make_connection(self, host):
        path = self.path

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(5)
                self.sock.connect(path)
        return Conn("localhost")


# ---------------------------------------------------------------- tools

def write_ecosystem(d, n, app, wait_ready):
    """runner's ecosystem file for `n` instances of `app` in `d`; returns its path."""
    eco = os.path.join(d, "ecosystem.toml")
    with open(eco, "w") as f:
        f.write(f'[[apps]]\nname = "app"\nscript = {json.dumps(app[0])}\nargs = {json.dumps(app[1:])}\n'
                f'interpreter = "none"\ninstances = {n}\nwait_ready = {"true" if wait_ready else "false"}\n')
    return eco


class Runner:
    def __init__(self, a, wait_ready):
        self.a, self.wait_ready = a, wait_ready
        self.name = "runner" + ("" if wait_ready else " (no wait_ready)")

    def run(self, d, n, app):
        eco = write_ecosystem(d, n, app, self.wait_ready)
        env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"))
        env.pop("NOTIFY_SOCKET", None)
        err = open(os.path.join(d, "runner.log"), "w")
        polls = 0
        t0 = time.monotonic()
        proc = subprocess.Popen([self.a.runner, eco], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True, env=env)
        try:
            deadline = t0 + 30
            while True:
                polls += 1
                r = subprocess.run([self.a.runner, "status"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    t1 = time.monotonic()
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: not online within 30 s (exit {proc.poll()})")
                time.sleep(0.001)
            kids = descendants(proc.pid)
            if len(kids) < n:
                raise RuntimeError(f"{self.name}: status 0 but only {len(kids)} processes under runner")
            return t1 - t0, polls
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


class RunnerLogClock:
    """runner with wait_ready, clocked by its own log instead of `runner status` polls: the
    Nth "online" line on its stderr. Nothing else runs beside the apps, as with the floor,
    so the two compare like for like (a poll is a process start competing with the apps for
    the 2 CPUs)."""
    name = "runner (clock: its log)"

    def __init__(self, a):
        self.a = a

    def run(self, d, n, app):
        eco = write_ecosystem(d, n, app, True)
        env = dict(os.environ, RUNNER_SOCKET=os.path.join(d, "runner.sock"), RUNNER_LOG="info")
        env.pop("NOTIFY_SOCKET", None)
        t0 = time.monotonic()
        proc = subprocess.Popen([self.a.runner, eco], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True, env=env)
        try:
            online, buf, deadline = 0, b"", t0 + 30
            while online < n:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([proc.stderr], [], [], max(left, 0))
                chunk = os.read(proc.stderr.fileno(), 65536) if ready else b""
                if not chunk:
                    raise RuntimeError(f"{self.name}: {online} of {n} online within 30 s (exit {proc.poll()})")
                buf += chunk
                *lines, buf = buf.split(b"\n")
                online += sum(1 for line in lines if line.endswith(b" online"))
            return time.monotonic() - t0, 0
        finally:
            kids = descendants(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
            kill_pids(kids)


class Floor:
    """No supervisor: bench/apps/notify-floor.c starts the N apps and waits for their N
    READY=1, the work any supervisor that waits for READY=1 cannot avoid. Clock: the
    launcher is spawned -> it prints "ready"."""
    name = "floor (no supervisor)"

    def __init__(self, binary):
        self.binary = binary

    def run(self, d, n, app):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        t0 = time.monotonic()
        proc = subprocess.Popen([self.binary, os.path.join(d, "notify.sock"), str(n), "--"] + app,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True, env=env)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            line = proc.stdout.readline() if ready else b""
            t1 = time.monotonic()
            if line.strip() != b"ready":
                raise RuntimeError(f"{self.name}: no READY=1 from all {n} within 30 s (exit {proc.poll()})")
            return t1 - t0, 0
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            proc.stdout.close()


class Supervisord:
    name = "supervisord"

    def __init__(self, a, binary):
        self.a, self.binary = a, binary

    def run(self, d, n, app):
        conf = os.path.join(d, "supervisord.conf")
        sock = os.path.join(d, "supervisor.sock")
        with open(conf, "w") as f:
            f.write(f"""[unix_http_server]
file={sock}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

[supervisord]
nodaemon=true
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
loglevel=warn
user=root

[program:app]
command={" ".join(app[:-1] + ['"' + app[-1] + '"'] if len(app) > 1 else app)}
numprocs={n}
process_name=%(program_name)s_%(process_num)02d
startsecs=0
""")
        polls = 0
        t0 = time.monotonic()
        proc = subprocess.Popen([self.binary, "-n", "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = t0 + 60
            while True:
                polls += 1
                ok = False
                if os.path.exists(sock):
                    try:
                        srv = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(sock))
                        info = srv.supervisor.getAllProcessInfo()
                        ok = len(info) == n and all(p["statename"] == "RUNNING" for p in info)
                    except (OSError, xmlrpc.client.Error, http.client.HTTPException):
                        pass
                if ok:
                    t1 = time.monotonic()
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"supervisord: not all RUNNING within 60 s (exit {proc.poll()})")
                time.sleep(0.001)
            ctl = subprocess.run(["supervisorctl", "-c", conf, "status"], capture_output=True, text=True,
                                 timeout=30) if shutil.which("supervisorctl") else None
            if ctl is not None:
                running = sum(1 for line in ctl.stdout.splitlines() if " RUNNING " in f" {line} ")
                if running != n:
                    raise RuntimeError(f"supervisord: supervisorctl status shows {running}/{n} RUNNING")
            return t1 - t0, polls
        finally:
            kids = descendants(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            kill_pids(kids)


class PM2:
    def __init__(self, a, warm):
        self.a, self.warm = a, warm
        self.name = "PM2 (warm daemon)" if warm else "PM2 (cold: starts its daemon)"

    def pm2(self, env, d, *args, timeout=60):
        return subprocess.run([self.a.pm2, *args], env=env, cwd=d, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def run(self, d, n, app):
        home = os.path.join(d, "pm2home")
        env = dict(os.environ, PM2_HOME=home)
        env.pop("NOTIFY_SOCKET", None)
        eco = os.path.join(d, "ecosystem.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = {apps: [{name: 'app', script: %s, args: %s, "
                    "interpreter: 'none', exec_mode: 'fork', instances: %d, autorestart: true}]};\n"
                    % (json.dumps(app[0]), json.dumps(app[1:]), n))
        daemon = None
        polls = 0
        try:
            if self.warm:
                self.pm2(env, d, "ping")
            t0 = time.monotonic()
            r = self.pm2(env, d, "start", eco)
            if r.returncode != 0:
                raise RuntimeError(f"{self.name}: pm2 start exited {r.returncode}: {r.stderr[-300:]}")
            deadline = t0 + 60
            while True:
                polls += 1
                r = self.pm2(env, d, "jlist")
                try:
                    procs = json.loads(r.stdout[r.stdout.find("["):])
                    online = sum(1 for p in procs if p["pm2_env"]["status"] == "online")
                except (ValueError, KeyError, TypeError):
                    online = -1
                if online == n:
                    t1 = time.monotonic()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: {online}/{n} online after 60 s")
            return t1 - t0, polls
        finally:
            try:
                with open(os.path.join(home, "pm2.pid")) as f:
                    daemon = int(f.read().strip())
            except (OSError, ValueError):
                pass
            kids = descendants(daemon) if daemon else []
            try:
                self.pm2(env, d, "kill", timeout=60)
            except subprocess.TimeoutExpired:
                pass
            if daemon:
                for _ in range(100):
                    if not alive(daemon):
                        break
                    time.sleep(0.05)
                kill_pids([daemon])
            kill_pids(kids)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--pm2", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pm2-rounds", type=int, default=None, help="rounds for PM2 (default: --rounds)")
    ap.add_argument("--instances", default="1,20")
    ap.add_argument("--no-c-app", action="store_true", help="only the sh + systemd-notify app")
    ap.add_argument("--json", default=None)
    ap.add_argument("--build-note", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    counts = [int(x) for x in a.instances.split(",")]
    pm2_rounds = a.pm2_rounds if a.pm2_rounds is not None else a.rounds

    tools = [Runner(a, True), Runner(a, False), RunnerLogClock(a)]
    sup = shutil.which("supervisord")
    if sup:
        tools.append(Supervisord(a, sup))
    if a.pm2 and os.access(a.pm2, os.X_OK):
        tools += [PM2(a, False), PM2(a, True)]

    tmp = tempfile.mkdtemp(prefix="runner-bench-startup-")
    apps = {"sh": ("sh + systemd-notify", ["/bin/sh", "-c", APP_CMD])}
    cc = shutil.which("cc") or shutil.which("gcc")
    floor_src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps", "notify-floor.c")
    floor_bin = os.path.join(tmp, "notify-floor")
    if cc and subprocess.run([cc, "-O2", "-o", floor_bin, floor_src]).returncode == 0:
        tools.append(Floor(floor_bin))
    if cc and not a.no_c_app:
        src = os.path.join(tmp, "notify-sleep.c")
        with open(src, "w") as f:
            f.write(NOTIFY_C)
        binary = os.path.join(tmp, "notify-sleep")
        if subprocess.run([cc, "-O2", "-o", binary, src]).returncode == 0:
            apps["c"] = ("C notifier", [binary])
    # The C app only matters where the supervisor waits for it or spawns it: PM2's time is
    # its CLI's and daemon's, the same for either app.
    plan = [(t, app) for app in apps for t in tools if app == "sh" or not isinstance(t, PM2)]
    t_start = time.monotonic()
    load0 = loadavg()
    res = {(t.name, app, n): [] for t, app in plan for n in counts}
    polls = {(t.name, app, n): [] for t, app in plan for n in counts}
    fails = []
    k = 0
    try:
        for rnd in range(a.rounds):
            order = plan[rnd % len(plan):] + plan[:rnd % len(plan)]
            for n in counts:
                for t, app in order:
                    if isinstance(t, PM2) and rnd >= pm2_rounds:
                        continue
                    k += 1
                    d = os.path.join(tmp, f"{k:03d}")
                    os.makedirs(d)
                    try:
                        dt, np = t.run(d, n, apps[app][1])
                        res[(t.name, app, n)].append(dt)
                        polls[(t.name, app, n)].append(np)
                        log(f"round {rnd + 1}/{a.rounds} {t.name} [{app}] x{n}: {dt * 1000:.1f} ms ({np} polls)")
                    except Exception as e:  # noqa: BLE001 - report and go on
                        fails.append(f"{t.name} [{app}] x{n}: {e}")
                        log(f"{t.name} [{app}] x{n}: FAILED: {e}")
                    time.sleep(0.2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    pm2_version = "not installed"
    if a.pm2:
        try:
            pkg = os.path.join(os.path.dirname(os.path.realpath(a.pm2)), "..", "package.json")
            with open(pkg) as f:
                pm2_version = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            pm2_version = "?"
    out = [f"# runner start-up benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}", "",
           f"- host: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs, {cpu_model()}",
           f"- runner: `{a.runner}` ({cmd_out([a.runner, '--version'])}){a.build_note}",
           f"- supervisord {cmd_out([sup, '--version']) if sup else 'not installed'}; PM2 {pm2_version} on "
           f"Node.js {cmd_out(['node', '--version'])}",
           f"- apps: **sh + systemd-notify** = `/bin/sh -c '{APP_CMD}'` (one sh + systemd-notify is ~8 ms of "
           "CPU here: 20 of them are at least 80 ms on 2 CPUs, whoever starts them)"
           + ("; **C notifier** = a 20-line C program that sends READY=1 to $NOTIFY_SOCKET itself and pauses "
              "(the supervisor's own cost, nearly without the app's)" if "c" in apps else ""),
           f"- {a.rounds} rounds (PM2: {pm2_rounds}), order rotated", ""]
    if a.quick:
        out += ["**QUICK mode: few rounds, numbers are indicative only.**", ""]
    out += ["Time from spawning the supervisor (PM2: running `pm2 start`) until its own status command "
            "reports every instance running (runner: `runner status` exit 0; supervisord: every process "
            "RUNNING; PM2: `pm2 jlist` all online). ms.", ""]
    summary = {}
    for app, (title, _) in apps.items():
        for n in counts:
            out += [f"### {title}, {n} instance{'s' if n > 1 else ''}", "",
                    "| tool | median | min | max | runs | polls (median) | / runner | / supervisord |",
                    "|---|---|---|---|---|---|---|---|"]
            rx = res.get(("runner", app, n))
            sx = res.get(("supervisord", app, n))
            rmed = statistics.median(rx) if rx else None
            smed = statistics.median(sx) if sx else None
            for t, ap_ in plan:
                if ap_ != app:
                    continue
                xs = res[(t.name, app, n)]
                if not xs:
                    out.append(f"| {t.name} | failed | | | 0 | | | |")
                    continue
                m = statistics.median(xs)
                summary[f"{t.name}|{app}|{n}"] = {"tool": t.name, "app": app, "app_title": title, "instances": n,
                                                  "median_s": m, "min_s": min(xs), "max_s": max(xs), "runs": xs,
                                                  "polls": polls[(t.name, app, n)]}
                out.append(f"| {t.name} | {m * 1000:.1f} | {min(xs) * 1000:.1f} | {max(xs) * 1000:.1f} | {len(xs)} | "
                           f"{statistics.median(polls[(t.name, app, n)]):.0f} | "
                           + (f"{m / rmed:.2f}x" if rmed else "—") + " | "
                           + (f"{m / smed:.3f}x" if smed else "—") + " |")
            out.append("")
    for app, (title, _) in apps.items():
        rx, sx = res.get(("runner", app, 20)), res.get(("supervisord", app, 20))
        if rx and sx:
            r = statistics.median(rx) / statistics.median(sx)
            out += [f"Target: 20 instances running in under a tenth of supervisord's time — {title}: runner "
                    f"(wait_ready) {r:.3f}x of supervisord: {'**met**' if r < 0.1 else '**NOT met**'}."]
    for app, (title, _) in apps.items():
        for n in counts:
            rx, fx = res.get((RunnerLogClock.name, app, n)), res.get((Floor.name, app, n))
            if rx and fx:
                rm, fm = statistics.median(rx), statistics.median(fx)
                out += [f"- {title}, {n} instance{'s' if n > 1 else ''}: the floor (no supervisor) takes "
                        f"{fm * 1000:.1f} ms; runner (wait_ready, clock: its log) takes {(rm - fm) * 1000:+.1f} ms more "
                        f"({rm / fm:.2f}x the floor)."]
    out.append("")
    if fails:
        out += ["Failures:", ""] + [f"- {f}" for f in fails] + [""]
    out += ["Notes: supervisord with `startsecs = 0` counts a process RUNNING once it is spawned, and PM2 "
            "counts it online once spawned, so neither waits for the app; runner with `wait_ready` waits "
            "for each READY=1 (the stricter criterion); the no-wait_ready row is the like-for-like one. "
            "supervisord polls are in-process XML-RPC calls (1 ms apart); PM2 polls are `pm2 jlist` runs. "
            "On 2 CPUs the 20 apps' own start-up competes with the supervisor (20 x sh + systemd-notify is "
            "~160 ms of CPU); the floor row shows what is left when no supervisor runs.",
            "", "---", "", f"Measured in {time.monotonic() - t_start:.0f} s. Load average before {load0}, "
            f"after {loadavg()}.", ""]
    sys.stdout.write("\n".join(out) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "startup", "quick": a.quick, "date": datetime.datetime.now().isoformat(),
                       "rounds": a.rounds, "pm2_rounds": pm2_rounds, "results": summary, "fails": fails,
                       "apps": {k: v[0] for k, v in apps.items()}, "pm2_version": pm2_version}, f)


if __name__ == "__main__":
    main()
