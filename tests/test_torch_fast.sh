#!/usr/bin/env bash
# bench/torch_fast.py, the PyTorch twin of the `fast` recipe (bench/fast.sh), checked piece by
# piece against the library it is compared with (tests/torch_fast_check.py).
# usage: test_torch_fast.sh FNN_BINARY TEST_DIR (from ctest); the build directory holds
# FNN_BINARY and libfnn.so. Needs Debian's python3-torch in /usr/bin/python3 (PYTHON).
set -euo pipefail

build=$(cd "$(dirname "$1")" && pwd)
python=${PYTHON:-/usr/bin/python3}
[ -e "$build/libfnn.so" ] || { echo "test_torch_fast: $build/libfnn.so is missing" >&2; exit 1; }
exec "$python" "$(dirname "$0")/torch_fast_check.py" "$build/libfnn.so"
