#!/usr/bin/env bash
# The customer stage alone (`pov analyze --from-transactions`) on the
# records of generated nights, as users and transactions grow: the memory
# per million users and per million transactions of docs/scale.md.
#
#   benches/customer-stage.sh [DIR] [KIND:N...]
#
# KIND is `many` (`pov synth hostile --class many-users --scale N`: N users
# of one page each, 180,000 sessions open at once) or `shop` (`pov synth
# --users N --body-scale 0.05`: the shop's customers, about 35 transactions
# each). Default: many:200000 many:1000000 shop:3000 shop:30000. For each,
# the packet stage writes the records (timed), then the customer stage
# reads them (timed); one Markdown row each: capture MB, records MB,
# transactions, users, and per stage wall s, user+sys CPU s and peak RSS
# (GNU time `%e %U %S %M`; MiB = KiB / 1024). Needs GNU time and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/pov-customer-stage}
shift || true
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(many:200000 many:1000000 shop:3000 shop:30000)
cargo build --release --quiet --bin pov
pov="${CARGO_TARGET_DIR:-target}/release/pov"
cfg=samples/pov.toml
mkdir -p "$dir"
echo "| night | capture MB | records MB | transactions | users | packet stage: wall s, CPU s, peak MiB | customer stage: wall s, CPU s, peak MiB |"
echo "|---|---:|---:|---:|---:|---|---|"
for run in "${runs[@]}"; do
    kind=${run%%:*}
    n=${run#*:}
    pcap="$dir/$kind-$n.pcap"
    if [ ! -s "$pcap" ]; then
        case $kind in
        many) "$pov" synth hostile --class many-users --scale "$n" --out "$pcap" ;;
        shop) "$pov" synth --quiet --users "$n" --seed 5 --body-scale 0.05 --out "$pcap" --truth "$dir/$kind-$n.truth.json" ;;
        *) echo "unknown kind $kind" >&2; exit 2 ;;
        esac
    fi
    rm -rf "$dir/$run.tx" "$dir/$run.out"
    mkdir -p "$dir/$run.tx"
    /usr/bin/time -f '%e %U %S %M' -o "$dir/$run.time-packet" "$pov" transactions --quiet -c "$cfg" \
        --format parquet -o "$dir/$run.tx/part-0.parquet" --failed-connections "$dir/$run.tx/part-0.failed.parquet" "$pcap"
    /usr/bin/time -f '%e %U %S %M' -o "$dir/$run.time-customer" "$pov" analyze --quiet -c "$cfg" \
        --out "$dir/$run.out" --from-transactions "$dir/$run.tx/*.parquet" >/dev/null
    python3 - "$run" "$pcap" "$dir" <<'EOF'
import glob, json, os, sys
run, pcap, d = sys.argv[1:]
def t(name):
    w, u, s, m = open(f"{d}/{run}.time-{name}").read().split()[-4:]
    return f"{float(w):.1f}, {float(u) + float(s):.1f}, {int(m) / 1024:.0f}"
s = json.load(open(f"{d}/{run}.out/summary.json"))
recs = sum(os.path.getsize(f) for f in glob.glob(f"{d}/{run}.tx/*.parquet"))
print(f"| {run} | {os.path.getsize(pcap) / 1e6:,.0f} | {recs / 1e6:,.1f} | {s['transactions']:,} | {s['users_total']:,} "
      f"| {t('packet')} | {t('customer')} |")
EOF
done
