#!/bin/sh
# tshark-flows.sh - expected TCP connection figures, per tshark, for the shared
# capture corpus (or for one capture file).
#
# Written and checked with: TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as
# 4.0.17-0+deb12u3), Debian 12.  Other versions may number streams or count
# edge cases differently; the version used is written into every output file.
#
# Usage (paths may be relative to the current directory):
#
#   tests/corpus/tshark-flows.sh [CORPUS_DIR]
#       CORPUS_DIR defaults to ../shared/corpus relative to the repo root.
#       Reads CORPUS_DIR/pcaps/* and CORPUS_DIR/tshark-extra-args.tsv
#       (NAME <TAB> extra tshark arguments) and writes, next to this script,
#         tshark-flows.tsv          one row per tshark tcp.stream per capture
#         tshark-flows-summary.tsv  one row per capture
#
#   tests/corpus/tshark-flows.sh --file CAPTURE [EXTRA_TSHARK_ARG...]
#       One capture; writes the tshark-flows.tsv format to standard output.
#       e.g. tests/corpus/tshark-flows.sh --file samples/local-curl.pcap \
#              > samples/local-curl.tshark-flows.tsv
#
# The one tshark run per capture (EXTRA = that capture's extra arguments):
#
#   tshark -n -r CAPTURE EXTRA -Y tcp -T fields -E header=n -E separator=/t \
#     -E occurrence=l -e tcp.stream -e frame.number -e frame.time_epoch \
#     -e frame.protocols -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst \
#     -e tcp.srcport -e tcp.dstport -e tcp.len -e tcp.flags -e tcp.seq_raw \
#     -e tcp.analysis.retransmission -e tcp.analysis.fast_retransmission \
#     -e tcp.analysis.spurious_retransmission
#
# (single pass, no -2; tshark's default preferences, in particular IPv4/IPv6
# reassembly on, tcp.analyze_sequence_numbers on.)  `-E occurrence=l` keeps the
# last (innermost) value of every field, so for a tunnel (IPv6 in UDP in IPv4,
# say) ip.src and ipv6.src are each the innermost header of their kind;
# frame.protocols ("eth:ethertype:ip:udp:ayiya:ipv6:tcp") tells which of the
# two sits directly under TCP.  The python3 part below sums, per tcp.stream,
# packets and tcp.len in each direction.  Only developers run this script (it
# needs tshark and python3); the tests read the TSV files it wrote.
#
# Columns of tshark-flows.tsv (meanings in tests/corpus/README.md):
#   capture stream first_frame start a b pkts_ab bytes_ab pkts_ba bytes_ba
#   syn synack fin rst last_frame end retx_bytes_ab retx_bytes_ba
#   seq_bytes_ab seq_bytes_ba holes_ab holes_ba
set -eu

TSHARK=${TSHARK:-tshark}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

command -v "$TSHARK" >/dev/null 2>&1 || { echo "tshark not found" >&2; exit 1; }
# e.g. "TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as 4.0.17-0+deb12u3)."
# written into the outputs as "tshark 4.0.17 (Git v4.0.17 packaged as ...)"
TSHARK_VERSION=$("$TSHARK" --version 2>/dev/null | head -n 1 | sed 's/\.$//; s/^TShark (Wireshark) /tshark /')
TSHARK_VERSION_NUM=$(printf '%s\n' "$TSHARK_VERSION" | awk '{ print $2 }')

FIELDS="tcp.stream frame.number frame.time_epoch frame.protocols ip.src ip.dst ipv6.src ipv6.dst tcp.srcport tcp.dstport tcp.len tcp.flags tcp.seq_raw tcp.analysis.retransmission tcp.analysis.fast_retransmission tcp.analysis.spurious_retransmission"
TSHARK_CMD="tshark -n -r CAPTURE [EXTRA] -Y tcp -T fields -E header=n -E separator=/t -E occurrence=l$(for f in $FIELDS; do printf ' -e %s' "$f"; done)"
HEADER="capture	stream	first_frame	start	a	b	pkts_ab	bytes_ab	pkts_ba	bytes_ba	syn	synack	fin	rst	last_frame	end	retx_bytes_ab	retx_bytes_ba	seq_bytes_ab	seq_bytes_ba	holes_ab	holes_ba"

