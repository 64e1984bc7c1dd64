#!/bin/sh
# Opens a pov report.html in headless Chromium (Debian's chromium package):
# writes OUTDIR/console.log (Chromium's log, console messages included),
# OUTDIR/dom.html (the page after its scripts ran) and OUTDIR/report.png (a
# screenshot). tests/analyze.rs runs it and checks the three.
#
#   tests/report_in_chromium.sh REPORT.html OUTDIR
set -eu
html=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
mkdir -p "$out"
# --no-sandbox: CI runs as root. A fresh profile each time, removed after.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags="--headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=$profile --virtual-time-budget=5000"
chromium $flags --enable-logging=stderr --v=0 --window-size=1280,2200 \
    --screenshot="$out/report.png" "file://$html" 2>"$out/console.log" >/dev/null
chromium $flags --dump-dom "file://$html" >"$out/dom.html" 2>/dev/null
