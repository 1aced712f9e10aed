#!/usr/bin/env python3
"""Seed the fuzz corpora from the repository's real files (idempotent: files are named
by content hash). Usage: make_seeds.py CORPUS_ROOT  (writes CORPUS_ROOT/<target>/)."""
import glob, hashlib, json, os, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(out_root, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()
    p = os.path.join(d, name)
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)


def rust_strings(path):
    """String literals of a Rust file: raw r#"..."# and ordinary "..." (unescaped)."""
    text = open(path, encoding="utf-8", errors="replace").read()
    for m in re.finditer(r'r(#+)"(.*?)"\1', text, re.S):
        yield m.group(2)
    for m in re.finditer(r'(?<![r#\w])"((?:[^"\\\n]|\\.|\\\n)*)"', text):
        s = m.group(1)
        s = re.sub(r"\\\n\s*", "", s)
        try:
            s = s.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except Exception:
            continue
        yield s


# --- config_load: ecosystem TOML --------------------------------------------------
for p in sorted(glob.glob(os.path.join(root, "examples", "**", "*.toml"), recursive=True)):
    put("config_load", open(p, "rb").read())
rs = glob.glob(os.path.join(root, "tests", "*.rs")) + glob.glob(
    os.path.join(root, "src", "config", "*.rs"))
for p in sorted(rs):
    for s in rust_strings(p):
        if "[[apps]]" in s or "[runner]" in s or "script =" in s:
            put("config_load", s)

# --- pm2_json: PM2 JSON process files ---------------------------------------------
fx = os.path.join(root, "tests", "fixtures", "pm2")
for p in sorted(glob.glob(os.path.join(fx, "**", "*.json"), recursive=True)):
    put("pm2_json", open(p, "rb").read())
for p in sorted(glob.glob(os.path.join(fx, "*.config.*js"))):
    # The JS fixtures, evaluated once with node, give more JSON seeds.
    js = ("const p=process.argv[1];let m;try{m=require(p)}catch(e){process.exit(0)}"
          "Promise.resolve(m&&m.default!==undefined?m.default:m).then(v=>"
          "console.log(JSON.stringify(v)))")
    try:
        r = subprocess.run(["node", "-e", js, p], capture_output=True, timeout=20)
        if r.returncode == 0 and r.stdout.strip():
            put("pm2_json", r.stdout.strip())
    except Exception:
        pass
for p in sorted(glob.glob(os.path.join(root, "tests", "import.rs")) +
                glob.glob(os.path.join(root, "src", "config", "import", "pm2.rs"))):
    for s in rust_strings(p):
        t = s.strip()
        if t[:1] in "{[" and ("script" in t or "apps" in t):
            try:
                json.loads(t)
                put("pm2_json", t)
            except Exception:
                pass
put("pm2_json", json.dumps({"apps": [{"name": "a\nb", "script": "x y", "env": {"K.\"q": "v\u0001"},
                                      "watch": ["a", {"b": None}], "instances": "max",
                                      "kill_timeout": "1.5s", "max_memory_restart": "1G",
                                      "exec_mode": "cluster", "args": ["-a", 1, True]}],
                            "deploy": {"prod": {"user": "x"}}, "x": 1}))

# --- control_request: one line each -------------------------------------------------
for line in [
    '{"cmd":"list"}', '{"cmd":"status"}', '{"cmd":"apply"}',
    '{"cmd":"start","target":"api"}', '{"cmd":"stop","target":"all"}',
    '{"cmd":"restart","target":"3"}', '{"cmd":"reload","target":"web"}',
    '{"cmd":"delete","target":"default"}', '{"cmd":"scale","name":"api","instances":4}',
    '{"cmd":"signal","signal":"SIGUSR2","target":"all"}', '{"cmd":"list","x":1}',
    '{"cmd":"scale","name":"api","instances":-1}', '{"cmd":"scale","name":"api","instances":4294967296}',
    '[]', '"list"', '{"cmd":null}', '{"cmd":"list"}\n{"cmd":"status"}',
]:
    put("control_request", line)
for s in rust_strings(os.path.join(root, "tests", "control.rs")):
    if '"cmd"' in s:
        put("control_request", s.strip())


# --- procfs_stat: /proc/PID/stat lines, real and with hostile comms -------------------
for pid in ["self", "1"]:
    try:
        put("procfs_stat", open(f"/proc/{pid}/stat", "rb").read())
    except OSError:
        pass
for comm in [b"a b", b"(x)", b") S 1 2 3", b"x\ny", b"\xff\xfe", b"", b"))((", b"a) R 99 (b"]:
    put("procfs_stat", b"\0" * 8 + comm)
    put("procfs_stat", b"42 (" + comm + b") S 1 42 42 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 1234 1000 5 0 0\n")
