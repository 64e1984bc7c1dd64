#!/usr/bin/env bash
# Peer comparison: pov flows vs tshark conv,tcp vs tcpflow on the same
# captures.
#
#   benches/compare.sh CAPTURE...
#
# For each capture, RUNS (default 3) runs of each of
#
#   pov flows --quiet --format csv CAPTURE > /dev/null
#   tshark -n -q -z conv,tcp -r CAPTURE > /dev/null
#   tcpflow -r CAPTURE -o TMPDIR        (TMPDIR next to the capture, on the
#                                        same disk; emptied after each run,
#                                        outside the timing)
#
# under /usr/bin/time (GNU time: user, sys, peak RSS); wall time is taken
# with nanosecond clocks around the same call. Each run starts after a
# read of the capture (untimed), so that every tool finds it in the page
# cache (this machine's VM drops cached pages at about 1 MB/s even with
# most of its memory free, docs/PERFORMANCE.md "The benchmark's page
# cache"), and after a `sync` (untimed), so no run pays for the writeback
# of the one before;
# tcpflow's time is thus writing its files into the page cache (and
# whatever writeback throttling that triggers), not flushing them to disk. It reports the median of
# each measure and MB/s = capture size (10^6 bytes) / median wall. It also
# counts the TCP connections pov and tshark list (CSV rows less the header;
# conv,tcp rows) in one extra, untimed run each, and says whether they
# agree.
#
# Before each tool's runs it samples how busy the CPUs are (1 s of
# /proc/stat) and waits, up to COMPARE_WAIT seconds (default 300), until
# that is under COMPARE_MAX_BUSY percent (default 30) so other work on the
# machine does not skew the figures; the 1-minute load average and that
# busy figure are printed with each row.
#
# Settings (environment): POV (default target/release/pov of this repo;
# build it first with `cargo build --release`), RUNS, COMPARE_WAIT,
# COMPARE_MAX_BUSY, COMPARE_TOOLS (default pov,tshark,tcpflow: which ones
# to time; pov-http and tshark-http add `pov transactions --format csv`
# and `tshark -Y http -T fields` with the matching fields, and a count of
# HTTP requests by each; pov-analyze adds `pov analyze` with its default
# outputs, replays included, into a folder next to the capture, removed
# after each run), COMPARE_THREADS (default: pov's own default, one per
# core; a list such as "1 2" runs every pov command once per thread count,
# named "pov flows -j1" and so on), COMPARE_POV_INFO=1 to also time `pov info CAPTURE` (read,
# decode and reassemble, counters instead of the connection table; it
# also parses HTTP since 1950c45).
#
# Output: Markdown on stdout; progress and each single run on stderr.
# Needs: GNU time (Debian package `time`), tshark, capinfos, and tcpflow
# when it is timed.
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 CAPTURE..." >&2; exit 2; }
HERE=$(cd "$(dirname "$0")/.." && pwd)
POV=${POV:-$HERE/target/release/pov}
RUNS=${RUNS:-3}
WAIT=${COMPARE_WAIT:-300}
MAX_BUSY=${COMPARE_MAX_BUSY:-30}
TOOLS=${COMPARE_TOOLS:-pov,tshark,tcpflow}
[[ -x $POV ]] || { echo "$0: $POV not found: run cargo build --release" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "$0: /usr/bin/time not found: apt-get install time" >&2; exit 2; }
# tcpflow only when it is timed; tshark and capinfos count packets and
# connections for every row.
needed="tshark capinfos"
[[ ,$TOOLS, == *,tcpflow,* ]] && needed="$needed tcpflow"
for t in $needed; do
    command -v "$t" >/dev/null || { echo "$0: $t not found" >&2; exit 2; }
done
for c in "$@"; do
    [[ -r $c ]] || { echo "$0: cannot read $c" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/povcmp.XXXXXX)
TFDIR=
cleanup() {
    [[ -n $TFDIR ]] && rm -rf "$TFDIR"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "$*" >&2; }

