#!/usr/bin/env python3
"""Hostile-traffic benchmark: time and peak memory of pov on each class of
`pov synth hostile`, at two scales four times apart.

For every class it writes the capture at the class's benchmark scale S and
at 4 S, then runs, one at a time:

    pov analyze CAPTURE --out DIR          (default settings, replays on)
    pov transactions CAPTURE > /dev/null
    pov replay html --failed --include-robots CAPTURE -o F
                                           (classes with a failed session;
                                           robots' too: refused-flood's one
                                           client is judged a load generator)

and prints a Markdown table: input bytes, wall seconds, CPU seconds, peak
RSS and exit status at both scales, and the growth from S to 4 S. A command
whose time or memory grows more than RATIO_LIMIT times (a linear one grows
at most 4 times; the margin is for noise and fixed costs) is flagged
`superlinear`; one over the targets (3 s, 256 MiB) `over target`; one that
did not exit 0 `crash` or `timeout`.

Peak RSS is the child's own `ru_maxrss` (os.wait4), so each figure is that
one process's.
"""

import argparse
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time

TIME_TARGET = 3.0
MEM_TARGET_MIB = 256
RATIO_LIMIT = 5.0
# Times below this are too small for a ratio to mean anything.
MIN_TIME_FOR_RATIO = 0.5
MIN_MIB_FOR_RATIO = 64


def run(cmd, timeout, errpath):
    """Runs cmd (its stderr to errpath); returns (wall s, cpu s, peak RSS
    MiB, status text)."""
    start = time.monotonic()
    with open(errpath, "wb") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = start + timeout
    status = None
    ru = None
    while True:
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid != 0:
            status = st
            break
        if time.monotonic() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            pid, st, ru = os.wait4(p.pid, 0)
            status = None
            break
        time.sleep(0.01)
    wall = time.monotonic() - start
    p.returncode = 0  # reaped above
    cpu = ru.ru_utime + ru.ru_stime
    mib = ru.ru_maxrss / 1024.0  # Linux: kilobytes
    if status is None:
        text = "timeout"
    elif os.WIFSIGNALED(status):
        text = "signal %d" % os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
        text = "ok" if code == 0 else "exit %d" % code
    return wall, cpu, mib, text


def classes(gen):
    out = subprocess.run([gen, "synth", "hostile", "--list"], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        name, scale, failed = line.split("\t")
        rows.append((name, int(scale), failed == "failed"))
    return rows


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d CPUs (nproc), %s, Linux %s" % (os.cpu_count() or 0, model, platform.release())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pov", default=os.environ.get("POV", "target/release/pov"), help="pov binary to measure")
    ap.add_argument("--gen", default=None, help="pov binary that writes the captures (default: --pov)")
    ap.add_argument("--dir", default="/tmp/pov-hostile", help="work folder (captures and outputs)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is killed")
    ap.add_argument("--only", default="", help="comma-separated class names (default: all)")
    ap.add_argument("--commands", default="analyze,transactions,replay", help="which commands to run")
    ap.add_argument("--keep", action="store_true", help="keep the captures")
    a = ap.parse_args()
    gen = a.gen or a.pov
    os.makedirs(a.dir, exist_ok=True)
    only = set(x for x in a.only.split(",") if x)
    commands = set(a.commands.split(","))

    print("pov: `%s`; machine: %s; load average before: %.2f" % (a.pov, machine(), os.getloadavg()[0]))
    print()
    print("| class | command | scale | MB | s | cpu s | MiB | status | 4x MB | s | cpu s | MiB | status "
          "| time x | mem x | flags |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---|")
    sys.stdout.flush()
    flagged = 0
    for name, scale, failed in classes(gen):
        if only and name not in only:
            continue
        caps = []
        for s in (scale, 4 * scale):
            cap = os.path.join(a.dir, "%s-%d.pcap" % (name, s))
            subprocess.run([gen, "synth", "hostile", "--class", name, "--scale", str(s), "--out", cap], check=True)
            caps.append((s, cap, os.path.getsize(cap)))
        cmds = []
        if "analyze" in commands:
            cmds.append(("analyze", lambda cap, out: [a.pov, "analyze", cap, "--out", out]))
        if "transactions" in commands:
            cmds.append(("transactions", lambda cap, out: [a.pov, "transactions", cap]))
        if "replay" in commands and failed:
            cmds.append(("replay html --failed",
                         lambda cap, out: [a.pov, "replay", "html", "--failed", "--include-robots", cap,
                                           "-o", out + ".html"]))
        for label, mk in cmds:
            res = []
            for s, cap, size in caps:
                out = os.path.join(a.dir, "out-%s-%d" % (name, s))
                err = os.path.join(a.dir, "%s-%d-%s.stderr" % (name, s, label.split()[0]))
                res.append((s, size) + run(mk(cap, out), a.timeout, err))
                shutil.rmtree(out, ignore_errors=True)
                if os.path.exists(out + ".html"):
                    os.remove(out + ".html")
            (s1, b1, w1, c1, m1, st1), (s4, b4, w4, c4, m4, st4) = res
            flags = []
            tr = c4 / c1 if c1 > 0 else float("inf")
            mr = m4 / m1 if m1 > 0 else float("inf")
            if st1 != "ok" or st4 != "ok":
                flags.append("crash" if "timeout" not in (st1, st4) else "timeout")
            if max(c1, c4, w1, w4) >= MIN_TIME_FOR_RATIO and tr > RATIO_LIMIT and st1 == st4 == "ok":
                flags.append("superlinear time")
            if m4 >= MIN_MIB_FOR_RATIO and mr > RATIO_LIMIT and st1 == st4 == "ok":
                flags.append("superlinear memory")
            if max(w1, w4) > TIME_TARGET or max(m1, m4) > MEM_TARGET_MIB:
                flags.append("over target")
            if flags:
                flagged += 1
            print("| %s | %s | %d | %.2f | %.2f | %.2f | %.0f | %s | %.2f | %.2f | %.2f | %.0f | %s | %.1f | %.1f | %s |" % (
                name, label, s1, b1 / 1e6, w1, c1, m1, st1, b4 / 1e6, w4, c4, m4, st4, tr, mr,
                ", ".join(flags) or "-"))
            sys.stdout.flush()
        if not a.keep:
            for _, cap, _ in caps:
                os.remove(cap)
    print()
    print("%d rows flagged. (time x: CPU seconds at 4x over 1x; mem x: peak RSS at 4x over 1x.)" % flagged)


if __name__ == "__main__":
    main()
