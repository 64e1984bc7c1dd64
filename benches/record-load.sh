#!/usr/bin/env bash
# Record a real capture of HTTP/1.1 traffic for the peer comparison.
#
#   sudo benches/record-load.sh OUT.pcap SIZE_MB
#
# Needs root (network namespaces, nft, tc, tcpdump) and: iproute2, nftables,
# ethtool, nginx (nginx-light is enough), wrk, curl, tcpdump.
#
# What it does:
#   * three network namespaces, client povbc<PID> -- router povbr<PID> --
#     server povbs<PID>, joined by two veth pairs with MTU 1500 and
#     TSO/GSO/GRO and checksum offload off, so the capture holds wire-sized
#     segments with real checksums. Addresses come from the RFC 2544
#     benchmarking range (server 198.18.0.1, client 198.18.1.1) and exist
#     only inside these namespaces;
#   * unless POVB_IMPAIR=0, the router loses packets "in the network",
#     where neither end's stack is told (nft `numgen random` drop in the
#     forward chain: POVB_LOSS_S2C / POVB_LOSS_C2S per 10,000 segments,
#     default 20 = 0.2% each way) and is the path's bottleneck towards the
#     client (tbf, POVB_RATE, default 200mbit, 2 MB queue, so congestion
#     drops too). TCP then recovers as on a real path (dup ACKs, SACK, fast
#     retransmit, RTO). Seen at the server, a lost client segment is a hole
#     that its retransmission fills later; a lost server segment is sent
#     twice. This kernel has no netem, so there is no added delay or
#     reordering beyond what recovery itself produces;
#   * nginx (one worker, keepalive_requests 100, so the server also closes
#     keep-alive connections now and then) serving random-content files of
#     1 KiB .. 2 MiB, and a few 404s;
#   * in the client namespace, until the file is big enough, three loops
#     at once: wrk with keep-alive, -c 16/64/200/4/32 for 2 s each, all
#     sizes; wrk -c8 with `Connection: close` (one connection per request),
#     objects of 1..20 KB; a curl loop, one process and so one new
#     connection per request, 1 KiB and 20 KB objects;
#   * tcpdump -s 0 on the server's veth (inside the server namespace)
#     writes OUT.pcap; as soon as the file reaches SIZE_MB * 1,000,000
#     bytes the load is ended and then tcpdump (SIGINT), so the file ends
#     up somewhat over SIZE_MB (what arrives in the ~0.5 s that takes).
#     tcpdump's own statistics (packets captured / dropped by kernel) are
#     printed at the end.
#     POVB_TAP=path captures instead on the router's client-facing veth,
#     a tap out on the path: there the server's lost segments (router
#     drops and bottleneck queue) are missing from the capture until their
#     retransmission arrives, so the capture has holes and out-of-order
#     segments in the server-to-client streams (and the client's lost
#     segments appear twice).
#
# Every namespace, process and temporary file it made is removed on exit,
# whether it succeeded, failed or was interrupted (then OUT.pcap too, being
# incomplete). Traffic only flows
# between its own namespaces. The load is bounded: it gives up after
# POVB_MAX_SECONDS (default 1800).
set -euo pipefail

