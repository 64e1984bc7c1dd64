#!/usr/bin/env python3
"""A night of captures through pov on an Apache Spark cluster.

    python3 pov_spark.py --master spark://HOST:7077 --pov /opt/pov/bin/pov \\
        --dataset /data/pov-ds --probe edge-1 -c /etc/pov/pov.toml \\
        '/captures/edge-1/*.pcap'

Several probes' nights go in one run with `--night PROBE=GLOB` (repeated).

1. The packet stage: one Spark task per capture file, each running
   `pov transactions --format parquet --failed-connections ...` on its file.
   Their records go into the dataset as two tables of their own,
   `tx_records` and `failed_connections`, under the night's partition
   (`DIR/tx_records/date=YYYY-MM-DD/probe=NAME/part-<capture>.parquet`).
2. The customer stage, once per probe, on the driver: `pov analyze --from-transactions`
   over those records with `--dataset DIR --probe NAME` (pov files the
   night's transactions, pages, sessions, users, failures, summary and
   manifest in the dataset itself).
3. Spark SQL on the dataset: every table read as one hive-partitioned
   table (`date`, `probe` as columns), for questions across nights and
   probes (`--query NAME`, or any `--sql`).

The executors run the `pov` binary at the path given (`--pov`) and read the
captures and write the records at the paths the driver gives: every node
must see the binary, the captures and the dataset at the same paths (a
shared file system; in the test, one machine). The night's date is the UTC
day of its first record, as `pov analyze --dataset` files it; records are
first written under a hidden staging folder in the dataset, then moved into
their partition one file at a time by rename (a re-run of the night
replaces them; part files of the partition this run did not write are
removed), and the staging folder goes with the run, also when it fails.

Prints a few lines; `--report FILE` writes everything as JSON (the tasks,
the stages' times, the queries' rows). Exit status: 0 done, 1 a stage
failed, 2 bad arguments.
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import time

# Questions across nights and probes, on the tables pov writes (docs/schema.md).
# Noticed failures are the critical and major ones (what summary.json counts).
QUERIES = {
    # Users and affected users per night and probe (summary.json's
    # users_total and users_affected).
    "affected_users_per_day": """
        SELECT date, probe, count(*) AS users, count_if(affected) AS affected,
               round(100 * count_if(affected) / count(*), 1) AS affected_pct
        FROM users GROUP BY date, probe ORDER BY date, probe""",
    # Noticed failures per night, probe and kind (summary.json's failures_by_kind).
    "failures_by_kind_per_day": """
        SELECT date, probe, kind, count(*) AS failures, count(DISTINCT user) AS users
        FROM failures WHERE severity IN ('critical', 'major')
        GROUP BY date, probe, kind ORDER BY date, probe, kind""",
    # Noticed failures by route in the 7 days up to the latest night, and in
    # the 7 days before (every probe).
    "failures_by_route_week_over_week": """
        WITH f AS (SELECT route, to_date(date) AS d FROM failures
                   WHERE severity IN ('critical', 'major')),
             latest AS (SELECT max(d) AS last FROM f)
        SELECT route,
               count_if(d > date_sub(last, 7)) AS this_week,
               count_if(d <= date_sub(last, 7) AND d > date_sub(last, 14)) AS last_week
        FROM f CROSS JOIN latest GROUP BY route
        HAVING this_week + last_week > 0
        ORDER BY this_week DESC, last_week DESC, route LIMIT 50""",
    # Page load time per route and night: median and 95th percentile.
    "page_load_by_route_per_day": """
        SELECT date, route, count(*) AS views,
               round(percentile_approx(load_ms, 0.5), 1) AS p50_ms,
               round(percentile_approx(load_ms, 0.95), 1) AS p95_ms
        FROM pages GROUP BY date, route HAVING count(*) >= 10
        ORDER BY date, p95_ms DESC""",
    # Session cookies seen from more than one client address, per night and
    # probe: the customers a run partitioned by address would have to
    # reconcile (docs/scale.md).
    "cookies_from_several_addresses": """
        SELECT date, probe, count(*) AS cookies, count_if(addresses > 1) AS from_several_addresses
        FROM (SELECT date, probe, session_cookie, count(DISTINCT client_ip) AS addresses
              FROM tx_records WHERE session_cookie IS NOT NULL GROUP BY date, probe, session_cookie)
        GROUP BY date, probe ORDER BY date, probe""",
    # The packet stage's records per capture file of each night.
    "records_per_capture": """
        SELECT date, probe, capture, count(*) AS transactions,
               min(ts) AS first_ts, max(ts) AS last_ts
        FROM tx_records GROUP BY date, probe, capture ORDER BY date, probe, capture""",
}

# The tables each query reads: with no --query, those whose tables the
# dataset lacks are left out.
NEEDS = {
    "affected_users_per_day": ["users"],
    "failures_by_kind_per_day": ["failures"],
    "failures_by_route_week_over_week": ["failures"],
    "page_load_by_route_per_day": ["pages"],
    "cookies_from_several_addresses": ["tx_records"],
    "records_per_capture": ["tx_records"],
}

TABLES = ["transactions", "pages", "sessions", "users", "failures", "tx_records", "failed_connections"]


def packet_stage(job):
    """One Spark task: `pov transactions` on one capture file (runs on an
    executor). Returns what it did; raises when pov fails, so that Spark
    tries the task again (spark.task.maxFailures) and then fails the job."""
    import socket

    from pyspark import TaskContext

    t0 = time.monotonic()
    argv = [job["pov"], "transactions", "--quiet", "--format", "parquet", "--threads", str(job["threads"]),
            "-o", job["tx"], "--failed-connections", job["failed"]]
    if job["config"]:
        argv += ["-c", job["config"]]
    argv.append(job["capture"])
    code, err, use = run_measured(argv)
    wall = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"pov transactions {job['capture']}: exit {code}: {err}")
    ctx = TaskContext.get()
    return {
        "capture": job["capture"],
        "capture_bytes": os.path.getsize(job["capture"]),
        "records_bytes": os.path.getsize(job["tx"]) + os.path.getsize(job["failed"]),
        "wall_s": round(wall, 3),
        "cpu_s": round(use.ru_utime + use.ru_stime, 3),
        "max_rss_kib": use.ru_maxrss,
        "host": socket.gethostname(),
        # In standalone mode an executor runs in WORKDIR/APP-ID/EXECUTOR-ID.
        "executor_dir": os.getcwd(),
        "attempt": ctx.attemptNumber() if ctx else 0,
    }


def run_measured(argv):
    """Runs a command; returns its exit code, the end of its stderr, and
    its own resource use (CPU time, peak RSS in KiB)."""
    import tempfile

    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, use = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip()[-2000:]
    return p.returncode, text, use


def record_capture_paths(manifest, files):
    """Adds each capture's path to a night's manifest: the customer stage,
    reading records, knows the captures' names and time spans only, and
    `pov find --replay` reads the captures at the paths the manifest gives
    (the names are unique within a night: captures_of)."""
    with open(manifest) as f:
        m = json.load(f)
    by_name = {os.path.basename(p): p for p in files}
    for c in m.get("captures", []):
        if not c.get("path") and c.get("name") in by_name:
            c["path"] = by_name[c["name"]]
    write_atomically(manifest, json.dumps(m, indent=2) + "\n")


def fail(msg, code=1):
    print(f"pov_spark: {msg}", file=sys.stderr)
    sys.exit(code)


def captures_of(patterns):
    """The capture files the patterns name, sorted, each once."""
    files = set()
    for p in patterns:
        hits = glob.glob(p) if any(c in p for c in "*?[") else [p]
        if not hits:
            fail(f"{p}: no such capture file", 2)
        for h in hits:
            if not os.path.isfile(h):
                fail(f"{h}: not a file", 2)
            files.add(os.path.abspath(h))
    files = sorted(files)
    # The customer stage numbers connections per capture file name: two
    # captures of one name in a night would share their numbers.
    names = {}
    for f in files:
        n = os.path.basename(f)
        if n in names:
            fail(f"two captures named {n}: {names[n]} and {f} (rename one)", 2)
        names[n] = f
    return files


def stem(path):
    """A capture's name as a part file's: `edge-1-0200.pcap` -> `edge-1-0200`."""
    n = os.path.basename(path)
    for ext in (".gz", ".pcapng", ".pcap", ".cap"):
        if n.endswith(ext):
            n = n[: -len(ext)]
    return n


def json_rows(df):
    """A DataFrame's rows as JSON values (dates as text)."""
    out = []
    for r in df.collect():
        d = r.asDict(recursive=True)
        out.append({k: (v.isoformat() if isinstance(v, (datetime.date, datetime.datetime)) else v) for k, v in d.items()})
    return out


