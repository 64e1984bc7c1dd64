#!/bin/bash
# https.sh - decrypted HTTPS against the same traffic in plaintext, and
# against tshark decrypting it with the same key log, in one run.
#
#   sudo benches/https.sh [POV[,POV2...]] [REQUESTS] [KIB] [CONNS]   # defaults: target/release/pov 1000 100 1
#
# Several pov binaries separated by commas (an old build and a new one,
# say) are timed on the same captures, taking turns within each of the
# three rounds, one line each, labelled by their position (pov#1, pov#2).
# TSHARK=0 in the environment skips the tshark lines; KEEP=DIR copies
# the three captures and the key log there (for profiling).
#
# Needs root (a network namespace, tcpdump), ip, nginx, openssl, curl,
# tcpdump and tshark. In a namespace it creates, nginx serves one file of
# KIB KiB over http://127.0.0.1:8080 and https://127.0.0.1:8443 (TLS 1.3,
# AES-128-GCM; HTTP/1.1, and HTTP/2 on the same port); curl fetches it
# REQUESTS times over each of: plaintext HTTP/1.1, HTTPS HTTP/1.1, HTTPS
# HTTP/2 (CONNS keep-alive connections each, from as many curl processes
# at once, the requests shared out; SSLKEYLOGFILE set), captured by
# tcpdump into plain.pcap, h1.pcap and h2.pcap. Then, three times each
# (the best is printed, files in the page cache), it times
#   pov transactions --format jsonl FILE > /dev/null         (plaintext)
#   pov transactions --keylog KEYS --format jsonl FILE       (HTTPS)
#   pov analyze --keylog KEYS --out DIR FILE                 (HTTPS)
#   tshark -r FILE -o tls.keylog_file:KEYS -Y http|http2 -T fields ...
# and prints one line per run: what, file size, seconds, MB/s, records.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
IFS=, read -r -a POVS <<< "${1:-$HERE/target/release/pov}"
POV=${POVS[0]}
N=${2:-1000}
KIB=${3:-100}
CONNS=${4:-1}
NS=povbench$$

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
for tool in ip nginx openssl curl tcpdump tshark; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
for p in "${POVS[@]}"; do
    [ -x "$p" ] || { echo "no pov at $p" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/www"
head -c $((KIB * 1024)) /dev/urandom > "$TMP/www/f.bin"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pov.test \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat > "$TMP/nginx.conf" <<EOF
daemon off; master_process off; pid $TMP/nginx.pid; error_log $TMP/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $TMP/t1; proxy_temp_path $TMP/t2; fastcgi_temp_path $TMP/t3;
  uwsgi_temp_path $TMP/t4; scgi_temp_path $TMP/t5; default_type application/octet-stream;
  keepalive_requests 100000;
  server { listen 127.0.0.1:8080; root $TMP/www; }
  server { listen 127.0.0.1:8443 ssl http2; server_name pov.test; root $TMP/www;
    ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256; } }
EOF
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" nginx -p "$TMP" -c "$TMP/nginx.conf" &
PIDS+=($!)
for _ in $(seq 100); do
    ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/8443" 2>/dev/null && break
    sleep 0.1
done

