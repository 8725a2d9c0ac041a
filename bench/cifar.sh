#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# Side-by-side benchmark on a CIFAR-shaped set (3 x 32 x 32, CIFAR-10's binary layout, made from
# Fashion-MNIST by build/cifar_bench write): a small CIFAR CNN trained by fnn through the library
# (build/cifar_bench train) against its PyTorch twin (bench/torch_cifar.py) with 1 and 2 threads:
# epoch time, inference throughput and peak memory; prints a table of medians and one JSON line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
ARCH=$CIFAR_ARCH

usage() {
    cat <<EOF
usage: bench/cifar.sh [--quick]

Writes a CIFAR-shaped set (50,000 + 10,000 images of 3x32x32 in CIFAR-10's binary layout:
Fashion-MNIST images at a random offset on a 32x32 canvas, each in a random foreground and
background colour) with cifar_bench, then runs R repetitions of fnn (FNN_THREADS threads,
through the library: cifar_bench train) and of PyTorch (each of TORCH_THREADS), interleaved,
on the CIFAR CNN ($ARCH),
and prints medians of the training time per epoch, the inference throughput on the test set
(batches of 256), test accuracy and peak memory, the ratios against fnn, and a final JSON line.
Builds nothing: build fnn first (cmake -S . -B build && cmake --build build).

  --quick     smoke test: R=1 EPOCHS=1 LIMIT=2000 TEST_LIMIT=1000 (also QUICK=1)

environment (defaults in brackets):
  CIFAR_BENCH    the cifar_bench program [$root/build/cifar_bench]
  PYTHON         interpreter with torch [/usr/bin/python3]
  DATA           Fashion-MNIST IDX directory the set is made from [/usr/share/datasets/fashion-mnist]
  WORK           write the set here once and reuse it [a temporary directory, removed]
  R              repetitions [3]
  EPOCHS         epochs per run; the epoch time is their mean [1]
  LIMIT          use only the first N training images [all: 50,000]
  TEST_LIMIT     infer on the first N test images [all: 10,000]
  FNN_THREADS    fnn's thread count [2]
  TORCH_THREADS  PyTorch thread counts to run, space-separated ["1 2"]
  TORCH_ARGS     extra arguments for torch_cifar.py, e.g. "--malloc default" [none]
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
    EPOCHS=1 R=1 LIMIT=2000 TEST_LIMIT=1000
fi

bench=cifar.sh
bench_settings
CIFAR_BENCH=${CIFAR_BENCH:-$root/build/cifar_bench}
FNN=$CIFAR_BENCH # what bench_check requires to be an executable
EPOCHS=${EPOCHS:-1}
LIMIT=${LIMIT:-}
TEST_LIMIT=${TEST_LIMIT:-}
WORK=${WORK:-}
bench_check
[[ -z $LIMIT ]] || positive_int LIMIT "$LIMIT"
[[ -z $TEST_LIMIT ]] || positive_int TEST_LIMIT "$TEST_LIMIT"

bench_start

# The set (184 MB), written before any timing; test_batch.bin is written last, so its presence
# says that a WORK directory holds a whole set.
set_dir=${WORK:-$tmp/cifar}
if [[ ! -f $set_dir/test_batch.bin ]]; then
    mkdir -p "$set_dir" || die "cannot create $set_dir"
    echo "cifar.sh: writing the CIFAR-shaped set to $set_dir" >&2
    "$CIFAR_BENCH" write "$DATA" "$set_dir" || die "cannot write the set to $set_dir"
fi

# The same subset for both tools; cifar_bench takes 0 for all.
limit_args=()
[[ -z $LIMIT ]] || limit_args+=(--limit "$LIMIT")
[[ -z $TEST_LIMIT ]] || limit_args+=(--test-limit "$TEST_LIMIT")

# fnn: seconds.train sums the epochs; seconds.test is the evaluation of the test set in
# batches of 256 (FNN_EVAL_BATCH), so throughput = test images / seconds.test.
fnn_filter='{version: (.fnn_version + " " + .gemm), epoch: (.seconds.train / .epochs),
             validation: .seconds.validation, infer: (.test_images / .seconds.test),
             test_images: .test_images, train_images: .train_images, load: .seconds.load,
             test_accuracy: .test_accuracy, params: .params}'
torch_filter='{version: .torch_version, malloc: .malloc, epoch: .train_seconds_per_epoch,
               validation: .val_seconds, infer: .infer_images_per_second,
               test_images: .test_images, train_images: .train_images, load: .load_seconds,
               test_accuracy: .test_accuracy, params: .params}'
report='"\(.epoch * 100 | round / 100) s per epoch, inference \(.infer | round) images/s, test accuracy \(.test_accuracy), peak \(.peak_kb / 1024 | round) MB"'

echo "cifar.sh: $R repetition(s) of $EPOCHS epoch(s)${LIMIT:+, --limit $LIMIT}${TEST_LIMIT:+, --test-limit $TEST_LIMIT};" \
    "fnn $FNN_THREADS threads, PyTorch threads: $TORCH_THREADS; load average $load_start" >&2
