#!/bin/sh
# Instructions per transaction of `pov analyze`, stage by stage, counted by
# callgrind: a figure that does not move when other work shares the cores
# (timings on a shared machine move by 20 % and more).
#
#   benches/instructions.sh [POV] [USERS]
#
# POV: the binary (default target/release/pov, or $CARGO_TARGET_DIR's);
# USERS: the size of the generated night (default 500: `pov synth --users
# 500 --seed 11 --body-scale 0.02 --rate 5`, some 23 MB and 17,000
# transactions, about a minute under callgrind). Prints a Markdown table:
# each stage's inclusive instructions divided by the run's transactions
# (docs/PERFORMANCE.md, "Instructions per transaction"). Needs valgrind
# (Debian's `valgrind`) and python3.
set -eu

root="$(cd "$(dirname "$0")/.." && pwd)"
pov="${1:-${CARGO_TARGET_DIR:-$root/target}/release/pov}"
users="${2:-500}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$pov" ] || { echo "no pov binary at $pov (cargo build --release first)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM
# A fixed mask key, so two builds' outputs can be compared byte for byte.
printf '[privacy]\nmask_key = "fixed"\n' > "$work/pov.toml"
"$pov" synth --users "$users" --seed 11 --body-scale 0.02 --rate 5 \
    --out "$work/night.pcap" --truth "$work/truth.json" -q
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$pov" analyze "$work/night.pcap" --out "$work/out" -q --config "$work/pov.toml" --threads 1 \
    2> "$work/valgrind.log" > /dev/null
txs="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["transactions"])' "$work/out/summary.json" 2>/dev/null || true)"
callgrind_annotate --inclusive=yes "$work/cg.out" > "$work/inclusive.txt" 2>/dev/null

python3 - "$work/inclusive.txt" "$txs" "$(wc -c < "$work/night.pcap")" <<'EOF'
import re, sys
path, txs, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
cost = {}
for line in open(path):
    m = re.match(r'\s*([\d,]+) \([ \d.]+%\)\s+(\S.*)$', line)
    if m:
        name = m.group(2)
        cost[name] = max(cost.get(name, 0), int(m.group(1).replace(',', '')))
def inclusive(*needles):
    found = [v for k, v in cost.items() if all(n in k for n in needles)]
    return max(found) if found else 0
total = cost.get('PROGRAM TOTALS', 0)
n = int(txs) if txs.isdigit() else 0
if n == 0:
    sys.exit("no transaction count in the run's summary.json")
stages = [
    ("the whole run", total),
    # (On one thread a batch is read and decoded in one go.)
    ("reading and decoding (`Decoding::read_and_decode`)", inclusive("pov::parallel::Decoding::read_and_decode")),
    ("reassembly and HTTP (`Reassembler::process`)", inclusive("Reassembler::process")),
    ("of which HTTP (`HttpAnalyzer::on_data`)", inclusive("HttpAnalyzer<S> as pov_capture::tcp::events::StreamSink>::on_data")),
    ("the sessions' view (`SessionTxs::tx`)", inclusive("pov::users::SessionTxs::tx")),
    ("of which the error-page and API-error rules", inclusive("Classifier::error_page")),
    # (Filled in place on the shards since the record is kept: `fill`, then
    # `fill_customer`.)
    ("the transaction record (`TxRecord::fill`, `fill_customer`)", inclusive("pov::transactions::TxRecord::fill ") + inclusive("pov::transactions::TxRecord::fill_customer")),
    ("its Parquet row, taken apart on the shards (`RowShape::record_row`)", inclusive("RowShape::record_row")),
    # (`push_row` is inlined into the writer's `write_row`.)
    ("its Parquet row appended and encoded (`write_row`)", inclusive("RecordWriter<W,R>::write_row")),
    ("of which polars' encoding (`flush_rows`)", inclusive("ParquetWriter<W>::flush_rows")),
    ("the user stage (`Sessionizer::push`, `UserStage::handle`)", inclusive("Sessionizer::push") + inclusive("UserStage<W>::handle")),
    ("of which the sessionizer (`Sessionizer::push`)", inclusive("Sessionizer::push")),
    ("the replays (a fixed cost)", inclusive("pov::run::write_replays")),
    ("the impact stage (polars, a fixed cost)", inclusive("pov_impact::summary::impact")),
]
print(f"{size:,} bytes, {n:,} transactions, {total:,} instructions")
print()
print("| stage | instructions per transaction |")
print("|---|---:|")
for name, v in stages:
    print(f"| {name} | {v / n:,.0f} |")
EOF
