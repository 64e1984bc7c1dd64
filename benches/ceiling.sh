#!/usr/bin/env bash
# What a second thread can gain on this machine, and what pov's gets.
#
#   benches/ceiling.sh CAPTURE
#
# RUNS rounds (default 5), each of them, after a `sync` and a read of the
# capture (untimed):
#
#   pov analyze --threads 1 CAPTURE               alone
#   two of it at once                             independent processes: nothing
#                                                 shared but the machine
#   pov analyze --threads 2 CAPTURE
#
# each writing into a folder of its own in a temporary folder (removed at
# the end). Prints each round's wall times, then the medians and two
# ratios: the ceiling, 2 x alone / two at once (what work with nothing to
# share and nothing to wait for gets from the second core: memory
# bandwidth, caches and the host's other tenants decide it), and pov's
# speed-up, alone / --threads 2 (issue #13's target 3 asks 1.8).
#
# The read before each run keeps the capture in the page cache: on this
# machine's VM, cached pages go at about 1 MB/s even idle with most of the
# memory free (`fincore` shows it), and every page gone is read from disk
# again by the next run.
#
# Settings (environment): POV (default $CARGO_TARGET_DIR/release/pov, else
# target/release/pov of this repo; build it first), RUNS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
pov="${POV:-${CARGO_TARGET_DIR:-$root/target}/release/pov}"
runs="${RUNS:-5}"
cap="${1:?usage: benches/ceiling.sh CAPTURE}"
[[ -x "$pov" ]] || { echo "no pov binary at $pov (cargo build --release, or set POV)" >&2; exit 2; }
[[ -r "$cap" ]] || { echo "cannot read $cap" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/pov-ceiling.XXXXXX")"
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
analyze() { "$pov" analyze "$cap" --out "$work/$1" --quiet --threads "$2" > /dev/null; }
# (Untimed: see above.)
warm() { sync; cat "$cap" > /dev/null; }

echo "pov: $pov; capture: $cap ($(stat -c %s "$cap") bytes); $(nproc) CPUs; load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-6s %10s %12s %12s\n' round alone two-at-once threads-2
alone=(); pair=(); two=()
for i in $(seq "$runs"); do
    warm; t=$(now); analyze a 1; a=$(echo "$(now) - $t" | bc)
    warm; t=$(now); analyze b 1 & analyze c 1; wait; p=$(echo "$(now) - $t" | bc)
    warm; t=$(now); analyze d 2; d=$(echo "$(now) - $t" | bc)
    printf '%-6s %10.3f %12.3f %12.3f\n' "$i" "$a" "$p" "$d"
    alone+=("$a"); pair+=("$p"); two+=("$d")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ma=$(median "${alone[@]}"); mp=$(median "${pair[@]}"); md=$(median "${two[@]}")
printf '%-6s %10.3f %12.3f %12.3f\n' median "$ma" "$mp" "$md"
echo "ceiling (2 x alone / two at once): $(echo "scale=3; 2 * $ma / $mp" | bc)x"
echo "pov --threads 2 (alone / threads 2): $(echo "scale=3; $ma / $md" | bc)x"