record() { # record FILE PORT CURL-ARGS...
    local file=$1 port=$2
    shift 2
    ip netns exec "$NS" tcpdump -i lo --immediate-mode -B 262144 -U -s 0 -w "$TMP/$file" "tcp port $port" \
        2>"$TMP/$file.log" &
    local pid=$!
    for _ in $(seq 100); do grep -qs "listening on" "$TMP/$file.log" && break; sleep 0.1; done
    # Paced, so that tcpdump keeps up on the loopback (no kernel drops):
    # 100 MB/s in all, shared by the connections. URL is last, with
    # @FROM and @TO for each connection's share of the requests.
    local url=${*: -1} args=("${@:1:$#-1}") curls=() c
    for ((c = 0; c < CONNS; c++)); do
        local from=$((c * N / CONNS + 1)) to=$(((c + 1) * N / CONNS))
        local u=${url//@FROM/$from}
        ip netns exec "$NS" env SSLKEYLOGFILE="$TMP/keys.log" curl -s --limit-rate "$((100 / CONNS))M" \
            --resolve pov.test:8443:127.0.0.1 "${args[@]}" "${u//@TO/$to}" >/dev/null &
        curls+=($!)
    done
    wait "${curls[@]}"
    sleep 0.5
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    grep -h "dropped by kernel" "$TMP/$file.log" | sed "s/^/$file: /" >&2 || true
}
record plain.pcap 8080 --http1.1 "http://127.0.0.1:8080/f.bin?i=[@FROM-@TO]"
record h1.pcap 8443 -k --http1.1 "https://pov.test:8443/f.bin?i=[@FROM-@TO]"
record h2.pcap 8443 -k --http2 "https://pov.test:8443/f.bin?i=[@FROM-@TO]"

timed() { # timed CMD...: seconds it took, output in $TMP/out
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$TMP/out" 2>/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
report() { # report LABEL FILE RECORDS SECONDS
    local size records=$3
    size=$(stat -c %s "$TMP/$2")
    printf '%-44s %8.1f MB %8.3f s %9.1f MB/s %7s records\n' "$1" "$(echo "$size / 1000000" | bc -l)" "$4" \
        "$(echo "$size / 1000000 / $4" | bc -l)" "$records"
}
best() { # best LABEL FILE COUNT-CMD -- CMD...: the fastest of three runs
    local label=$1 file=$2 count=$3
    shift 4
    local b="" t
    for _ in 1 2 3; do
        t=$(timed "$@")
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
    done
    report "$label" "$file" "$(eval "$count" < "$TMP/out")" "$b"
}
bestpov() { # bestpov LABEL FILE COUNT-CMD -- POV-ARGS...: each pov's fastest of three, taking turns
    local label=$1 file=$2 count=$3
    shift 4
    local n=${#POVS[@]} i t
    local -a b=() r=()
    for _ in 1 2 3; do
        for ((i = 0; i < n; i++)); do
            t=$(timed "${POVS[i]}" "$@")
            r[i]=$(eval "$count" < "$TMP/out")
            if [ -z "${b[i]:-}" ] || [ "$(echo "$t < ${b[i]}" | bc -l)" = 1 ]; then b[i]=$t; fi
        done
    done
    for ((i = 0; i < n; i++)); do
        if [ "$n" -gt 1 ]; then
            report "pov#$((i + 1)) ${label#pov }" "$file" "${r[i]}" "${b[i]}"
        else
            report "$label" "$file" "${r[i]}" "${b[i]}"
        fi
    done
}
cat "$TMP"/*.pcap > /dev/null
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    cp "$TMP"/plain.pcap "$TMP"/h1.pcap "$TMP"/h2.pcap "$TMP"/keys.log "$KEEP"/
fi
for ((i = 0; i < ${#POVS[@]}; i++)); do
    echo "pov#$((i + 1)): ${POVS[i]}, $(${POVS[i]} --version)"
done
echo "tree at $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?'); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $N requests of $KIB KiB on $CONNS connections"
K="$TMP/keys.log"
bestpov "pov transactions, plaintext HTTP/1.1" plain.pcap "wc -l" -- transactions -q --format jsonl "$TMP/plain.pcap"
bestpov "pov transactions, HTTPS HTTP/1.1 decrypted" h1.pcap "wc -l" -- transactions -q --keylog "$K" --format jsonl "$TMP/h1.pcap"
bestpov "pov transactions, HTTPS HTTP/2 decrypted" h2.pcap "wc -l" -- transactions -q --keylog "$K" --format jsonl "$TMP/h2.pcap"
bestpov "pov analyze, plaintext HTTP/1.1" plain.pcap "echo -" -- analyze -q --out "$TMP/rep0" "$TMP/plain.pcap"
bestpov "pov analyze, HTTPS HTTP/1.1 decrypted" h1.pcap "echo -" -- analyze -q --keylog "$K" --out "$TMP/rep1" "$TMP/h1.pcap"
bestpov "pov analyze, HTTPS HTTP/2 decrypted" h2.pcap "echo -" -- analyze -q --keylog "$K" --out "$TMP/rep2" "$TMP/h2.pcap"
[ "${TSHARK:-1}" = 0 ] && exit 0
best "tshark -Y http, plaintext HTTP/1.1" plain.pcap "grep -c ." -- tshark -r "$TMP/plain.pcap" -Y http.response \
    -T fields -e http.response.code
best "tshark -Y http, HTTPS HTTP/1.1 decrypted" h1.pcap "grep -c ." -- tshark -r "$TMP/h1.pcap" -o "tls.keylog_file:$K" \
    -Y http.response -T fields -e http.response.code
best "tshark -Y http2, HTTPS HTTP/2 decrypted" h2.pcap "grep -c ." -- tshark -r "$TMP/h2.pcap" -o "tls.keylog_file:$K" \
    -Y "http2.headers.status" -T fields -e http2.headers.status