def register(spark, dataset, merge_schema):
    """Each table of the dataset as one view, partitions as columns."""
    seen = []
    for t in TABLES:
        path = os.path.join(dataset, t)
        if not os.path.isdir(path):
            continue
        # mergeSchema reads every file's footer (a Spark job per table):
        # needed when nights written by other versions of pov have other
        # columns; otherwise one file's schema is the table's.
        spark.read.option("mergeSchema", str(merge_schema).lower()).parquet(path).createOrReplaceTempView(t)
        seen.append(t)
    return seen


def write_atomically(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("captures", nargs="*", help="capture files or globs (one Spark task each)")
    ap.add_argument("--master", required=True, help="spark://HOST:PORT (or local[N] to try it on one machine)")
    ap.add_argument("--pov", required=True, help="the pov binary, at the same path on every node")
    ap.add_argument("--dataset", required=True, help="the dataset folder (shared by every node)")
    ap.add_argument("--probe", default="default", help="the probe the captures given are filed under")
    ap.add_argument("--night", action="append", default=[], metavar="PROBE=GLOB",
                    help="also the captures GLOB names, filed under PROBE (repeat for several probes)")
    ap.add_argument("--customer-jobs", type=int, default=1,
                    help="customer stages run at once on the driver (one per probe)")
    ap.add_argument("-c", "--config", help="pov.toml, for both stages")
    ap.add_argument("--out", help="also keep the customer stage's output folder here")
    ap.add_argument("--threads", type=int, default=1, help="threads of each packet-stage run (one Spark core each)")
    ap.add_argument("--analyze-arg", action="append", default=[],
                    help="an argument for the customer stage's pov analyze (repeat: --analyze-arg=--history ...)")
    ap.add_argument("--query", action="append", default=[],
                    help=f"a named query to run on the dataset ({', '.join(QUERIES)}; 'all'); "
                         "default: all, after a night is added")
    ap.add_argument("--sql", action="append", default=[], help="any Spark SQL on the dataset's tables")
    ap.add_argument("--merge-schema", action="store_true",
                    help="read every file's columns (nights of pov versions with other columns)")
    ap.add_argument("--queries-only", action="store_true", help="add no night: only query the dataset")
    ap.add_argument("--report", help="write what was done as JSON to this file")
    ap.add_argument("--driver-host", help="the address executors reach the driver on (spark.driver.host)")
    ap.add_argument("--conf", action="append", default=[], help="a Spark setting KEY=VALUE")
    a = ap.parse_args()

    pov = os.path.abspath(a.pov)
    if not os.access(pov, os.X_OK):
        fail(f"{a.pov}: not an executable pov binary", 2)
    dataset = os.path.abspath(a.dataset)
    config = os.path.abspath(a.config) if a.config else None
    if config and not os.path.isfile(config):
        fail(f"{a.config}: no such file", 2)
    nights = {}
    if not a.queries_only:
        if a.captures:
            nights[a.probe] = list(a.captures)
        for n in a.night:
            probe, _, pattern = n.partition("=")
            if not pattern:
                fail(f"--night {n}: give PROBE=GLOB", 2)
            nights.setdefault(probe, []).append(pattern)
        if not nights:
            fail("no capture given", 2)
        for probe in nights:
            # The name pov accepts (crates/pov/src/dataset.rs).
            ok = 0 < len(probe) <= 64 and not probe.startswith(".") and all(
                c.isascii() and (c.isalnum() or c in "._-") for c in probe)
            if not ok:
                fail(f"probe name {probe!r}: use 1 to 64 ASCII letters, digits, '.', '_' or '-', "
                     "not starting with '.'", 2)
            nights[probe] = captures_of(nights[probe])
    queries = a.query or ["all"]
    chosen = "all" not in queries
    if not chosen:
        queries = list(QUERIES)
    for q in queries:
        if q not in QUERIES:
            fail(f"no query named {q} (there are {', '.join(QUERIES)})", 2)
    os.makedirs(dataset, exist_ok=True)

    from pyspark.sql import SparkSession

    t_start = time.monotonic()
    b = (SparkSession.builder.master(a.master).appName("pov night " + " ".join(sorted(nights)))
         .config("spark.pyspark.python", sys.executable)
         .config("spark.pyspark.driver.python", sys.executable)
         .config("spark.ui.showConsoleProgress", "false")
         # Partition values stay text: a probe named 1 or 2026 is a name.
         .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC"))
    if a.driver_host:
        b = b.config("spark.driver.host", a.driver_host).config("spark.driver.bindAddress", a.driver_host)
    for kv in a.conf:
        k, _, v = kv.partition("=")
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    report = {"dataset": dataset, "master": a.master,
              "spark_version": spark.version, "startup_s": round(time.monotonic() - t_start, 3)}
    staging = os.path.join(dataset, f".spark-staging-{os.getpid()}")
    code = 0
    try:
        if nights:
            night(spark, a, pov, config, dataset, staging, nights, report)
        t0 = time.monotonic()
        report["tables"] = register(spark, dataset, a.merge_schema)
        missing = {q: [t for t in NEEDS[q] if t not in report["tables"]] for q in queries}
        if chosen and any(missing.values()):
            raise StageFailed("the dataset has no table " + ", ".join(sorted({t for m in missing.values() for t in m})))
        queries = [q for q in queries if not missing[q]]
        report["register_s"] = round(time.monotonic() - t0, 3)
        report["queries"], report["query_s"] = {}, {}
        named = [(q, QUERIES[q]) for q in queries] + [(f"sql{i + 1}", sql) for i, sql in enumerate(a.sql)]
        for name, sql in named:
            t1 = time.monotonic()
            report["queries"][name] = json_rows(spark.sql(sql))
            report["query_s"][name] = round(time.monotonic() - t1, 3)
        report["queries_s"] = round(time.monotonic() - t0, 3)
        for name, rows in report["queries"].items():
            print(f"{name}: {len(rows)} rows")
            for r in rows[:20]:
                print("  " + json.dumps(r))
    except StageFailed as e:
        print(f"pov_spark: {e}", file=sys.stderr)
        report["error"] = str(e)
        code = 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        spark.stop()
        report["total_s"] = round(time.monotonic() - t_start, 3)
        if a.report:
            write_atomically(a.report, json.dumps(report, indent=1) + "\n")
    return code


class StageFailed(Exception):
    pass


def night(spark, a, pov, config, dataset, staging, nights, report):
    """The packet stage on the cluster (every probe's captures in one job),
    the records into the dataset, the customer stage once per probe."""
    from concurrent.futures import ThreadPoolExecutor

    from pyspark.sql import functions as F

    jobs = []
    for probe, files in nights.items():
        for t in ("tx_records", "failed_connections"):
            os.makedirs(os.path.join(staging, t, f"probe={probe}"))
        jobs += [{
            "pov": pov, "config": config, "capture": f, "threads": a.threads, "probe": probe,
            "tx": os.path.join(staging, "tx_records", f"probe={probe}", f"part-{stem(f)}.parquet"),
            "failed": os.path.join(staging, "failed_connections", f"probe={probe}", f"part-{stem(f)}.parquet"),
        } for f in files]
    t0 = time.monotonic()
    try:
        # One partition per capture: one task each.
        tasks = spark.sparkContext.parallelize(jobs, len(jobs)).map(packet_stage).collect()
    except Exception as e:  # py4j's error carries the task's message
        lines = [m.strip() for m in str(e).strip().splitlines()] or ["?"]
        why = next((m for m in lines if m.startswith("RuntimeError: pov transactions")), lines[0])
        raise StageFailed("the packet stage failed: " + why)
    report["packet_stage_s"] = round(time.monotonic() - t0, 3)
    report["tasks"] = tasks

    # Each night's date: the UTC day of its first record, as pov files it.
    t0 = time.monotonic()
    firsts, counts = {}, {}
    for t in ("tx_records", "failed_connections"):
        df = spark.read.parquet(os.path.join(staging, t))
        for r in df.groupBy("probe").agg(F.min("ts").alias("first"), F.count("*").alias("n")).collect():
            if r["first"] is not None:
                firsts[r["probe"]] = min(firsts.get(r["probe"], r["first"]), r["first"])
            counts.setdefault(r["probe"], {})[t] = r["n"]
    report["date_s"] = round(time.monotonic() - t0, 3)
    empty = [p for p in nights if p not in firsts]
    if empty:
        raise StageFailed(f"the captures of {', '.join(empty)} hold no transaction and no failed connection "
                          "attempt: no night to file")
    dates = {p: datetime.datetime.fromtimestamp(firsts[p], datetime.timezone.utc).strftime("%Y-%m-%d")
             for p in nights}

    # Into each night's partition, one rename per file; then what an
    # earlier run left there goes.
    for probe in nights:
        for t in ("tx_records", "failed_connections"):
            part = os.path.join(dataset, t, f"date={dates[probe]}", f"probe={probe}")
            os.makedirs(part, exist_ok=True)
            mine = set()
            src = os.path.join(staging, t, f"probe={probe}")
            for n in sorted(os.listdir(src)):
                os.replace(os.path.join(src, n), os.path.join(part, n))
                mine.add(n)
            for n in os.listdir(part):
                if n.startswith("part-") and n not in mine:
                    os.remove(os.path.join(part, n))

    def customer(probe):
        date = dates[probe]
        out = os.path.abspath(a.out) if a.out and len(nights) == 1 else os.path.join(staging, f"out-{probe}")
        argv = [pov, "analyze", "--quiet", "--out", out, "--dataset", dataset, "--probe", probe]
        if config:
            argv += ["-c", config]
        for t in ("tx_records", "failed_connections"):
            argv += ["--from-transactions", os.path.join(dataset, t, f"date={date}", f"probe={probe}", "part-*.parquet")]
        argv += a.analyze_arg
        t0 = time.monotonic()
        code, err, use = run_measured(argv)
        took = {"wall_s": round(time.monotonic() - t0, 3), "cpu_s": round(use.ru_utime + use.ru_stime, 3),
                "max_rss_kib": use.ru_maxrss}
        if code != 0:
            return probe, took, f"exit {code}: {err}"
        manifest = os.path.join(dataset, "manifest", f"date={date}", f"probe={probe}", "manifest.json")
        if not os.path.isfile(manifest):
            return probe, took, f"the night was not filed under {date} (see {dataset}/manifest)"
        record_capture_paths(manifest, nights[probe])
        return probe, took, None

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, a.customer_jobs)) as pool:
        done = list(pool.map(customer, sorted(nights)))
    report["customer_stage_s"] = round(time.monotonic() - t0, 3)
    failed = [f"{p}: {err}" for p, _, err in done if err]
    report["nights"] = []
    for probe, took, err in done:
        date = dates[probe]
        n = {"probe": probe, "date": date, "captures": len(nights[probe]), "records": counts.get(probe, {}),
             "customer_stage": took}
        if not err:
            n["summary"] = os.path.join(dataset, "summary", f"date={date}", f"probe={probe}", "summary.json")
            with open(n["summary"]) as f:
                s = json.load(f)
            print(f"{date} {probe}: {len(nights[probe])} captures; users: {s['users_total']} "
                  f"({s['users_affected']} affected), transactions: {s['transactions']}, "
                  f"revenue lost: {s['revenue_lost']['value']:.2f}; customer stage {took['wall_s']:.1f} s")
        report["nights"].append(n)
    print(f"{len(tasks)} captures, {sum(t['capture_bytes'] for t in tasks):,} bytes: packet stage "
          f"{report['packet_stage_s']:.1f} s on {len({t['executor_dir'] for t in tasks})} executors, "
          f"customer stages {report['customer_stage_s']:.1f} s")
    if failed:
        raise StageFailed("the customer stage failed: " + "; ".join(failed))


if __name__ == "__main__":
    sys.exit(main())
