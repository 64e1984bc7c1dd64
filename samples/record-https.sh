#!/bin/bash
# record-https.sh - the script that recorded samples/https.pcapng, its key
# log samples/https.keys and its answer key samples/https.answers.tsv.
#
# Needs root (a network namespace, tcpdump), ip, nginx, openssl, curl,
# tcpdump and editcap.  Everything stays inside a network namespace the
# script creates and removes: nginx (a self-signed certificate made for the
# run, HTTP/1.1 and HTTP/2) listens on its 127.0.0.1:8443, curl talks to it.
#
#   sudo samples/record-https.sh [OUTDIR]    # default: samples/
#
# What it does:
#   1. makes a temp folder with a small page, its style sheet, a certificate,
#      and an nginx configuration with faults: /missing (404), /boom (500),
#      /api/cart (a JSON error served with 200), /reset (nginx's 444: the
#      connection is closed without an answer);
#   2. starts nginx and `tcpdump -i lo -U -w` in the namespace;
#   3. runs curl with SSLKEYLOGFILE (its key log) four times:
#        HTTP/1.1 over TLS 1.2: /index.html /style.css /missing /boom
#        HTTP/2 over TLS 1.3:   /index.html /style.css /api/cart
#        HTTP/1.1 over TLS 1.3: /reset (curl gets nothing: 000)
#        HTTP/2 without -k:     /index.html (curl refuses the certificate:
#                               exit 60, an unknown_ca alert)
#      and writes what curl said of each URL (`curl -w`) to the answer key:
#      version, path, status, body bytes (000 0 0 when nothing came);
#   4. stops tcpdump, puts the key log into the capture as a Decryption
#      Secrets Block (`editcap --inject-secrets tls,KEYS`), and removes the
#      namespace and the temp folder.
# The keys are those of a throwaway certificate and of these connections
# only; a key log of real traffic is a secret and never belongs in a
# repository (docs/tls.md).  Re-recording gives the same connections and
# requests; ports, keys, timestamps and Date headers differ.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE}
PORT=8443
NS=povsample$$

if [ "$(id -u)" -ne 0 ]; then
    echo "needs root (a network namespace, tcpdump); try: sudo $0 $*" >&2
    exit 1
fi
for tool in ip nginx openssl curl tcpdump editcap; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
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
cat > "$TMP/www/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>pov HTTPS sample</title><link rel="stylesheet" href="style.css"></head>
<body><h1>pov sees HTTPS</h1><p>A small page, decrypted from the capture with its key log.</p></body></html>
EOF
cat > "$TMP/www/style.css" <<'EOF'
body { font-family: sans-serif; margin: 2em; color: #234; }
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pov.test \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat > "$TMP/nginx.conf" <<EOF
daemon off; master_process off; pid $TMP/nginx.pid; error_log $TMP/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $TMP/t1; proxy_temp_path $TMP/t2; fastcgi_temp_path $TMP/t3;
  uwsgi_temp_path $TMP/t4; scgi_temp_path $TMP/t5; default_type application/octet-stream;
  types { text/html html; text/css css; }
  server { listen 127.0.0.1:$PORT ssl http2; server_name pov.test; root $TMP/www;
    ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off;
    location = /boom { return 500 "server error\n"; }
    location = /api/cart { default_type application/json; return 200 '{"error":"out of stock"}'; }
    location = /reset { return 444; } } }
EOF

ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" nginx -p "$TMP" -c "$TMP/nginx.conf" &
PIDS+=($!)
for _ in $(seq 100); do
    ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null && break
    sleep 0.1
done
ip netns exec "$NS" tcpdump -i lo --immediate-mode -B 65536 -U -s 0 -w "$TMP/https.pcap" "tcp port $PORT" 2>"$TMP/tcpdump.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$TMP/tcpdump.log" && break; sleep 0.1; done

ANSWERS="$TMP/answers.tsv"
printf 'version\tpath\tstatus\tbody_bytes\n' > "$ANSWERS"
fetch() { # fetch CURL-OPTIONS... -- PATH...
    local opts=() paths=() urls=()
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
    paths=("$@")
    for p in "${paths[@]}"; do urls+=("https://pov.test:$PORT$p" -o /dev/null); done
    local out
    out=$(ip netns exec "$NS" env SSLKEYLOGFILE="$TMP/keys.log" curl -s --resolve "pov.test:$PORT:127.0.0.1" \
        "${opts[@]}" -w '%{http_code} %{size_download} %{http_version}\n' "${urls[@]}" || true)
    local i=0
    while read -r code size version; do
        [ "$code" = "000" ] || printf '%s\t%s\t%s\t%s\n' "$version" "${paths[$i]}" "$code" "$size" >> "$ANSWERS"
        i=$((i + 1))
    done <<< "$out"
}
fetch -k --http1.1 --tlsv1.2 --tls-max 1.2 -- /index.html /style.css /missing /boom
fetch -k --http2 --tlsv1.3 -- /index.html /style.css /api/cart
fetch -k --http1.1 --tlsv1.3 -- /reset
fetch --http2 -- /index.html

sleep 0.3
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true
editcap --inject-secrets "tls,$TMP/keys.log" "$TMP/https.pcap" "$OUT/https.pcapng"
cp "$TMP/keys.log" "$OUT/https.keys"
cp "$ANSWERS" "$OUT/https.answers.tsv"
echo "wrote $OUT/https.pcapng, $OUT/https.keys, $OUT/https.answers.tsv"
