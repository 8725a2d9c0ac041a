#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# Side-by-side inference benchmark: fnn_model_predict (the library path of `fnn predict`,
# bench/predict_bench.c) against onnxruntime (bench/onnx_ort.js) running the same model exported
# with `fnn export`, for the mlp and cnn presets: single-image latency and batch-256 throughput.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

usage() {
    cat <<EOF
usage: bench/onnx.sh [--quick]

For each of the mlp and cnn presets, exports the model to ONNX and times, R times interleaved,
fnn and onnxruntime (CPU) on the same Fashion-MNIST test images: ITERS1 calls on one image
(latency) and ITERS256 calls on 256 images (throughput), each with every thread count of
THREADS. Prints a table of medians (over repetitions, of each repetition's median call) with
fnn / onnxruntime ratios, and one JSON line. Builds nothing: build fnn (with predict_bench)
first, and install onnxruntime-node with \`make ort\`.

  --quick     smoke test: R=1 ITERS1=20 ITERS256=3 (also QUICK=1)

environment (defaults in brackets):
  BUILD       build directory with fnn and predict_bench [$root/build]
  ORT_DIR     folder whose node_modules holds onnxruntime-node [\$BUILD/ort]
  DATA        Fashion-MNIST IDX directory [/usr/share/datasets/fashion-mnist]
  MLP_MODEL, CNN_MODEL  model files to time; otherwise each preset is trained for one epoch on
              2,000 images (the weights do not change the work)
  R           repetitions [3]
  ITERS1      calls per repetition at batch 1 [2000]
  ITERS256    calls per repetition at batch 256 [50]
  THREADS     thread counts, space-separated ["1 2"]
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
BUILD=${BUILD:-$root/build}
ORT_DIR=${ORT_DIR:-$BUILD/ort}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
R=${R:-3}
ITERS1=${ITERS1:-2000}
ITERS256=${ITERS256:-50}
THREADS=${THREADS:-"1 2"}
RAW=${RAW:-}
if [[ $QUICK == 1 ]]; then
    R=1 ITERS1=20 ITERS256=3
fi
JQ=/usr/bin/jq

bench=onnx.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh" # die, positive_int
for v in R ITERS1 ITERS256; do
    positive_int "$v" "${!v}"
done
[[ -x $BUILD/fnn && -x $BUILD/predict_bench ]] ||
    die "$BUILD/fnn or $BUILD/predict_bench is missing; build fnn first or set BUILD"
[[ -d $ORT_DIR/node_modules/onnxruntime-node ]] ||
    die "onnxruntime-node is not in $ORT_DIR/node_modules; run make ort or set ORT_DIR"
[[ -x $JQ ]] || die "$JQ is missing"
export NODE_PATH=$ORT_DIR/node_modules

tmp=$(mktemp -d /tmp/fnn-bench-onnx.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
runs=$tmp/runs.jsonl
: >"$runs"

for arch in mlp cnn; do
    var=${arch^^}_MODEL
    model=${!var:-}
    if [[ -z $model ]]; then
        model=$tmp/$arch.safetensors
        echo "onnx.sh: training a stand-in $arch (1 epoch, 2,000 images)" >&2
        "$BUILD/fnn" train --arch "$arch" --data "$DATA" --limit 2000 --epochs 1 --no-test \
            --quiet --out "$model" || die "fnn train --arch $arch failed"
    fi
    "$BUILD/fnn" export "$model" --onnx "$tmp/$arch.onnx" >/dev/null || die "fnn export failed"
    for rep in $(seq 1 "$R"); do
        for threads in $THREADS; do
            for batch in 1 256; do
                iters=$ITERS1
                [[ $batch == 1 ]] || iters=$ITERS256
                for tool in fnn onnxruntime; do
                    if [[ $tool == fnn ]]; then
                        out=$("$BUILD/predict_bench" "$model" "$DATA" "$batch" "$iters" \
                            "$threads") || die "predict_bench failed on $arch"
                    else
                        out=$(node "$here/onnx_ort.js" "$tmp/$arch.onnx" "$DATA" "$batch" \
                            "$iters" "$threads") || die "onnx_ort.js failed on $arch"
                    fi
                    echo "$out" | "$JQ" -c --arg model "$arch" --argjson rep "$rep" \
                        '{model: $model, rep: $rep} + .' >>"$runs"
                    tail -n 1 "$runs" | "$JQ" -r '"rep \(.rep) \(.model) \(.tool), batch \(.batch), \(.threads) thread(s): \(.median_us) us a call"' >&2
                done
            done
        done
    done
done
[[ -z $RAW ]] || cp "$runs" "$RAW"

# Per configuration, the median over repetitions of each repetition's median call.
summary=$("$JQ" -s -c '
  def median: sort | .[length / 2 | floor];
  group_by([.model, .batch, .threads]) | map(
    { model: .[0].model, batch: .[0].batch, threads: .[0].threads,
      fnn_us: (map(select(.tool == "fnn").median_us) | median),
      ort_us: (map(select(.tool == "onnxruntime").median_us) | median) }
    | . + { ratio: (.fnn_us / .ort_us),
            fnn_images_s: (.batch * 1e6 / .fnn_us), ort_images_s: (.batch * 1e6 / .ort_us) })' "$runs")
ort_version=$("$JQ" -r 'select(.tool == "onnxruntime") | .version' "$runs" | head -n 1)
echo
echo "fnn_model_predict against onnxruntime-node $ort_version (CPU), medians of $R repetition(s):"
printf '%-5s %5s %7s %12s %12s %10s %10s %8s\n' model batch threads "fnn us" "ort us" \
    "fnn img/s" "ort img/s" "fnn/ort"
echo "$summary" | "$JQ" -r '.[] | [.model, .batch, .threads, .fnn_us, .ort_us,
    (.fnn_images_s | floor), (.ort_images_s | floor), (.ratio * 100 | round / 100)] | @tsv' |
    while IFS=$'\t' read -r m b t f o fimg oimg ra; do
        printf '%-5s %5s %7s %12s %12s %10s %10s %8s\n' "$m" "$b" "$t" "$f" "$o" "$fimg" "$oimg" "$ra"
    done
echo "(fnn/ort below 1: fnn is faster)"
"$JQ" -c -n --argjson rows "$summary" --arg ort "$ort_version" --argjson r "$R" \
    '{bench: "onnx", onnxruntime: $ort, repetitions: $r, results: $rows}'
