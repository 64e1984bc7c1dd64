#!/usr/bin/env bash
# A night of PROBES probes at reduced scale, through one machine and through
# the Spark driver (crates/pov/spark/pov_spark.py): the figures of
# docs/scale.md.
#
#   benches/spark-night.sh [DIR] [PROBES] [USERS_PER_HOUR] [HOURS]
#
# Each probe's night is HOURS capture files (default 4) of USERS_PER_HOUR
# generated customers each (default 60, at full body size: about 0.74 MB
# of capture per customer), every file its own `pov synth` seed, starting an
# hour apart: PROBES (default 20) x HOURS files in DIR (default
# /tmp/pov-spark-night). Then:
#
# 1. one machine: `pov analyze --dataset` of each probe's files in turn
#    (GNU time: wall, user+sys CPU, peak RSS);
# 2. Spark: a standalone master and two workers of one core each on
#    loopback, and the driver over every probe's files at once (one task per
#    file, then a customer stage per probe);
#
# and prints Markdown tables: per stage, wall and CPU seconds, MB/s, the
# records' bytes per GB of capture, the customer stages' peak RSS.
# Needs GNU time, python3 with pyspark, Java 17; builds pov first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${1:-/tmp/pov-spark-night}
probes=${2:-20}
users=${3:-60}
hours=${4:-4}
cargo build --release --quiet --bin pov
pov="${CARGO_TARGET_DIR:-target}/release/pov"
pov=$(cd "$(dirname "$pov")" && pwd)/pov
cfg=$root/samples/pov.toml
night=1793581200 # 2026-11-02T01:00:00Z
mkdir -p "$dir/captures"
for p in $(seq 1 "$probes"); do
    mkdir -p "$dir/captures/edge-$p"
    for h in $(seq 0 $((hours - 1))); do
        f="$dir/captures/edge-$p/edge-$p-h$h.pcap"
        [ -s "$f" ] || "$pov" synth --quiet --users "$users" --seed $((1000 + p * 100 + h)) \
            --rate "$(python3 -c "print($users / 3600)")" --start $((night + h * 3600)) \
            --out "$f" --truth "$dir/captures/edge-$p/h$h.truth.json"
    done
done

