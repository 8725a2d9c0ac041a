# shellcheck shell=bash
# shellcheck disable=SC2016,SC2034,SC2154 # jq programs single-quoted on purpose; variables shared with the sourcing script
# What bench/mlp.sh, bench/cnn.sh and bench/fast.sh share: their common settings and checks,
# running one configuration under GNU time, the load-average warnings and the jq helpers of
# their summaries.
# bench/onnx.sh uses die and positive_int alone.
# A script sets `bench` (its name, for messages), sources this file, then calls bench_settings,
# bench_check, bench_start, bench_run for every run and bench_finish.

# The CIFAR CNN of cifar.sh and cifar_layers.sh in fnn's spec; torch_cifar.py and
# torch_layers.py build its PyTorch twin.
CIFAR_ARCH='conv2d:32:3:same:relu maxpool:2 conv2d:64:3:same:relu maxpool:2 conv2d:64:3:same:relu maxpool:2 flatten dense:128:relu dense:10:softmax'

# The settings both scripts take from the environment (their --help lists them); EPOCHS is each
# script's own.
bench_settings() {
    FNN=${FNN:-$root/build/fnn}
    PYTHON=${PYTHON:-/usr/bin/python3}
    DATA=${DATA:-/usr/share/datasets/fashion-mnist}
    R=${R:-3}
    FNN_THREADS=${FNN_THREADS:-2}
    TORCH_THREADS=${TORCH_THREADS:-"1 2"}
    TORCH_ARGS=${TORCH_ARGS:-}
    MAX_LOAD=${MAX_LOAD:-0.5}
    RAW=${RAW:-}
    TIME=/usr/bin/time
    JQ=/usr/bin/jq
}

die() {
    echo "$bench: $*" >&2
    exit 1
}

# positive_int NAME VALUE: dies unless VALUE is a positive integer.
positive_int() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"
}

bench_check() {
    [[ -x $FNN ]] || die "$FNN is not an executable; build fnn or set FNN"
    [[ -x $TIME ]] || die "$TIME (GNU time) is missing"
    [[ -x $JQ ]] || die "$JQ is missing"
    positive_int R "$R"
    positive_int EPOCHS "$EPOCHS"
    [[ $TORCH_THREADS =~ ^[[:space:]]*[1-9] ]] ||
        die "TORCH_THREADS must list at least one thread count"
    "$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON cannot import torch; set PYTHON"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

busy() { awk -v l="$load_start" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; }

# Makes the temporary directory (removed on exit) and the empty record file $runs, and notes
# the load average, warning when the machine is busy.
bench_start() {
    tmp=$(mktemp -d "/tmp/fnn-bench-$bench.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    runs=$tmp/runs.jsonl
    : >"$runs"
    load_start=$(loadavg)
    if busy; then
        echo "$bench: warning: load average $load_start > $MAX_LOAD: something else is running," \
            "timings will be noisy" >&2
    fi
}

# bench_run TOOL THREADS REP JQ_FILTER JQ_REPORT COMMAND...: runs COMMAND under GNU time, turns
# its JSON output into one record with JQ_FILTER, appends it to $runs and reports it on stderr
# as the string JQ_REPORT makes of the record ($r is the number of repetitions).
bench_run() {
    local tool=$1 threads=$2 rep=$3 filter=$4 report=$5
    shift 5
    if ! "$TIME" -f %M -o "$tmp/rss" "$@" >"$tmp/out" 2>"$tmp/err"; then
        cat "$tmp/err" >&2
        die "$tool with $threads thread(s) failed: $*"
    fi
    local peak_kb
    peak_kb=$(tail -n 1 "$tmp/rss")
    "$JQ" -c --arg tool "$tool" --argjson threads "$threads" --argjson rep "$rep" \
        --argjson peak_kb "$peak_kb" \
        "{tool: \$tool, threads: \$threads, rep: \$rep, peak_kb: \$peak_kb} + ($filter)" \
        "$tmp/out" >>"$runs" || die "cannot parse the JSON output of: $*"
    tail -n 1 "$runs" | "$JQ" -r --arg r "$R" "\"rep \(.rep)/\(\$r) \(.tool), \(.threads) thread(s): \" + ($report)" >&2
}

# Prints the summary's paired ratio (vs_pytorch_best.train_speedup_paired, from paired(f)).
bench_paired_report() {
    "$JQ" -r '.vs_pytorch_best.train_speedup_paired | "paired by repetition (its best PyTorch run over its fnn run): \(.median)x median, \(.range[0])x-\(.range[1])x over the repetitions"' <<<"$1"
}

# Notes the load average at the end and keeps the records when RAW asks for them.
bench_finish() {
    load_end=$(loadavg)
    [[ -z $RAW ]] || cp "$runs" "$RAW"
}

bench_cpu() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }

# jq definitions for the summaries: the median of an array, rounding to d decimals,
# spread(f; d): the lowest and highest of f over a configuration's runs, [min, max], and
# paired(f): per repetition, the lowest f (a time) among the other tools' runs over fnn's f,
# fnn's speed-up against the best run of that repetition (whose runs are minutes apart and
# share the machine's speed more often than a whole run does), with ratios: their median and
# [lowest, highest].
JQ_DEFS='
    def median: sort | length as $n
        | if $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end;
    def r(d): . * pow(10; d) | round / pow(10; d);
    def spread(f; d): map(f) | [(min | r(d)), (max | r(d))];
    def paired(f): group_by(.rep) | map((map(select(.tool == "fnn")) | .[0] | f) as $fnn
        | (map(select(.tool != "fnn") | f) | min) / $fnn);
    def ratios: {median: (median | r(2)), range: [(min | r(2)), (max | r(2))]};
'

bench_busy_warning() {
    if busy; then
        echo "warning: the machine was busy at the start (load $load_start): treat these timings as noisy"
    fi
}
