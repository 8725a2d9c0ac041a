#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# Side-by-side benchmark of the data sources (issue 16): fnn loading Fashion-MNIST written out
# as a PNG folder tree against PIL + numpy reading the same files, and fnn loading Kaggle's CSV
# of the training images against pandas.read_csv; prints a table of medians and one JSON line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

usage() {
    cat <<EOF
usage: bench/load.sh [--quick] [--work DIR]

Writes Fashion-MNIST (DATA) as a tree of 70,000 PNGs (train/ and test/, a folder per class) and
as the Kaggle CSV of the 60,000 training images (about 125 MB) under the work directory, then
runs R repetitions, interleaved, of: fnn loading the tree (1 thread and FNN_THREADS threads),
PYTHON with PIL + numpy reading the tree, fnn loading the CSV, pandas.read_csv reading it.
Prints medians and ranges of the seconds each load takes (inside the process, after its
imports) and peak memory, the ratios against fnn, and a final JSON summary line. Each program
prints a checksum of what it read; the script fails unless they agree.
Builds nothing: build fnn first (cmake -S . -B build && cmake --build build).

  --quick     smoke test: R=1
  --work DIR  keep the written files in DIR (reused when already there) instead of a
              temporary directory removed at the end

environment (defaults in brackets):
  LOAD_BENCH     the driver, bench/load_bench.c [$root/build/load_bench]
  PYTHON         interpreter with PIL, numpy and pandas [/usr/bin/python3]
  DATA           Fashion-MNIST IDX directory [/usr/share/datasets/fashion-mnist]
  R              repetitions [3]
  FNN_THREADS    fnn's decoding threads [2]
  MAX_LOAD       warn when the 1-minute load average is above this at the start [0.5]
  RAW            also write every run's record, one JSON line each, to this file
EOF
}

QUICK=${QUICK:-0}
work=
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --work)
            (($# > 1)) || {
                usage >&2
                exit 2
            }
            work=$2
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
    shift
done
if [[ $QUICK == 1 ]]; then
    R=1
fi

bench=load.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_settings
LOAD_BENCH=${LOAD_BENCH:-$root/build/load_bench}
[[ -x $LOAD_BENCH ]] || die "$LOAD_BENCH is not an executable; build fnn or set LOAD_BENCH"
[[ -x $TIME ]] || die "$TIME (GNU time) is missing"
[[ -x $JQ ]] || die "$JQ is missing"
positive_int R "$R"
positive_int FNN_THREADS "$FNN_THREADS"
"$PYTHON" -c 'import PIL, numpy, pandas' 2>/dev/null ||
    die "$PYTHON cannot import PIL, numpy and pandas (python3-pil, python3-pandas); set PYTHON"
bench_start
work=${work:-$tmp/work}

if [[ ! -f $work/fashion-mnist_test.csv || ! -d $work/tree/test ]]; then
    echo "load.sh: writing the PNG tree and the CSV file under $work" >&2
    "$LOAD_BENCH" write "$DATA" "$work" || die "cannot write the files under $work"
fi

filter='{seconds: .seconds, images: .images, checksum: .checksum}'
report='"\(.images) images in \(.seconds * 1000 | round / 1000) s, peak \(.peak_kb / 1024 | round) MB"'
echo "load.sh: $R repetition(s); fnn 1 and $FNN_THREADS threads; load average $load_start" >&2
for ((rep = 1; rep <= R; rep++)); do
    bench_run fnn-png 1 "$rep" "$filter" "$report" "$LOAD_BENCH" tree "$work/tree" 1
    if ((FNN_THREADS != 1)); then
        bench_run fnn-png "$FNN_THREADS" "$rep" "$filter" "$report" \
            "$LOAD_BENCH" tree "$work/tree" "$FNN_THREADS"
    fi
    bench_run pil-png 1 "$rep" "$filter" "$report" "$PYTHON" "$here/load_py.py" tree "$work/tree"
    bench_run fnn-csv 1 "$rep" "$filter" "$report" \
        "$LOAD_BENCH" csv "$work/fashion-mnist_train.csv" 1
    bench_run pandas-csv 1 "$rep" "$filter" "$report" \
        "$PYTHON" "$here/load_py.py" csv "$work/fashion-mnist_train.csv"
done
bench_finish

# Every reader of one format read the same bytes.
"$JQ" -s -e 'group_by(.tool | split("-")[1]) | all(map(.checksum) | unique | length == 1)' \
    "$runs" >/dev/null || die "the checksums of one format disagree: $(cat "$runs")"

summary=$("$JQ" -s -c --argjson reps "$R" --arg load_start "$load_start" \
    --arg load_end "$load_end" --arg cpu "$(bench_cpu)" --argjson cores "$(nproc)" \
    --arg csv_bytes "$(stat -c %s "$work/fashion-mnist_train.csv")" "$JQ_DEFS"'
    (group_by([.tool, .threads]) | map({
        tool: .[0].tool, threads: .[0].threads, runs: length, images: .[0].images,
        seconds: (map(.seconds) | median | r(3)), range_s: spread(.seconds; 3),
        peak_mb: (map(.peak_kb) | median / 1024 | r(1))
    })) as $cfg
    | def best(t): $cfg | map(select(.tool == t)) | min_by(.seconds);
    {benchmark: "load", repetitions: $reps, statistic: "median", cpu: $cpu, cores: $cores,
     load_start: ($load_start | tonumber), load_end: ($load_end | tonumber),
     csv_mb: ($csv_bytes | tonumber / 1e6 | r(1)), configs: $cfg,
     png_speedup: (best("pil-png").seconds / best("fnn-png").seconds | r(2)),
     png_speedup_1_thread: (best("pil-png").seconds /
         ($cfg | map(select(.tool == "fnn-png" and .threads == 1)) | .[0].seconds) | r(2)),
     csv_speedup: (best("pandas-csv").seconds / best("fnn-csv").seconds | r(2))}
    ' "$runs")

echo
echo "Loading Fashion-MNIST, medians (and ranges) of $R run(s) each; $(nproc) cores, load average $load_start at start, $load_end at end"
printf '%-26s %8s %9s %17s %9s\n' configuration images seconds range "peak MB"
"$JQ" -r '.configs[] | [.tool + ", \(.threads)t", .images, .seconds, .range_s[0], .range_s[1],
    .peak_mb] | @tsv' <<<"$summary" |
    while IFS=$'\t' read -r name images s lo hi mb; do
        printf '%-26s %8d %9.3f %8.3f-%-8.3f %9.0f\n' "$name" "$images" "$s" "$lo" "$hi" "$mb"
    done
"$JQ" -r '"PNG tree: fnn \(.png_speedup)x as fast as PIL + numpy (\(.png_speedup_1_thread)x on one thread); CSV (\(.csv_mb) MB): fnn \(.csv_speedup)x as fast as pandas.read_csv"' <<<"$summary"
bench_busy_warning
echo "$summary"
