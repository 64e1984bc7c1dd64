#!/bin/sh
# Real traffic with network faults, checked against what was done.
#
# Two network namespaces joined by a veth pair, random loss on both ends
# and a rate limit (LOSS=percent, 2 by default), a small shop (server.py) on one
# side and N users driven by curl on the other, each with its own cookie
# jar and User-Agent (povclient/I). User I meets one application fault
# picked by I mod 8 (none, 500, error page served with 200, slow answer,
# reset, aborted download, no answer, none). tcpdump records on the server
# side. Then pov's users and failures are compared, user by user, with the
# faults that were caused (check.py).
#
#   sudo sh benches/netem/run.sh [USERS] [OUTDIR] [POV]
#
# pov runs with --client-timeout 3: a client that waited 3 s for an answer
# timed out (no_response); curl gives up on /noanswer after 6 s, connection
# set-up included (a lost SYN alone costs 1 s).
#
# Needs root (namespaces), python3, curl, tcpdump, tc, nft. Cleans up after
# itself (namespaces, processes).
set -eu
users=${1:-40}
out=${2:-/tmp/pov-netem}
pov=${3:-target/release/pov}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
srv=povsrv$$
cli=povcli$$
cleanup() {
    [ -n "${tcpd:-}" ] && kill "$tcpd" 2>/dev/null || true
    [ -n "${web:-}" ] && kill "$web" 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$srv"
ip netns add "$cli"
ip link add "vs$$" type veth peer name "vc$$"
ip link set "vs$$" netns "$srv"
ip link set "vc$$" netns "$cli"
ip -n "$srv" addr add 10.77.0.1/24 dev "vs$$"
ip -n "$cli" addr add 10.77.0.2/24 dev "vc$$"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "vs$$" up
ip -n "$cli" link set "vc$$" up
# Random loss on both sides (nftables: 2 % of the packets each side
# receives, dropped after the capture point saw them), and the server's
# sending limited to 20 Mbit/s so a 3 MB download takes about a second.
# (netem would add delay and reordering; this kernel has no sch_netem.)
for ns in "$srv" "$cli"; do
    ip netns exec "$ns" nft -f - <<NFT
table inet povloss {
    chain in { type filter hook input priority 0; numgen random mod 100 < ${LOSS:-2} drop; }
}
NFT
done
tc -n "$srv" qdisc add dev "vs$$" root tbf rate 20mbit burst 64kb latency 200ms

ip netns exec "$srv" tcpdump -i "vs$$" -s 0 -U -w "$out/capture.pcap" 2>"$out/tcpdump.log" &
tcpd=$!
ip netns exec "$srv" env POV_IDLE=1.0 python3 "$here/server.py" 10.77.0.1 8080 2>"$out/server.log" &
web=$!
sleep 1.5

base=http://10.77.0.1:8080
: >"$out/truth.tsv"
user() {
    i=$1
    jar="$out/jar$i"
    ua="povclient/$i"
    c() { ip netns exec "$cli" curl -s -o /dev/null -A "$ua" -b "$jar" -c "$jar" "$@" || true; }
    view() { # a page and its style sheet and images, on one connection
        n=$1
        c "$base$2" -o /dev/null "$base/static/s.css" -o /dev/null "$base/img/$((n % 8)).png" \
            -o /dev/null "$base/img/$(((n + 1) % 8)).png" -o /dev/null "$base/img/$(((n + 2) % 8)).png"
    }
    view 0 /
    sleep 0.$((i % 5 + 2))
    view "$i" "/p/$i"
    sleep 0.3
    case $((i % 8)) in
    1) c "$base/err500"; echo "povclient/$i	server_error" >>"$out/truth.tsv" ;;
    2) c "$base/errpage"; echo "povclient/$i	error_page" >>"$out/truth.tsv" ;;
    3) c "$base/slow"; echo "povclient/$i	slow" >>"$out/truth.tsv" ;;
    4) c "$base/reset"; echo "povclient/$i	server_reset" >>"$out/truth.tsv" ;;
    5) c --max-time 0.5 "$base/big"; echo "povclient/$i	client_abort" >>"$out/truth.tsv" ;;
    6) c --max-time 6 "$base/noanswer"; echo "povclient/$i	no_response" >>"$out/truth.tsv" ;;
    *) echo "povclient/$i	-" >>"$out/truth.tsv" ;;
    esac
    sleep 0.3
    view $((i + 1)) "/p/$((i + 1))"
}
# Users caught by the keep-alive race (race.py): no failure to report.
ip netns exec "$cli" python3 "$here/race.py" 10.77.0.1 8080 "${RACE:-20}" "$out/truth-race.tsv" &
pids="$!"
i=1
while [ "$i" -le "$users" ]; do
    user "$i" &
    pids="$pids $!"
    sleep 0.1
    i=$((i + 1))
done
for p in $pids; do wait "$p" || true; done
cat "$out/truth-race.tsv" >>"$out/truth.tsv"
# A few users with a real browser (headless Chromium, when installed): the
# home page, then a page with a fault. Chromium asks for /favicon.ico (a 404
# here: a minor failure, not counted) and tries a reset page again by itself.
if command -v chromium >/dev/null 2>&1; then
    for spec in 1:/err500:server_error 2:/errpage:error_page 3:/reset:server_reset 4:/p/3:-; do
        n=${spec%%:*}
        rest=${spec#*:}
        path=${rest%%:*}
        kind=${rest#*:}
        for url in "$base/" "$base$path"; do
            ip netns exec "$cli" chromium --headless --no-sandbox --disable-gpu --no-first-run \
                --user-data-dir="$out/chrome$n" --user-agent="povchrome/$n" --virtual-time-budget=3000 \
                --dump-dom "$url" >/dev/null 2>&1 || true
        done
        echo "povchrome/$n	$kind" >>"$out/truth.tsv"
    done
fi
sleep 1
kill "$tcpd"
wait "$tcpd" 2>/dev/null || true
tcpd=
"$pov" users --quiet --format jsonl --client-timeout 3 "$out/capture.pcap" >"$out/users.jsonl"
"$pov" failures --quiet --format jsonl --client-timeout 3 "$out/capture.pcap" >"$out/failures.jsonl"
"$pov" transactions --quiet --format jsonl --client-timeout 3 "$out/capture.pcap" >"$out/transactions.jsonl"
python3 "$here/check.py" "$out"
