#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# fnn's default threads against --threads 1 and against every core, on a quiet machine and with
# another process holding a core (`yes > /dev/null`), interleaved; prints a table of medians and
# one JSON line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

usage() {
    cat <<EOF
usage: bench/contention.sh [--quick]

Runs R repetitions of \`fnn train --seed SEED\` (the study's MLP) with the default thread
count (the cores other processes leave free), with --threads 1 and with --threads set to every
core, first on the machine as it is ("quiet"), then with LOAD busy processes (\`yes >
/dev/null\`) running beside it ("loaded"), all six interleaved in every repetition, and prints
the median training seconds, their range, the thread counts the default chose, and the ratios
of the default and of every core to one thread in each condition. fnn's default threads should
never lose to one.
Builds nothing: build fnn first (cmake -S . -B build && cmake --build build).

  --quick     smoke test: EPOCHS=1 R=1 (also QUICK=1)

environment (defaults in brackets):
  FNN         fnn binary [$root/build/fnn]
  DATA        Fashion-MNIST IDX directory [/usr/share/datasets/fashion-mnist]
  R           repetitions [3]
  EPOCHS      epochs per run [10]
  SEED        --seed [1]
  LOAD        busy processes in the loaded condition [1]
  FNN_ARGS    extra arguments for fnn train, e.g. "--arch cnn" [none]
  MAX_LOAD    warn when the 1-minute load average is above this at the start [0.5]
  RAW         also write every run's record, one JSON line each, to this file
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

bench=contention.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
FNN=${FNN:-$root/build/fnn}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
R=${R:-3}
EPOCHS=${EPOCHS:-10}
SEED=${SEED:-1}
LOAD=${LOAD:-1}
FNN_ARGS=${FNN_ARGS:-}
MAX_LOAD=${MAX_LOAD:-0.5}
RAW=${RAW:-}
TIME=/usr/bin/time
JQ=/usr/bin/jq
[[ -x $FNN ]] || die "$FNN is not an executable; build fnn or set FNN"
[[ -x $TIME ]] || die "$TIME (GNU time) is missing"
[[ -x $JQ ]] || die "$JQ is missing"
positive_int R "$R"
positive_int EPOCHS "$EPOCHS"
positive_int LOAD "$LOAD"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer, not '$SEED'"

bench_start
hogs=()
stop_hogs() {
    local pid
    for pid in "${hogs[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    hogs=()
}
trap 'stop_hogs; rm -rf "$tmp"' EXIT

filter='{train: .seconds.train, test_accuracy: .test.accuracy, chose: .config.threads}'
report='"train \(.train * 100 | round / 100) s on \(.chose) thread(s), test accuracy \(.test_accuracy)"'

# run CONDITION THREADS REP: one training run; THREADS "default" passes no --threads, "all"
# passes every core.
run() {
    local threads=()
    case $2 in
        default) ;;
        all) threads=(--threads "$(nproc)") ;;
        *) threads=(--threads "$2") ;;
    esac
    # shellcheck disable=SC2086 # FNN_ARGS is split into words on purpose
    bench_run "$1" "\"$2\"" "$3" "$filter" "$report" \
        "$FNN" train --json --data "$DATA" --epochs "$EPOCHS" --seed "$SEED" "${threads[@]}" \
        $FNN_ARGS --out "$tmp/model.safetensors" --history "$tmp/history.csv"
}

echo "contention.sh: $R repetition(s) of $EPOCHS epoch(s), seed $SEED, $LOAD busy" \
    "process(es) when loaded; $(nproc) cores; load average $load_start" >&2
for ((rep = 1; rep <= R; rep++)); do
    # Rotate which thread count goes first, so none always follows the same thing.
    case $((rep % 3)) in
        1) order=(default 1 all) ;;
        2) order=(1 all default) ;;
        0) order=(all default 1) ;;
    esac
    for t in "${order[@]}"; do run quiet "$t" "$rep"; done
    for ((i = 0; i < LOAD; i++)); do
        yes >/dev/null &
        hogs+=($!)
    done
    for t in "${order[@]}"; do run loaded "$t" "$rep"; done
    stop_hogs
done
bench_finish

summary=$("$JQ" -s -c --argjson epochs "$EPOCHS" --argjson reps "$R" --argjson seed "$SEED" \
    --argjson load "$LOAD" --arg fnn_args "$FNN_ARGS" --arg load_start "$load_start" \
    --arg load_end "$load_end" --arg cpu "$(bench_cpu)" --argjson cores "$(nproc)" "$JQ_DEFS"'
    group_by(.tool) | map(
        (.[0].tool) as $cond
        | (map(select(.threads == "default")) | map(.train)) as $d
        | (map(select(.threads == "1")) | map(.train)) as $one
        | (map(select(.threads == "all")) | map(.train)) as $all
        | {key: $cond, value: {
            default_threads: {median_s: ($d | median | r(3)), range_s: [($d | min | r(3)), ($d | max | r(3))],
                              chose: (map(select(.threads == "default")) | map(.chose))},
            one_thread: {median_s: ($one | median | r(3)), range_s: [($one | min | r(3)), ($one | max | r(3))]},
            every_core: {median_s: ($all | median | r(3)), range_s: [($all | min | r(3)), ($all | max | r(3))]},
            default_vs_one: (($d | median) / ($one | median) | r(3)),
            every_core_vs_one: (($all | median) / ($one | median) | r(3))}})
    | from_entries
    | {bench: "contention", epochs: $epochs, reps: $reps, seed: $seed, busy_processes: $load,
       fnn_args: $fnn_args, conditions: ., cpu: $cpu, cores: $cores,
       load_start: ($load_start | tonumber), load_end: ($load_end | tonumber)}' "$runs")

echo
printf '%-8s %-22s %10s %20s %10s\n' condition threads "median s" "range s" "vs 1"
"$JQ" -r '.conditions | to_entries[] | .key as $c | .value as $v
    | ([$c, "default (chose \($v.default_threads.chose | map(tostring) | join(",")))", $v.default_threads.median_s, "\($v.default_threads.range_s[0])-\($v.default_threads.range_s[1])", $v.default_vs_one] | @tsv),
      ([$c, "every core", $v.every_core.median_s, "\($v.every_core.range_s[0])-\($v.every_core.range_s[1])", $v.every_core_vs_one] | @tsv),
      ([$c, "1", $v.one_thread.median_s, "\($v.one_thread.range_s[0])-\($v.one_thread.range_s[1])", ""] | @tsv)' \
    <<<"$summary" | while IFS=$'\t' read -r c t m rg ratio; do
    printf '%-8s %-22s %10s %20s %10s\n' "$c" "$t" "$m" "$rg" "$ratio"
done
bench_busy_warning
echo "load average: $load_start at the start, $load_end at the end"
echo "$summary"