run_tshark() {
    # $1 = capture file, rest = extra tshark arguments; packet lines on stdout.
    # tshark's messages (other than the "running as root" one) are passed on.
    cap=$1; shift
    set --  "$@" -Y tcp -T fields -E header=n -E separator=/t -E occurrence=l
    for f in $FIELDS; do set -- "$@" -e "$f"; done
    rc=0
    "$TSHARK" -n -r "$cap" "$@" 2> "$tmp/tshark.err" || rc=$?
    grep -v 'Running as user' "$tmp/tshark.err" >&2 || true
    [ "$rc" -eq 0 ] || echo "warning: tshark exited with status $rc on $cap" >&2
}

# Aggregation, in python3 (reads run_tshark output on stdin; argv[1] = capture
# name for the first column; writes one row per tcp.stream, by stream number).
AGG=$(cat <<'EOF'
import sys
cap = sys.argv[1]
def endpoint(addr, port):
    return ("[%s]:%s" if ":" in addr else "%s:%s") % (addr, port)
S = {}          # stream -> dict
nostream = 0
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    (st, frame, t, protos, ip_src, ip_dst, ip6_src, ip6_dst, sport, dport,
     tlen, flags, seq, rt, frt, srt) = f[:16]
    if st == "":
        nostream += 1          # a TCP layer without a stream index
        continue
    layers = protos.split(":")
    last_tcp = max(i for i, p in enumerate(layers) if p == "tcp")
    inner = [p for p in layers[:last_tcp] if p in ("ip", "ipv6")]
    if inner and inner[-1] == "ipv6":
        src, dst = ip6_src, ip6_dst
    else:
        src, dst = ip_src, ip_dst
    src, dst = endpoint(src, sport), endpoint(dst, dport)
    n = int(tlen or 0)
    fl = int(flags, 16)
    syn, fin, rst, ack = fl & 2, fl & 1, fl & 4, fl & 16
    s = S.get(st)
    if s is None:
        s = S[st] = dict(first=frame, start=t, a=src, b=dst, pkts=[0, 0], bytes=[0, 0],
                         syn=0, synack=0, fin=0, rst=0, retx=[0, 0], isn=[None, None],
                         segs=[[], []])
    d = 0 if (src, dst) == (s["a"], s["b"]) else 1
    s["pkts"][d] += 1
    s["bytes"][d] += n
    if rt or frt or srt:
        s["retx"][d] += n
    if syn:
        s["synack" if ack else "syn"] = 1
        if s["isn"][d] is None:
            s["isn"][d] = int(seq)
    s["fin"] |= bool(fin)
    s["rst"] |= bool(rst)
    if n:
        s["segs"][d].append((int(seq) + (1 if syn else 0), n))
    s["last"], s["end"] = frame, t

def coverage(segs, isn):
    # bytes of sequence space covered by payload (overlaps counted once) and
    # number of holes, counted from ISN+1 when the SYN was seen
    if not segs:
        return 0, 0
    base = isn + 1 if isn is not None else segs[0][0]
    iv = []
    for sq, n in segs:
        off = (sq - base) % (1 << 32)
        if off >= 1 << 31:
            off -= 1 << 32
        iv.append((off, off + n))
    iv.sort()
    covered, holes = 0, 0
    lo, hi = iv[0]
    if isn is not None and lo > 0:
        holes += 1
    for a, b in iv[1:]:
        if a > hi:
            covered += hi - lo
            holes += 1
            lo, hi = a, b
        else:
            hi = max(hi, b)
    covered += hi - lo
    return covered, holes

for st in sorted(S, key=int):
    s = S[st]
    cov = [coverage(s["segs"][d], s["isn"][d]) for d in (0, 1)]
    print("\t".join(str(x) for x in (
        cap, st, s["first"], s["start"], s["a"], s["b"],
        s["pkts"][0], s["bytes"][0], s["pkts"][1], s["bytes"][1],
        s["syn"], s["synack"], int(s["fin"]), int(s["rst"]), s["last"], s["end"],
        s["retx"][0], s["retx"][1], cov[0][0], cov[1][0], cov[0][1], cov[1][1])))
if nostream:
    sys.stderr.write("warning: %s: %d TCP packets without tcp.stream\n" % (cap, nostream))
EOF
)