usage() { echo "usage: $0 OUT.pcap SIZE_MB" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
OUT=$1
SIZE_MB=$2
[[ $SIZE_MB =~ ^[0-9]+$ && $SIZE_MB -gt 0 ]] || usage
[[ $(id -u) -eq 0 ]] || { echo "$0: needs root (netns, nft, tc, tcpdump)" >&2; exit 2; }
for t in ip tc nft ethtool nginx wrk curl tcpdump setsid; do
    command -v "$t" >/dev/null || { echo "$0: $t not found" >&2; exit 2; }
done

RATE=${POVB_RATE:-200mbit}
IMPAIR=${POVB_IMPAIR:-1}
LOSS_S2C=${POVB_LOSS_S2C:-20}
LOSS_C2S=${POVB_LOSS_C2S:-20}
MAX_SECONDS=${POVB_MAX_SECONDS:-1800}
TAP=${POVB_TAP:-server}
[[ $TAP == server || $TAP == path ]] || { echo "$0: POVB_TAP is server or path" >&2; exit 2; }
TARGET=$((SIZE_MB * 1000000))

NS_S=povbs$$
NS_R=povbr$$
NS_C=povbc$$
VETH_S=povbs$$
VETH_RS=povbrs$$
VETH_RC=povbrc$$
VETH_C=povbc$$
SRV_IP=198.18.0.1
CLI_IP=198.18.1.1
TMP=$(mktemp -d /tmp/povb.XXXXXX)
chmod 755 "$TMP"
TCPDUMP_PID=
LOAD_PID=
NGINX_STARTED=
OUT_STARTED=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    # The load runs in its own process group (setsid): end that group only.
    if [[ -n $LOAD_PID ]] && kill -0 "$LOAD_PID" 2>/dev/null; then
        kill -TERM -- "-$LOAD_PID" 2>/dev/null
        sleep 0.5
        kill -KILL -- "-$LOAD_PID" 2>/dev/null
    fi
    if [[ -n $TCPDUMP_PID ]] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        kill -INT "$TCPDUMP_PID" 2>/dev/null
        wait "$TCPDUMP_PID" 2>/dev/null
    fi
    if [[ -n $NGINX_STARTED && -s $TMP/nginx.pid ]]; then
        local np
        np=$(cat "$TMP/nginx.pid")
        kill -QUIT "$np" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$np" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$np" 2>/dev/null
    fi
    # Anything still inside our namespaces was started by this script.
    local ns p
    for ns in "$NS_C" "$NS_R" "$NS_S"; do
        if ip netns list | grep -qw "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
            ip netns del "$ns" 2>/dev/null
        fi
    done
    # Only left if the script failed before moving them into a namespace.
    ip link del "$VETH_S" 2>/dev/null
    ip link del "$VETH_C" 2>/dev/null
    rm -rf "$TMP"
    # A capture cut short by a failure or an interrupt is not left behind
    # to be mistaken for a finished one.
    if [[ $rc -ne 0 && -n $OUT_STARTED ]]; then
        rm -f "$OUT"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

S() { ip netns exec "$NS_S" "$@"; }
R() { ip netns exec "$NS_R" "$@"; }
C() { ip netns exec "$NS_C" "$@"; }

echo "== network: client $NS_C ($CLI_IP) <-> router $NS_R <-> server $NS_S ($SRV_IP), MTU 1500"
for ns in "$NS_S" "$NS_R" "$NS_C"; do
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
done
ip link add "$VETH_S" mtu 1500 type veth peer name "$VETH_RS" mtu 1500
ip link add "$VETH_C" mtu 1500 type veth peer name "$VETH_RC" mtu 1500
ip link set "$VETH_S" netns "$NS_S"
ip link set "$VETH_RS" netns "$NS_R"
ip link set "$VETH_RC" netns "$NS_R"
ip link set "$VETH_C" netns "$NS_C"
S ip addr add "$SRV_IP/24" dev "$VETH_S"
R ip addr add 198.18.0.2/24 dev "$VETH_RS"
R ip addr add 198.18.1.2/24 dev "$VETH_RC"
C ip addr add "$CLI_IP/24" dev "$VETH_C"
for pair in "S $VETH_S" "R $VETH_RS" "R $VETH_RC" "C $VETH_C"; do
    read -r where dev <<<"$pair"
    # Wire-sized segments with real checksums: no TSO/GSO/GRO, no offload.
    $where ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    $where ip link set "$dev" up
done
S ip route add default via 198.18.0.2
C ip route add default via 198.18.1.2
R sysctl -qw net.ipv4.ip_forward=1
if [[ $IMPAIR != 0 ]]; then
    R nft -f - <<NFT
table inet povb {
    chain loss {
        type filter hook forward priority 0; policy accept;
        ip saddr $SRV_IP tcp sport 80 numgen random mod 10000 < $LOSS_S2C drop
        ip daddr $SRV_IP tcp dport 80 numgen random mod 10000 < $LOSS_C2S drop
    }
}
NFT
    R tc qdisc add dev "$VETH_RC" root tbf rate "$RATE" burst 256kb limit 2mb
    echo "== impairment: router drops $LOSS_S2C/10000 of server and $LOSS_C2S/10000 of client segments; bottleneck $RATE (tbf, 2 MB queue)"
else
    echo "== impairment: off"
fi

echo "== content: random files of 1 KiB .. 2 MiB"
mkdir -p "$TMP/www"
declare -A SIZES=([1k]=1024 [3k]=3000 [8k]=8192 [20k]=20000 [64k]=65536 [150k]=150000 [512k]=524288 [1m]=1048576 [2m]=2097152)
for name in "${!SIZES[@]}"; do
    for i in 1 2 3 4; do
        head -c "${SIZES[$name]}" /dev/urandom >"$TMP/www/f$name-$i.bin"
    done
done
printf '<!doctype html><title>povb</title><p>index</p>\n' >"$TMP/www/index.html"
chmod -R a+rX "$TMP/www"

cat >"$TMP/nginx.conf" <<NGINX
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
daemon off;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100;
    keepalive_timeout 15s;
    default_type application/octet-stream;
    client_body_temp_path $TMP/body;
    server {
        listen $SRV_IP:80 backlog=4096;
        root $TMP/www;
        location / { }
    }
}
NGINX
# Started by `ip netns exec` itself (it execs), not through S(): $! is then
# the server's own pid, not a subshell that ignores signals.
ip netns exec "$NS_S" nginx -c "$TMP/nginx.conf" >"$TMP/nginx.out" 2>&1 &
NGINX_STARTED=1
for _ in $(seq 50); do
    C curl -s -o /dev/null "http://$SRV_IP/index.html" && break
    sleep 0.1
