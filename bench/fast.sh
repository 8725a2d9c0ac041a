#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# Side-by-side benchmark of the `fast` recipe (issue 18): `fnn train` with the recipe against
# its PyTorch twin (bench/torch_fast.py) with 1 and 2 threads: training time, validation and
# test accuracy, peak memory; prints a table of medians and one JSON line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

# The architecture and options `fnn train --arch fast` stands for; torch_fast.py builds the
# same (bench/torch_fast_check.py checks the layers, check_recipe below the options).
ARCH='conv2d:32:3:same:nobias:he batchnorm relu conv2d:32:3:same:nobias:he batchnorm relu maxpool:2 conv2d:64:3:same:nobias:he batchnorm relu conv2d:64:3:same:nobias:he batchnorm relu maxpool:2 flatten dense:128 batchnorm relu dropout:0.3 dense:10:softmax'
RECIPE='--epochs 12 --batch-size 64 --lr 0.002 --lr-schedule onecycle --label-smoothing 0.1 --aug-flip --aug-shift 1 --ema 0.999 --ema-every 5 --tta flip --val-split 0'

usage() {
    cat <<EOF
usage: bench/fast.sh [--quick]

Runs R repetitions of the fast recipe in fnn (FNN_THREADS threads) and in its PyTorch twin
bench/torch_fast.py (each of TORCH_THREADS), interleaved; repetition r trains with --seed r in
both (seeds 1, 2, 3 by default, so the accuracies' range is the spread between seeds). Prints
medians and ranges of the training time (validation excluded, as each tool times itself),
validation and test accuracy (with the weight average and flip TTA), peak memory, the ratio
of PyTorch's best training time to fnn's, and a final JSON line.
Builds nothing: build fnn first (cmake -S . -B build && cmake --build build).

fnn runs \`fnn train --arch fast --epochs EPOCHS\`: the architecture
  $ARCH
with $RECIPE.
Before the runs, bench/torch_fast_check.py checks the twin's layers, initial values, schedule,
augmentation and averaging against libfnn.so and fnn's definitions, and one epoch of each tool
on 100 images checks that fnn's recipe (its JSON config) is still the twin's; either stops the
benchmark if not.

  --quick     smoke test: R=1 EPOCHS=1 LIMIT=2000 TEST_LIMIT=1000 (also QUICK=1)

environment (defaults in brackets):
  FNN            fnn binary [$root/build/fnn]
  PYTHON         interpreter with torch [/usr/bin/python3]
  DATA           Fashion-MNIST IDX directory [/usr/share/datasets/fashion-mnist]
  R              repetitions, seeds 1..R [3]
  EPOCHS         epochs per run [12]
  LIMIT          train on the first N training images (--limit) [all: 60,000]
  TEST_LIMIT     test on the first N test images (--test-limit) [all: 10,000]
  VAL_SPLIT      fraction of the (limited) training images held out at the end [0: none, as the recipe]
  FNN_THREADS    fnn's --threads [2]
  TORCH_THREADS  PyTorch thread counts to run, space-separated ["1 2"]
  TORCH_ARGS     extra arguments for torch_fast.py, e.g. "--malloc default" [none]
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

bench=fast.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_settings
EPOCHS=${EPOCHS:-12}
LIMIT=${LIMIT:-}
TEST_LIMIT=${TEST_LIMIT:-}
VAL_SPLIT=${VAL_SPLIT:-0}
bench_check
[[ -z $LIMIT ]] || positive_int LIMIT "$LIMIT"
[[ -z $TEST_LIMIT ]] || positive_int TEST_LIMIT "$TEST_LIMIT"
[[ $VAL_SPLIT =~ ^(0|0?\.[0-9]+)$ ]] || die "VAL_SPLIT must be a fraction in [0, 1), not '$VAL_SPLIT'"

# The same data for both tools.
data_args=(--val-split "$VAL_SPLIT")
[[ -z $LIMIT ]] || data_args+=(--limit "$LIMIT")
[[ -z $TEST_LIMIT ]] || data_args+=(--test-limit "$TEST_LIMIT")

bench_start

# check_recipe: stops unless fnn's recipe (fnn train --json's config) and torch_fast.py's
# (its result's recipe) are the same training, numbers compared to float precision.
fnn_recipe='{arch: .model.arch, batch_size: .config.batch_size, lr: .config.lr,
    optimizer: .config.optimizer, weight_decay: .config.weight_decay,
    schedule: .config.lr_schedule.kind, peak_at: .config.lr_schedule.peak_at,
    warmup_epochs: .config.lr_schedule.warmup_epochs, label_smoothing: .config.label_smoothing,
    shift: .config.augment.shift, flip: .config.augment.flip, rotate: .config.augment.rotate,
    erase: .config.augment.erase, ema: .config.ema, ema_every: .config.ema_every,
    tta: .config.tta, clip_norm: .config.clip_norm, bn_lr_scale: .config.bn_lr_scale,
    freeze: .config.freeze}'
torch_recipe='{arch: $arch, batch_size, lr, optimizer: "adam", weight_decay: 0,
    schedule: (if .recipe.onecycle_peak_at > 0 then "onecycle" else "constant" end),
    peak_at: .recipe.onecycle_peak_at, warmup_epochs: 0,
    label_smoothing: .recipe.label_smoothing, shift: .recipe.shift, flip: .recipe.flip,
    rotate: 0, erase: 0, ema: .recipe.ema, ema_every: .recipe.ema_every,
    tta: (if .recipe.tta_flip then "flip" else "none" end), clip_norm: 0, bn_lr_scale: 1,
    freeze: 0}'
check_recipe() {
    # The twin's pieces against libfnn.so beside the fnn binary (tensors, initial values, the
    # schedule) and fnn's definitions (augmentation, averaging, Adam): PyTorch stays out of
    # fnn's tests, which never need Python's torch.
    local lib
    lib=$(dirname "$FNN")/libfnn.so
    [[ -e $lib ]] || die "$lib is missing (built beside fnn); the twin is checked against it"
    "$PYTHON" "$here/torch_fast_check.py" "$lib" >"$tmp/err" 2>&1 ||
        { cat "$tmp/err" >&2; die "bench/torch_fast.py is not fnn's fast recipe"; }
    "$FNN" train --json --data "$DATA" --arch fast --epochs 1 --limit 100 --test-limit 10 \
        --threads 1 --out "$tmp/check.safetensors" >"$tmp/check-fnn.json" 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; die "fnn train --arch fast failed"; }
    # shellcheck disable=SC2086 # TORCH_ARGS is split into words on purpose
    "$PYTHON" "$here/torch_fast.py" --json --data "$DATA" --epochs 1 --limit 100 \
        --test-limit 10 --threads 1 $TORCH_ARGS >"$tmp/check-torch.json" 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; die "torch_fast.py failed"; }
    local x y diff
    x=$("$JQ" -c "$fnn_recipe" "$tmp/check-fnn.json") || die "cannot read fnn's recipe"
    y=$("$JQ" -c --arg arch "$ARCH" "$torch_recipe" "$tmp/check-torch.json") ||
        die "cannot read torch_fast.py's recipe"
    diff=$("$JQ" -r -n --argjson x "$x" --argjson y "$y" '
        def same(a; b): if (a | type) == "number" and (b | type) == "number"
            then (a - b | fabs) <= 1e-6 * ([(a | fabs), (b | fabs)] | max) else a == b end;
        [$x | keys[] | select(same($x[.]; $y[.]) | not)
         | "\(.): fnn \($x[.]), torch_fast.py \($y[.])"] | join("; ")')
    [[ -z $diff ]] || die "fnn's fast recipe is not its PyTorch twin's (update bench/torch_fast.py and ARCH here): $diff"
}
check_recipe

# fnn: seconds.train sums the epochs' training (augmentation, schedule and averaging included,
# validation not); the validation accuracy is the last epoch's, of the averaged model with TTA,
# as the test's; null without validation.
fnn_filter='{version: (.fnn_version + " " + .gemm), seed: .config.seed, train: .seconds.train,
             validation: .seconds.validation, val_accuracy: .history.val_accuracy[-1],
             test_accuracy: .test.accuracy, train_images: .data.train,
             val_images: .data.validation, test_images: .test.images}'
torch_filter='{version: .torch_version, seed: .seed, train: .train_seconds,
               validation: .val_seconds, val_accuracy: .val_accuracy,
               test_accuracy: .test_accuracy, train_images: .train_images,
               val_images: .validation_images, test_images: .test_images}'
report='"seed \(.seed): train \(.train * 100 | round / 100) s, validation accuracy \(.val_accuracy), test accuracy \(.test_accuracy), peak \(.peak_kb / 1024 | round) MB"'

echo "fast.sh: $R repetition(s) of $EPOCHS epoch(s)${LIMIT:+, --limit $LIMIT}${TEST_LIMIT:+, --test-limit $TEST_LIMIT}," \
    "--val-split $VAL_SPLIT; fnn $FNN_THREADS threads, PyTorch threads: $TORCH_THREADS;" \
    "load average $load_start" >&2
for ((rep = 1; rep <= R; rep++)); do
    bench_run fnn "$FNN_THREADS" "$rep" "$fnn_filter" "$report" \
        "$FNN" train --json --data "$DATA" --arch fast --epochs "$EPOCHS" \
        --seed "$rep" --threads "$FNN_THREADS" "${data_args[@]}" --out "$tmp/model.safetensors"
    for t in $TORCH_THREADS; do
        # shellcheck disable=SC2086 # TORCH_ARGS is split into words on purpose
        bench_run pytorch "$t" "$rep" "$torch_filter" "$report" \
            "$PYTHON" "$here/torch_fast.py" --json --data "$DATA" --epochs "$EPOCHS" \
            --seed "$rep" --threads "$t" "${data_args[@]}" $TORCH_ARGS
    done
done
bench_finish

# One JSON document: per configuration the medians, ranges and means over the seeds; PyTorch's
# best configuration (lowest median training time) and fnn's ratios against it.
summary=$("$JQ" -s -c \
    --argjson epochs "$EPOCHS" --argjson reps "$R" --arg arch "$ARCH" \
    --arg recipe "$RECIPE" --arg torch_args "$TORCH_ARGS" \
    --arg load_start "$load_start" --arg load_end "$load_end" \
    --arg cpu "$(bench_cpu)" --argjson cores "$(nproc)" "$JQ_DEFS"'
    def mean: add / length;
    def acc(f): if map(f) | all(. != null)
        then {median: (map(f) | median | r(4)), mean: (map(f) | mean | r(4)), range: spread(f; 4)}
        else null end;
    (paired(.train) | ratios) as $paired
    | (group_by([.tool, .threads]) | map({
        tool: .[0].tool, version: .[0].version, threads: .[0].threads, runs: length,
        seeds: map(.seed), train_images: .[0].train_images, val_images: .[0].val_images,
        test_images: .[0].test_images,
        train_s: (map(.train) | median | r(2)), train_range_s: spread(.train; 2),
        val_s: (map(.validation) | median | r(2)),
        val_accuracy: acc(.val_accuracy), test_accuracy: acc(.test_accuracy),
        peak_mb: (map(.peak_kb) | median / 1024 | r(1))
    })) as $cfg
    | ($cfg | map(select(.tool == "fnn")) | .[0]) as $fnn
    | ($cfg | map(select(.tool == "pytorch")) | min_by(.train_s)) as $bt
    | {benchmark: "fast", arch: $arch, recipe: $recipe, epochs: $epochs, repetitions: $reps,
       statistic: "median", train_images: $fnn.train_images, val_images: $fnn.val_images,
       test_images: $fnn.test_images, torch_args: $torch_args, cpu: $cpu, cores: $cores,
       load_start: ($load_start | tonumber), load_end: ($load_end | tonumber), configs: $cfg,
       pytorch_best_threads: $bt.threads,
       vs_pytorch_best: {
           train_speedup: ($bt.train_s / $fnn.train_s | r(2)),
           train_speedup_paired: $paired,
           peak_memory_ratio: ($fnn.peak_mb / $bt.peak_mb | r(3)),
           test_accuracy_diff: ($fnn.test_accuracy.mean - $bt.test_accuracy.mean | r(4)),
           val_accuracy_diff: (if $fnn.val_accuracy and $bt.val_accuracy
               then $fnn.val_accuracy.mean - $bt.val_accuracy.mean | r(4) else null end)}}
    ' "$runs")

echo
"$JQ" -r '"fast recipe, \(.epochs) epoch(s) of \(.train_images) images, \(.val_images) validating, \(.test_images) testing; seeds \(.configs[0].seeds | map(tostring) | join(", "))"' <<<"$summary"
echo "medians (and ranges) of $R run(s) each; $(nproc) cores, load average $load_start at start, $load_end at end"
printf '%-22s %8s %13s %22s %22s %8s %13s\n' configuration "train s" "train range" \
    "val acc (range)" "test acc (range)" "peak MB" "train vs fnn"
# An accuracy's cell: median (lowest-highest), or - without validation.
cell() { [[ $1 == - ]] && echo - || printf '%.4f (%.4f-%.4f)' "$1" "$2" "$3"; }
"$JQ" -r 'def acc(a): if a == null then ["-", "-", "-"] else [a.median, a.range[0], a.range[1]] end;
    .configs[] as $c | (.configs[] | select(.tool == "fnn")) as $f
    | [(if $c.tool == "fnn" then "fnn " else "PyTorch " end) + $c.version + ", \($c.threads)t",
       $c.train_s, $c.train_range_s[0], $c.train_range_s[1]] + acc($c.val_accuracy)
       + acc($c.test_accuracy) + [$c.peak_mb, ($c.train_s / $f.train_s)] | @tsv' \
    <<<"$summary" |
    while IFS=$'\t' read -r name train lo hi val vlo vhi test tlo thi mb ratio; do
        printf '%-22s %8.2f %6.2f-%-6.2f %22s %22s %8.0f %12.2fx\n' "$name" "$train" "$lo" "$hi" \
            "$(cell "$val" "$vlo" "$vhi")" "$(cell "$test" "$tlo" "$thi")" "$mb" "$ratio"
    done
"$JQ" -r '"fnn vs PyTorch'"'"'s best (\(.pytorch_best_threads) thread(s)): trains \(.vs_pytorch_best.train_speedup)x as fast (the issue asks 3x), uses \(.vs_pytorch_best.peak_memory_ratio)x the peak memory; mean test accuracy over the seeds differs by \(.vs_pytorch_best.test_accuracy_diff)\(if .vs_pytorch_best.val_accuracy_diff == null then "" else ", validation by \(.vs_pytorch_best.val_accuracy_diff)" end)"' <<<"$summary"
bench_paired_report "$summary"
bench_busy_warning
echo "$summary"
