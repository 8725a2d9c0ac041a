#!/usr/bin/env bash
# The installed library as a user meets it: installs this build into a temporary prefix, builds
# examples/embed against it through pkg-config (with libfnn.so, then with libfnn.a), trains a
# tiny model with the installed fnn, and checks that the example's top-1 class and probability
# for each of a few PNG files are those of `fnn predict --json` on the same files.
# usage: test_embed.sh FNN_BINARY TEST_DIR (from ctest); the build directory holds FNN_BINARY.
set -euo pipefail

build=$(cd "$(dirname "$1")" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
data=${FNN_DATA:-/usr/share/datasets/fashion-mnist}
work=$(mktemp -d "${2:-/tmp}/embed.XXXXXX")
# KEEP=1 keeps the work directory for a look after a failure.
if [ -n "${KEEP:-}" ]; then
    echo "test_embed: working in $work"
else
    trap 'rm -rf "$work"' EXIT
fi
fail() { echo "test_embed: $*" >&2; exit 1; }

# ---- install, and the layout a user relies on
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "cmake --install $build failed"; }
pc=$(find "$prefix" -name fnn.pc 2>/dev/null || true)
[ -n "$pc" ] || fail "no fnn.pc under $prefix"
libdir=$(dirname "$(dirname "$pc")")
for f in "$prefix/bin/fnn" "$prefix/include/fnn.h" "$libdir/libfnn.a" "$libdir/libfnn.so"; do
    [ -e "$f" ] || fail "$f was not installed"
done
soname=$(readelf -d "$libdir/libfnn.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[[ $soname == libfnn.so.* ]] || fail "libfnn.so's soname is '$soname', expected libfnn.so.*"
[ -e "$libdir/$soname" ] || fail "$soname is not installed next to libfnn.so"

export PKG_CONFIG_PATH=$(dirname "$pc")
[ "$(pkg-config --variable=libdir fnn)" -ef "$libdir" ] ||
    fail "fnn.pc's libdir $(pkg-config --variable=libdir fnn) is not $libdir"
pkg-config --static --libs fnn >/dev/null || fail "pkg-config --static --libs fnn failed"

# ---- the example, built by its own Makefile, both ways
cp -r "$src/examples/embed" "$work/embed"
make -C "$work/embed" all static >"$work/make.log" 2>&1 ||
    { cat "$work/make.log"; fail "examples/embed does not build against the installed fnn"; }
readelf -d "$work/embed/classify" | grep -q "NEEDED.*\[$soname\]" ||
    fail "classify is not linked with $soname"
if readelf -d "$work/embed/classify-static" | grep -q 'NEEDED.*libfnn'; then
    fail "classify-static needs libfnn.so"
fi

# ---- a tiny model and a few test images as PNG files
"$prefix/bin/fnn" train --data "$data" --limit 1000 --epochs 1 --val-split 0 --no-test \
    --arch "flatten dense:32:relu dense:10:softmax" --threads 1 --seed 1 --quiet \
    --out "$work/model.safetensors" || fail "fnn train failed"
cat >"$work/mkpng.c" <<'C'
/* mkpng RAW PNG: a 28x28 grey image of 784 raw bytes as a PNG file. */
#include <stdio.h>
#include <stb_image_write.h>
int main(int argc, char **argv)
{
    unsigned char px[28 * 28];
    FILE *f = argc == 3 ? fopen(argv[1], "rb") : NULL;
    if (!f || fread(px, 1, sizeof px, f) != sizeof px)
        return 1;
    fclose(f);
    return !stbi_write_png(argv[2], 28, 28, 1, px, 28);
}
C
cc -o "$work/mkpng" "$work/mkpng.c" $(pkg-config --cflags --libs stb) || fail "mkpng does not build"
nimg=6 # more than the example's workers
gzip -dc "$data/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$work/images.bin" ||
    true # head closes the pipe early
[ "$(stat -c %s "$work/images.bin")" -eq $((16 + nimg * 784)) ] ||
    fail "cannot read $nimg images from $data/t10k-images-idx3-ubyte.gz"
tail -c +17 "$work/images.bin" >"$work/pixels.bin" # (nimg, 28, 28) after the 16-byte header
images=()
for i in $(seq 0 $((nimg - 1))); do
    dd if="$work/pixels.bin" of="$work/img$i.raw" bs=784 skip="$i" count=1 status=none
    "$work/mkpng" "$work/img$i.raw" "$work/img$i.png" || fail "cannot write img$i.png"
    images+=("$work/img$i.png")
done

# ---- the example against fnn predict
# "PATH INDEX PROBABILITY" per image from the JSON, which fnn prints one "key":<tab>value per
# line (cJSON's layout); read with awk, since jq is not among the test's dependencies.
"$prefix/bin/fnn" predict "$work/model.safetensors" "${images[@]}" --top 1 --threads 1 --json |
    awk -F'\t' '/"path":/ { p = $NF; gsub(/^"|",?$/, "", p) }
                 /"index":/ { i = $NF; sub(/,$/, "", i) }
                 /"probability":/ { print p, i, $NF }' >"$work/expected" ||
    fail "fnn predict failed"
[ "$(wc -l <"$work/expected")" -eq "$nimg" ] ||
    fail "fnn predict's JSON has $(wc -l <"$work/expected") answers for $nimg images"
for prog in classify classify-static; do
    "$work/embed/$prog" "$work/model.safetensors" "${images[@]}" >"$work/$prog.out" ||
        fail "$prog failed"
    # "PATH: class K, probability P" -> "PATH K P"
    sed -E 's/^(.*): class ([0-9]+), probability ([0-9.]+)$/\1 \2 \3/' "$work/$prog.out" \
        >"$work/$prog.got"
    paste -d' ' "$work/expected" "$work/$prog.got" | awk -v prog="$prog" '
        NF != 6 || $1 != $4 || $2 != $5 || ($3 - $6 > 2e-6 || $6 - $3 > 2e-6) {
            printf "%s: %s: expected class %s with %s, got \"%s %s %s\"\n", prog, $1, $2, $3, $4, $5, $6
            bad = 1
        }
        END { exit bad }' || fail "$prog disagrees with fnn predict"
done

# ---- its errors: a missing image, no arguments
rc=0
"$work/embed/classify" "$work/model.safetensors" "${images[0]}" "$work/missing.png" \
    >"$work/err.out" 2>"$work/err.txt" || rc=$?
[ "$rc" -eq 1 ] || fail "classify with a missing image exited $rc, expected 1"
[ ! -s "$work/err.out" ] || fail "classify printed results although an image was missing"
grep -q "missing.png" "$work/err.txt" || fail "classify's error does not name missing.png: $(cat "$work/err.txt")"
rc=0
"$work/embed/classify" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "classify without arguments exited $rc, expected 2"
echo "test_embed: classify (shared and static) agrees with fnn predict on $nimg images"
