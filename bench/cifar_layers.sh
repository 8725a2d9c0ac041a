#!/usr/bin/env bash
# shellcheck disable=SC2016 # the jq programs are single-quoted on purpose
# Layer by layer, where the CIFAR CNN's training step goes in fnn (build/profile_step) and in
# PyTorch (bench/torch_layers.py), interleaved: each convolution's forward and backward, the
# pooling, the whole step; the cores' multiply-add roof (build/fma_peak); and what issue 16's
# 3x would ask of fnn's convolutions.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
ARCH=$CIFAR_ARCH

usage() {
    cat <<EOF
usage: bench/cifar_layers.sh [--quick]

Runs R repetitions, interleaved, of fnn's build/profile_step on the CIFAR CNN of bench/cifar.sh
($ARCH),
of bench/torch_layers.py (the same model in PyTorch) and of build/fma_peak (the most
multiply-adds the cores do, nothing loaded), all with THREADS threads; batch 32 of
random 3x32x32 images, and prints the medians of: each convolution's forward and backward (with
its ReLU; no input gradient for the first), the pooling, the rest of the step and the whole step;
PyTorch's over fnn's time (the median of the repetitions' ratios); the convolutions' speed in
GFLOP/s counted as direct convolutions (what a direct algorithm must compute; Winograd's F(4x4),
fnn's algorithm for layers of 4 channels or more, multiplies 4x fewer times on these sizes, the
F(2x2) it ran before 2026-12-05 2.25x fewer). Then what 3x
PyTorch's step would leave fnn's convolutions, with the rest of fnn's step as it is: their time,
their speed-up over PyTorch's, their speed in GFLOP/s of direct work, and that speed as a share
of the roof were their multiplications Winograd's F(2x2) (3x3 layers of 4 channels or more; the
first layer direct) or F(4x4) (4x fewer than direct on these sizes). A last line is one JSON
document. fnn's phases come from a step with a barrier after every phase (profile_step), so
its step is a little slower than training's; neither step loads, shuffles or copies data.
Builds nothing: build fnn first (cmake -S . -B build && cmake --build build).

  --quick     smoke test: R=1 STEPS=20

environment (defaults in brackets):
  PROFILE_STEP  fnn's program [$root/build/profile_step]
  FMA_PEAK      the roof's program [$root/build/fma_peak]
  PYTHON        interpreter with torch [/usr/bin/python3]
  R             repetitions [3]
  THREADS       threads of both [2]
  STEPS         steps per sample: profile_step's count, torch_layers.py's --steps [200]
EOF
}

case ${1:-} in
    "") ;;
    --quick) R=1 STEPS=20 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

bench=cifar_layers.sh
bench_settings
PROFILE_STEP=${PROFILE_STEP:-$root/build/profile_step}
FMA_PEAK=${FMA_PEAK:-$root/build/fma_peak}
THREADS=${THREADS:-2}
STEPS=${STEPS:-200}
FNN=$PROFILE_STEP # what bench_check requires to be an executable
EPOCHS=1          # bench_check's; one step is all this times
bench_check
[[ -x $FMA_PEAK ]] || die "$FMA_PEAK is not an executable; build fnn's benchmarks or set FMA_PEAK"
positive_int THREADS "$THREADS"
positive_int STEPS "$STEPS"
bench_start

# profile_step's lines ("forward  0 conv2d   1133.17", "median step  10414.78", microseconds)
# as one JSON record in milliseconds: layers by index, each its forward + backward.
fnn_json() {
    awk '
        $1 == "forward" || $1 == "backward" { ms[$2] += $4 / 1000; kind[$2] = $3; n = $2 > n ? $2 : n }
        $1 == "median" && $2 == "step" { step = $3 / 1000 }
        END {
            printf "{\"tool\":\"fnn\",\"step_ms\":%.4f,\"layers\":[", step
            for (i = 0; i <= n; i++)
                printf "%s{\"index\":%d,\"kind\":\"%s\",\"ms\":%.4f}", i ? "," : "", i, kind[i], ms[i]
            print "]}"
        }'
}

