#!/usr/bin/env bash
# pov analyze on nights of many users: time, peak RSS, and what the user
# stage kept on disk, as the number of users grows.
#
#   benches/many-users.sh [DIR] [USERS...]
#
# For each count (default 100000 200000 1000000) it writes
# `pov synth hostile --class many-users --scale N` into DIR (default
# /tmp/pov-many-users; about 1.1 KB of capture per user: 1.1 GB for a
# million), then runs `pov analyze --replays 0` on it once with GNU time and
# prints one Markdown row per count: users, capture size, wall seconds,
# users per second, peak RSS, the sessions' peak in the memory budget, the
# transactions spilled from open sessions, and the entries of the maps of
# users seen written to disk. Each user has an address and a session
# cookie of its own and one page; users arrive 10 ms apart, so with the
# 30-minute session timeout 180,000 sessions are open at once once the
# night is 30 minutes old: memory follows the open sessions, not the users
# seen. Needs GNU time (/usr/bin/time) and python3; builds pov first.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/pov-many-users}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100000 200000 1000000)
mkdir -p "$dir"
cargo build --release --quiet
target=${CARGO_TARGET_DIR:-target}
pov="$target/release/pov"
echo "| users | capture MB | wall s | users/s | peak RSS MiB | sessions' budget peak MiB | transactions spilled | entries of users seen on disk |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in "${counts[@]}"; do
    pcap="$dir/many-users-$n.pcap"
    [ -s "$pcap" ] || "$pov" synth hostile --class many-users --scale "$n" --out "$pcap"
    out="$dir/out-$n"
    rm -rf "$out"
    /usr/bin/time -f '%e %M' -o "$dir/time-$n" "$pov" analyze --quiet --replays 0 --out "$out" "$pcap" >/dev/null
    python3 - "$n" "$pcap" "$out/summary.json" "$dir/time-$n" <<'EOF'
import json, os, sys
n, pcap, summary, timing = sys.argv[1:]
wall, rss = open(timing).read().split()[-2:]
s = json.load(open(summary))
c = s["counters"]
peak = c["budget"].get("peak_by_holder", {}).get("sessions", 0)
sess = c["users"]["sessions"]
print(f"| {int(n):,} | {os.path.getsize(pcap) / 1e6:.0f} | {float(wall):.2f} | {int(n) / float(wall):,.0f} "
      f"| {int(rss) / 1024:.0f} | {peak / 2**20:.1f} | {sess['session_txs_spilled']:,} | {sess['remembered']['written']:,} |")
EOF
done
