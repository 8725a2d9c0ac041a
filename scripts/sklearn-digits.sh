#!/usr/bin/env bash
# Writes scikit-learn's handwritten digits (the UCI "optdigits" test set: 1,797 8x8 grey images
# of 10 digits, pixel values 0-16), which Debian's python3-sklearn ships as a CSV file, in the
# Kaggle layout fnn reads: a header line, then label,pixel1,...,pixel64 with values 0-255.
# The first 1,437 images (80%) go to train.csv, the other 360 to test.csv.
usage="Usage: scripts/sklearn-digits.sh OUTDIR

Needs the Debian package python3-sklearn (apt-get install python3-sklearn); only its data file
is read, Python is not run. Then:
  fnn train --data OUTDIR/train.csv --test-data OUTDIR/test.csv"
set -euo pipefail

case "${1:-}" in
    -h|--help) echo "$usage"; exit 0 ;;
esac
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "$usage" >&2
    exit 2
fi
src=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
if [ ! -r "$src" ]; then
    echo "sklearn-digits: $src: not found; install the Debian package python3-sklearn" >&2
    exit 1
fi
out="$1"
mkdir -p "$out"
for f in train.csv test.csv; do
    if [ -e "$out/$f" ]; then
        echo "sklearn-digits: $out/$f exists; not replacing it" >&2
        exit 1
    fi
done

# Each row of the source is 64 pixels then the label; 0-16 becomes 0-255 as round(v * 255 / 16).
# Written beside the targets and renamed into place, so that a failure leaves neither file.
tmp="$(mktemp -d "$out/.sklearn-digits.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
zcat "$src" | awk -F, -v train="$tmp/train.csv" -v test="$tmp/test.csv" '
BEGIN {
    header = "label"
    for (i = 1; i <= 64; i++)
        header = header ",pixel" i
    print header > train
    print header > test
}
NF != 65 { printf "line %d has %d fields, expected 65\n", NR, NF > "/dev/stderr"; exit 1 }
{
    row = $65
    for (i = 1; i <= 64; i++)
        row = row "," int($i * 255 / 16 + 0.5)
    print row > (NR <= 1437 ? train : test)
}'
mv "$tmp/train.csv" "$out/train.csv"
mv "$tmp/test.csv" "$out/test.csv"
echo "sklearn-digits: wrote $out/train.csv (1437 images) and $out/test.csv (360 images), 8x8 grey"
