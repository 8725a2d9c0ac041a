#!/usr/bin/env bash
# libfnn.so exports exactly the functions include/fnn.h declares: fails when a public function
# lost its FNN_API (built with -fvisibility=hidden, it is then hidden) or an internal one leaked.
# usage: test_exports.sh FNN_BINARY TEST_DIR (from ctest); libfnn.so sits next to the binary.
set -euo pipefail

lib=$(dirname "$1")/libfnn.so
header=$(cd "$(dirname "$0")/.." && pwd)/include/fnn.h
[ -e "$lib" ] || { echo "test_exports: $lib is missing" >&2; exit 1; }
work=$(mktemp -d "${2:-/tmp}/exports.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The header's declarations, comments stripped by the preprocessor: every fnn_ name followed by
# a parenthesis is a function (the header has no function-like fnn_ macros), unless the
# parenthesis opens a function pointer's name: a return type, as in "fnn_status (*hook)(...)".
${CC:-cc} -E -P "$header" | grep -oE '\bfnn_[A-Za-z0-9_]+[[:space:]]*\([[:space:]]*\*?' |
    grep -v '\*$' | tr -d '( \t' | sort -u >"$work/declared"
# What the library exports, less the symbols the linker and the sanitizers' instrumentation
# add by themselves.
nm -D --defined-only "$lib" | awk '{ print $NF }' |
    grep -vxE '_init|_fini|_edata|_end|__bss_start|__(asan|odr_asan|ubsan|sanitizer)[A-Za-z0-9_.]*' |
    sort -u >"$work/exported"

[ -s "$work/declared" ] || { echo "test_exports: found no declarations in $header" >&2; exit 1; }
missing=$(comm -23 "$work/declared" "$work/exported")
extra=$(comm -13 "$work/declared" "$work/exported")
if [ -n "$missing" ] || [ -n "$extra" ]; then
    [ -z "$missing" ] || printf 'declared in fnn.h but not exported (FNN_API missing?):\n%s\n' "$missing"
    [ -z "$extra" ] || printf 'exported but not declared in fnn.h (should be hidden):\n%s\n' "$extra"
    exit 1
fi
echo "test_exports: libfnn.so exports the $(wc -l <"$work/declared") functions of fnn.h and nothing else"
