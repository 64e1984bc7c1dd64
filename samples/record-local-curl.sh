#!/bin/bash
# record-local-curl.sh - the script that recorded samples/local-curl.pcap.
#
# Needs root (tcpdump captures on the loopback interface), bash, python3,
# curl and tcpdump.  Everything stays on this machine: the servers listen on
# 127.0.0.1 / ::1 only and every request goes to them.
#
#   sudo samples/record-local-curl.sh [OUTPUT.pcap]    # default: samples/local-curl.pcap
#
# What it does:
#   1. makes a temp folder with a few small files and a tiny HTTP server
#      (python3, http.server based, HTTP/1.1 keep-alive) on 127.0.0.1:18080 with
#      extra paths /redirect (302), /chunked (chunked body), /gzip (gzip body),
#      /echo (POST), /slow (sends part of a body, then stalls);
#      and the stock `python3 -m http.server` (HTTP/1.0) on [::1]:18081;
#      nothing listens on 127.0.0.1:18082;
#   2. starts `tcpdump -i lo -Z root -U -w OUTPUT 'tcp port 18080 or tcp port 18081 or
#      tcp port 18082'` (default snaplen, 262144);
#   3. runs the curl commands listed below, one connection each;
#   4. stops tcpdump and both servers (by their PIDs) and removes the temp folder.
# Re-recording gives the same connections and requests; ports, sequence
# numbers, timestamps and Date headers differ.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/local-curl.pcap}
PORT=18080        # our HTTP/1.1 server on 127.0.0.1
PORT6=18081       # python3 -m http.server on [::1]
CLOSED=18082      # nothing listens here: SYN answered by RST

if [ "$(id -u)" -ne 0 ]; then
    echo "needs root (tcpdump on lo); try: sudo $0 $*" >&2
    exit 1
fi
for tool in python3 curl tcpdump; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    # stop what this script started, newest first, by PID
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- content ---------------------------------------------------------------
mkdir -p "$TMP/www"
cat > "$TMP/www/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>pov sample</title><link rel="stylesheet" href="style.css"></head>
<body><h1>Hello from the pov sample capture</h1><p>A small page.</p></body></html>
EOF
cat > "$TMP/www/style.css" <<'EOF'
body { font-family: sans-serif; margin: 2em; }
h1 { color: #336; }
EOF
cat > "$TMP/www/data.json" <<'EOF'
{"name": "pov", "kind": "sample", "items": [1, 2, 3]}
EOF

cat > "$TMP/server.py" <<'EOF'
import gzip, http.server, os, sys, time

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive, Content-Length framing
    server_version = "pov-sample/1.0"
    sys_version = ""

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

    def send_body(self, code, ctype, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/redirect":
            self.send_body(302, "text/plain", b"see /index.html\n", [("Location", "/index.html")])
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(1, 4):
                part = b"chunk number %d\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/gzip":
            body = gzip.compress(b"compressible text, " * 40 + b"\n", mtime=0)
            self.send_body(200, "text/plain", body, [("Content-Encoding", "gzip")])
        elif self.path == "/slow":
            # promise 100000 bytes, send 1000, stall: the client gives up first
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            time.sleep(2.0)
            try:
                self.wfile.write(b"y" * 1000)   # the client has closed: answered by RST
                self.wfile.flush()
                time.sleep(0.2)
                self.wfile.write(b"z" * 1000)   # fails (EPIPE / ECONNRESET)
                self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True
        else:
            super().do_GET()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        if self.path == "/echo":
            self.send_body(201, "text/plain", b"received %d bytes\n" % len(data))
        else:
            self.send_body(404, "text/plain", b"no such form\n")

os.chdir(sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
EOF

# ---- servers ---------------------------------------------------------------
python3 "$TMP/server.py" "$TMP/www" "$PORT" 2> "$TMP/server.log" &
PIDS+=($!)
python3 -m http.server --bind ::1 --directory "$TMP/www" "$PORT6" 2> "$TMP/server6.log" > /dev/null &
PIDS+=($!)

wait_port() {   # $1 = host, $2 = port: wait until something accepts there
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("server on %s port %s did not start" % (sys.argv[1], sys.argv[2]))
EOF
}
wait_port 127.0.0.1 "$PORT"
wait_port ::1 "$PORT6"

# ---- capture ---------------------------------------------------------------
rm -f "$OUT"
tcpdump -i lo -Z root -U -w "$OUT" "tcp port $PORT or tcp port $PORT6 or tcp port $CLOSED" 2> "$TMP/tcpdump.log" &
PIDS+=($!)
for _ in $(seq 50); do
    grep -q 'listening on' "$TMP/tcpdump.log" && break
    sleep 0.1
done
grep -q 'listening on' "$TMP/tcpdump.log" || { cat "$TMP/tcpdump.log" >&2; exit 1; }
sleep 0.5

B=http://127.0.0.1:$PORT
step() { sleep 0.3; echo "+ $*" >&2; "$@" > /dev/null || true; }

# 1. three GETs on one keep-alive connection
step curl -s "$B/index.html" "$B/style.css" "$B/data.json"
# 2. 404
step curl -s "$B/missing.html"
# 3. HEAD
step curl -s -I "$B/index.html"
# 4. POST with a small form body (answered 201)
step curl -s -d 'name=pov&lang=rust' "$B/echo"
# 5. 302 redirect, followed on the same connection
step curl -s -L "$B/redirect"
# 6. chunked response body
step curl -s "$B/chunked"
# 7. gzip response body (curl asks for it and decodes it)
step curl -s --compressed "$B/gzip"
# 8. IPv6: the stock python3 http.server (HTTP/1.0, closes after the answer)
step curl -s -g "http://[::1]:$PORT6/data.json"
# 9. client gives up after 1 s in the middle of a 100000-byte body
step curl -s --max-time 1 "$B/slow"
sleep 2   # let the server's late writes (and the RST they draw) happen
# 10. nothing listens: SYN answered by RST
step curl -s "http://127.0.0.1:$CLOSED/"

sleep 1
# stop tcpdump (last started) so that it writes out all packets
kill -INT "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null || true
unset 'PIDS[2]'
# under sudo, give the file to the calling user
chown "${SUDO_UID:-0}:${SUDO_GID:-0}" "$OUT"
echo "wrote $OUT ($(wc -c < "$OUT") bytes)" >&2