echo "cifar_layers.sh: $R repetition(s), $THREADS thread(s), $STEPS steps a sample; load average $load_start" >&2
for ((rep = 1; rep <= R; rep++)); do
    "$PROFILE_STEP" "$ARCH" "$THREADS" 32 "$STEPS" 3x32x32 >"$tmp/fnn" 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; die "profile_step failed"; }
    fnn_json <"$tmp/fnn" | "$JQ" -c --argjson rep "$rep" '. + {rep: $rep}' >>"$runs"
    "$PYTHON" "$here/torch_layers.py" --threads "$THREADS" --steps "$STEPS" >"$tmp/pt" \
        2>"$tmp/err" || { cat "$tmp/err" >&2; die "torch_layers.py failed"; }
    "$JQ" -c --argjson rep "$rep" '. + {rep: $rep}' "$tmp/pt" >>"$runs"
    "$FMA_PEAK" "$THREADS" >"$tmp/peak" || die "fma_peak failed"
    "$JQ" -c --argjson rep "$rep" '. + {tool: "peak", rep: $rep}' "$tmp/peak" >>"$runs"
    "$JQ" -r -s --arg r "$R" '.[-3:] | "rep \(.[0].rep)/\($r): fnn step \(.[0].step_ms | . * 100 | round / 100) ms, PyTorch step \(.[1].step_ms | . * 100 | round / 100) ms, roof \(.[2].gflops) GFLOP/s"' "$runs" >&2
done
bench_finish

