#!/usr/bin/env python3
"""Collects one bench/run.sh run into BENCHMARKS.md and SVG charts under bench/charts/.

Inputs (from the run directory bench/run.sh made):
- meta.json: mode, timings and exit status of every benchmark, the report file each wrote;
- the markdown reports of core.sh, idle.sh, cluster.sh and logs.sh (they write only
  markdown; their tables have stable headers, parsed here by header name);
- the JSON files of startup.sh, signals.sh and memrestart.sh.

A benchmark that failed or was skipped leaves a note instead of its section, and its
targets read "not measured". Standard library only; the SVGs are written by hand.

    python3 bench/report.py --run-dir bench/results/run-2026-11-26_190000 \
        --out BENCHMARKS.md --charts bench/charts
"""

import argparse
import datetime
import html
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

COLORS = {
    "runner": "#2563eb", "tini": "#6b7280", "tini-static": "#374151", "dumb-init": "#9ca3af",
    "catatonit": "#8b5cf6", "supervisord": "#d97706", "PM2": "#dc2626", "node": "#10b981",
    "direct": "#10b981", "baseline": "#9ca3af",
}


def color_for(name):
    n = name.lower()
    if n.startswith("runner"):
        return COLORS["runner"]
    if n.startswith("pm2"):
        return COLORS["PM2"]
    for k in ("tini-static", "tini", "dumb-init", "catatonit", "supervisord", "node", "direct"):
        if n.startswith(k):
            return COLORS[k]
    return COLORS["baseline"]


# ================================================================ markdown parsing

def split_row(line):
    inner = line.strip()
    if inner.startswith("|"):
        inner = inner[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def parse_md(text):
    """[{h2, h3, header, rows}] for every table, rows as dicts keyed by header."""
    lines = text.splitlines()
    tables, h2, h3 = [], "", ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            h2, h3 = line[3:].strip(), ""
        elif line.startswith("### "):
            h3 = line[4:].strip()
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1]):
            header = split_row(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = split_row(lines[i])
                rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)))))
                i += 1
            tables.append({"h2": h2, "h3": h3, "header": header, "rows": rows})
            continue
        i += 1
    return tables


def find_table(tables, need, h2=None, h3=None):
    """The first table whose header has every column in `need` (and whose headings start so)."""
    for t in tables:
        if h2 is not None and not t["h2"].startswith(h2):
            continue
        if h3 is not None and t["h3"] != h3:
            continue
        if all(any(col == h for h in t["header"]) for col in need):
            return t
    return None


def num(s):
    """First number in s ('21,630 (21,630)' → 21630.0), or None."""
    m = re.search(r"-?\d[\d,]*\.?\d*(?:e-?\d+)?", s or "")
    return float(m.group(0).replace(",", "")) if m else None


