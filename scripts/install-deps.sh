#!/usr/bin/env bash
# Installs the Debian packages fnn needs that are missing (as root, or through sudo).
# Usage: scripts/install-deps.sh [run|test] [dnnl|openblas]
# The second argument is the library for matrix products (Makefile's GEMM); the tests build
# with both.
set -euo pipefail

# Open MPI (libopenmpi-dev, openmpi-bin): mpirun -np N fnn train/search (FNN_MPI, on when found).
packages=(cmake make gcc pkg-config zlib1g-dev libcjson-dev libcairo2-dev
          libstb-dev fonts-dejavu-core dataset-fashion-mnist libprotobuf-c-dev protobuf-c-compiler libonnx-dev
          libopenmpi-dev openmpi-bin)
if [ "${1:-run}" = test ]; then
    # cmocka runs the tests; chromium opens the HTML report headless and xmllint checks its
    # SVG figures; clang builds the fuzzers, with its OpenMP headers (libomp-dev) and its
    # libFuzzer and sanitizer runtimes (libclang-rt-dev, only recommended by clang); valgrind
    # checks a short training run for leaks.
    packages+=(libcmocka-dev chromium libxml2-utils clang libomp-dev libclang-rt-dev valgrind
               libdnnl-dev libopenblas-openmp-dev)
    # The multi-host MPI test makes its hosts with network namespaces (ip netns, veth pairs).
    packages+=(iproute2)
    # ONNX export's runtime checks; a nodejs from NodeSource brings npm and conflicts with Debian's.
    packages+=(python3-onnx python3-opencv nodejs); command -v npm >/dev/null || packages+=(npm)
elif [ "${2:-dnnl}" = openblas ]; then
    packages+=(libopenblas-openmp-dev)
else
    packages+=(libdnnl-dev)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
