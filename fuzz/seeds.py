#!/usr/bin/env python3
"""Writes starting inputs for every fuzz target into OUT/<target>/.

    fuzz/seeds.py OUT [CORPUS]

Seeds come from samples/ (slices of the sample captures, the sample
pov.toml), from the shared capture corpus (CORPUS, default ../shared/corpus:
its small captures), and from hand-written HTTP streams, pages and style
sheets encoded in each target's input format (see pov_capture::testing and
pov::testing). They are inputs to start from, not committed: the fuzzer
keeps what adds coverage in fuzz/corpus/<target>/, which is committed after
`cargo fuzz cmin`.
"""

import os
import random
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pcap_records(data):
    """(header, [record bytes]) of a classic pcap file, or None."""
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return None
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    recs, i = [], 24
    while i + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[i + 8:i + 12])[0]
        if i + 16 + incl > len(data):
            break
        recs.append(data[i:i + 16 + incl])
        i += 16 + incl
    return data[:24], recs, endian, linktype


def captures(corpus):
    out = []
    for p in ["samples/local-curl.pcap"]:
        out.append((os.path.basename(p), open(os.path.join(ROOT, p), "rb").read()))
    pc = os.path.join(corpus, "pcaps")
    if os.path.isdir(pc):
        for n in sorted(os.listdir(pc)):
            data = open(os.path.join(pc, n), "rb").read()
            if len(data) <= 24 << 10:
                out.append((n, data))
    # Slices of the big sample: a few hundred packets from the middle.
    shop = open(os.path.join(ROOT, "samples/shop.pcap"), "rb").read()
    head, recs, _, _ = pcap_records(shop)
    for k, start in enumerate([0, len(recs) // 3, 2 * len(recs) // 3]):
        out.append((f"shop-slice-{k}.pcap", head + b"".join(recs[start:start + 120])))
    return out


# -- HTTP stream scripts (pov_capture::testing::run_http_script) ----------

def data_op(slot, server, payload):
    out = b""
    for i in range(0, len(payload), 0xFFFF):
        piece = payload[i:i + 0xFFFF]
        out += bytes([(slot << 3) | (server << 5)]) + struct.pack(">H", len(piece)) + piece
    return out


def repeat_op(slot, server, piece, count):
    return bytes([1 | (slot << 3) | (server << 5)]) + struct.pack(">H", count - 1) + bytes([len(piece)]) + piece


def small_chunks(slot, server, size, payload):
    return bytes([2 | (slot << 3) | (server << 5), size - 1]) + struct.pack(">H", len(payload)) + payload


def gap(slot, server, n):
    return bytes([3 | (slot << 3) | (server << 5)]) + struct.pack(">H", n - 1)


def half_close(slot, server):
    return bytes([4 | (slot << 3) | (server << 5)])


def close(slot, how):
    return bytes([5 | (slot << 3), how])


def wait(v):
    return bytes([6, v])


HTML = (b"<!doctype html><html><head><title>Shop</title><base href=/>"
        b"<link rel=stylesheet href=\"/static/site.css\"><link rel=icon href=/favicon.ico>"
        b"<script>alert(1)</script><meta http-equiv=refresh content=\"0;url=http://evil\"></head>"
        b"<body onload=x() style=\"background:url('/img/bg.png')\"><img src=/img/logo.png srcset=\"a.png 2x\">"
        b"<a href=/cart>cart</a><form action=/login><input type=password name=password></form>"
        b"<iframe src=http://ads.example/></iframe><textarea><script>no</script></textarea>"
        b"<h1>Something went wrong</h1></body></html>")
CSS = b"@import url(/x.css);body{background:url(\"/img/bg.png\")}h1{background:url(data:image/png;base64,AA==)}"


def resp(status, ctype, body, extra=b""):
    return (b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (status, ctype, len(body), extra)) + body


def req(method, path, extra=b"", body=b""):
    cl = b"Content-Length: %d\r\n" % len(body) if body else b""
    return b"%s %s HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0\r\n%s%s\r\n" % (method, path, extra, cl) + body


def scripts():
    s = {}
    cookie = b"Cookie: sid=u1\r\n"
    s["shop"] = (b"\x00" + data_op(0, 0, req(b"GET", b"/", cookie)) + data_op(0, 1, resp(200, b"text/html", HTML, b"Set-Cookie: sid=u1\r\n"))
                 + data_op(1, 0, req(b"GET", b"/static/site.css", cookie)) + data_op(1, 1, resp(200, b"text/css", CSS))
                 + data_op(2, 0, req(b"GET", b"/img/logo.png", cookie)) + data_op(2, 1, resp(200, b"image/png", b"\x89PNG\r\n\x1a\n"))
                 + wait(200) + data_op(0, 0, req(b"POST", b"/checkout/submit", cookie + b"Content-Type: application/x-www-form-urlencoded\r\n", b"order_total=12.50&password=x"))
                 + data_op(0, 1, resp(500, b"text/html", b"<h1>Internal Server Error</h1>")) + close(0, 0))
    s["chunked"] = (b"\x00" + data_op(0, 0, req(b"GET", b"/api/cart"))
                    + small_chunks(0, 1, 3, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n5\r\n{\"a\":\r\n3\r\n1}\n\r\n0\r\n\r\n"))
    s["gzip"] = (b"\x02" + data_op(0, 0, req(b"GET", b"/"))
                 + data_op(0, 1, resp(200, b"text/html", bytes.fromhex("1f8b08000000000000ff0bce4fcd48cdcc4b5728cf2fca4b5148cecf2d28cfccc94d5100009c1f0c471a000000"), b"Content-Encoding: gzip\r\n")))
    s["pipelined"] = (b"\x00" + data_op(0, 0, req(b"GET", b"/a") + req(b"GET", b"/b") + req(b"GET", b"/c"))
                      + data_op(0, 1, resp(200, b"text/plain", b"a") + resp(404, b"text/plain", b"b")) + gap(0, 1, 40) + half_close(0, 0))
    s["continue"] = (b"\x00" + data_op(0, 0, req(b"POST", b"/upload", b"Expect: 100-continue\r\nContent-Length: 4\r\n"))
                     + data_op(0, 1, b"HTTP/1.1 100 Continue\r\n\r\n") + data_op(0, 0, b"abcd") + data_op(0, 1, resp(201, b"text/plain", b"ok")))
    s["upgrade"] = (b"\x01" + data_op(0, 0, req(b"GET", b"/ws", b"Upgrade: websocket\r\nConnection: Upgrade\r\n"))
                    + data_op(0, 1, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"))
    s["http10-close"] = b"\x00" + data_op(0, 0, b"GET / HTTP/1.0\r\n\r\n") + data_op(0, 1, b"HTTP/1.0 200 OK\r\n\r\nbody until close") + close(0, 0)
    s["reset"] = b"\x04" + data_op(0, 0, req(b"GET", b"/slow")) + wait(250) + close(0, 1)
    s["orphan"] = b"\x01" + data_op(0, 1, resp(200, b"text/html", b"<p>hi</p>")) + data_op(0, 0, req(b"GET", b"/x"))
    s["garbage-resync"] = b"\x00" + data_op(0, 0, b"\x16\x03\x01garbage\r\n\r\n" + req(b"GET", b"/after")) + gap(0, 0, 100) + data_op(0, 0, b"tail" + req(b"GET", b"/again"))
    s["many-requests"] = b"\x00" + repeat_op(0, 0, b"GET /p/1 HTTP/1.1\r\nHost: a\r\n\r\n", 3000) + repeat_op(0, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2000)
    s["big-body"] = b"\x00" + data_op(0, 0, req(b"GET", b"/big")) + data_op(0, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n") + repeat_op(0, 1, b"x" * 200, 1500)
    s["big-head"] = b"\x00" + data_op(0, 0, b"GET / HTTP/1.1\r\n") + repeat_op(0, 0, b"X-Pad: " + b"a" * 60 + b"\r\n", 1200) + data_op(0, 0, b"\r\n")
    s.update(bodies_in_pieces())
    return s


def bodies_in_pieces():
    """Long bodies delivered in many chunks: every chunk after the head of a
    message under way that ends nothing takes the analyzer's shortcut for
    body bytes (`ConnHttp::body_data`), so these reach it with each framing,
    both directions, gzip, and a gap, a reset or a half-close in the middle."""
    body = b"".join(b"line %05d of a long answer\n" % i for i in range(400))
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    gz = z.compress(body * 4) + z.flush()

    def chunked(data, size):
        return b"".join(b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n" for i in range(0, len(data), size)) + b"0\r\n\r\n"

    def head(extra):
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + extra + b"\r\n"

    get = data_op(0, 0, req(b"GET", b"/long"))
    length = head(b"Content-Length: %d\r\n" % len(body))
    s = {}
    s["pieces-length"] = b"\x00" + get + data_op(0, 1, length) + small_chunks(0, 1, 97, body) + get + data_op(0, 1, resp(200, b"text/plain", b"next"))
    s["pieces-chunked"] = (b"\x00" + get + data_op(0, 1, head(b"Transfer-Encoding: chunked\r\n"))
                           + small_chunks(0, 1, 211, chunked(body, 3000)))
    s["pieces-close"] = (b"\x00" + data_op(0, 0, b"GET /long HTTP/1.0\r\n\r\n") + data_op(0, 1, b"HTTP/1.0 200 OK\r\n\r\n")
                         + small_chunks(0, 1, 128, body) + close(0, 0))
    s["pieces-gzip"] = (b"\x00" + get + data_op(0, 1, head(b"Content-Encoding: gzip\r\nContent-Length: %d\r\n" % len(gz)))
                        + small_chunks(0, 1, 64, gz))
    s["pieces-post"] = (b"\x00" + data_op(0, 0, req(b"POST", b"/upload", b"Content-Length: %d\r\n" % len(body)))
                        + small_chunks(0, 0, 150, body) + data_op(0, 1, resp(201, b"text/plain", b"ok")))
    s["pieces-gap-reset"] = (b"\x00" + get + data_op(0, 1, length) + small_chunks(0, 1, 200, body[:4000]) + gap(0, 1, 1500)
                             + small_chunks(0, 1, 200, body[5500:8000]) + wait(30) + close(0, 1))
    s["pieces-half-close"] = (b"\x00" + get + data_op(0, 1, length) + small_chunks(0, 1, 255, body[:6000]) + half_close(0, 1))
    return s


# -- replay inputs (pov::testing::check_replay) ---------------------------

def replay_input(flags, url_sel, html, css, other):
    return bytes([flags, url_sel]) + b"".join(struct.pack(">H", len(x)) + x for x in (html, css, other))


PAGES = [
    HTML,
    b"<html><body><img src='//cdn.example/a.png'><img src=missing.png><video src=v.mp4 poster=p.png></video>"
    b"<object data=x.swf></object><svg><use xlink:href=/s.svg#i></use></svg><table background=bg.gif></table></body></html>",
    b"<style>@import '/x.css'; div{background:URL( /img/logo.png )}</style><div style='background:url(\"a&amp;b.png\")'>x</div>",
    b"<SCRIPT type=module>import('/x.js')</SCRIPT><scr<script>ipt>x</script><!-- <script>c</script> --><img src=x.png",
    b"<a href=\"javascript:alert(1)\">j</a><area href=/a><base href=http://other.example/dir/><img src=rel.png><link rel='preload stylesheet' href=x.css>",
    b"<title>t</title><textarea></textarea><xmp><img src=no.png></xmp><noscript><img src=ns.png></noscript>",
    b"<html>\xc3\xa9\xe2\x80\xa8 4111 1111 1111 1111 <img src=\"/img/%E2%82%AC.png\"></html>",
]


def main():
    out = sys.argv[1]
    corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "..", "shared", "corpus")
    caps = captures(corpus)
    for name, data in caps:
        write(out, "capture", name, data)
        write(out, "pipeline", name, data)
    # frames: 2-byte length, link type selector (0: Ethernet), time step.
    for name, data in caps:
        parsed = pcap_records(data)
        if not parsed or parsed[3] != 1:
            continue
        _, recs, _, _ = parsed
        frames = b"".join(struct.pack(">H", len(r) - 16) + b"\x00\x01" + r[16:] for r in recs[:200])
        write(out, "frames", name + ".frames", frames)
    for name, s in scripts().items():
        write(out, "http", name, s)
        write(out, "streams", name, s)
    for i, p in enumerate(PAGES):
        write(out, "replay", f"page-{i}", replay_input(i, i % 4, p, CSS, b"\x89PNG" if i % 2 else b"{\"access_token\":\"t\"}"))
    rng = random.Random(12)
    for t in ["sessions", "report", "csv"]:
        for i in range(24):
            write(out, t, f"random-{i}", bytes(rng.randrange(256) for _ in range(rng.choice([64, 300, 1200, 4000]))))
    configs = {
        "sample.toml": open(os.path.join(ROOT, "samples/pov.toml"), "rb").read(),
        "empty.toml": b"",
        "sessions.toml": b"[sessions]\ntimeout_secs = 0.001\npage_window_secs = -5\n",
        "huge.toml": b"[sessions]\ntimeout_secs = 1e308\n[users]\njoin_window_secs = inf\nretry_window_secs = nan\n",
        "pages.toml": b"[[pages]]\nname = \"all\"\npattern = \".*\"\nstep = \"home\"\nconversion = true\napdex_t_ms = 0.0\n",
        "failures.toml": b"[failures]\napdex_t_ms = -1.0\nredirect_limit = 0\nclient_error_ignore = [0, 65535]\nminor_classes = []\n"
                         b"[[failures.error_pages]]\nname = \"x\"\npattern = \"(?i)\"\n",
        "soft_error.toml": b"[failures]\nerror_json_keys = [\"\", \"a/b~c\"]\n"
                           b"[[failures.soft_error]]\nname = \"p\"\npointer = \"/data/0/state\"\nvalue = [\"failed\", false, 0, 1.5]\n"
                           b"[[failures.soft_error]]\nname = \"n\"\nurl = \"^/api/\"\ncontent_type = \"json\"\npointer = \"\"\nvalue = \"non-empty\"\n"
                           b"[[failures.soft_error]]\nname = \"t\"\npattern = \"(?s)<fault>.*\"\n",
        "revenue.toml": b"[revenue]\norder_fields = []\njson_path = \"a.b.c.0\"\npattern = '(\\d+)'\naverage_order_value = -3\nfunnel = []\ncurrency = \"\\u0000\"\n",
        "privacy.toml": b"[privacy]\nmask = false\nhash_salt = \"s\"\nmask_params = [\"\"]\n",
        "users.toml": b"[users]\ncookies = []\nheader = \"X-User\"\nquery_params = [\"\"]\ntrusted_proxies = [\"0.0.0.0/0\", \"::/0\"]\nlogin_fields = []\n",
    }
    text = open(os.path.join(ROOT, "crates/pov/src/config.rs"), encoding="utf-8").read()
    start = text.index('DEFAULT_TOML: &str = r#"') + len('DEFAULT_TOML: &str = r#"')
    configs["default.toml"] = text[start:text.index('"#;', start)].encode()
    for n, c in configs.items():
        write(out, "config", n, c)


if __name__ == "__main__":
    main()
