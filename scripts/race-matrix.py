"""Every ordered pair of 14 actions and signals against the bundled example.

    python3 scripts/race-matrix.py [SEED]      # about 6 minutes; needs 127.0.0.1:8080 free

For each pair: start runner on examples/ecosystem.toml, wait for `runner status`, fire the
first step, wait a random 0-300 ms, fire the second. Every client command must answer
within 30 s, `list` must answer, SIGTERM must end runner with 0 within 20 s. Prints one
line per pair and the problems at the end; exits 1 when there are any. tests/races.rs runs
16 of these pairs in CI. Uses target/release/runner (build it first)."""
import itertools, os, random, signal, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R = os.path.join(REPO, "target/release/runner")
ECO = os.path.join(REPO, "examples/ecosystem.toml")
WORK = tempfile.mkdtemp(prefix="runner-race-")
SOCK = os.path.join(WORK, "r.sock")
env = dict(os.environ, RUNNER_SOCKET=SOCK)
ops = [["reload","web"],["restart","web"],["stop","web"],["start","web"],["scale","web","3"],
       ["scale","web","1"],["delete","worker"],["apply"],["signal","SIGUSR2","all"],
       ["restart","all"],["reload","all"],["stop","worker"],["SIGHUP"],["SIGTERM"]]
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
problems = []
pairs = list(itertools.product(ops, ops))
for a, b in pairs:
    log = open(os.path.join(WORK, "last.log"), "w")
    p = subprocess.Popen([R, ECO], env=env, stdout=log, stderr=log)
    t0 = time.time()
    while subprocess.run([R, "status"], env=env, capture_output=True).returncode != 0:
        if time.time() - t0 > 20 or p.poll() is not None:
            problems.append((a, b, "never healthy")); break
        time.sleep(0.05)
    clients = []
    for op in (a, b):
        if op[0].startswith("SIG"):
            p.send_signal(getattr(signal, op[0]))
        else:
            clients.append(subprocess.Popen([R] + op, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(random.random() * 0.3)
    for c in clients:
        try:
            c.wait(timeout=30)
        except subprocess.TimeoutExpired:
            problems.append((a, b, "client hung: " + " ".join(c.args[1:]))); c.kill()
    if p.poll() is None:
        lst = subprocess.run([R, "list"], env=env, capture_output=True, timeout=10)
        if lst.returncode != 0:
            problems.append((a, b, "list failed: " + lst.stderr.decode()[:200]))
        p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(timeout=20)
        if code not in (0,):
            problems.append((a, b, f"exit code {code}"))
    except subprocess.TimeoutExpired:
        st = subprocess.run([R, "list"], env=env, capture_output=True, timeout=10).stdout.decode()
        problems.append((a, b, "runner stuck after SIGTERM:\n" + st))
        p.kill(); p.wait()
        subprocess.run("pkill -f examples/web.py; pkill -f examples/worker.sh", shell=True)
        os.system(f"cp {WORK}/last.log {WORK}/stuck-{len(problems)}.log")
    print(a, b, "ok" if not problems or problems[-1][:2] != (a, b) else problems[-1][2].splitlines()[0], flush=True)
print("PROBLEMS", len(problems), "(logs of stuck runs in", WORK + ")")
for pr in problems: print(pr)
sys.exit(1 if problems else 0)
