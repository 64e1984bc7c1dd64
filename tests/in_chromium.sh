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
# Headless Chromium now and then never exits after its work (seen once in
# a while, twice in a row once, the page already drawn), or exits with an
# error while other tests load the machine. A page takes it 1 to 2 s: each
# run gets 40 s, and one that ran out of time or failed is run again, up to
# three times, so a stuck or crashed browser neither hangs the test suite
# nor fails a test that has nothing wrong. A failure says how Chromium
# ended and shows the end of its log.
#
#   run LOG OUT COMMAND...   (COMMAND's stderr into LOG, stdout into OUT)
run() {
    log=$1
    dest=$2
    shift 2
    for try in 1 2 3; do
        timeout -k 5 40 "$@" 2>"$log" >"$dest" && return 0
        status=$?
        if [ "$status" = 124 ] || [ "$status" = 137 ]; then
            echo "in_chromium.sh: chromium did not exit within 40 s (try $try)" >&2
        else
            echo "in_chromium.sh: chromium exited with status $status (try $try); the end of its log:" >&2
            tail -n 20 "$log" >&2
        fi
    done
    return "$status"
}
run "$out/console.log" /dev/null chromium $flags --enable-logging=stderr --v=0 --window-size="$size" \
    --screenshot="$out/shot.png" "file://$html"
run "$out/dom.log" "$out/dom.html" chromium $flags --dump-dom "file://$html"
