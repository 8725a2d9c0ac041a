#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# Side-by-side benchmark of the study's MLP: `fnn train` against its PyTorch twin
# (bench/torch_mlp.py) with 1 and 2 threads; prints a table of medians and one JSON line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

usage() {
    cat <<EOF
usage: bench/mlp.sh [--quick]

Runs R repetitions of fnn (FNN_THREADS threads) and of PyTorch (each of TORCH_THREADS),
interleaved, on the study's MLP, then prints medians of training and validation seconds,
test accuracy and peak memory, the ratios against fnn, and a final JSON summary line.
Builds nothing: build fnn first (cmake -S . -B build && cmake --build build).

  --quick     smoke test: EPOCHS=1 R=1 (also QUICK=1)

environment (defaults in brackets):
  FNN            fnn binary [$root/build/fnn]
  PYTHON         interpreter with torch [/usr/bin/python3]
  DATA           Fashion-MNIST IDX directory [/usr/share/datasets/fashion-mnist]
  R              repetitions [3]
  EPOCHS         epochs per run [10]
  FNN_THREADS    fnn's --threads [2]
  TORCH_THREADS  PyTorch thread counts to run, space-separated ["1 2"]
  TORCH_ARGS     extra arguments for torch_mlp.py, e.g. "--malloc default" [none]
  MAX_LOAD       warn when the 1-minute load average is above this at the start [0.5]
  RAW            also write every run's record, one JSON line each, to this file
EOF
}

QUICK=${QUICK:-0}
case ${1:-} in
    "") ;;
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
if [[ $QUICK == 1 ]]; then
    EPOCHS=1 R=1
fi

bench=mlp.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_settings
EPOCHS=${EPOCHS:-10}
bench_check
bench_start

fnn_filter='{version: (.fnn_version + " " + .gemm), train: .seconds.train, validation: .seconds.validation,
             test_seconds: .seconds.test, load: .seconds.load, test_accuracy: .test.accuracy}'
torch_filter='{version: .torch_version, malloc: .malloc, train: .train_seconds, validation: .val_seconds,
               test_seconds: .test_seconds, load: .load_seconds, test_accuracy: .test_accuracy}'
report='"train \(.train * 100 | round / 100) s, validation \(.validation * 100 | round / 100) s, test accuracy \(.test_accuracy), peak \(.peak_kb / 1024 | round) MB"'

echo "mlp.sh: $R repetition(s) of $EPOCHS epoch(s); fnn $FNN_THREADS threads, PyTorch" \
    "threads: $TORCH_THREADS; load average $load_start" >&2
for ((rep = 1; rep <= R; rep++)); do
    bench_run fnn "$FNN_THREADS" "$rep" "$fnn_filter" "$report" \
        "$FNN" train --json --data "$DATA" --epochs "$EPOCHS" --threads "$FNN_THREADS" \
        --out "$tmp/model.safetensors"
    for t in $TORCH_THREADS; do
        # shellcheck disable=SC2086 # TORCH_ARGS is split into words on purpose
        bench_run pytorch "$t" "$rep" "$torch_filter" "$report" \
            "$PYTHON" "$here/torch_mlp.py" --json --data "$DATA" --epochs "$EPOCHS" --threads "$t" \
            $TORCH_ARGS
    done
done
bench_finish

# One JSON document: medians per configuration, PyTorch's fastest configuration (lowest
# median training time) and fnn's ratios against it.
summary=$("$JQ" -s -c \
    --argjson epochs "$EPOCHS" --argjson reps "$R" \
    --arg torch_args "$TORCH_ARGS" --arg load_start "$load_start" --arg load_end "$load_end" \
    --arg cpu "$(bench_cpu)" --argjson cores "$(nproc)" "$JQ_DEFS"'
    (paired(.train) | ratios) as $paired
    | (group_by([.tool, .threads]) | map({
        tool: .[0].tool, version: .[0].version, threads: .[0].threads, runs: length,
        train_s: (map(.train) | median | r(3)), train_range_s: spread(.train; 3),
        val_s: (map(.validation) | median | r(3)),
        test_accuracy: (map(.test_accuracy) | median | r(4)),
        peak_mb: (map(.peak_kb) | median / 1024 | r(1))
    })) as $cfg
    | ($cfg | map(select(.tool == "fnn")) | .[0]) as $fnn
    | ($cfg | map(select(.tool == "pytorch")) | min_by(.train_s)) as $best
    | {benchmark: "mlp", epochs: $epochs, repetitions: $reps, statistic: "median",
       torch_args: $torch_args, cpu: $cpu, cores: $cores, load_start: ($load_start | tonumber),
       load_end: ($load_end | tonumber), configs: $cfg,
       pytorch_best_threads: $best.threads,
       vs_pytorch_best: {
           train_speedup: ($best.train_s / $fnn.train_s | r(2)),
           train_speedup_paired: $paired,
           val_speedup: ($best.val_s / $fnn.val_s | r(2)),
           peak_memory_ratio: ($fnn.peak_mb / $best.peak_mb | r(3)),
           test_accuracy_diff: ($fnn.test_accuracy - $best.test_accuracy | r(4))}}
    ' "$runs")

echo
echo "MLP, $EPOCHS epoch(s), batch 32, medians (and ranges) of $R run(s) each; $(nproc) cores, load average $load_start at start, $load_end at end"
printf '%-22s %9s %13s %9s %9s %9s %14s\n' configuration "train s" "train range" "val s" \
    "test acc" "peak MB" "train vs fnn"
"$JQ" -r '.configs[] as $c | (.configs[] | select(.tool == "fnn") | .train_s) as $f
    | [(if $c.tool == "fnn" then "fnn " else "PyTorch " end) + $c.version + ", \($c.threads)t",
       $c.train_s, $c.train_range_s[0], $c.train_range_s[1], $c.val_s, $c.test_accuracy,
       $c.peak_mb, ($c.train_s / $f)] | @tsv' <<<"$summary" |
    while IFS=$'\t' read -r name train lo hi val acc mb ratio; do
        printf '%-22s %9.2f %6.2f-%-6.2f %9.2f %9.4f %9.0f %13.2fx\n' \
            "$name" "$train" "$lo" "$hi" "$val" "$acc" "$mb" "$ratio"
    done
"$JQ" -r '"fnn vs PyTorch'"'"'s best (\(.pytorch_best_threads) thread(s)): trains \(.vs_pytorch_best.train_speedup)x as fast, validates \(.vs_pytorch_best.val_speedup)x as fast, uses \(.vs_pytorch_best.peak_memory_ratio)x the peak memory; test accuracy differs by \(.vs_pytorch_best.test_accuracy_diff)"' <<<"$summary"
bench_paired_report "$summary"
bench_busy_warning
echo "$summary"
