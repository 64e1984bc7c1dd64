#!/usr/bin/env python3
"""Where a pov run keeps each thread busy, over time.

    benches/busy.py [--pov BIN] [--bucket MS] [--hz HZ] -- ARGS...

Runs `pov ARGS...` (for instance `analyze --threads 2 --out /tmp/o
capture.pcap`) under `perf record` (CPU-clock samples, no call graphs),
then prints, per time bucket, how many cores were busy and each thread's
share of its bucket, and at the end each thread's busy share over the
whole run. A thread's share is its samples over the bucket's length times
the sampling rate, so 1.00 is a core kept busy the whole bucket.

Threads are named as pov names them: `main` (the thread the process
started on, which merges, runs the user stage and helps with the shards'
steps), `pov-N` (the pipeline's pool: the reader, the decoding and the
shards' steps), `global-N` (rayon's global pool: sessions built and
classified side by side, the record files finished side by side; they
carry the process's name), and polars' own threads.

This is how docs/PERFORMANCE.md finds where a two-thread run waits: a
stretch where one thread is busy and the other is not is a serial stretch.
Needs `perf` (Debian: linux-perf) and permission to use it
(kernel.perf_event_paranoid <= 1, or root).
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(here, "..", "target"))
    ap.add_argument("--pov", default=os.path.join(target, "release", "pov"), help="the pov binary")
    ap.add_argument("--bucket", type=float, default=50.0, help="bucket length, ms (default 50)")
    ap.add_argument("--hz", type=int, default=999, help="sampling rate (default 999)")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then pov's arguments")
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if not args:
        ap.error("give pov's arguments after --")
    if shutil.which("perf") is None:
        sys.exit("busy.py: no `perf` (Debian: apt-get install linux-perf)")
    if not os.access(a.pov, os.X_OK):
        sys.exit(f"busy.py: no pov binary at {a.pov} (cargo build --release, or --pov)")
    with tempfile.TemporaryDirectory(prefix="pov-busy.") as work:
        data = os.path.join(work, "perf.data")
        run = subprocess.run(
            ["perf", "record", "-q", "-F", str(a.hz), "-o", data, "--", a.pov, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if run.returncode != 0:
            sys.exit(f"busy.py: `perf record` or pov failed ({run.returncode}):\n{run.stderr}")
        script = subprocess.run(
            ["perf", "script", "-i", data, "-F", "pid,tid,comm,time"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    samples = []
    for line in script.splitlines():
        # "comm pid/tid time:" (comm may hold spaces).
        head, _, rest = line.strip().rpartition(" ")
        try:
            t = float(rest.rstrip(":"))
            comm, ids = head.strip().rsplit(None, 1)
            pid, tid = (int(x) for x in ids.split("/"))
        except ValueError:
            continue
        samples.append((t, pid, tid, comm))
    if not samples:
        sys.exit("busy.py: no samples")
    print(table(samples, a.bucket / 1000.0, a.hz))


def names(samples):
    """A readable name for every thread id."""
    out, global_n = {}, collections.Counter()
    procs = {}
    for _, pid, tid, comm in sorted(samples, key=lambda s: s[2]):
        procs.setdefault(pid, comm)
        if tid in out:
            continue
        if tid == pid:
            out[tid] = "main"
        elif comm == procs.get(pid):
            # rayon's global pool: its threads carry the process's name.
            out[tid] = f"global-{global_n[pid]}"
            global_n[pid] += 1
        else:
            out[tid] = comm
    return out


def table(samples, bucket, hz):
    t0 = min(s[0] for s in samples)
    name = names(samples)
    per = hz * bucket
    buckets = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    for t, _, tid, _ in samples:
        buckets[int((t - t0) / bucket)][name[tid]] += 1
        total[name[tid]] += 1
    threads = [n for n, _ in total.most_common()]
    shown = threads[:6]
    lines = ["| ms | cores busy | " + " | ".join(shown) + " |", "|---:|---:|" + "---:|" * len(shown)]
    for k in sorted(buckets):
        b = buckets[k]
        cells = " | ".join(f"{b[n] / per:.2f}" if b[n] else "" for n in shown)
        lines.append(f"| {k * bucket * 1000:.0f} | {sum(b.values()) / per:.2f} | {cells} |")
    span = (max(s[0] for s in samples) - t0) or bucket
    lines.append("")
    lines.append(f"Over the run ({span * 1000:.0f} ms from the first sample to the last):")
    for n in threads:
        lines.append(f"- {n}: {total[n] / hz * 1000:.0f} ms busy, {total[n] / (hz * span) * 100:.0f} % of the run")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
