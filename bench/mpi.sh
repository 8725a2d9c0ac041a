#!/usr/bin/env bash
# One process with 2 threads against 2 MPI ranks of 1 thread each (issue 19), for the study's
# MLP (fnn train --epochs 2) and the cnn preset (--limit 4096 --epochs 1), interleaved; prints
# the median training seconds of each, the median share of training spent in MPI_Allreduce,
# and one JSON line. The numbers feed docs/distributed.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
usage="usage: bench/mpi.sh

environment (defaults in brackets):
  FNN     fnn binary built with FNN_MPI [$root/build/fnn]
  MPIRUN  Open MPI's mpirun [mpirun]
  DATA    Fashion-MNIST IDX directory [/usr/share/datasets/fashion-mnist]
  R       repetitions of each configuration, interleaved [3]"
case ${1:-} in
    "") ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
FNN=${FNN:-$root/build/fnn}
MPIRUN=${MPIRUN:-mpirun}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
R=${R:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/fnn-bench-mpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
# As the tests run it: TCP between the ranks (as between hosts), no binding of a rank to one
# core, mpirun allowed as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=${OMPI_MCA_btl:-tcp,self}
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo}

echo "bench/mpi.sh: load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
declare -A args=([mlp]="--epochs 2" [cnn]="--arch cnn --limit 4096 --epochs 1")
for r in $(seq "$R"); do
    for model in mlp cnn; do
        # shellcheck disable=SC2086 # args holds several words
        "$FNN" train ${args[$model]} --data "$DATA" --seed 1 --threads 2 --no-test --json \
            --out "$work/m.safetensors" >"$work/$model-1x2-$r.json"
        # shellcheck disable=SC2086
        "$MPIRUN" -np 2 "$FNN" train ${args[$model]} --data "$DATA" --seed 1 --threads 1 --no-test \
            --json --out "$work/m.safetensors" >"$work/$model-2x1-$r.json"
        echo "run $r $model done" >&2
    done
done
python3 - "$work" "$R" <<'PY'
import json, statistics, sys
work, R = sys.argv[1], int(sys.argv[2])
out = {}
print(f"{'model':5} {'setup':22} {'train s (median)':>17} {'allreduce s':>12} {'share':>7} {'val acc':>8}")
for model in ("mlp", "cnn"):
    for setup, label in (("1x2", "1 process x 2 threads"), ("2x1", "2 ranks x 1 thread")):
        docs = [json.load(open(f"{work}/{model}-{setup}-{r}.json")) for r in range(1, R + 1)]
        train = statistics.median(d["seconds"]["train"] for d in docs)
        ar = statistics.median(d["seconds"].get("allreduce", 0.0) for d in docs)
        share = statistics.median(d["seconds"].get("allreduce", 0.0) / d["seconds"]["train"] for d in docs)
        acc = statistics.median(d["history"]["val_accuracy"][-1] for d in docs)
        print(f"{model:5} {label:22} {train:17.2f} {ar:12.2f} {share:7.1%} {acc:8.4f}")
        out[f"{model}_{setup}"] = {"train_s": train, "allreduce_s": ar, "allreduce_share": share,
                                   "val_accuracy": acc, "runs": [d["seconds"]["train"] for d in docs]}
print(json.dumps(out))
PY
