"""Compares pov's users and failures with the faults run.sh caused."""
import collections, json, re, sys

out = sys.argv[1]
truth = dict(l.rstrip("\n").split("\t") for l in open(out + "/truth.tsv"))
ua_of = {}
for l in open(out + "/users.jsonl"):
    u = json.loads(l)
    ua_of[u["user"]] = u.get("user_agent")
got = collections.defaultdict(set)
network_slow = []
for l in open(out + "/failures.jsonl"):
    f = json.loads(l)
    if f["severity"] not in ("critical", "major"):
        continue
    ua = ua_of.get(f["user"])
    # Loss makes transfers slow by itself (retransmission timeouts): pov
    # reports it, with the time split between server and network. Only the
    # slowness the server caused was run on purpose.
    if f["kind"] == "slow" and truth.get(ua) != "slow":
        m = re.search(r"server (\d+) ms, network (\d+) ms", f["detail"])
        if m and int(m.group(2)) > int(m.group(1)):
            network_slow.append((ua, f["url"], f["detail"]))
            continue
    got[ua].add(f["kind"])
reqs = [l.split() for l in open(out + "/server.log") if l.startswith("REQ ")]
server = len(reqs)
read = {(r[2], r[3]) for r in reqs}
# A fault only happens if its request reached the server: a client that
# gave up while its SYN was being retransmitted (curl's --max-time counts
# connection set-up) never sent it, and no application fault occurred.
path = {"server_error": "/err500", "error_page": "/errpage", "slow": "/slow", "server_reset": "/reset",
        "client_abort": "/big", "no_response": "/noanswer"}
for ua, kind in list(truth.items()):
    if kind in path and (ua, path[kind]) not in read:
        print("  %s: %s not caused (the request never reached the server)" % (ua, kind))
        truth[ua] = "-"
txs = sum(1 for _ in open(out + "/transactions.jsonl"))
pov_users = [ua for ua in ua_of.values() if ua and ua.startswith(("povclient/", "povchrome/", "race/"))]
print("users: pov %d (%d distinct user agents) for %d run" % (len(pov_users), len(set(pov_users)), len(truth)))
# A request that died in the keep-alive race never reached the server, but
# it was sent: pov counts it.
try:
    raced = int(open(out + "/truth-race.tsv.retries").read())
except OSError:
    raced = 0
print("transactions: pov %d, requests the server read %d, plus %d lost in the keep-alive race" % (txs, server, raced))
ok = 0
for ua, want in sorted(truth.items(), key=lambda x: (x[0].split("/")[0], int(x[0].split("/")[1]))):
    want = set() if want == "-" else {want}
    have = got.get(ua, set())
    if have == want:
        ok += 1
    else:
        print("  %s: want %s, pov %s" % (ua, sorted(want), sorted(have)))
extra = {ua: k for ua, k in got.items() if ua not in truth}
if extra:
    print("  failures on users not run:", extra)
for ua, url, detail in network_slow:
    print("  %s: slow by the network on %s (%s)" % (ua, url, detail))
print("users with exactly the faults caused: %d of %d" % (ok, len(truth)))