aggregate() {
    python3 -c "$AGG" "$1"
}

extra_args() {
    # extra tshark arguments listed for capture name $2 in file $1, if any
    [ -f "$1" ] || return 0
    awk -F '\t' -v n="$2" '$1 == n { print $2 }' "$1"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

if [ "${1:-}" = "--file" ]; then
    [ "$#" -ge 2 ] || { echo "usage: $0 --file CAPTURE [EXTRA_TSHARK_ARG...]" >&2; exit 2; }
    cap=$2; shift 2
    [ -f "$cap" ] || { echo "no such capture: $cap" >&2; exit 1; }
    name=$(basename "$cap")
    cmd=$(printf '%s\n' "$TSHARK_CMD" | sed "s|CAPTURE \\[EXTRA\\]|$name${*:+ $*}|")
    printf '# %s; command: %s; generated by tests/corpus/tshark-flows.sh --file\n' "$TSHARK_VERSION" "$cmd"
    printf '%s\n' "$HEADER"
    run_tshark "$cap" "$@" | aggregate "$name"
    exit 0
fi

CORPUS=${1:-$ROOT/../shared/corpus}
[ -d "$CORPUS/pcaps" ] || { echo "no pcaps/ folder in corpus: $CORPUS" >&2; exit 1; }
CORPUS=$(cd "$CORPUS" && pwd)

OUT=$HERE/tshark-flows.tsv
SUM=$HERE/tshark-flows-summary.tsv
{
    printf '# %s; command per capture: %s (EXTRA from tshark-extra-args.tsv); generated by tests/corpus/tshark-flows.sh\n' "$TSHARK_VERSION" "$TSHARK_CMD"
    printf '%s\n' "$HEADER"
} > "$tmp/flows"
{
    printf '# %s; totals of tshark-flows.tsv per capture; generated by tests/corpus/tshark-flows.sh\n' "$TSHARK_VERSION"
    printf 'capture\ttshark_version\tstreams\tstreams_with_syn\tstreams_with_payload\ttcp_pkts\tbytes_ab\tbytes_ba\tpayload_bytes\tretx_bytes\tseq_bytes\ttshark_extra_args\n'
} > "$tmp/summary"

for cap in $(cd "$CORPUS/pcaps" && LC_ALL=C ls); do
    extra=$(extra_args "$CORPUS/tshark-extra-args.tsv" "$cap")
    # shellcheck disable=SC2086  # word splitting of the extra args is wanted
    run_tshark "$CORPUS/pcaps/$cap" $extra | aggregate "$cap" > "$tmp/one"
    cat "$tmp/one" >> "$tmp/flows"
    awk -F '\t' -v cap="$cap" -v ver="$TSHARK_VERSION_NUM" -v extra="${extra:--}" '
        { n++; syn += $11; p += $7 + $9; ab += $8; ba += $10; if ($8 + $10 > 0) wp++
          rx += $17 + $18; sq += $19 + $20 }
        END { printf "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n",
                     cap, ver, n, syn, wp, p, ab, ba, ab + ba, rx, sq, extra }' \
        "$tmp/one" >> "$tmp/summary"
done

mv "$tmp/flows" "$OUT"
mv "$tmp/summary" "$SUM"
echo "wrote $OUT and $SUM" >&2