def nums(s):
    return [float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*\.?\d*", s or "")]


def kib(s):
    """'2.78 MiB' / '716 KiB' → KiB."""
    v = num(s)
    if v is None:
        return None
    return v * 1024 if "MiB" in s else v


def strip_md(s):
    return re.sub(r"[`*]", "", s or "").strip()


# ================================================================ loading one run

def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_meta(path):
    """meta.tsv from run.sh: `kv KEY VALUE` and `bench NAME SECONDS RC REPORT KNOBS SKIPPED` lines."""
    meta = {"benches": {}}
    text = read(path) or ""
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "kv" and len(f) >= 3:
            meta[f[1]] = f[2]
        elif f[0] == "bench" and len(f) >= 7:
            meta["benches"][f[1]] = {"seconds": float(f[2] or 0), "rc": int(f[3] or 0), "report": f[4] or None,
                                     "knobs": f[5], "skipped": f[6] or None,
                                     "stderr": os.path.join(os.path.relpath(os.path.dirname(path), REPO),
                                                            f"{f[1]}.stderr.log")}
    for k in ("total_s", "build_s"):
        if k in meta:
            meta[k] = float(meta[k])
    meta["quick"] = meta.get("quick") not in (None, "", "0")
    return meta


def parse_core(text):
    t = parse_md(text)
    out = {"rss": [], "eco": [], "startup": [], "reap": {}, "size": []}
    s1 = find_table(t, ["tool", "VmRSS"], h2="1.")
    if s1:
        for r in s1["rows"]:
            runs = nums(r.get("all VmRSS runs (KiB)", ""))
            out["rss"].append({"tool": strip_md(r["tool"]).split()[0], "cmd": strip_md(r["tool"]),
                               "median_kib": kib(r["VmRSS"]), "runs_kib": runs,
                               "pss_kib": kib(r.get("Pss", "")), "anon_kib": kib(r.get("RssAnon", ""))})
    s2 = find_table(t, ["supervisor", "VmRSS"], h2="2.")
    if s2:
        for r in s2["rows"]:
            if "not from this run" in r.get("source", ""):
                continue
            name = strip_md(r["supervisor"])
            out["eco"].append({"tool": "runner" if name.startswith("runner") else name.split()[0],
                               "label": name, "median_kib": kib(r["VmRSS"]),
                               "runs_kib": nums(r.get("all VmRSS runs (KiB)", ""))})
    s3 = find_table(t, ["command", "median"], h2="3.")
    if s3:
        for r in s3["rows"]:
            out["startup"].append({"cmd": strip_md(r["command"]), "median_ms": num(r["median"]),
                                   "min_ms": num(r.get("min", "")), "mean_ms": num(r.get("mean ± σ", "")),
                                   "overhead_ms": num(r.get("overhead", ""))})
    for mode in ("burst", "stream"):
        s4 = find_table(t, ["tool", "drain"], h2="4.", h3=mode)
        if s4:
            out["reap"][mode] = [{"tool": r["tool"], "drain_ms": num(r["drain"]),
                                  "runs_ms": nums(r.get("all drains", "")), "tail_ms": num(r.get("tail", "")),
                                  "total_ms": num(r.get("total", "")), "cpu_ms": num(r.get("PID 1 CPU", "")),
                                  "failed": r["drain"] == "failed"} for r in s4["rows"]]
    s5 = find_table(t, ["tool", "size"], h2="5.")
    if s5:
        for r in s5["rows"]:
            out["size"].append({"tool": r["tool"], "bytes": num(r["size"]), "stripped": r.get("file(1)", ""),
                                "linking": r.get("linking", "")})
    m = re.search(r"ORPHANS|Reaping (\d+) orphans", text)
    out["orphans"] = int(m.group(1)) if m and m.group(1) else None
    out["quick"] = "QUICK mode" in text
    return out


def parse_idle(text):
    t = parse_md(text)
    tab = find_table(t, ["tool", "wake-ups/s"])
    rows = []
    if tab:
        for r in tab["rows"]:
            if r.get("CPU ms in window") == "failed":
                rows.append({"tool": r["tool"], "failed": True})
                continue
            vi = nums(r.get("vol / invol", ""))
            rows.append({"tool": r["tool"], "cpu_ms": num(r.get("CPU ms in window")),
                         "cpu_pct": num(r.get("CPU %")), "wakeups_s": num(r.get("wake-ups/s")),
                         "wakeups": sum(vi) if vi else None, "rss_mib": num(r.get("RSS MiB")),
                         "threads": num(r.get("threads")), "failed": False})
    m = re.search(r"window (\d+) s", text)
    return {"rows": rows, "window_s": int(m.group(1)) if m else None, "quick": "QUICK mode" in text}


def parse_reloads(s):
    return [{"at": float(a), "took": float(b), "rc": c}
            for a, b, c in re.findall(r"t=([\d.]+) s took ([\d.]+) s rc (\S+?)(?:;|$)", s)]


def parse_cluster(text):
    t = parse_md(text)
    out = {"main": [], "series": {}, "runs": [], "quick": "QUICK mode" in text}
    tab = find_table(t, ["scenario", "tool", "req/s (rounds)"])
    if tab:
        for r in tab["rows"]:
            cell = r["req/s (rounds)"]
            if cell.startswith("failed"):
                out["main"].append({"scenario": r["scenario"], "tool": r["tool"], "failed": True})
                continue
            m = re.match(r"([\d,.]+)\s*\((.*)\)", cell)
            rounds = nums(m.group(2)) if m else []
            out["main"].append({"scenario": r["scenario"], "tool": r["tool"], "mean_rps": num(cell),
                                "rounds": rounds, "non2xx": num(r.get("non-2xx")), "errors": num(r.get("errors")),
                                "latency": r.get("latency p50 / p99 / max ms", ""),
                                "worst": r.get("worst s", ""), "reload": r.get("reload s, rc", ""),
                                "sup_cpu": r.get("sup. CPU s", ""), "failed": False})
    rel = find_table(t, ["run", "scenario", "tool", "reloads"])
    if rel:
        for r in rel["rows"]:
            en = nums(r.get("errors / non-2xx", ""))
            out["runs"].append({"tag": r["run"], "scenario": r["scenario"], "tool": r["tool"],
                                "reloads": parse_reloads(r["reloads"]),
                                "errors": en[0] if en else None, "non2xx": en[1] if len(en) > 1 else None})
    for tb in t:
        if tb["h2"].startswith("Requests answered per second") and tb["header"] and tb["header"][0] == "s":
            cols = tb["header"][1:]
            series = {c: [] for c in cols}
            extra = {c: {} for c in cols}
            for r in tb["rows"]:
                if re.match(r"^\d+$", r["s"]):
                    for c in cols:
                        v = num(r.get(c, ""))
                        series[c].append(v if v is not None else 0)
                else:
                    for c in cols:
                        extra[c][r["s"]] = r.get(c, "")
            out["series"][tb["h3"]] = {"cols": cols, "series": series, "extra": extra}
    m = re.search(r"-d(\d+)s", text)
    out["duration"] = int(m.group(1)) if m else None
    m = re.search(r"reloads at t = ([\d., ]+) s", text)
    out["reload_at"] = nums(m.group(1)) if m else []
    return out


LOG_CASES = [  # (key, label, test on the case title), first match wins
    ("pipe", "producer | cat (baseline)", lambda s: "producer | cat > /dev/null" in s),
    ("pipe-file", "producer | cat > file (baseline)", lambda s: "producer | cat > file" in s),
    ("inherit", "runner, no log keys", lambda s: "no log keys" in s),
    ("time", "runner, log_prefix + time", lambda s: "`time`" in s or "+ time" in s),
    ("prefix-pipe", "runner | cat, log_prefix", lambda s: "runner eco | cat" in s),
    ("prefix", "runner, log_prefix", lambda s: "log_prefix" in s),
    ("out-file", "runner, out_file", lambda s: "out_file" in s),
]


def parse_logs(text):
    t = parse_md(text)
    tab = find_table(t, ["case", "wall (median)", "lines/s"])
    m = re.search(r"producer: ([\d,]+) lines", text)
    lines = num(m.group(1)) if m else None
    rows = []
    if tab:
        for r in tab["rows"]:
            title = r["case"]
            key, label = None, strip_md(title)
            for k, lab, test in LOG_CASES:
                if test(title):
                    key, label = k, lab
                    break
            wall = num(r["wall (median)"])
            mm = nums(r.get("min–max", ""))
            rows.append({"key": key, "label": label, "title": strip_md(title), "wall_s": wall,
                         "lines_s": num(r["lines/s"]), "mb_s": num(r.get("MB/s")),
                         "lines_s_min": lines / mm[1] if lines and len(mm) == 2 and mm[1] else None,
                         "lines_s_max": lines / mm[0] if lines and len(mm) == 2 and mm[0] else None,
                         "cpu_ms_mb": num(r.get("CPU ms per MB")), "vs_base": num(r.get("lines/s vs baseline"))})
    return {"rows": rows, "lines": lines, "quick": "QUICK mode" in text}


# ================================================================ SVG

FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""


def esc(s):
    return html.escape(str(s), quote=True)


def nice_step(vmax, ticks=5):
    if vmax <= 0:
        return 1
    raw = vmax / ticks
    p = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= raw:
            return m * p
    return 10 * p


def fmt_tick(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e4 and v % 1000 == 0:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def svg_doc(w, h, body, title):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'{FONT} font-size="12">\n<title>{esc(title)}</title>\n'
            f'<rect width="{w}" height="{h}" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n")


def hbars(title, subtitle, groups, unit, fmt, note=None, width=820, label_w=270, scale_max=None):
    """Horizontal bar chart. groups: [(group title or None, [row])], row = dict(label, value,
    color, lo, hi (whisker, optional), text (value label, optional), marker (optional second
    value drawn as a tick))."""
    rows_n = sum(len(g[1]) + (1 if g[0] else 0) for g in groups)
    top = 58 if subtitle else 40
    rh = 24
    plot_w = width - label_w - 130
    h = top + rows_n * rh + 42 + (18 if note else 0)
    vmax = scale_max or max([max(r["value"], r.get("hi") or 0, r.get("marker") or 0)
                             for _, rs in groups for r in rs if r["value"] is not None] + [1e-9])
    step = nice_step(vmax)
    vmax = step * math.ceil(vmax / step)
    x0 = label_w
    body = [f'<text x="12" y="22" font-size="15" font-weight="bold">{esc(title)}</text>']
    if subtitle:
        body.append(f'<text x="12" y="40" font-size="11.5" fill="#4b5563">{esc(subtitle)}</text>')
    y_end = top + rows_n * rh
    t = 0.0
    while t <= vmax + 1e-9:
        x = x0 + plot_w * t / vmax
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y_end}" stroke="#e5e7eb"/>')
        body.append(f'<text x="{x:.1f}" y="{y_end + 14}" text-anchor="middle" font-size="10.5" '
                    f'fill="#4b5563">{esc(fmt_tick(t))}</text>')
        t += step
    body.append(f'<text x="{x0 + plot_w / 2:.0f}" y="{y_end + 30}" text-anchor="middle" font-size="11" '
                f'fill="#374151">{esc(unit)}</text>')
    y = top
    for gtitle, rs in groups:
        if gtitle:
            body.append(f'<text x="12" y="{y + 16}" font-size="12" font-weight="bold" fill="#111827">'
                        f'{esc(gtitle)}</text>')
            y += rh
        for r in rs:
            body.append(f'<text x="{x0 - 8}" y="{y + 16}" text-anchor="end">{esc(r["label"])}</text>')
            if r["value"] is None:
                body.append(f'<text x="{x0 + 4}" y="{y + 16}" fill="#6b7280">{esc(r.get("text") or "n/a")}</text>')
                y += rh
                continue
            bw = max(1.0, plot_w * r["value"] / vmax)
            body.append(f'<rect x="{x0}" y="{y + 4}" width="{bw:.1f}" height="{rh - 8}" fill="{r["color"]}" rx="2"/>')
            if r.get("lo") is not None and r.get("hi") is not None and r["hi"] > r["lo"]:
                xl, xh = x0 + plot_w * r["lo"] / vmax, x0 + plot_w * r["hi"] / vmax
                ym = y + rh / 2
                body.append(f'<line x1="{xl:.1f}" y1="{ym}" x2="{xh:.1f}" y2="{ym}" stroke="#111827" stroke-width="1.2"/>')
                for xx in (xl, xh):
                    body.append(f'<line x1="{xx:.1f}" y1="{ym - 5}" x2="{xx:.1f}" y2="{ym + 5}" stroke="#111827" '
                                f'stroke-width="1.2"/>')
            if r.get("marker") is not None:
                xm = x0 + plot_w * r["marker"] / vmax
                if r["marker"] > r["value"]:
                    body.append(f'<line x1="{x0 + bw:.1f}" y1="{y + rh / 2}" x2="{xm:.1f}" y2="{y + rh / 2}" '
                                f'stroke="#111827" stroke-width="1" stroke-dasharray="3,2"/>')
                body.append(f'<line x1="{xm:.1f}" y1="{y + 2}" x2="{xm:.1f}" y2="{y + rh - 2}" stroke="#111827" '
                            f'stroke-width="2.5"/>')
            xt = x0 + max(bw, plot_w * (r.get("hi") or 0) / vmax, plot_w * (r.get("marker") or 0) / vmax) + 6
            body.append(f'<text x="{xt:.1f}" y="{y + 16}" font-size="11.5">{esc(r.get("text") or fmt(r["value"]))}</text>')
            y += rh
    if note:
        body.append(f'<text x="12" y="{h - 8}" font-size="10.5" fill="#6b7280">{esc(note)}</text>')
    return svg_doc(width, h, body, title)


def reload_chart(cl, width=880):
    """requests/s per second, runner vs PM2 (and node alone), one panel per scenario."""
    scen = [s for s in cl["series"] if cl["series"][s]["cols"]]
    if not scen:
        return None
    runs_by = {}
    for r in cl["runs"]:
        runs_by.setdefault((r["scenario"], r["tool"].split()[0]), []).append(r)
    panel_h, top = 250, 64
    h = top + len(scen) * (panel_h + 70) + 10
    left, right = 150, 190
    pw = width - left - right
    body = [f'<text x="12" y="22" font-size="15" font-weight="bold">Requests answered per second while the app '
            f'is reloaded 3 times</text>',
            f'<text x="12" y="40" font-size="11.5" fill="#4b5563">2 instances of bench/apps/server.js under runner '
            f'and PM2 (both cluster mode), wrk -c50. Bars above a panel: the reload commands, a row per run.</text>',
            f'<text x="12" y="55" font-size="11.5" fill="#4b5563">Full seconds only, from the app\'s own counters; '
            f'"node" = the app alone (1 process, no supervisor, no reloads).</text>']
    y0 = top
    for sc in scen:
        data = cl["series"][sc]
        cols = data["cols"]
        dur = max(len(v) for v in data["series"].values()) - 1
        xs = list(range(1, dur))  # full seconds only (0 and the last are partial)
        vmax = max([data["series"][c][s] for c in cols for s in xs if s < len(data["series"][c])] + [1])
        step = nice_step(vmax)
        vmax = step * math.ceil(vmax / step)
        # reload strips
        strips = [(c, runs_by.get((sc, c.split()[0]), [])) for c in cols]
        strip_rows = []
        for c in cols:
            tool = c.split(" #")[0]
            idx = int(c.split("#")[1]) - 1 if "#" in c else 0
            rs = runs_by.get((sc, tool), [])
            if idx < len(rs) and rs[idx]["reloads"]:
                strip_rows.append((c, rs[idx]))
        sh = 9
        ptop = y0 + 22 + len(strip_rows) * (sh + 3)
        body.append(f'<text x="12" y="{y0 + 12}" font-size="13" font-weight="bold">{esc(sc)}</text>')

        def X(s):
            return left + pw * (s - 0.0) / max(1, dur)

        def Y(v):
            return ptop + panel_h - panel_h * v / vmax
        for i, (c, run) in enumerate(strip_rows):
            yy = y0 + 20 + i * (sh + 3)
            col = color_for(c)
            body.append(f'<text x="{left - 6}" y="{yy + 8}" text-anchor="end" font-size="9.5" fill="{col}">'
                        f'{esc(c)} reloads</text>')
            for k, rl in enumerate(run["reloads"]):
                x1, x2 = X(rl["at"]), min(X(rl["at"] + rl["took"]), left + pw)
                body.append(f'<rect x="{x1:.1f}" y="{yy}" width="{max(2, x2 - x1):.1f}" height="{sh}" fill="{col}" '
                            f'opacity="0.6" stroke="#ffffff" stroke-width="1.5"><title>reload {k + 1}: t={rl["at"]:.1f} s, {rl["took"]:.2f} s, rc '
                            f'{esc(rl["rc"])}</title></rect>')
                if x1 > left + pw:
                    continue
                body.append(f'<line x1="{x1:.1f}" y1="{yy}" x2="{x1:.1f}" y2="{ptop + panel_h}" stroke="{col}" '
                            f'stroke-dasharray="2,3" stroke-width="0.8" opacity="0.6"/>')
        # axes and grid
        v = 0.0
        while v <= vmax + 1e-9:
            yy = Y(v)
            body.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" stroke="#e5e7eb"/>')
            body.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="10.5" fill="#4b5563">'
                        f'{esc(fmt_tick(v))}</text>')
            v += step
        body.append(f'<line x1="{left}" y1="{ptop}" x2="{left}" y2="{ptop + panel_h}" stroke="#9ca3af"/>')
        body.append(f'<line x1="{left}" y1="{ptop + panel_h}" x2="{left + pw}" y2="{ptop + panel_h}" stroke="#9ca3af"/>')
        xstep = 1 if dur <= 10 else (2 if dur <= 24 else 5)
        for s in range(0, dur + 1, xstep):
            body.append(f'<text x="{X(s):.1f}" y="{ptop + panel_h + 14}" text-anchor="middle" font-size="10.5" '
                        f'fill="#4b5563">{s}</text>')
        body.append(f'<text x="{left + pw / 2:.0f}" y="{ptop + panel_h + 30}" text-anchor="middle" font-size="11" '
                    f'fill="#374151">seconds since wrk started</text>')
        body.append(f'<text x="16" y="{ptop + panel_h / 2:.0f}" font-size="11" fill="#374151" '
                    f'transform="rotate(-90 16 {ptop + panel_h / 2:.0f})" text-anchor="middle">requests / s</text>')
        # lines
        ly = ptop + 4
        for c in cols:
            tool = c.split(" #")[0]
            idx = int(c.split("#")[1]) - 1 if "#" in c else 0
            col = color_for(c)
            dash = "" if idx == 0 else ' stroke-dasharray="6,3"'
            width_ = "1.6" if tool.startswith("node") else "2.2"
            if tool.startswith("node"):
                dash = ' stroke-dasharray="2,2"'
            pts = " ".join(f"{X(s + 0.5):.1f},{Y(data['series'][c][s]):.1f}" for s in xs
                           if s < len(data["series"][c]))
            body.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="{width_}"{dash}/>')
            # legend with failed requests
            rs = runs_by.get((sc, tool), [])
            fail_txt = ""
            if idx < len(rs) and rs[idx]["errors"] is not None:
                failed = int((rs[idx]["errors"] or 0) + (rs[idx]["non2xx"] or 0))
                fail_txt = f"{failed} failed request{'s' if failed != 1 else ''}"
            elif tool.startswith("node"):
                mrow = [m for m in cl["main"] if m["scenario"] == sc and m["tool"].startswith("node")]
                if mrow and not mrow[0]["failed"]:
                    failed = int((mrow[0]["errors"] or 0) + (mrow[0]["non2xx"] or 0))
                    fail_txt = f"{failed} failed (all rounds)"
            lx = left + pw + 14
            body.append(f'<line x1="{lx}" y1="{ly + 6}" x2="{lx + 22}" y2="{ly + 6}" stroke="{col}" '
                        f'stroke-width="{width_}"{dash}/>')
            body.append(f'<text x="{lx + 28}" y="{ly + 10}" font-size="11">{esc(c)}</text>')
            if fail_txt:
                fcol = "#b91c1c" if not fail_txt.startswith("0 ") else "#047857"
                body.append(f'<text x="{lx + 28}" y="{ly + 24}" font-size="10.5" fill="{fcol}" '
                            f'font-weight="bold">{esc(fail_txt)}</text>')
            ly += 34
        y0 = ptop + panel_h + 44
    return svg_doc(width, y0 + 10, body, "requests per second during reloads")


