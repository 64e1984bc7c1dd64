#!/usr/bin/env python3
"""How pov's time and memory grow: with the capture's size, and with threads.

    benches/scale.py --pov target/release/pov --dir /path/to/scratch \
        [--users 1250,2500,5000,10000] [--threads 1,2] [--runs 3] \
        [--synth "--seed 11 --body-scale 0.02 --rate 5"] \
        [--capture FILE ...] [--svg docs/scale.svg] [--md OUT.md]

1. Generates request-heavy synthetic nights with `pov synth --seed 11
   --body-scale 0.02 --rate 5 --users N` for each N (the capture of the
   issue's 300,000 transactions/s target is N = 5000), into --dir, unless
   they are there already. --synth replaces those arguments: the nights of
   the flatness target (peak RSS within 20 % from 1 to 8 GB) are
   `--synth "--seed 21 --rate 0.5" --users 1360,10880` (1.03 and 8.2 GB).
   Any --capture files (a server-side recording of benches/record-load.sh,
   say) are measured too.
2. Times `pov analyze` (default outputs, replays included),
   `pov transactions` and `pov flows` on each, with `--threads T` for each
   T, RUNS times, under GNU time: median wall seconds and peak RSS. Each
   run starts after an untimed read of the capture: this machine's VM
   drops cached pages at about 1 MB/s even with most of its memory free
   (docs/PERFORMANCE.md, "The benchmark's page cache").
3. Prints a Markdown table (capture, MB, packets, transactions, command,
   threads, wall s, MB/s, transactions/s, peak RSS MiB), the growth of
   peak RSS from the smallest synthetic night to each larger one (the
   flatness target's figure), and writes one SVG
   with two panels: throughput and peak RSS against capture size (one line
   per command and thread count), and the speed-up from 1 thread to the
   others for each capture.

Needs GNU time (/usr/bin/time); nothing outside the Python standard library.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile


def run_timed(cmd):
    """Runs cmd under GNU time; returns (wall s, peak RSS KiB, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        p = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if p.returncode not in (0, 3):
            sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
        wall, rss = t.read().split()[-2:]
        return float(wall), int(rss), p.stdout


def counts(pov, capture):
    """Packets and HTTP transactions of a capture (from `pov info`)."""
    p = subprocess.run([pov, "info", "--quiet", "--format", "json", capture], stdout=subprocess.PIPE, text=True)
    info = json.loads(p.stdout)
    return info.get("packets", 0), (info.get("http") or {}).get("transactions", 0)


DEFAULT_SYNTH = "--seed 11 --body-scale 0.02 --rate 5"


def synth(pov, d, users, args=DEFAULT_SYNTH):
    """The night of `users` made with `pov synth ARGS` (named after ARGS
    unless they are the default)."""
    tag = "" if args == DEFAULT_SYNTH else "-" + "_".join(re.findall(r"[A-Za-z0-9.]+", args))
    path = os.path.join(d, f"scale-{users}{tag}.pcap")
    if not os.path.exists(path):
        print(f"generating {path}", file=sys.stderr)
        subprocess.run(
            [pov, "synth", "--quiet", "--users", str(users)] + args.split()
            + ["--out", path, "--truth", path + ".truth.json"],
            check=True,
        )
    return path


def warm(capture):
    """Reads `capture` once, so that the run after finds it cached."""
    with open(capture, "rb") as f:
        while f.read(1 << 24):
            pass


def measure(pov, capture, command, threads, runs, out_dir):
    cmd = [pov, command, "--quiet", "--threads", str(threads)]
    if command == "analyze":
        cmd += ["--out", out_dir]
    else:
        cmd += ["--format", "csv"]
    cmd.append(capture)
    walls, rss = [], []
    for _ in range(runs):
        warm(capture)
        w, r, _ = run_timed(cmd)
        walls.append(w)
        rss.append(r)
        print(f"  {command} --threads {threads} {os.path.basename(capture)}: {w:.2f} s, {r // 1024} MiB", file=sys.stderr)
    return statistics.median(walls), max(rss), statistics.median(rss)


def svg(rows, path):
    """Two panels: throughput (MB/s) and peak RSS (MiB) against capture
    size, one polyline per (command, threads)."""
    width, height, pad = 900, 360, 60
    panel_w = (width - 3 * pad) / 2
    series = {}
    for r in rows:
        series.setdefault((r["command"], r["threads"]), []).append(r)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    max_mb = max(r["mb"] for r in rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    for panel, (key, label) in enumerate([("mbps", "throughput, MB/s"), ("rss", "peak RSS, MiB")]):
        x0 = pad + panel * (panel_w + pad)
        y0, h = 30, height - 30 - pad
        top = max(r[key] for r in rows) * 1.1 or 1
        out.append(f'<text x="{x0}" y="20" font-size="13">{label} against capture size (MB)</text>')
        out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + panel_w}" y2="{y0 + h}" stroke="black"/>')
        out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + h}" stroke="black"/>')
        for i in range(5):
            v = top * i / 4
            y = y0 + h - h * i / 4
            out.append(f'<text x="{x0 - 5}" y="{y + 4}" text-anchor="end">{v:.0f}</text>')
            out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + panel_w}" y2="{y}" stroke="#ddd"/>')
        for i in range(5):
            v = max_mb * i / 4
            x = x0 + panel_w * i / 4
            out.append(f'<text x="{x}" y="{y0 + h + 15}" text-anchor="middle">{v:.0f}</text>')
        for n, ((command, threads), rs) in enumerate(sorted(series.items())):
            rs = sorted(rs, key=lambda r: r["mb"])
            pts = " ".join(f'{x0 + panel_w * r["mb"] / max_mb:.1f},{y0 + h - h * r[key] / top:.1f}' for r in rs)
            c = colors[n % len(colors)]
            out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
            for r in rs:
                out.append(f'<circle cx="{x0 + panel_w * r["mb"] / max_mb:.1f}" cy="{y0 + h - h * r[key] / top:.1f}" r="3" fill="{c}"/>')
            if panel == 0:
                out.append(f'<text x="{x0 + 10}" y="{y0 + 14 + 13 * n}" fill="{c}">{command}, {threads} thread{"s" if threads > 1 else ""}</text>')
    out.append("</svg>")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pov", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "pov"))
    ap.add_argument("--dir", required=True, help="where synthetic captures are made and outputs written")
    ap.add_argument("--users", default="1250,2500,5000,10000")
    ap.add_argument("--synth", default=DEFAULT_SYNTH, help="pov synth's arguments for the nights but --users")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--commands", default="analyze,transactions,flows")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--capture", action="append", default=[], help="another capture to measure")
    ap.add_argument("--svg", default=None)
    ap.add_argument("--md", default=None)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    nights = [synth(a.pov, a.dir, int(u), a.synth) for u in a.users.split(",") if u]
    captures = nights + a.capture
    threads = [int(t) for t in a.threads.split(",")]
    rows = []
    out_dir = os.path.join(a.dir, "scale-out")
    for c in captures:
        mb = os.path.getsize(c) / 1e6
        packets, txs = counts(a.pov, c)
        for command in a.commands.split(","):
            for t in threads:
                wall, rss, rss_median = measure(a.pov, c, command, t, a.runs, out_dir)
                rows.append({
                    "capture": os.path.basename(c), "mb": mb, "packets": packets, "transactions": txs,
                    "command": command, "threads": t, "wall": wall, "mbps": mb / wall,
                    "txps": txs / wall, "rss": rss / 1024, "rss_median": rss_median / 1024,
                })
    lines = ["| capture | MB | packets | transactions | command | threads | wall s | MB/s | transactions/s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f'| {r["capture"]} | {r["mb"]:.0f} | {r["packets"]:,} | {r["transactions"]:,} | {r["command"]} | '
                     f'{r["threads"]} | {r["wall"]:.2f} | {r["mbps"]:.0f} | {r["txps"]:,.0f} | {r["rss"]:.0f} |')
    lines.append("")
    lines.append("Speed-up from 1 thread (median wall, 1 thread / N threads):")
    lines.append("")
    for c in captures:
        for command in a.commands.split(","):
            base = [r for r in rows if r["capture"] == os.path.basename(c) and r["command"] == command and r["threads"] == 1]
            for r in rows:
                if base and r["capture"] == os.path.basename(c) and r["command"] == command and r["threads"] > 1:
                    lines.append(f'- {r["capture"]} {command}: {r["threads"]} threads {base[0]["wall"] / r["wall"]:.2f}x')
    if len(nights) > 1:
        lines.append("")
        lines.append(f"Peak RSS against the smallest night, medians of {a.runs} runs (the flatness target: within 20 % from 1 to 8 GB):")
        lines.append("")
        first = os.path.basename(nights[0])
        for command in a.commands.split(","):
            for t in threads:
                base = [r for r in rows if r["capture"] == first and r["command"] == command and r["threads"] == t]
                for n in nights[1:]:
                    for r in rows:
                        if base and r["capture"] == os.path.basename(n) and r["command"] == command and r["threads"] == t:
                            b, x = base[0]["rss_median"], r["rss_median"]
                            lines.append(f'- {command}, {t} thread{"s" if t > 1 else ""}: {b:.0f} MiB at '
                                         f'{base[0]["mb"]:.0f} MB, {x:.0f} MiB at {r["mb"]:.0f} MB ({(x / b - 1) * 100:+.0f} %)')
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    if a.svg:
        svg(rows, a.svg)


if __name__ == "__main__":
    main()