# Percent of all CPUs busy over one second.
cpu_busy() {
    local a b
    read -ra a < /proc/stat
    sleep 1
    read -ra b < /proc/stat
    awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ");
        tot = 0; for (i = 2; i <= n; i++) tot += y[i] - x[i];
        idle = (y[5] - x[5]) + (y[6] - x[6]);
        printf "%.0f", (tot > 0 ? 100 * (tot - idle) / tot : 0) }'
}

# Waits for a quiet machine; prints "load1 busy%".
quiet() {
    local busy waited=0
    busy=$(cpu_busy)
    while ((busy > MAX_BUSY && waited < WAIT)); do
        log "   machine busy (${busy}% CPU, load $(cut -d' ' -f1 /proc/loadavg)); waiting"
        sleep 9
        waited=$((waited + 10))
        busy=$(cpu_busy)
    done
    ((busy > MAX_BUSY)) && log "   still busy after ${WAIT}s (${busy}%): measuring anyway"
    echo "$(cut -d' ' -f1 /proc/loadavg) ${busy}%"
}

want() { [[ ,$TOOLS, == *,$1,* ]]; }

# What `tshark -Y http -T fields` prints: the fields of pov transactions
# that tshark has (one line per request and per response).
TSHARK_HTTP_FIELDS=(-e frame.time_epoch -e tcp.stream -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport
    -e http.request.method -e http.host -e http.request.uri -e http.user_agent -e http.referer
    -e http.response.code -e http.response.phrase -e http.content_length -e http.content_type
    -e http.time)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# run_tool NAME CAPTURE CMD...: RUNS timed runs; appends a table row.
ROWS=$WORK/rows.md
run_tool() {
    local name=$1 cap=$2
    shift 2
    local size_mb state walls=() cpus=() rsss=() i t0 t1 u s m
    size_mb=$(awk -v b="$(stat -c %s "$cap")" 'BEGIN { printf "%.1f", b / 1e6 }')
    state=$(quiet)
    for i in $(seq "$RUNS"); do
        if [[ $name == tcpflow* ]]; then
            TFDIR=$(mktemp -d "$(dirname "$cap")/povcmp-tcpflow.XXXXXX")
        fi
        local cmd=("$@")
        cmd=("${cmd[@]//@TFDIR@/$TFDIR}")
        # Start each run with the capture cached, and no dirty pages
        # pending (tcpflow's previous run wrote gigabytes): what a run
        # writes is its own cost, not the writeback of the one before.
        cat "$cap" >/dev/null
        sync
        t0=$(date +%s%N)
        if ! /usr/bin/time -o "$WORK/time" -f '%U %S %M' "${cmd[@]}" >/dev/null 2>"$WORK/stderr"; then
            log "   $name failed:"
            tail -5 "$WORK/stderr" >&2
            exit 1
        fi
        t1=$(date +%s%N)
        read -r u s m < <(tail -1 "$WORK/time")
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')")
        cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')")
        rsss+=("$m")
        log "   $name run $i: wall ${walls[-1]} s, user $u s, sys $s s, peak RSS $((m / 1024)) MiB"
        if [[ -n $TFDIR ]]; then
            if ((i == 1)); then
                TF_FILES=$(find "$TFDIR" -type f | wc -l)
                TF_MB=$(du -sm "$TFDIR" | cut -f1)
            fi
            rm -rf "$TFDIR"
            TFDIR=
        fi
    done
    local w c r
    w=$(printf '%s\n' "${walls[@]}" | median)
    c=$(printf '%s\n' "${cpus[@]}" | median)
    r=$(printf '%s\n' "${rsss[@]}" | median)
    printf '| %s | %s | %s | %.3f | %.2f | %.0f | %.0f | %s |\n' \
        "$(basename "$cap")" "$size_mb" "$name" "$w" "$c" "$(awk -v r="$r" 'BEGIN { print r / 1024 }')" \
        "$(awk -v s="$size_mb" -v w="$w" 'BEGIN { print (w > 0 ? s / w : 0) }')" "$state" >>"$ROWS"
}