done
C curl -sf -o /dev/null "http://$SRV_IP/index.html" || {
    echo "nginx did not come up:" >&2
    cat "$TMP/nginx-error.log" "$TMP/nginx.out" >&2
    exit 1
}

# wrk request mix: many small objects, some large ones, a few 404s.
{
    echo 'local paths = {'
    for w in "1k 8" "3k 8" "8k 6" "20k 5" "64k 4" "150k 3" "512k 2" "1m 1" "2m 1"; do
        read -r name weight <<<"$w"
        for _ in $(seq "$weight"); do
            for i in 1 2 3 4; do printf '"/f%s-%s.bin",' "$name" "$i"; done
        done
    done
    echo '"/missing.html", "/index.html", "/index.html"}'
    cat <<'LUA'
request = function()
    return wrk.format("GET", paths[math.random(#paths)])
end
LUA
} >"$TMP/mix.lua"
# Small objects only, for the one-request connections.
{
    echo 'local paths = {'
    for name in 1k 3k 8k 20k; do
        for i in 1 2 3 4; do printf '"/f%s-%s.bin",' "$name" "$i"; done
    done
    echo '"/missing.html", "/index.html"}'
    cat <<'LUA'
request = function()
    return wrk.format("GET", paths[math.random(#paths)])
end
LUA
} >"$TMP/small.lua"

mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
OUT_STARTED=1
if [[ $TAP == path ]]; then TAP_NS=$NS_R TAP_DEV=$VETH_RC; else TAP_NS=$NS_S TAP_DEV=$VETH_S; fi
echo "== tcpdump -s 0 on $TAP_DEV ($TAP_NS) -> $OUT (stop at $TARGET bytes)"
ip netns exec "$TAP_NS" tcpdump -i "$TAP_DEV" -s 0 -B 131072 -Z root -n -w "$OUT" >"$TMP/tcpdump.out" 2>&1 &
TCPDUMP_PID=$!
for _ in $(seq 100); do
    [[ -e $OUT ]] && grep -q 'listening on' "$TMP/tcpdump.out" && break
    sleep 0.1
done
[[ -e $OUT ]] || { echo "tcpdump did not start:" >&2; cat "$TMP/tcpdump.out" >&2; exit 1; }

# The load: three loops at once, so that every stretch of the capture has
# every kind of connection; each wrk run is bounded in time and each curl
# loop in count. It runs in its own process group so that cleanup can end
# all of it.
load() {
    local url="http://$SRV_IP"
    # Keep-alive connections, a changing number of them.
    while :; do
        for c in 16 64 200 4 32; do
            C wrk -t1 -c"$c" -d2s -s "$TMP/mix.lua" "$url/" >/dev/null 2>&1 || true
        done
    done &
    # One connection per request, the server closes (Connection: close).
    while :; do
        C wrk -t1 -c8 -d5s -H 'Connection: close' -s "$TMP/small.lua" "$url/" >/dev/null 2>&1 || true
    done &
    # One curl process per request: a new connection each, the client's
    # own handshake and close.
    while :; do
        for i in $(seq 200); do
            C curl -s -o /dev/null "$url/f1k-$((i % 4 + 1)).bin" || true
            C curl -s -o /dev/null "$url/f20k-$((i % 4 + 1)).bin" || true
        done
    done &
    wait
}
export -f load C
export NS_C SRV_IP TMP
setsid bash -c load &
LOAD_PID=$!

start=$SECONDS
while :; do
    size=$(stat -c %s "$OUT" 2>/dev/null || echo 0)
    ((size >= TARGET)) && break
    if ! kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        echo "tcpdump exited early:" >&2
        cat "$TMP/tcpdump.out" >&2
        exit 1
    fi
    if ((SECONDS - start > MAX_SECONDS)); then
        echo "gave up after ${MAX_SECONDS}s at $size bytes" >&2
        exit 1
    fi
    sleep 0.05
done
# Stop the load first: under a steady flood tcpdump (libpcap's TPACKET_V3
# loop) may not act on SIGINT until the traffic pauses. The closes that
# ending the load causes (FIN or RST) are still captured.
kill -TERM -- "-$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
sleep 0.5
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
TCPDUMP_PID=

echo "== done in $((SECONDS - start))s: $(stat -c %s "$OUT") bytes in $OUT"
grep -E 'packets (captured|received|dropped)' "$TMP/tcpdump.out" || true