# 1. One machine, probe after probe.
rm -rf "$dir/one" && mkdir -p "$dir/one/time"
for p in $(seq 1 "$probes"); do
    /usr/bin/time -f '%e %U %S %M' -o "$dir/one/time/edge-$p" "$pov" analyze --quiet -c "$cfg" --replays 0 \
        --out "$dir/one/out-$p" --dataset "$dir/one/ds" --probe "edge-$p" "$dir/captures/edge-$p"/*.pcap >/dev/null
done

# 2. Spark.
spark_home=$(python3 -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
rm -rf "$dir/spark" && mkdir -p "$dir/spark/local" "$dir/spark/w1" "$dir/spark/w2"
export SPARK_HOME=$spark_home SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_DIRS=$dir/spark/local
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
setsid "$spark_home/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 0 \
    --webui-port 0 >"$dir/spark/master.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "Starting Spark master at" "$dir/spark/master.log" && break; sleep 0.2; done
url=$(grep -o "spark://127.0.0.1:[0-9]*" "$dir/spark/master.log" | head -1)
for w in 1 2; do
    setsid "$spark_home/bin/spark-class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --port 0 \
        --webui-port 0 --cores 1 --memory 1g --work-dir "$dir/spark/w$w" "$url" >"$dir/spark/worker$w.log" 2>&1 &
    pids+=($!)
done
nights=()
for p in $(seq 1 "$probes"); do nights+=(--night "edge-$p=$dir/captures/edge-$p/*.pcap"); done
/usr/bin/time -f '%e %U %S %M' -o "$dir/spark/time" python3 "$root/crates/pov/spark/pov_spark.py" \
    --master "$url" --pov "$pov" --dataset "$dir/spark/ds" -c "$cfg" --driver-host 127.0.0.1 \
    --conf spark.executor.memory=512m --conf spark.sql.shuffle.partitions=4 \
    --conf spark.scheduler.minRegisteredResourcesRatio=1.0 \
    --query affected_users_per_day --report "$dir/spark/report.json" "${nights[@]}" >"$dir/spark/driver.log" 2>&1
stop
trap - EXIT

python3 - "$dir" "$probes" <<'EOF'
import glob, json, os, sys
d, probes = sys.argv[1], int(sys.argv[2])
cap = {p: sum(os.path.getsize(f) for f in glob.glob(f"{d}/captures/edge-{p}/*.pcap")) for p in range(1, probes + 1)}
total = sum(cap.values())
one = {}
for p in range(1, probes + 1):
    w, u, s, m = open(f"{d}/one/time/edge-{p}").read().split()[-4:]
    one[p] = (float(w), float(u) + float(s), int(m))
r = json.load(open(f"{d}/spark/report.json"))
sw, su, ss, sm = open(f"{d}/spark/time").read().split()[-4:]
tasks = r["tasks"]
recs = sum(t["records_bytes"] for t in tasks)
tx = sum(n["records"].get("tx_records", 0) for n in r["nights"])
users = 0
for n in r["nights"]:
    users += json.load(open(n["summary"]))["users_total"]
cs = [n["customer_stage"] for n in r["nights"]]
ow, oc = sum(v[0] for v in one.values()), sum(v[1] for v in one.values())
print(f"{probes} probes, {len(tasks)} capture files, {total / 1e6:,.0f} MB of capture, {tx:,} transactions, {users:,} users\n")
print("| run | wall s | user+sys CPU s | MB/s (wall) | MB/s per CPU s | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| one machine, `pov analyze` per probe (sum of {probes}) | {ow:.1f} | {oc:.1f} | {total / 1e6 / ow:.0f} "
      f"| {total / 1e6 / oc:.0f} | {max(v[2] for v in one.values()) / 1024:.0f} |")
pw, pc = r["packet_stage_s"], sum(t["cpu_s"] for t in tasks)
print(f"| Spark: packet stage ({len(tasks)} tasks, 2 executors) | {pw:.1f} | {pc:.1f} | {total / 1e6 / pw:.0f} "
      f"| {total / 1e6 / pc:.0f} | {max(t['max_rss_kib'] for t in tasks) / 1024:.0f} |")
cw, cc = r["customer_stage_s"], sum(c["cpu_s"] for c in cs)
print(f"| Spark: customer stages ({probes}, one at a time on the driver) | {cw:.1f} | {cc:.1f} | {total / 1e6 / cw:.0f} "
      f"| {total / 1e6 / cc:.0f} | {max(c['max_rss_kib'] for c in cs) / 1024:.0f} |")
print(f"| Spark: the driver's whole run (start {r['startup_s']:.1f} s, dates {r['date_s']:.1f} s, "
      f"queries {r['queries_s']:.1f} s) | {float(sw):.1f} | | {total / 1e6 / float(sw):.0f} | | |")
print()
print(f"records (tx_records + failed_connections, Parquet): {recs / 1e6:.1f} MB = {recs / total * 1e3:.2f} MB per GB of capture; "
      f"{recs / tx:.0f} bytes per transaction")
print(f"packet stage per task: {min(t['wall_s'] for t in tasks):.2f} to {max(t['wall_s'] for t in tasks):.2f} s wall; "
      f"executors: {len({t['executor_dir'] for t in tasks})}")
same = 0
for n in r["nights"]:
    a = json.load(open(f"{d}/one/ds/summary/date={n['date']}/probe={n['probe']}/summary.json"))
    b = json.load(open(n["summary"]))
    drop = ("inputs", "capture_start", "capture_end", "counters")
    same += {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
print(f"summaries equal to the one-machine run's (all but inputs, span, counters): {same} of {len(r['nights'])} probes")
print(f"customer stage per probe: {min(c['wall_s'] for c in cs):.2f} to {max(c['wall_s'] for c in cs):.2f} s wall, "
      f"{sum(c['cpu_s'] for c in cs) / tx * 1e6:.1f} CPU s per million transactions, "
      f"peak RSS {min(c['max_rss_kib'] for c in cs) / 1024:.0f} to {max(c['max_rss_kib'] for c in cs) / 1024:.0f} MiB")
EOF