for ((rep = 1; rep <= R; rep++)); do
    bench_run fnn "$FNN_THREADS" "$rep" "$fnn_filter" "$report" \
        "$CIFAR_BENCH" train "$set_dir" "$ARCH" "$FNN_THREADS" "$EPOCHS" "${LIMIT:-0}" \
        "${TEST_LIMIT:-0}"
    for t in $TORCH_THREADS; do
        # shellcheck disable=SC2086 # TORCH_ARGS is split into words on purpose
        bench_run pytorch "$t" "$rep" "$torch_filter" "$report" \
            "$PYTHON" "$here/torch_cifar.py" --json --data "$set_dir" --epochs "$EPOCHS" \
            --threads "$t" "${limit_args[@]}" $TORCH_ARGS
    done
done
bench_finish

# One JSON document: medians per configuration, PyTorch's best configuration for each metric
# (lowest median epoch time; highest median inference throughput) and fnn's ratios against them.
summary=$("$JQ" -s -c \
    --argjson epochs "$EPOCHS" --argjson reps "$R" --arg arch "$ARCH" \
    --arg torch_args "$TORCH_ARGS" --arg load_start "$load_start" --arg load_end "$load_end" \
    --arg cpu "$(bench_cpu)" --argjson cores "$(nproc)" "$JQ_DEFS"'
    (paired(.epoch) | ratios) as $paired
    | (group_by([.tool, .threads]) | map({
        tool: .[0].tool, version: .[0].version, threads: .[0].threads, runs: length,
        params: .[0].params, train_images: .[0].train_images, test_images: .[0].test_images,
        epoch_s: (map(.epoch) | median | r(3)), epoch_range_s: spread(.epoch; 3),
        val_s: (map(.validation) | median | r(3)),
        infer_images_per_s: (map(.infer) | median | r(1)),
        test_accuracy: (map(.test_accuracy) | median | r(4)),
        peak_mb: (map(.peak_kb) | median / 1024 | r(1))
    })) as $cfg
    | ($cfg | map(select(.tool == "fnn")) | .[0]) as $fnn
    | ($cfg | map(select(.tool == "pytorch"))) as $pt
    | ($pt | min_by(.epoch_s)) as $bt
    | ($pt | max_by(.infer_images_per_s)) as $bi
    | {benchmark: "cifar", data: "Fashion-MNIST in colour, 3x32x32 (cifar_bench write)",
       arch: $arch, params: $fnn.params, batch_size: 32, epochs: $epochs, repetitions: $reps,
       statistic: "median", train_images: $fnn.train_images, test_images: $fnn.test_images,
       torch_args: $torch_args, cpu: $cpu, cores: $cores, load_start: ($load_start | tonumber),
       load_end: ($load_end | tonumber), configs: $cfg,
       pytorch_best_threads: {train: $bt.threads, infer: $bi.threads},
       vs_pytorch_best: {
           train_speedup: ($bt.epoch_s / $fnn.epoch_s | r(2)),
           train_speedup_paired: $paired,
           infer_speedup: ($fnn.infer_images_per_s / $bi.infer_images_per_s | r(2)),
           peak_memory_ratio: ($fnn.peak_mb / $bt.peak_mb | r(3)),
           test_accuracy_diff: ($fnn.test_accuracy - $bt.test_accuracy | r(4))}}
    ' "$runs")

echo
"$JQ" -r '"CIFAR-shaped CNN (\(.params) parameters), \(.epochs) epoch(s) of \(.train_images) images of 3x32x32, batch 32; inference on \(.test_images) test images, batch 256"' <<<"$summary"
echo "medians (and ranges) of $R run(s) each; $(nproc) cores, load average $load_start at start, $load_end at end"
printf '%-22s %9s %13s %11s %9s %9s %14s %14s\n' configuration "epoch s" "epoch range" \
    "infer img/s" "test acc" "peak MB" "epoch vs fnn" "infer vs fnn"
"$JQ" -r '.configs[] as $c | (.configs[] | select(.tool == "fnn")) as $f
    | [(if $c.tool == "fnn" then "fnn " else "PyTorch " end) + $c.version + ", \($c.threads)t",
       $c.epoch_s, $c.epoch_range_s[0], $c.epoch_range_s[1], $c.infer_images_per_s,
       $c.test_accuracy, $c.peak_mb, ($c.epoch_s / $f.epoch_s),
       ($c.infer_images_per_s / $f.infer_images_per_s)] | @tsv' \
    <<<"$summary" |
    while IFS=$'\t' read -r name epoch lo hi infer acc mb ratio iratio; do
        printf '%-22s %9.2f %6.2f-%-6.2f %11.0f %9.4f %9.0f %13.2fx %13.2fx\n' \
            "$name" "$epoch" "$lo" "$hi" "$infer" "$acc" "$mb" "$ratio" "$iratio"
    done
"$JQ" -r '"fnn vs PyTorch'"'"'s best: trains \(.vs_pytorch_best.train_speedup)x as fast (PyTorch \(.pytorch_best_threads.train) thread(s)), infers \(.vs_pytorch_best.infer_speedup)x as fast (PyTorch \(.pytorch_best_threads.infer) thread(s)), uses \(.vs_pytorch_best.peak_memory_ratio)x the peak memory; test accuracy differs by \(.vs_pytorch_best.test_accuracy_diff)"' <<<"$summary"
bench_paired_report "$summary"
bench_busy_warning
echo "$summary"
