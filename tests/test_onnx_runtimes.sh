#!/usr/bin/env bash
# fnn export checked by runtimes nobody here wrote: tiny mlp, cnn and resnet models (and one with
# every other layer) trained on a slice of Fashion-MNIST are exported to ONNX, and the first 1,000
# test images run through onnxruntime (onnxruntime-node, CPU), OpenCV's DNN module and ONNX's
# checker (tests/onnx/); each must give fnn predict's probabilities within 1e-5 and its classes.
# So must a colour (3x32x32) CNN with a per-channel input standardisation (tests/onnx/colour_model.c).
# Usage: test_onnx_runtimes.sh FNN_BINARY WORK_DIR (ctest passes both). Needs nodejs with the npm
# package onnxruntime-node in BUILD/ort (`make ort`; FNN_ORT_DIR overrides), /usr/bin/python3
# with python3-onnx and python3-opencv, and the Fashion-MNIST files (FNN_DATA overrides).
set -euo pipefail
fnn="$1"
work="$2/onnx_runtimes"
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${FNN_DATA:-/usr/share/datasets/fashion-mnist}"
n=1000

fail() { echo "test_onnx_runtimes: $*" >&2; exit 1; }

# onnxruntime-node: beside this build (BUILD/ort), else in build/ort, where `make ort` puts it.
ort="${FNN_ORT_DIR:-}"
if [ -z "$ort" ]; then
    ort="$(cd "$2/.." && pwd)/ort"
    [ -d "$ort/node_modules/onnxruntime-node" ] || ort="$root/build/ort"
fi
[ -d "$ort/node_modules/onnxruntime-node" ] ||
    fail "onnxruntime-node is not installed in $ort: run \`make ort\` (or set FNN_ORT_DIR)"
command -v node >/dev/null || fail "node is missing (Debian package nodejs)"
images=""
for f in "$data"/t10k-images-idx3-ubyte.gz "$data"/t10k-images-idx3-ubyte; do
    [ -e "$f" ] && images="$f" && break
done
[ -n "$images" ] || fail "no t10k images in $data (Debian package dataset-fashion-mnist)"

rm -rf "$work"
mkdir -p "$work"
# OpenCV 4.6 runs the dynamic-batch file too; the fixed-batch export (--batch) is checked with
# both runtimes on the mlp.
check() { # NAME ARCH
    local name="$1" arch="$2" m="$work/$1"
    "$fnn" train --arch "$arch" --data "$data" --limit 2000 --epochs 1 --no-test --quiet \
        --out "$m.safetensors" >"$m.train.log" 2>&1 ||
        { cat "$m.train.log" >&2; fail "$name: fnn train failed"; }
    "$fnn" export "$m.safetensors" --onnx "$m.onnx" || fail "$name: fnn export failed"
    "$fnn" predict "$m.safetensors" "$images" --limit "$n" --top 256 --json >"$m.json" ||
        fail "$name: fnn predict failed"
    echo "$name:"
    NODE_PATH="$ort/node_modules" node "$root/tests/onnx/check_ort.js" "$m.onnx" "$images" \
        "$m.json" "$n" || fail "$name: onnxruntime disagrees with fnn predict"
    /usr/bin/python3 "$root/tests/onnx/check_py.py" "$m.onnx" "$images" "$m.json" "$n" ||
        fail "$name: ONNX's checker or OpenCV disagrees with fnn predict"
}

check mlp mlp
check cnn cnn
check resnet resnet
# Every layer the presets leave out: average pooling, overlapping max pooling, strided 'same'
# convolutions (asymmetric pads), a residual block with its strided 1x1 projection, the other
# activations, batch norm on a flat layer.
check layers "conv2d:8:4:same:relu batchnorm avgpool:2 residual conv2d:16:3:s2:same \
leakyrelu:0.1 conv2d:16:3:same end elu maxpool:3:2 dropout:0.3 flatten dense:32 batchnorm tanh \
dense:16:linear sigmoid dense:10:softmax"

# Colour: a 3x32x32 CNN with a per-channel standardisation (Sub and Div nodes after the
# scaling), built, trained on a synthetic set and exported through the library by a helper
# beside the tests (the CLI's data options are another matter); its images are a 4-dimensional
# IDX file (n, 3, 32, 32).
echo "colour (3x32x32, standardised):"
"$2/onnx_colour_model" "$work/colour" "$n" || fail "colour: onnx_colour_model failed"
NODE_PATH="$ort/node_modules" node "$root/tests/onnx/check_ort.js" "$work/colour.onnx" \
    "$work/colour.idx" "$work/colour.json" "$n" || fail "colour: onnxruntime disagrees with fnn"
/usr/bin/python3 "$root/tests/onnx/check_py.py" "$work/colour.onnx" "$work/colour.idx" \
    "$work/colour.json" "$n" || fail "colour: ONNX's checker or OpenCV disagrees with fnn"

echo "mlp, fixed batch of 64:"
"$fnn" export "$work/mlp.safetensors" --onnx "$work/mlp64.onnx" --batch 64 ||
    fail "mlp: fnn export --batch 64 failed"
NODE_PATH="$ort/node_modules" node "$root/tests/onnx/check_ort.js" "$work/mlp64.onnx" "$images" \
    "$work/mlp.json" "$n" 64 || fail "mlp, batch 64: onnxruntime disagrees with fnn predict"
/usr/bin/python3 "$root/tests/onnx/check_py.py" "$work/mlp64.onnx" "$images" "$work/mlp.json" \
    "$n" --batch 64 || fail "mlp, batch 64: ONNX's checker or OpenCV disagrees with fnn predict"
echo "test_onnx_runtimes: all agree"
