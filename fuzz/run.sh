#!/bin/sh
# One fuzzing campaign for one target: build, run, minimise, report.
#
#     fuzz/run.sh TARGET MINUTES
#
# Builds TARGET (nightly, release with debug assertions and overflow checks,
# no sanitizer: the crates are safe Rust, and a sanitizer would halve the
# executions), runs it for MINUTES in libFuzzer's fork mode (a crash, a
# timeout or running out of memory is saved under fuzz/artifacts/TARGET/ and
# the run goes on), starting from the committed corpus fuzz/corpus/TARGET/
# and the seeds fuzz/seeds.py writes, then minimises the corpus
# (`cargo fuzz cmin`) and prints executions, corpus size and what was
# found. Runs at the lowest priority (nice 19).
#
# Environment: POV_FUZZ_TARGET_DIR (build folder, default
# /root/.cache/pov-fuzz-target), POV_FUZZ_WORK (seeds and logs, default
# /root/.cache/pov-fuzz-work), POV_CORPUS (the shared capture corpus, for
# seeds; default ../shared/corpus), POV_FUZZ_ARGS (more libFuzzer flags).
set -eu

if [ $# -ne 2 ]; then
    echo "usage: fuzz/run.sh TARGET MINUTES" >&2
    exit 2
fi
target=$1
minutes=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
tdir=${POV_FUZZ_TARGET_DIR:-/root/.cache/pov-fuzz-target}
work=${POV_FUZZ_WORK:-/root/.cache/pov-fuzz-work}
corpus_src=${POV_CORPUS:-$root/../shared/corpus}
flags="-O -a -s none --codegen-units 16 --target-dir $tdir"

# Longest input per target: captures and scripts need room, the decoded
# inputs of the other targets do not.
# (Longer inputs in the seeds are cut to this length.)
case $target in
    pipeline | http | streams | replay) max_len=16384 ;;
    *) max_len=4096 ;;
esac

cd "$here"
mkdir -p "corpus/$target" "artifacts/$target" "$work/logs"
if [ ! -d "$work/seeds/$target" ]; then
    python3 "$here/seeds.py" "$work/seeds" "$corpus_src"
fi
seeds="$work/seeds/$target"
[ -d "$seeds" ] || seeds=""

before=$(ls "artifacts/$target" | wc -l)
nice -n 19 cargo +nightly fuzz build $flags "$target"
log="$work/logs/$target-$(date +%Y%m%d-%H%M%S).log"
# shellcheck disable=SC2086
nice -n 19 cargo +nightly fuzz run $flags "$target" "corpus/$target" $seeds -- \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time=$((minutes * 60)) -timeout=30 -rss_limit_mb=2048 -max_len=$max_len \
    ${POV_FUZZ_ARGS:-} 2>&1 | tee "$log" | grep -E '^#[0-9]+|INFO: exiting|CRASH|crash-|timeout-|oom-|ERROR' || true
nice -n 19 cargo +nightly fuzz cmin $flags "$target" "corpus/$target" -- -max_len=$max_len >"$log.cmin" 2>&1

# Fork mode's status lines: `#EXECUTIONS: cov: ... corp: ...`.
execs=$(grep -oE '^#[0-9]+:' "$log" | tail -1 | tr -d '#:')
files=$(ls "corpus/$target" | wc -l)
bytes=$(du -sb "corpus/$target" | cut -f1)
after=$(ls "artifacts/$target" | wc -l)
echo "target=$target minutes=$minutes executions=${execs:-0} corpus_files=$files corpus_bytes=$bytes new_artifacts=$((after - before)) log=$log"
if [ "$after" -gt "$before" ]; then
    echo "artifacts (replay one on stable: POV_FUZZ_DIR=<folder named $target> cargo test --release --workspace fuzz_corpus::extra_folder):"
    ls -t "artifacts/$target" | head -n $((after - before))
fi