# Per repetition: the three convolutions (fnn's layers 0, 2, 4; PyTorch's conv entries in the
# same order), the three poolings (1, 3, 5), the rest and the step; then medians, and the
# ratios' medians over the repetitions (paired, as the machine's speed moves between them).
summary=$("$JQ" -s -c --argjson threads "$THREADS" --argjson steps "$STEPS" --argjson reps "$R" \
    --arg arch "$ARCH" --arg load_start "$load_start" --arg load_end "$load_end" \
    --arg cpu "$(bench_cpu)" "$JQ_DEFS"'
    def flops: [2 * 32 * 32 * 32 * 32 * 3 * 9 * 2, 2 * 32 * 16 * 16 * 64 * 32 * 9 * 3,
                2 * 32 * 8 * 8 * 64 * 64 * 9 * 3];
    def names: ["conv2d 3->32 32x32", "conv2d 32->64 16x16", "conv2d 64->64 8x8"];
    def parts: if .tool == "fnn" then
            {conv: [.layers[0, 2, 4].ms], pool: ([.layers[1, 3, 5].ms] | add), step: .step_ms}
        else
            {conv: [.layers[] | select(.kind == "conv") | .ms],
             pool: ([.layers[] | select(.kind == "pool") | .ms] | add), step: .step_ms}
        end
        | . + {convs: (.conv | add)} | . + {rest: (.step - .convs - .pool)};
    # The roof in GFLOP/s of direct work: the direct work over the multiplications an
    # algorithm does, times the roof (F(2x2): 16 per 2x2 tile against 36; F(4x4): 36 per 4x4
    # tile against 144, the outputs being multiples of 4).
    (flops | add) as $work
    | ($work / (flops[0] + (flops[1] + flops[2]) / 2.25)) as $gain2
    | ($work / (flops[0] + (flops[1] + flops[2]) / 4)) as $gain4
    | group_by(.rep) | map({f: (.[] | select(.tool == "fnn") | parts),
                            p: (.[] | select(.tool == "pytorch") | parts),
                            roof: (.[] | select(.tool == "peak") | .gflops)}
        | . + {need: ((.p.step / 3 - .f.pool - .f.rest) as $left
                      | ($work / $left / 1e6) as $g
                      | {conv_ms: $left, vs_pytorch: (.p.convs / $left), gflops: $g,
                         of_roof_f2: ($g / .roof / $gain2), of_roof_f4: ($g / .roof / $gain4)}),
               fnn_of_roof_f2: ($work / .f.convs / 1e6 / .roof / $gain2),
               fnn_of_roof_f4: ($work / .f.convs / 1e6 / .roof / $gain4),
               pytorch_of_roof: ($work / .p.convs / 1e6 / .roof)}) as $reps
    | def stat(f): $reps | map(f) | {median: (median | r(3)), range: [(min | r(3)), (max | r(3))]};
    {benchmark: "cifar_layers", arch: $arch, batch: 32, threads: $threads, steps: $steps,
     repetitions: $reps | length, cpu: $cpu, load_start: ($load_start | tonumber),
     load_end: ($load_end | tonumber), statistic: "median",
     rows: ([range(3) as $i | {what: names[$i], gflop: (flops[$i] / 1e9),
                               fnn_ms: stat(.f.conv[$i]), pytorch_ms: stat(.p.conv[$i]),
                               ratio: stat(.p.conv[$i] / .f.conv[$i]),
                               fnn_gflops: stat(flops[$i] / .f.conv[$i] / 1e6),
                               pytorch_gflops: stat(flops[$i] / .p.conv[$i] / 1e6)}]
            + [{what: "the three convolutions", gflop: ($work / 1e9), fnn_ms: stat(.f.convs),
                pytorch_ms: stat(.p.convs), ratio: stat(.p.convs / .f.convs),
                fnn_gflops: stat($work / .f.convs / 1e6),
                pytorch_gflops: stat($work / .p.convs / 1e6)},
               {what: "pooling", fnn_ms: stat(.f.pool), pytorch_ms: stat(.p.pool),
                ratio: stat(.p.pool / .f.pool)},
               {what: "the rest", fnn_ms: stat(.f.rest), pytorch_ms: stat(.p.rest),
                ratio: stat(.p.rest / .f.rest)},
               {what: "a step", fnn_ms: stat(.f.step), pytorch_ms: stat(.p.step),
                ratio: stat(.p.step / .f.step)}]),
     roof_gflops: stat(.roof), pytorch_convs_of_roof: stat(.pytorch_of_roof),
     fnn_convs_of_roof_f2: stat(.fnn_of_roof_f2), fnn_convs_of_roof_f4: stat(.fnn_of_roof_f4),
     three_x: {conv_ms: stat(.need.conv_ms), vs_pytorch_convs: stat(.need.vs_pytorch),
               gflops_direct: stat(.need.gflops), of_roof_f2: stat(.need.of_roof_f2),
               of_roof_f4: stat(.need.of_roof_f4)}}
    ' "$runs")

echo
echo "The CIFAR CNN's training step, batch 32, $THREADS thread(s): medians of $R repetition(s) [range]; $(nproc) cores, load average $load_start at start, $load_end at end"
printf '%-24s %18s %18s %16s %13s %13s\n' "" "fnn ms" "PyTorch ms" "PyTorch / fnn" \
    "fnn GFLOP/s" "PyTorch GFLOP/s"
"$JQ" -r '.rows[] | [.what, .fnn_ms.median, .fnn_ms.range[0], .fnn_ms.range[1],
        .pytorch_ms.median, .pytorch_ms.range[0], .pytorch_ms.range[1], .ratio.median,
        (.fnn_gflops.median // null | if . then round else "-" end),
        (.pytorch_gflops.median // null | if . then round else "-" end)] | @tsv' <<<"$summary" |
    while IFS=$'\t' read -r what f flo fhi p plo phi ratio fg pg; do
        printf '%-24s %6.2f [%4.2f-%5.2f] %6.2f [%4.2f-%5.2f] %15.2fx %13s %13s\n' \
            "$what" "$f" "$flo" "$fhi" "$p" "$plo" "$phi" "$ratio" "$fg" "$pg"
    done
"$JQ" -r 'def d2: . * 100 | round / 100;
    .three_x | "3x PyTorch'"'"'s step, with the rest of fnn'"'"'s step as it is, leaves fnn'"'"'s convolutions \(.conv_ms.median | d2) ms [\(.conv_ms.range[0] | d2)-\(.conv_ms.range[1] | d2)]: \(.vs_pytorch_convs.median | d2)x as fast as PyTorch'"'"'s [\(.vs_pytorch_convs.range[0] | d2)-\(.vs_pytorch_convs.range[1] | d2)], \(.gflops_direct.median | round) GFLOP/s of direct work [\(.gflops_direct.range[0] | round)-\(.gflops_direct.range[1] | round)]"' <<<"$summary"
"$JQ" -r '"the roof (fma_peak): \(.roof_gflops.median) GFLOP/s [\(.roof_gflops.range[0])-\(.roof_gflops.range[1])]; PyTorch'"'"'s convolutions run at \(.pytorch_convs_of_roof.median * 100 | round) % of it (direct); fnn'"'"'s at \(.fnn_convs_of_roof_f4.median * 100 | round) % of it counted in F(4x4)'"'"'s multiplications (its algorithm), \(.fnn_convs_of_roof_f2.median * 100 | round) % in F(2x2)'"'"'s"' <<<"$summary"
"$JQ" -r '.three_x | "that speed is \(.of_roof_f2.median * 100 | round) % of the roof [\(.of_roof_f2.range[0] * 100 | round)-\(.of_roof_f2.range[1] * 100 | round)] in F(2x2)'"'"'s multiplications, \(.of_roof_f4.median * 100 | round) % [\(.of_roof_f4.range[0] * 100 | round)-\(.of_roof_f4.range[1] * 100 | round)] in F(4x4)'"'"'s"' <<<"$summary"
bench_busy_warning
echo "$summary"
