#!/usr/bin/env bash
# Hostile-traffic benchmark: every class of `pov synth hostile` at two
# scales four times apart, through `pov analyze`, `pov transactions` and
# `pov replay html --failed`; prints a Markdown table (see bench.py).
#
#   benches/hostile/run.sh                      # builds, then measures target/release/pov
#   POV=/path/to/pov benches/hostile/run.sh     # measures another build
#   benches/hostile/run.sh --only failed-session,long-session
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${POV:-}" ]]; then
    (cd "$root" && cargo build --release --quiet)
    POV="$target/release/pov"
fi
# The captures are written by a build that has `pov synth hostile` (an old
# build being measured may not).
GEN="${POV_GEN:-$POV}"
exec python3 "$here/bench.py" --pov "$POV" --gen "$GEN" "$@"
