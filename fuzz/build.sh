#!/usr/bin/env bash
# Builds the libFuzzer harnesses fuzz/fuzz_*.c against the library compiled with clang, ASan and
# UBSan. Usage: fuzz/build.sh [BUILD_DIR] (default build/fuzz); prints nothing but errors.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build/fuzz}"
mkdir -p "$out/obj"
cc="${CC_FUZZ:-clang}"
export PKG_CONFIG_PATH="/usr/lib/$(gcc -print-multiarch)/openblas-openmp/pkgconfig:${PKG_CONFIG_PATH:-}"
pkgs="openblas libcjson cairo stb zlib"
# gnu11 as CMake builds it (C_EXTENSIONS on). -O1 keeps the sanitizers' reports readable and the run fast; every UB report aborts, so the
# fuzzer counts it as a crash instead of printing it and going on.
san="-Wno-pass-failed -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cflags="-std=gnu11 -g -O1 -fopenmp $san -I$root/include -I$root/src $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lm"

# The library: an object is rebuilt when its source or any header is newer than it.
newest_h="$(ls -t $(find "$root/src" "$root/include" -name '*.h') | head -1)"
objs=()
stale=()
while IFS= read -r src; do
    rel="${src#$root/src/}"
    obj="$out/obj/${rel//\//_}.o"
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_h" -nt "$obj" ]; then
        stale+=("$src" "$obj")
    fi
    objs+=("$obj")
done < <(find "$root/src" -name '*.c' ! -path '*/io/onnx.c' | sort) # onnx.c needs CMake's protoc-c output; no harness calls it
if [ ${#stale[@]} -gt 0 ]; then
    printf '%s\0' "${stale[@]}" |
        xargs -0 -n2 -P"${JOBS:-2}" sh -c "$cc $cflags -fsanitize=fuzzer-no-link -c \"\$0\" -o \"\$1\""
fi
rm -f "$out/libfnn_fuzz.a"
ar rcs "$out/libfnn_fuzz.a" "${objs[@]}"

# Every harness whose parser exists in this tree (a harness names it on its first line).
for h in "$root"/fuzz/fuzz_*.c; do
    needs="$(sed -n '1s|.*needs: \([^ )]*\).*|\1|p' "$h")"
    if [ -n "$needs" ] && [ ! -e "$root/$needs" ]; then
        echo "fuzz/build.sh: skipping $(basename "$h" .c): $needs is not in this tree" >&2
        continue
    fi
    # A parser outside the library (cli/) is compiled into its harness; a harness may add
    # flags for its own file in a "harness-cflags:" comment line.
    extra=()
    case "$needs" in cli/*) extra=("-I$root/cli" "$root/$needs") ;; esac
    extra+=($(sed -n 's|.*harness-cflags: \(.*\) \*/.*|\1|p' "$h"))
    $cc $cflags -fsanitize=fuzzer "$h" "${extra[@]}" "$out/libfnn_fuzz.a" $libs \
        -o "$out/$(basename "$h" .c)"
done
