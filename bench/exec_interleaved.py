#!/usr/bin/env python3
"""Wall time of short commands, run interleaved: one run of each command in turn, the
order rotated every round, each timed from posix_spawn to waitpid.

Why beside hyperfine (bench/core.sh, section 3): hyperfine runs all the runs of one
command, then all of the next, so a slow phase of the machine (another process, CPU
frequency, page cache) lands on one command only; on this 2-CPU VM the same binary
measured up to 0.3 ms apart from one hyperfine invocation to the next. Interleaving puts
every phase on every command alike, so the medians compare like for like.

Usage: exec_interleaved.py [--runs N] NAME='[VAR=VALUE ...] CMD ARGS' ...
Leading VAR=VALUE words set that command's environment, as in a shell. The first command is the reference of the ratio column. stdout and stderr go to
/dev/null. Standard library only.
"""

import argparse
import os
import shlex
import shutil
import statistics
import time


def interleave(cmds, runs):
    """{name: (argv, env)} -> {name: [seconds per run]}: one run of each command in turn,
    the order rotated every round; stdout and stderr to /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    quiet = [(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
    names = list(cmds)
    times = {n: [] for n in names}
    try:
        for i in range(runs):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                argv, env = cmds[n]
                t0 = time.perf_counter()
                pid = os.posix_spawn(argv[0], argv, env, file_actions=quiet)
                os.waitpid(pid, 0)
                times[n].append(time.perf_counter() - t0)
    finally:
        os.close(null)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("commands", nargs="+", help="NAME='CMD ARGS'")
    a = ap.parse_args()
    cmds = {}
    for c in a.commands:
        name, sep, line = c.partition("=")
        argv = shlex.split(line)
        env = dict(os.environ)
        while argv and "=" in argv[0] and not argv[0].startswith("="):
            var, _, value = argv.pop(0).partition("=")
            env[var] = value
        if not sep or not argv:
            ap.error(f"expected NAME='CMD ARGS', got {c!r}")
        path = shutil.which(argv[0])
        if not path:
            ap.error(f"{argv[0]}: not found")
        cmds[name] = ([path] + argv[1:], env)
    times = interleave(cmds, a.runs)
    names = list(cmds)
    ref = statistics.median(times[names[0]])
    print(f"{a.runs} interleaved runs each, ms\n")
    print(f"| command | median | p25 | p75 | ÷ {names[0]} |")
    print("|---|---|---|---|---|")
    for n in names:
        xs = sorted(times[n])
        m = statistics.median(xs)
        print(f"| {n} (`{' '.join(cmds[n][0])}`) | {m * 1e3:.3f} | {xs[len(xs) // 4] * 1e3:.3f} | "
              f"{xs[3 * len(xs) // 4] * 1e3:.3f} | {m / ref:.2f}x |")


if __name__ == "__main__":
    main()