# ================================================================ report

def fmt_ratio(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}x"


def med(xs):
    return statistics.median(xs) if xs else None


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out + [""]


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**NOT met**"


def cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        return ""


def machine():
    model = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError):
        pass
    return f"{platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs ({model}), {mem}"


def fmt_s(v):
    return "—" if v is None else f"{v:.3f} s"


def fmt_dur(s):
    if s is None:
        return "—"
    return f"{int(s // 60)} min {s % 60:.0f} s" if s >= 60 else f"{s:.0f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"))
    ap.add_argument("--charts", default=os.path.join(HERE, "charts"))
    a = ap.parse_args()

    meta = load_meta(os.path.join(a.run_dir, "meta.tsv"))
    benches = meta.get("benches", {})
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(a.charts, exist_ok=True)

    def rel(p):
        return os.path.relpath(os.path.join(REPO, p) if not os.path.isabs(p) else p, out_dir)

    def report_text(name):
        b = benches.get(name) or {}
        p = b.get("report")
        if not p or b.get("skipped"):
            return None
        return read(os.path.join(REPO, p) if not os.path.isabs(p) else p)

    def status_note(name):
        b = benches.get(name) or {}
        if b.get("skipped"):
            return f"*Not run: {b.get('skipped')}.*"
        if b.get("rc") not in (0, None):
            return f"*{name}.sh failed (exit {b.get('rc')}); see `{b.get('stderr', '')}`.*"
        return "*No report found.*"

    core = parse_core(report_text("core")) if report_text("core") else None
    idle = parse_idle(report_text("idle")) if report_text("idle") else None
    cl = parse_cluster(report_text("cluster")) if report_text("cluster") else None
    logs = parse_logs(report_text("logs")) if report_text("logs") else None
    st = load_json(os.path.join(a.run_dir, "startup.json"))
    sg = load_json(os.path.join(a.run_dir, "signals.json"))
    mr = load_json(os.path.join(a.run_dir, "memrestart.json"))
    quick = bool(meta.get("quick"))

    charts = {}  # key -> (file, alt)
    sections = []
    targets = []  # (target, measured, ratio text, verdict text)

    # ------------------------------------------------------------ memory
    sec = ["## Memory (RSS)", ""]
    rss_groups = []
    r_rss = t_rss = None
    if core and core["rss"]:
        rows = []
        r_rss = next((x["median_kib"] for x in core["rss"] if x["tool"] == "runner"), None)
        t_rss = next((x["median_kib"] for x in core["rss"] if x["tool"] == "tini"), None)
        for x in core["rss"]:
            runs = x["runs_kib"]
            rows.append([x["cmd"], f"{x['median_kib'] / 1024:.2f}", f"{min(runs) / 1024:.2f}" if runs else "—",
                         f"{max(runs) / 1024:.2f}" if runs else "—", len(runs) or "—",
                         fmt_ratio(r_rss / x["median_kib"]) if r_rss and x["median_kib"] else "—",
                         f"{x['pss_kib'] / 1024:.2f}" if x.get("pss_kib") else "—"])
        sec += ["One supervised `sleep 1000` (bench/core.sh, section 1): VmRSS of the supervisor process, MiB.", ""]
        sec += table(["command", "median", "min", "max", "runs", "runner ÷ this", "Pss"], rows)
        rss_groups.append(("one child (X -- sleep 1000)", [
            {"label": x["tool"], "value": x["median_kib"] / 1024, "color": color_for(x["tool"]),
             "lo": min(x["runs_kib"]) / 1024 if x["runs_kib"] else None,
             "hi": max(x["runs_kib"]) / 1024 if x["runs_kib"] else None} for x in core["rss"]]))
    else:
        sec += [status_note("core"), ""]
    eco_rows = []
    g50 = []
    if core and core["eco"]:
        for x in core["eco"]:
            eco_rows.append((x["label"], x["median_kib"] / 1024, [v / 1024 for v in x["runs_kib"]], "core.sh"))
            g50.append({"label": x["tool"] + " (core.sh)", "value": x["median_kib"] / 1024,
                        "color": color_for(x["tool"]),
                        "lo": min(x["runs_kib"]) / 1024 if x["runs_kib"] else None,
                        "hi": max(x["runs_kib"]) / 1024 if x["runs_kib"] else None})
    idle_r = idle_p = None
    if idle and idle["rows"]:
        for x in idle["rows"]:
            if x["failed"]:
                continue
            if x["tool"] in ("runner", "supervisord", "PM2"):
                eco_rows.append((x["tool"] + (" God Daemon" if x["tool"] == "PM2" else ""), x["rss_mib"], [],
                                 "idle.sh (end of window)"))
                g50.append({"label": x["tool"] + (" daemon" if x["tool"] == "PM2" else "") + " (idle.sh)",
                            "value": x["rss_mib"], "color": color_for(x["tool"])})
            if x["tool"] == "runner":
                idle_r = x["rss_mib"]
            if x["tool"] == "PM2":
                idle_p = x["rss_mib"]
    if eco_rows:
        ref = idle_r or (eco_rows[0][1] if eco_rows else None)
        sec += ["50 sleeping instances (core.sh section 2: median of its runs; idle.sh: one sample at the end of its "
                "window). Only the supervisor process (PM2: the God Daemon), MiB.", ""]
        sec += table(["supervisor", "source", "median", "min", "max", "÷ runner (idle.sh)"],
                     [[lab, src, f"{v:.2f}", f"{min(r):.2f}" if r else "—", f"{max(r):.2f}" if r else "—",
                       fmt_ratio(v / idle_r, 1) if idle_r else "—"] for lab, v, r, src in eco_rows])
    if g50:
        rss_groups.append(("50 sleeping instances", g50))
    if rss_groups:
        svg = hbars("Supervisor memory (VmRSS)", "median, whiskers = min–max of the runs; only the supervisor "
                    "process, not its children", rss_groups, "MiB", lambda v: f"{v:.2f} MiB")
        charts["rss"] = ("rss.svg", "Supervisor RSS per tool")
        with open(os.path.join(a.charts, "rss.svg"), "w") as f:
            f.write(svg)
        sec += [f"![Supervisor RSS per tool]({rel(os.path.join(a.charts, 'rss.svg'))})", ""]
    sections.append(sec)
    if r_rss and t_rss:
        rt = r_rss / t_rss
        targets.append(("RSS within 1.5x of tini", f"runner {r_rss / 1024:.2f} MiB, tini {t_rss / 1024:.2f} MiB "
                        "(VmRSS, one child, core.sh)", f"runner / tini = {rt:.2f}x", verdict(rt <= 1.5)))
    else:
        targets.append(("RSS within 1.5x of tini", "—", "—", verdict(None)))
    if idle_r and idle_p:
        rp = idle_p / idle_r
        targets.append(("RSS at least 20x below PM2's daemon", f"runner {idle_r:.1f} MiB, PM2 God Daemon "
                        f"{idle_p:.1f} MiB (50 sleeping instances each, idle.sh)", f"PM2 / runner = {rp:.1f}x",
                        verdict(rp >= 20)))
    else:
        targets.append(("RSS at least 20x below PM2's daemon", "—", "—", verdict(None)))

    # ------------------------------------------------------------ reaping and exec start-up
    sec = ["## PID 1: reaping orphans and start-up (bench/core.sh)", ""]
    reap_ratio = None
    if core and core["reap"]:
        n = core.get("orphans")
        for mode, rs in core["reap"].items():
            tref = next((x["drain_ms"] for x in rs if x["tool"] == "tini"), None)
            rrow = next((x["drain_ms"] for x in rs if x["tool"] == "runner"), None)
            rows = []
            for x in rs:
                if x["failed"]:
                    rows.append([x["tool"], "failed", "", "", "", "", ""])
                    continue
                rows.append([x["tool"], f"{x['drain_ms']:.1f}", f"{min(x['runs_ms']):.0f}" if x["runs_ms"] else "—",
                             f"{max(x['runs_ms']):.0f}" if x["runs_ms"] else "—", len(x["runs_ms"]) or "—",
                             fmt_ratio(rrow / x["drain_ms"]) if rrow and x["drain_ms"] and
                             max(rrow, x["drain_ms"]) >= 2 else "≈ (poll resolution)",
                             f"{x['total_ms']:.0f}" if x["total_ms"] is not None else "—"])
            sec += [f"Reaping {n or '?'} orphans as PID 1, **{mode}** mode: *drain* = time until every zombie is "
                    "reaped (ms; min/max over the runs' drains, which core.sh prints rounded).", ""]
            sec += table(["tool", "drain median", "min", "max", "runs", "runner ÷ this", "total"], rows)
            if mode == "burst" and tref and rrow:
                reap_ratio = rrow / tref
        if reap_ratio is not None:
            ok = reap_ratio <= 1.0
            extra = "" if ok or reap_ratio > 1.1 else " (within core.sh's 10% noise allowance, which it reports as met)"
            targets.append(("Reaping at least as fast as tini", "burst drain, runner vs tini (core.sh)",
                            f"runner / tini = {reap_ratio:.2f}x", verdict(ok) + extra))
    else:
        sec += [status_note("core"), ""]
    if reap_ratio is None:
        targets.append(("Reaping at least as fast as tini", "—", "—", verdict(None)))
    if core and core["startup"]:
        st_rows = core["startup"]
        tref = next((x["median_ms"] for x in st_rows if x["cmd"] == "tini"), None)
        rref = next((x["median_ms"] for x in st_rows if x["cmd"] == "runner"), None)
        sec += ["Wall time of `X -- true` (hyperfine, ms; core.sh keeps median, mean and min but not the max):", ""]
        sec += table(["command", "median", "min", "max", "mean", "runner ÷ this"],
                     [[x["cmd"], f"{x['median_ms']:.3f}", f"{x['min_ms']:.3f}" if x["min_ms"] is not None else "—",
                       "n/a", f"{x['mean_ms']:.3f}" if x["mean_ms"] is not None else "—",
                       fmt_ratio(rref / x["median_ms"]) if rref and x["median_ms"] else "—"] for x in st_rows])
    if core and core["size"]:
        sec += ["Binary size:", ""]
        rsz = next((x["bytes"] for x in core["size"] if x["tool"] == "runner"), None)
        sec += table(["tool", "bytes", "MiB", "file(1)", "linking", "runner ÷ this"],
                     [[x["tool"], f"{x['bytes']:,.0f}", f"{x['bytes'] / 1048576:.2f}", x["stripped"], x["linking"],
                       fmt_ratio(rsz / x["bytes"], 1) if rsz else "—"] for x in core["size"]])
    sections.append(sec)

    # ------------------------------------------------------------ start-up to online
    sec = ["## Start-up to all online (bench/startup.sh)", ""]
    st_ratio = None
    if st and st.get("results"):
        res = st["results"]
        groups = []
        keys = []
        for v in res.values():
            k = (v.get("app", "sh"), v["instances"])
            if k not in keys:
                keys.append(k)
        keys.sort(key=lambda k: (k[0] != "sh", k[1]))
        for app, n in keys:
            rows_ = [v for v in res.values() if v.get("app", "sh") == app and v["instances"] == n]
            title = rows_[0].get("app_title", "sh + systemd-notify")
            rref = next((v["median_s"] for v in rows_ if v["tool"] == "runner"), None)
            sref = next((v["median_s"] for v in rows_ if v["tool"] == "supervisord"), None)
            sec += [f"**{title}, {n} instance{'s' if n > 1 else ''}**: ms from the supervisor's start until its "
                    "status command reports every instance running.", ""]
            sec += table(["tool", "median", "min", "max", "runs", "this ÷ runner", "this ÷ supervisord"],
                         [[v["tool"], f"{v['median_s'] * 1000:.1f}", f"{v['min_s'] * 1000:.1f}",
                           f"{v['max_s'] * 1000:.1f}", len(v["runs"]),
                           fmt_ratio(v["median_s"] / rref) if rref else "—",
                           fmt_ratio(v["median_s"] / sref, 3) if sref else "—"] for v in rows_])
            groups.append((f"{title}, {n} instance{'s' if n > 1 else ''}", [
                {"label": v["tool"], "value": v["median_s"] * 1000, "lo": v["min_s"] * 1000, "hi": v["max_s"] * 1000,
                 "color": color_for(v["tool"]), "text": f"{v['median_s'] * 1000:.0f} ms"} for v in rows_]))
            lref = next((v["median_s"] for v in rows_ if v["tool"] == "runner (clock: its log)"), None)
            fref = next((v["median_s"] for v in rows_ if v["tool"].startswith("floor")), None)
            if n == 20 and app == "sh" and lref and fref:
                targets.append(("20 sh + systemd-notify instances online in ≤ 20 ms (issue 18)",
                                f"runner (wait_ready, clock: its log) {lref * 1000:.0f} ms; the same 20 apps with no "
                                f"supervisor (floor) {fref * 1000:.0f} ms",
                                f"runner − floor = {(lref - fref) * 1000:+.1f} ms ({lref / fref:.2f}x)",
                                verdict(lref <= 0.020)))
            if n == 20 and rref and sref:
                ratio = rref / sref
                if app == "sh":
                    st_ratio = ratio
                targets.append(("20 instances running in under a tenth of supervisord's time"
                                + ("" if app == "sh" else f" — same with the {title} app"),
                                f"{title} app: runner (wait_ready: every READY=1 received) {rref * 1000:.0f} ms, "
                                f"supervisord (startsecs=0) {sref * 1000:.0f} ms", f"runner / supervisord = {ratio:.3f}x",
                                verdict(ratio < 0.1)))
        sec += ["Apps: *sh + systemd-notify* = `/bin/sh -c 'systemd-notify --ready; exec sleep 100000'`; *C notifier* "
                "= a tiny C program that sends READY=1 itself and pauses (the supervisor's cost nearly without the "
                "app's: one sh + systemd-notify is ~8 ms of CPU here, so 20 are at least 80 ms on these 2 CPUs). runner's "
                "apps say READY=1 (`wait_ready`); supervisord (`startsecs = 0`) and PM2 count a process running once "
                "spawned; \"runner (no wait_ready)\" is the like-for-like row. \"floor (no supervisor)\" is "
                "bench/apps/notify-floor.c starting the same apps and counting their READY=1 itself; \"runner (clock: "
                "its log)\" is timed to runner's Nth \"online\" log line with no poll beside it, like for like with it. supervisord is polled in-process over "
                "XML-RPC (the call `supervisorctl status` makes), runner with `runner status`, PM2 with `pm2 jlist`.",
                ""]
        svg = hbars("Start-up until every instance is running", "median, whiskers = min–max; the same app under "
                    "every tool", groups, "milliseconds", lambda v: f"{v:.0f} ms")
        with open(os.path.join(a.charts, "startup.svg"), "w") as f:
            f.write(svg)
        charts["startup"] = ("startup.svg", "Start-up to all online")
        sec += [f"![Start-up to all online]({rel(os.path.join(a.charts, 'startup.svg'))})", ""]
        if st.get("fails"):
            sec += ["Failures: " + "; ".join(st["fails"]), ""]
    else:
        sec += [status_note("startup"), ""]
    if st_ratio is None:
        targets.append(("20 instances running in under a tenth of supervisord's time", "—", "—", verdict(None)))
    sections.append(sec)

    # ------------------------------------------------------------ signals
    sec = ["## Signal forwarding latency (bench/signals.sh)", ""]
    if sg and sg.get("results"):
        res = sg["results"]
        rr = res.get("runner")
        sec += [f"{sg['signals']} SIGUSR1 per tool, {sg['gap_ms']:g} ms apart, to the supervisor; latency = the "
                f"program's CLOCK_MONOTONIC on receipt minus the sender's before kill(2). µs. Receiver: "
                f"{sg['receiver']}.", ""]
        sec += table(["tool", "p50", "p99", "min", "max", "lost", "p50 ÷ runner's", "p99 ÷ runner's"],
                     [[k, f"{v['p50_us']:.1f}", f"{v['p99_us']:.1f}", f"{v['min_us']:.1f}", f"{v['max_us']:.1f}",
                       v["lost"], fmt_ratio(v["p50_us"] / rr["p50_us"]) if rr else "—",
                       fmt_ratio(v["p99_us"] / rr["p99_us"]) if rr else "—"] for k, v in res.items()])
        svg = hbars("Signal forwarding latency", "bar = p50, black tick = p99; SIGUSR1 sent to the supervisor, "
                    "timed on receipt in the program", [(None, [
                        {"label": k, "value": v["p50_us"], "marker": v["p99_us"], "color": color_for(k),
                         "text": f"p50 {v['p50_us']:.0f} / p99 {v['p99_us']:.0f} µs"} for k, v in res.items()])],
                    "microseconds", lambda v: f"{v:.0f} µs")
        with open(os.path.join(a.charts, "signals.svg"), "w") as f:
            f.write(svg)
        charts["signals"] = ("signals.svg", "Signal forwarding latency")
        sec += [f"![Signal forwarding latency]({rel(os.path.join(a.charts, 'signals.svg'))})", ""]
    else:
        sec += [status_note("signals"), ""]
    sections.append(sec)

    # ------------------------------------------------------------ memory restarts
    sec = ["## Memory-restart reaction (bench/memrestart.sh)", ""]
    mr_ok = False
    if mr and mr.get("results"):
        res = mr["results"]
        rr = res.get("runner")
        sec += ["The app jumps from ~10 MiB to 208 MiB over `max_memory_restart = 100M`; seconds from the end of "
                "the allocation until the replacement runs (its first line). PM2 runs with its default 30 s "
                f"worker interval; waits bounded at {mr['bound_s']:g} s (a censored trial counts as the bound).", ""]
        sec += table(["tool", "median", "min", "max", "trials", "censored", "this ÷ runner"],
                     [[k, f"{v['median_s']:.3f}", f"{v['min_s']:.3f}", f"{v['max_s']:.3f}", len(v["runs"]),
                       v["censored"], fmt_ratio(v["median_s"] / rr["median_s"], 1) if rr else "—"]
                      for k, v in res.items()])
        if "PM2" not in res:
            sec += ["PM2 was not run" + (" in quick mode (its first check comes 30 s after its start)" if quick
                                         else "") + ".", ""]
        svg = hbars("Memory-restart reaction time", "median, whiskers = min–max over the trials; 200 MiB "
                    "allocation over a 100M limit", [(None, [
                        {"label": k, "value": v["median_s"], "lo": v["min_s"], "hi": v["max_s"],
                         "color": color_for(k), "text": f"{v['median_s']:.2f} s"} for k, v in res.items()])],
                    "seconds", lambda v: f"{v:.2f} s")
        with open(os.path.join(a.charts, "memrestart.svg"), "w") as f:
            f.write(svg)
        charts["memrestart"] = ("memrestart.svg", "Memory-restart reaction time")
        sec += [f"![Memory-restart reaction time]({rel(os.path.join(a.charts, 'memrestart.svg'))})", ""]
        if rr and "PM2" in res:
            ratio = res["PM2"]["median_s"] / rr["median_s"]
            cens = " (lower bound: PM2 censored)" if res["PM2"]["censored"] else ""
            targets.append(("Memory restarts at least 10x sooner than PM2's",
                            f"median reaction runner {rr['median_s']:.2f} s ({len(rr['runs'])} trials), PM2 "
                            f"{res['PM2']['median_s']:.1f} s ({len(res['PM2']['runs'])} trials)",
                            f"PM2 / runner = {ratio:.1f}x{cens}", verdict(ratio >= 10)))
            mr_ok = True
    else:
        sec += [status_note("memrestart"), ""]
    if not mr_ok:
        why = " (PM2 not run in quick mode)" if quick and mr and mr.get("results") else ""
        targets.append(("Memory restarts at least 10x sooner than PM2's", "—" + why, "—", verdict(None)))
    sections.append(sec)

    # ------------------------------------------------------------ reload under load
    sec = ["## Requests/s during 3 reloads (bench/cluster.sh)", ""]
    zero_fail = None
    close_ratio = None
    if cl and cl["main"]:
        rows = []
        by = {(m["scenario"], m["tool"]): m for m in cl["main"]}
        for m in cl["main"]:
            if m["failed"]:
                rows.append([m["scenario"], m["tool"], "failed", "", "", "", "", "", ""])
                continue
            pm = by.get((m["scenario"], "PM2 cluster"))
            rm = by.get((m["scenario"], "runner"))
            rr_ = rm["mean_rps"] if rm and not rm["failed"] else None
            rows.append([m["scenario"], m["tool"], f"{med(m['rounds']):,.0f}" if m["rounds"] else "—",
                         f"{min(m['rounds']):,.0f}" if m["rounds"] else "—",
                         f"{max(m['rounds']):,.0f}" if m["rounds"] else "—", len(m["rounds"]),
                         int((m["errors"] or 0) + (m["non2xx"] or 0)),
                         fmt_ratio(rr_ / m["mean_rps"]) if rr_ and m["mean_rps"] else "—", m["reload"]])
        sec += [f"wrk's requests/s per run (median, min, max over the rounds; cluster.sh's own table gives the "
                f"mean), {cl['duration'] or '?'} s runs, reloads at t = "
                f"{', '.join(f'{x:g}' for x in cl['reload_at'])} s. *failed* = socket errors + non-2xx, all rounds.", ""]
        sec += table(["scenario", "tool", "req/s median", "min", "max", "rounds", "failed", "runner ÷ this (means)",
                      "reload time, rc"], rows)
        r_runs = [m for m in cl["main"] if m["tool"] == "runner" and not m["failed"]]
        if r_runs:
            fails = sum((m["errors"] or 0) + (m["non2xx"] or 0) for m in r_runs)
            rcs = {rl["rc"] for r in cl["runs"] if r["tool"] == "runner" for rl in r["reloads"]}
            zero_fail = fails == 0 and rcs <= {"0"} and len(r_runs) == len({m["scenario"] for m in cl["main"]})
            targets.append(("Reload with zero failed requests", f"runner: {int(fails)} failed requests over "
                            f"{len(r_runs)} scenario(s), reload exit codes {sorted(rcs) or '—'}",
                            f"{int(fails)} failed", verdict(zero_fail)))
        rc_ = by.get(("connection: close", "runner"))
        pc_ = by.get(("connection: close", "PM2 cluster"))
        if rc_ and pc_ and not rc_["failed"] and not pc_["failed"]:
            close_ratio = rc_["mean_rps"] / pc_["mean_rps"]
            targets.append(("One connection per request: at least 2x PM2 cluster's requests/s",
                            f"runner {rc_['mean_rps']:,.0f} req/s, PM2 {pc_['mean_rps']:,.0f} req/s (mean of "
                            f"{len(rc_['rounds'])} round(s), with 3 reloads)", f"runner / PM2 = {close_ratio:.2f}x",
                            verdict(close_ratio >= 2)))
        svg = reload_chart(cl)
        if svg:
            with open(os.path.join(a.charts, "reload.svg"), "w") as f:
                f.write(svg)
            charts["reload"] = ("reload.svg", "Requests per second during reloads")
            sec += [f"![Requests per second during reloads]({rel(os.path.join(a.charts, 'reload.svg'))})", ""]
    else:
        sec += [status_note("cluster"), ""]
    if zero_fail is None:
        targets.append(("Reload with zero failed requests", "—", "—", verdict(None)))
    if close_ratio is None:
        targets.append(("One connection per request: at least 2x PM2 cluster's requests/s", "—", "—", verdict(None)))
    sections.append(sec)

    # ------------------------------------------------------------ idle
    sec = ["## Idle cost with 50 sleeping instances (bench/idle.sh)", ""]
    idle_wake = None
    if idle and idle["rows"]:
        ok_rows = [x for x in idle["rows"] if not x["failed"]]
        rref = next((x for x in ok_rows if x["tool"] == "runner"), None)
        rlim = next((x for x in ok_rows if x["tool"] == "runner, max_memory_restart"), None)
        sec += [f"One {idle['window_s'] or '?'} s window per tool (so no min/max), supervisor process only. "
                "Wake-ups = voluntary + involuntary context switches of all its threads. Ratios against runner "
                "with the same setting (rows with `max_memory_restart` against runner with it).", ""]
        rows = []
        for x in idle["rows"]:
            if x["failed"]:
                rows.append([x["tool"], "failed", "", "", "", ""])
                continue
            ref = rlim if "max_memory_restart" in x["tool"] else rref
            rows.append([x["tool"], f"{x['cpu_pct']:.3f}%", f"{x['wakeups_s']:.2f}", int(x["wakeups"] or 0),
                         f"{x['rss_mib']:.1f}",
                         (fmt_ratio(x["wakeups_s"] / ref["wakeups_s"], 1) if ref and ref["wakeups_s"] else
                          ("= (both 0)" if ref and not x["wakeups_s"] else "∞ (runner: 0)"))])
        sec += table(["tool", "CPU", "wake-ups/s", "wake-ups in window", "RSS MiB", "wake-ups ÷ runner's"], rows)
        svg_rows_w, svg_rows_c = [], []
        def short(t):
            return t.replace("max_memory_restart", "mem. limit").replace("PM2_WORKER_INTERVAL=1000", "1 s worker")
        for x in ok_rows:
            svg_rows_w.append({"label": short(x["tool"]), "value": x["wakeups_s"], "color": color_for(x["tool"]),
                               "text": f"{x['wakeups_s']:.2f}/s"})
            svg_rows_c.append({"label": short(x["tool"]), "value": x["cpu_pct"], "color": color_for(x["tool"]),
                               "text": f"{x['cpu_pct']:.3f}%"})
        svg = hbars("Idle supervisor: wake-ups per second", f"50 sleeping children, one {idle['window_s']} s "
                    "window per tool; voluntary + involuntary context switches", [(None, svg_rows_w)],
                    "wake-ups / s", lambda v: f"{v:.2f}", width=860, label_w=300,
                    note="mem. limit = max_memory_restart set; 1 s worker = PM2_WORKER_INTERVAL=1000 "
                         "(PM2's default is 30 s)")
        with open(os.path.join(a.charts, "idle-wakeups.svg"), "w") as f:
            f.write(svg)
        svg = hbars("Idle supervisor: CPU", f"50 sleeping children, one {idle['window_s']} s window per tool; "
                    "% of one CPU (se.sum_exec_runtime)", [(None, svg_rows_c)], "% of one CPU",
                    lambda v: f"{v:.3f}%", width=860, label_w=300,
                    note="mem. limit = max_memory_restart set; 1 s worker = PM2_WORKER_INTERVAL=1000 "
                         "(PM2's default is 30 s)")
        with open(os.path.join(a.charts, "idle-cpu.svg"), "w") as f:
            f.write(svg)
        charts["idle"] = ("idle-wakeups.svg", "Idle wake-ups")
        sec += [f"![Idle wake-ups]({rel(os.path.join(a.charts, 'idle-wakeups.svg'))})",
                f"![Idle CPU]({rel(os.path.join(a.charts, 'idle-cpu.svg'))})", ""]
        if rref:
            idle_wake = int(rref["wakeups"] or 0)
            targets.append(("Zero wake-ups when idle without memory limits",
                            f"runner with 50 sleeping instances: {idle_wake} wake-ups in {idle['window_s']} s "
                            "(idle.sh)", f"{idle_wake} wake-ups", verdict(idle_wake == 0)))
    else:
        sec += [status_note("idle"), ""]
    if idle_wake is None:
        targets.append(("Zero wake-ups when idle without memory limits", "—", "—", verdict(None)))
    sections.append(sec)

    # ------------------------------------------------------------ logs
    sec = ["## Log throughput (bench/logs.sh)", ""]
    if logs and logs["rows"]:
        sec += [f"{logs['lines'] or 0:,.0f} lines of 60 bytes per run; lines/s from the median wall time, min/max "
                "from the fastest and slowest run. Baselines put `cat` where runner is.", ""]
        base = {"pipe": None, "pipe-file": None}
        for x in logs["rows"]:
            if x["key"] in base:
                base[x["key"]] = x["lines_s"]
        rows = []
        for x in logs["rows"]:
            b = base["pipe-file"] if x["key"] in ("out-file", "pipe-file") else base["pipe"]
            rows.append([x["label"], f"{x['lines_s']:,.0f}",
                         f"{x['lines_s_min']:,.0f}" if x["lines_s_min"] else "—",
                         f"{x['lines_s_max']:,.0f}" if x["lines_s_max"] else "—",
                         f"{x['mb_s']:.0f}" if x["mb_s"] is not None else "—",
                         fmt_ratio(x["lines_s"] / b) if b else "—"])
        sec += table(["case", "lines/s (median run)", "min", "max", "MB/s", "÷ its baseline"], rows)
        svg = hbars("Log throughput", "lines/s of the producer through runner's log capture vs `cat`; "
                    "whiskers = slowest–fastest run", [(None, [
                        {"label": x["label"], "value": x["lines_s"] / 1e6,
                         "lo": (x["lines_s_min"] or 0) / 1e6 if x["lines_s_min"] else None,
                         "hi": (x["lines_s_max"] or 0) / 1e6 if x["lines_s_max"] else None,
                         "color": COLORS["baseline"] if "baseline" in x["label"] else COLORS["runner"],
                         "text": f"{x['lines_s'] / 1e6:.2f} M/s"} for x in logs["rows"]])],
                    "million lines / s", lambda v: f"{v:.2f} M/s")
        with open(os.path.join(a.charts, "logs.svg"), "w") as f:
            f.write(svg)
        charts["logs"] = ("logs.svg", "Log throughput")
        sec += [f"![Log throughput]({rel(os.path.join(a.charts, 'logs.svg'))})", ""]
    else:
        sec += [status_note("logs"), ""]
    sections.append(sec)

    # ------------------------------------------------------------ scale (bench/scale.sh)
    sc = load_json(os.path.join(a.run_dir, "scale.json"))
    sys.path.insert(0, HERE)
    import scale as scale_bench  # noqa: E402 (bench/scale.py renders its own section)
    if sc and sc.get("results", {}).get("runner"):
        sections.append(scale_bench.section(sc, rel(os.path.join(a.charts, "scale.svg"))))
        with open(os.path.join(a.charts, "scale.svg"), "w") as f:
            f.write(scale_bench.chart(sc))
        charts["scale"] = ("scale.svg", "Cost against the number of instances")
        rr = sc["results"]["runner"]
        ex = sc["exponents"].get("runner", {})
        worst = max((v for v in ex.values() if v is not None), default=None)
        targets.append(("Every scale exponent ≤ 1.1", ", ".join(f"{k} {v:.2f}" for k, v in ex.items()
                                                                 if v is not None), "—",
                        verdict(worst is not None and worst <= 1.1)))
        for n, bound in (("1000", 1.0), ("5000", 5.0)):
            v = rr.get(n, {}).get("stop_s")
            targets.append((f"Stop {int(n):,} instances in under {bound:g} s", fmt_s(v), "—",
                            verdict(v is not None and v < bound) if n in rr else verdict(None)))
        v = rr.get("5000", {}).get("list_ms")
        targets.append(("`list --json` at 5,000 under 100 ms", "—" if v is None else f"{v:.1f} ms", "—",
                        verdict(v is not None and v < 100) if "5000" in rr else verdict(None)))
        v = rr.get("5000", {}).get("rss_mib")
        targets.append(("runner RSS at 5,000 under 16 MiB", "—" if v is None else f"{v:.1f} MiB", "—",
                        verdict(v is not None and v < 16) if "5000" in rr else verdict(None)))
    else:
        sections.append(["## Scale: 10 to 5,000 instances (bench/scale.sh)", "", status_note("scale"), ""])

    # ------------------------------------------------------------ header, targets, write
    head = ["# runner benchmarks", ""]
    if quick:
        head += ["> **QUICK run** (`bench/run.sh --quick`): few rounds and short windows; the numbers are "
                 "indicative only. Run `bench/run.sh` for the full set.", ""]
    head += [f"Generated by `bench/run.sh{' --quick' if quick else ''}` on {meta.get('date', '?')}; every "
             "number below comes from that one run, tools side by side on the same machine.", "",
             f"- **Machine:** {meta.get('machine') or machine()}",
             f"- **runner:** commit `{meta.get('commit', '?')}` (`{meta.get('describe', '?')}`), "
             f"{meta.get('runner_version', '')}, built with `cargo build --release`"
             + (f" — {meta['build_note']}" if meta.get("build_note") else ""),
             f"- **Peers:** {meta.get('peers', '?')}",
             f"- **Run time:** {fmt_dur(meta.get('total_s'))} in all (build {fmt_dur(meta.get('build_s'))}); "
             f"load average before {meta.get('load_before', '?')}, after {meta.get('load_after', '?')}", ""]
    rows = []
    for name in ("core", "idle", "cluster", "logs", "startup", "signals", "memrestart", "scale"):
        b = benches.get(name)
        if not b:
            continue
        rep = b.get("report")
        rows.append([f"`bench/{name}.sh`", fmt_dur(b.get("seconds")) if not b.get("skipped") else "skipped",
                     b.get("knobs", ""), ("skipped: " + b["skipped"]) if b.get("skipped") else
                     (f"[{os.path.basename(rep)}]({rel(rep)})" if rep else f"exit {b.get('rc')}")])
    head += table(["benchmark", "time", "settings", "full report"], rows)
    head += ["## Targets", "",
             "From the issue; each ratio is from this run.", ""]
    head += table(["target", "measured", "ratio", "verdict"], [list(t) for t in targets])
    chart_list = " · ".join(f"[{alt}]({rel(os.path.join(a.charts, f))})" for f, alt in charts.values())
    if chart_list:
        head += [f"Charts: {chart_list}.", ""]
    tail = ["## Notes", "",
            "- Ratios: \"runner ÷ this\" below 1 means runner's value is smaller; for times and memory smaller is "
            "better, for requests/s and lines/s larger is better. \"this ÷ runner\" is the other way round.",
            "- The machine has 2 CPUs shared by the supervisor, its children and the load generator; other work on "
            "it moves every number. Compare tools within this file, not across runs.",
            "- Every section's method and caveats are in bench/README.md and at the top of each full report.", ""]
    text = "\n".join(head + [line for s in sections for line in s] + tail)
    with open(a.out, "w") as f:
        f.write(text)
    # Charts of benchmarks this run skipped would describe another run: remove them.
    made = {f for f, _ in charts.values()} | ({"idle-cpu.svg"} if "idle" in charts else set())
    for f in ("rss.svg", "startup.svg", "signals.svg", "memrestart.svg", "reload.svg", "idle-wakeups.svg",
              "idle-cpu.svg", "logs.svg", "scale.svg"):
        if f not in made and os.path.exists(os.path.join(a.charts, f)):
            os.unlink(os.path.join(a.charts, f))
    # The targets alone, for run.sh to print.
    with open(os.path.join(a.run_dir, "targets.md"), "w") as f:
        f.write("\n".join(table(["target", "measured", "ratio", "verdict"], [list(t) for t in targets])))
    print(f"bench: wrote {os.path.relpath(a.out)} and {len(charts)} chart(s) in {os.path.relpath(a.charts)}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
