#!/usr/bin/env bash
# A short `fnn train` on the real data under valgrind memcheck: no errors and no leaks allowed.
# Usage: scripts/valgrind-train.sh [BUILD_DIR] (default build-valgrind). The build is its own:
# valgrind cannot run AVX-512 code, so fnn is built without -march=native, and with OpenBLAS,
# compiled ahead of time (oneDNN generates its kernels at run time), which picks its kernels
# from the CPU that valgrind presents, one without AVX-512.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build-valgrind}"
jobs="${JOBS:-2}"
cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=Release -DFNN_GEMM=openblas -DFNN_NATIVE=OFF \
    -DFNN_TESTS=OFF >/dev/null
cmake --build "$out" -j"$jobs" --target fnn_cli >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Two threads, so OpenMP's worker threads are checked too; every allocation must be freed
# ("possibly lost" counts: the one known case is suppressed in valgrind.supp, with why).
valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
    --suppressions="$root/scripts/valgrind.supp" --log-file="$out/valgrind.log" \
    "$out/fnn" train --limit 2000 --epochs 1 --test-limit 1000 --threads 2 --quiet \
    --out "$work/model.safetensors"
# The run must also have done its job: the model it saved loads.
"$out/fnn" summary "$work/model.safetensors" >/dev/null
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost' "$out/valgrind.log" | sed 's/^==[0-9]*== /valgrind: /'
