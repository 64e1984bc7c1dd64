"""Users caught by the keep-alive race (benches/netem/run.sh).

Each user loads a page on a kept-alive connection, waits about as long as
the server keeps idle connections (POV_IDLE=1.0 s, give or take 4 ms), then
asks for the style sheet on it. When the server closed the connection just
as the request left, the request dies unanswered and, as browsers do, the
user sends it again at once on a new connection. The user saw nothing go
wrong: pov must report no failure (it counts a silent retry).

    python3 race.py HOST PORT USERS OUT_TRUTH
"""
import socket, sys, time, random
host, port, n, truth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
random.seed(1)
def req(s, path, ua):
    """One request and its whole answer on socket `s`."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nCookie: sid=u%s\r\n\r\n" % (path, host, ua, ua)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise ConnectionError("closed")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
    while len(body) < cl:
        d = s.recv(65536)
        if not d: raise ConnectionError("closed mid-body")
        body += d
retries = 0
for i in range(n):
    ua = "race/%d" % i
    s = socket.create_connection((host, port))
    req(s, "/", ua)
    time.sleep(1.0 + random.uniform(-0.004, 0.004))
    try:
        req(s, "/static/s.css", ua)
    except (ConnectionError, OSError):
        retries += 1
        s2 = socket.create_connection((host, port))
        req(s2, "/static/s.css", ua)
        s2.close()
    s.close()
with open(truth, "a") as t:
    for i in range(n):
        t.write("race/%d\t-\n" % i)
with open(truth + ".retries", "w") as t:
    t.write("%d\n" % retries)
print("keep-alive race: %d of %d users sent their request again" % (retries, n))