echo "# pov flows vs tshark vs tcpflow"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
echo "- pov: $("$POV" --version) ($POV)"
echo "- tshark: $(tshark --version 2>/dev/null | head -1)"
if want tcpflow; then echo "- tcpflow: $(tcpflow -V 2>&1 | head -1)"; fi
echo "- runs: $RUNS per tool, each after a read of the capture; medians"
echo

: >"$ROWS"
CHECKS=$WORK/checks.md
: >"$CHECKS"
for cap in "$@"; do
    log "== $cap"
    cat "$cap" >/dev/null
    packets=$(capinfos -c -M "$cap" 2>/dev/null | awk -F': *' '/Number of packets/ { print $2 }')
    for j in ${COMPARE_THREADS:-0}; do
        if [[ $j == 0 ]]; then jn=; ja=(); else jn=" -j$j"; ja=(--threads "$j"); fi
        if want pov; then
            run_tool "pov flows$jn" "$cap" "$POV" flows --quiet "${ja[@]}" --format csv "$cap"
        fi
        if want pov-http; then
            run_tool "pov transactions$jn" "$cap" "$POV" transactions --quiet "${ja[@]}" --format csv "$cap"
        fi
        if want pov-analyze; then
            out=$(mktemp -d "$(dirname "$cap")/povcmp-analyze.XXXXXX")
            run_tool "pov analyze$jn" "$cap" "$POV" analyze --quiet "${ja[@]}" --out "$out/out" "$cap"
            rm -rf "$out"
        fi
    done
    if [[ ${COMPARE_POV_INFO:-0} == 1 ]]; then
        run_tool "pov info" "$cap" "$POV" info "$cap"
    fi
    if want tshark; then
        run_tool "tshark conv,tcp" "$cap" tshark -n -q -z conv,tcp -r "$cap"
    fi
    if want tshark-http; then
        run_tool "tshark -Y http -T fields" "$cap" tshark -n -r "$cap" -Y http -T fields "${TSHARK_HTTP_FIELDS[@]}"
    fi
    TF_FILES=-
    TF_MB=-
    if want tcpflow; then
        run_tool "tcpflow" "$cap" tcpflow -r "$cap" -o @TFDIR@
    fi
    # Connection counts, untimed.
    if want pov && want tshark; then
        pov_n=$(($("$POV" flows --quiet --format csv "$cap" | wc -l) - 1))
        tshark_n=$(tshark -n -q -z conv,tcp -r "$cap" 2>/dev/null | grep -c '<->' || true)
        if [[ $pov_n == "$tshark_n" ]]; then verdict=agree; else verdict="DIFFER by $((pov_n - tshark_n))"; fi
        log "   connections: pov $pov_n, tshark $tshark_n ($verdict)"
    else
        pov_n=- tshark_n=- verdict="not checked"
    fi
    printf '| %s | %s | %s | %s | %s | %s files, %s MB |\n' \
        "$(basename "$cap")" "$packets" "$pov_n" "$tshark_n" "$verdict" "$TF_FILES" "$TF_MB" >>"$CHECKS"
    # HTTP request counts, untimed: pov's records that have a request,
    # tshark's request lines.
    if want pov-http && want tshark-http; then
        pov_r=$("$POV" transactions --quiet --format jsonl "$cap" | grep -vc '"no_request"' || true)
        tshark_r=$(tshark -n -r "$cap" -Y http.request -T fields -e frame.number 2>/dev/null | wc -l)
        log "   HTTP requests: pov $pov_r, tshark $tshark_r"
        printf '| %s | %s | %s |\n' "$(basename "$cap")" "$pov_r" "$tshark_r" >>"$WORK/http.md"
    fi
done

echo "| capture | size MB | tool | wall s | user+sys s | peak RSS MiB | MB/s | load, CPU busy before |"
echo "|---|---:|---|---:|---:|---:|---:|---|"
cat "$ROWS"
echo
if [[ -s $WORK/http.md ]]; then
    echo "| capture | pov HTTP requests | tshark HTTP requests |"
    echo "|---|---:|---:|"
    cat "$WORK/http.md"
    echo
fi
echo "| capture | packets | pov connections | tshark connections | | tcpflow wrote |"
echo "|---|---:|---:|---:|---|---|"
cat "$CHECKS"
