#!/usr/bin/env python3
"""Two or more pov builds compared by alternate runs on one capture.

    benches/alternate.py [--runs N] CAPTURE BIN_A BIN_B [BIN...] -- ARGS...

Runs `BIN ARGS... CAPTURE` for each build in turn, N rounds (default 10),
each run after a `sync` and an untimed read of the capture. `{out}` in ARGS
becomes a folder of the run's own (in a temporary folder, removed at the
end), for instance:

    benches/alternate.py --runs 12 server.pcap old/pov new/pov -- \\
        analyze --threads 2 --quiet --out {out}

Prints, per build: the median and lowest wall time, the median CPU time
(user + system) and peak RSS, each run's own (wait4; the RSS has a floor
at this Python process's size, some 17 MiB, which the child has between
fork and exec), and
against the first build the median of the paired differences (each round's
run minus the first build's run of the same round) and in how many rounds
it was faster.

Why alternate runs: on the 2-vCPU VM docs/PERFORMANCE.md measures on, the
same build's wall time moves by up to a quarter between spells of the host
and the page cache drops pages at about 1 MB/s even idle. Builds measured
one after the other would compare spells; builds run in turn, each after a
read of the capture, compare builds. A few percent stay within the noise
even so: count the rounds, and read the paired differences with the
medians.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from scale import warm  # the same read of the capture as scale.py's runs


def run(binary, args, capture, out):
    """One run: (wall seconds, user + system seconds, peak RSS in KiB), the
    last two from the run's own resource usage (wait4)."""
    argv = [binary] + [a.replace("{out}", out) for a in args] + [capture]
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)} failed ({code}): {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="rounds (default 10)")
    ap.add_argument("capture")
    ap.add_argument("bins", nargs="+", help="the pov binaries, the first the reference")
    opts = ap.parse_args(argv[:cut])
    args = argv[cut + 1:]
    if len(opts.bins) < 2:
        sys.exit("give at least two binaries")
    for b in opts.bins:
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            sys.exit(f"not an executable: {b}")
    work = tempfile.mkdtemp(prefix="pov-alternate.")
    try:
        results = {b: [] for b in opts.bins}
        for r in range(opts.runs):
            for i, b in enumerate(opts.bins):
                subprocess.run(["sync"], check=False)
                warm(opts.capture)
                out = os.path.join(work, f"{i}-{r}")
                results[b].append(run(b, args, opts.capture, out))
                shutil.rmtree(out, ignore_errors=True)
            print(f"round {r + 1}: " + "  ".join(f"{results[b][-1][0]:.3f}" for b in opts.bins), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = results[opts.bins[0]]
    print(f"{opts.runs} rounds on {opts.capture}: {' '.join(args)}")
    print("| build | wall median | wall lowest | CPU median | peak RSS median | paired wall difference | faster in |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for b in opts.bins:
        runs = results[b]
        walls = [w for w, _, _ in runs]
        diffs = [w - ref[k][0] for k, (w, _, _) in enumerate(runs)]
        faster = sum(d < 0 for d in diffs)
        same = b == opts.bins[0]
        print(
            f"| {b} | {statistics.median(walls):.3f} s | {min(walls):.3f} s | "
            f"{statistics.median(c for _, c, _ in runs):.3f} s | "
            f"{statistics.median(m for _, _, m in runs) / 1024:.0f} MiB | "
            f"{'' if same else f'{statistics.median(diffs):+.3f} s'} | "
            f"{'' if same else f'{faster} of {len(runs)}'} |"
        )


if __name__ == "__main__":
    main()
