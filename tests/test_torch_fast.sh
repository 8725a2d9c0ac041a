#!/usr/bin/env bash
# bench/torch_fast.py, the PyTorch twin of the `fast` recipe (bench/fast.sh), checked piece by
# piece against the library it is compared with (tests/torch_fast_check.py).
# usage: test_torch_fast.sh FNN_BINARY TEST_DIR (from ctest); the build directory holds
# FNN_BINARY and libfnn.so. Needs Debian's python3-torch in /usr/bin/python3 (PYTHON).
set -euo pipefail

build=$(cd "$(dirname "$1")" && pwd)
lib=$build/libfnn.so
python=${PYTHON:-/usr/bin/python3}
[ -e "$lib" ] || { echo "test_torch_fast: $lib is missing" >&2; exit 1; }
# A sanitized library (-DFNN_SANITIZE=ON) needs the sanitizers' runtimes loaded before anything
# else, and the interpreter was not linked with them. Leaks stay unchecked: Python and torch
# keep memory until exit by design.
runtimes=$(ldd "$lib" | awk '/lib(asan|ubsan)\.so/ { print $3 }' | paste -sd: -)
if [ -n "$runtimes" ]; then
    export LD_PRELOAD=$runtimes${LD_PRELOAD:+:$LD_PRELOAD}
    export ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
fi
exec "$python" "$(dirname "$0")/torch_fast_check.py" "$lib"
