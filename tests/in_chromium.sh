#!/bin/sh
# Opens a page in headless Chromium (Debian's chromium package): writes
# OUTDIR/console.log (Chromium's log, console messages included),
# OUTDIR/dom.html (the page after its scripts ran) and OUTDIR/shot.png (a
# screenshot of WIDTHxHEIGHT, 1280x2200 unless given; every compositor stage
# runs before a frame is drawn, so the shot is the finished page). The tests that
# check pov's report.html and HTML replays run it and read the three.
#
#   tests/in_chromium.sh PAGE.html OUTDIR [WIDTH,HEIGHT]
set -eu
html=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
size=${3:-1280,2200}
mkdir -p "$out"
# --no-sandbox: CI runs as root. A fresh profile each time, removed after.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags="--headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars --run-all-compositor-stages-before-draw --user-data-dir=$profile --virtual-time-budget=5000"
chromium $flags --enable-logging=stderr --v=0 --window-size="$size" \
    --screenshot="$out/shot.png" "file://$html" 2>"$out/console.log" >/dev/null
chromium $flags --dump-dom "file://$html" >"$out/dom.html" 2>/dev/null
