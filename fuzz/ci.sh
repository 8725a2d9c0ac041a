#!/usr/bin/env bash
# CI for the fuzzers: builds every harness, replays its committed corpus (every seed must run
# clean), then fuzzes it briefly from that corpus so a regression near the seeds is caught.
# Usage: fuzz/ci.sh [BUILD_DIR] [SECONDS per harness, default 20]. Findings go to
# BUILD_DIR/artifacts/; exit status 1 on any.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build/fuzz}"
secs="${2:-20}"
"$root/fuzz/build.sh" "$out" 2> >(grep -v -e 'pass-failed' -e 'omp simd' -e '^ *^' \
                                  -e 'warning generated' >&2)
mkdir -p "$out/artifacts"
status=0
for exe in "$out"/fuzz_*; do
    [ -x "$exe" ] || continue
    h="$(basename "$exe")"
    seeds="$root/fuzz/corpus/$h"
    work="$out/ci-corpus/$h" # new inputs go here, never into the committed corpus
    rm -rf "$work"
    mkdir -p "$work"
    log="$out/$h.ci.log"
    if ! "$exe" -runs=0 -artifact_prefix="$out/artifacts/$h-" "$seeds" >"$log" 2>&1; then
        echo "fuzz/ci.sh: $h: a committed seed fails; see $log" >&2
        tail -n 30 "$log" >&2
        status=1
        continue
    fi
    if ! "$exe" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/artifacts/$h-" \
        "$work" "$seeds" >>"$log" 2>&1; then
        echo "fuzz/ci.sh: $h: finding; see $log and $out/artifacts/" >&2
        tail -n 30 "$log" >&2
        status=1
        continue
    fi
    echo "fuzz/ci.sh: $h: $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1);" \
        "$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -e 's/^#[0-9]*[[:space:]]*[A-Z]* *//' -e 's/ MS:.*//')"
done
exit $status
