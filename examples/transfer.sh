#!/usr/bin/env bash
# Transfer learning on Fashion-MNIST: do features learnt on classes 0-4 help classes 5-9 when
# only 100 labelled training images per class are available? Pretrains a small CNN on classes
# 0-4, then trains on 5 x 100 images of classes 5-9 from scratch, from the pretrained features
# (fine-tuning everything) and from frozen pretrained features, and prints the three test
# accuracies on the 5000 test images of classes 5-9.
#
# usage: examples/transfer.sh [FNN [WORKDIR]]
#   FNN      the fnn binary [build/fnn]
#   WORKDIR  where models and JSON reports go [transfer-out]
#   environment: DATA (IDX directory), THREADS [2], SEEDS (space-separated) [1 2 3]
set -euo pipefail

FNN=${1:-build/fnn}
WORK=${2:-transfer-out}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-1 2 3}

# Layers 1-5 (two conv blocks and flatten) are the features that --freeze keeps fixed. With
# --init-from every layer but the head starts from the pretrained model; --reset-head leaves
# the head freshly initialised, since it has 5 units in both tasks but means other classes.
ARCH="conv2d:16:3:same:relu maxpool:2 conv2d:32:3:same:relu maxpool:2 flatten dense:64:relu dense:5:softmax"
FEATURES=5

mkdir -p "$WORK"
common=(--data "$DATA" --threads "$THREADS" --arch "$ARCH")

accuracy() { jq -r '.test.accuracy' "$1"; }

start=$SECONDS
echo "pretraining on classes 0-4 (all their training images, 5 epochs)"
"$FNN" train "${common[@]}" --seed 1 --classes 0,1,2,3,4 --epochs 5 \
    --out "$WORK/pretrained.safetensors" --json >"$WORK/pretrained.json"
printf '  test accuracy on classes 0-4: %.4f\n' "$(accuracy "$WORK/pretrained.json")"

# The few-shot task: classes 5-9 relabelled 0-4, the first 100 training images of each, and no
# validation split: these runs take no decision that would need one, and 5 x 100 labelled
# images are all they are meant to see.
few=(--classes 5,6,7,8,9 --per-class 100 --epochs 30 --val-split 0)
init=(--init-from "$WORK/pretrained.safetensors" --reset-head)

printf '\n%-6s %-10s %-10s %-10s\n' seed scratch finetuned frozen
scratch=() finetuned=() frozen=()
for seed in $SEEDS; do
    scratch+=("$WORK/scratch-$seed.json")
    finetuned+=("$WORK/finetuned-$seed.json")
    frozen+=("$WORK/frozen-$seed.json")
    "$FNN" train "${common[@]}" "${few[@]}" --seed "$seed" \
        --out "$WORK/scratch-$seed.safetensors" --json >"$WORK/scratch-$seed.json"
    "$FNN" train "${common[@]}" "${few[@]}" "${init[@]}" --seed "$seed" \
        --out "$WORK/finetuned-$seed.safetensors" --json >"$WORK/finetuned-$seed.json"
    "$FNN" train "${common[@]}" "${few[@]}" "${init[@]}" --freeze "$FEATURES" --seed "$seed" \
        --out "$WORK/frozen-$seed.safetensors" --json >"$WORK/frozen-$seed.json"
    printf '%-6s %-10.4f %-10.4f %-10.4f\n' "$seed" "$(accuracy "$WORK/scratch-$seed.json")" \
        "$(accuracy "$WORK/finetuned-$seed.json")" "$(accuracy "$WORK/frozen-$seed.json")"
done

mean() { jq -s 'map(.test.accuracy) | add / length' "$@"; }
printf '%-6s %-10.4f %-10.4f %-10.4f\n' mean "$(mean "${scratch[@]}")" \
    "$(mean "${finetuned[@]}")" "$(mean "${frozen[@]}")"
echo
echo "test accuracy on the 5000 test images of classes 5-9, after training on 5 x 100 images;"
echo "each model is evaluated once. $((SECONDS - start)) s in all; reports in $WORK/"
