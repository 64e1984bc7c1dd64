#!/usr/bin/env bash
# The revenue estimate against the answer key on large generated runs: the
# table of docs/revenue.md ("How good it is").
#
#   benches/revenue-seeds.sh [USERS] [SEED:PROFILE ...]
#
# Defaults: 5,000 users; seeds 41 to 45, default and lossy profiles in
# turn. For each run: `pov synth` writes a capture and its key, `pov
# analyze` estimates the revenue lost, and a row compares the estimate (and
# its 95 % interval) with the key's revenue lost (the intended baskets of
# the buyers who gave up after a failure: docs/synth.md). The last lines
# say how many estimates are within 20 % of the key and how many intervals
# hold it. A run needs about 3.5 GB of disk for its capture, removed after
# the run (in $TMPDIR, or /tmp). Needs python3 (to read the JSON).
#
# The binary is the release build of this tree (CARGO_TARGET_DIR honoured);
# `POV=path` uses another.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-5000}
shift || true
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(41:default 42:lossy 43:default 44:lossy 45:default)
if [ -z "${POV:-}" ]; then
    cargo build --release --quiet --bin pov
    POV=${CARGO_TARGET_DIR:-target}/release/pov
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/pov-revenue.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "| seed | profile | users | key | pov estimate | 95 % interval | ratio | in interval |"
echo "|---:|---|---:|---:|---:|---:|---:|---|"
rows=()
for run in "${runs[@]}"; do
    seed=${run%%:*}
    profile=${run#*:}
    "$POV" synth --quiet --users "$users" --seed "$seed" --profile "$profile" \
        --out "$work/run.pcap" --truth "$work/key.json"
    "$POV" analyze --quiet --out "$work/report" "$work/run.pcap" >/dev/null
    row=$(python3 - "$work/key.json" "$work/report/summary.json" "$seed" "$profile" "$users" <<'EOF'
import json, sys
key, summary, seed, profile, users = sys.argv[1:]
with open(key) as f:
    truth = json.load(f)["totals"]["revenue_lost_cents"] / 100
with open(summary) as f:
    lost = json.load(f)["revenue_lost"]
v, lo, hi = lost["value"], lost["low"], lost["high"]
ratio = v / truth if truth else float("nan")
inside = "yes" if lo <= truth <= hi else "no"
print(f"| {seed} | {profile} | {int(users):,} | {truth:,.2f} | {v:,.2f} | {lo:,.2f} to {hi:,.2f} | {ratio:.3f} | {inside} |")
EOF
)
    echo "$row"
    rows+=("$row")
    rm -rf "$work/run.pcap" "$work/report"
done
printf '%s\n' "${rows[@]}" | python3 -c '
import sys
rows = [l.split("|") for l in sys.stdin if l.strip()]
ratios = [float(r[7]) for r in rows]
inside = sum(r[8].strip() == "yes" for r in rows)
within = sum(abs(x - 1) <= 0.2 for x in ratios)
print()
print(f"within 20 % of the key: {within} of {len(rows)}; interval holds the key: {inside} of {len(rows)}")
'
