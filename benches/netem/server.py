"""A small web shop for the netem experiment (benches/netem/run.sh).

Real kernel TCP on both sides; each path answers in a known way so that what
pov reports can be checked against what was done:
  /  /p/N            pages (HTML linking a style sheet and images)
  /static/s.css      style sheet          /img/N.png  images (binary)
  /err500            500 with an HTML body
  /errpage           200 OK whose body is an error page
  /slow              200 after 5 s
  /reset             the connection is reset (SO_LINGER 0) before any answer
  /big               3 MB body (the client gives up early)
  /noanswer          no answer for 60 s
A first request without a cookie gets Set-Cookie: sid=...
"""
import os, socket, struct, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CSS = b"body{font-family:sans-serif;color:#223}\n" + b"".join(b".c%d{margin:%dpx}\n" % (i, i % 17) for i in range(400))
IMG = {n: b"\x89PNG\r\n\x1a\n" + os.urandom(3000 + 500 * n) for n in range(8)}
BIG = os.urandom(3 << 20)


def page(title, n):
    imgs = "".join('<img src="/img/%d.png">' % ((n + k) % 8) for k in range(3))
    links = "".join('<a href="/p/%d">item %d</a> ' % (k, k) for k in range(10))
    body = "<p>" + "lorem ipsum dolor sit amet " * (200 + 50 * n) + "</p>"
    return ('<!DOCTYPE html><html><head><title>%s</title><link rel="stylesheet" href="/static/s.css"></head>'
            '<body><h1>%s</h1>%s<nav>%s</nav>%s</body></html>' % (title, title, imgs, links, body)).encode()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"


    def log_message(self, fmt, *args):
        sys.stderr.write("%.6f %s %s\n" % (time.time(), self.headers.get("User-Agent", "-"), fmt % args))

    def answer(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if "sid=" not in (self.headers.get("Cookie") or ""):
            self.send_header("Set-Cookie", "sid=%s; Path=/; Max-Age=86400; HttpOnly" % uuid.uuid4().hex)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def do_GET(self):
        p = self.path
        ua = self.headers.get("User-Agent", "-")
        sys.stderr.write("REQ %.6f %s %s\n" % (time.time(), ua, p))
        # The race users' connections are closed after POV_IDLE seconds of
        # idleness, as servers do with kept-alive connections (the others
        # are left alone, so that loss alone cannot trip the timeout).
        if ua.startswith("race/") and os.environ.get("POV_IDLE"):
            self.connection.settimeout(float(os.environ["POV_IDLE"]))
        if p == "/" or p.startswith("/p/"):
            n = int(p[3:]) if p.startswith("/p/") and p[3:].isdigit() else 0
            self.answer(200, "text/html; charset=utf-8", page("Shop page %d" % n, n % 5))
        elif p == "/static/s.css":
            self.answer(200, "text/css", CSS)
        elif p.startswith("/img/"):
            n = int(p[5:].split(".")[0]) % 8
            self.answer(200, "image/png", IMG[n])
        elif p == "/err500":
            self.answer(500, "text/html", b"<html><body><h1>Internal Server Error</h1></body></html>")
        elif p == "/errpage":
            self.answer(200, "text/html", page("We're sorry, something went wrong", 0).replace(b"lorem", b"oops"))
        elif p == "/slow":
            time.sleep(5)
            self.answer(200, "text/html", page("Slow page", 1))
        elif p == "/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif p == "/big":
            self.answer(200, "application/octet-stream", BIG)
        elif p == "/noanswer":
            time.sleep(60)
            self.close_connection = True
        else:
            self.answer(404, "text/html", b"<html><body>not found</body></html>")


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
