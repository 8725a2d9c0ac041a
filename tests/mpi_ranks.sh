#!/usr/bin/env bash
# mpirun -np N fnn search on this host: the ranking (trials, order, scores) is the single-process
# search's, and ranks started with another binary, other options or other data stop before any
# trial with a message naming what differs.
# usage: mpi_ranks.sh FNN_BINARY TEST_DIR MPIRUN (from ctest; exit 77: skipped)
. "$(dirname "$0")/mpi/common.sh"
if [ -n "${KEEP:-}" ]; then echo "$name: working in $work"; else trap 'rm -rf "$work"' EXIT; fi
cd "$work"

args=(--data "$data" --limit 1500 --epochs 1 --workers 1 --arch "flatten dense:{width}:relu dense:10:softmax"
      --grid width=16,32 --grid lr=0.001,0.004)

# ---- the ranking over 1, 2 and 3 ranks
"$fnn" search --out one "${args[@]}" >one.log 2>&1 || { cat one.log; fail "the single-process search failed"; }
for np in 2 3; do
    "$mpirun" -np $np "$fnn" search --out np$np "${args[@]}" >np$np.log 2>&1 ||
        { cat np$np.log; fail "mpirun -np $np fnn search failed"; }
    diff <(ranking one/results.csv) <(ranking np$np/results.csv) >diff.txt ||
        { cat diff.txt; fail "the ranking over $np ranks differs from the single-process one"; }
    cmp -s one/trial-best.safetensors np$np/trial-best.safetensors ||
        fail "over $np ranks the best model differs from the single-process one"
    # Rank 0 alone reports: one table, one test result.
    [ "$(grep -c '^best: trial' np$np.log)" -eq 1 ] || { cat np$np.log; fail "$np ranks: not one report"; }
    grep -q "over $np ranks; rank $((np - 1)) runs" np$np.log || { cat np$np.log; fail "$np ranks: no rank line"; }
done
# The best model, tested once by rank 0, as the single-process search tested it.
python3 - one/results.json np2/results.json <<'PY' || fail "the test result over 2 ranks differs from the single-process one"
import json, sys
a, b = (json.load(open(p))["final_test"]["test"] for p in sys.argv[1:])
sys.exit(a != b)
PY

# ---- resuming with the same number of ranks keeps every trial
"$mpirun" -np 2 "$fnn" search --out np2 "${args[@]}" >again.log 2>&1 || { cat again.log; fail "resuming failed"; }
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["trials_resumed"] != 4)' \
    np2/results.json || fail "the resumed search ran trials again"

# ---- ranks that were not started alike stop before any trial, every one saying what differs
expect_refused() { # WHAT LOG
    local rc=0
    grep -q "the ranks were not started alike: $1 differs between rank 0 and rank 1" "$2" ||
        { cat "$2"; fail "no message that $1 differs"; }
    [ "$(grep -c 'not started alike' "$2")" -eq 2 ] || { cat "$2"; fail "not every rank said why"; }
    [ ! -e bad ] || fail "a refused search made its directory"
}
rc=0
"$mpirun" -np 1 "$fnn" search --out bad "${args[@]}" : -np 1 "$fnn" search --out bad "${args[@]}" --seed 7 \
    >opts.log 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat opts.log; fail "other options: exit $rc, expected 2"; }
expect_refused "the command line" opts.log

cp "$fnn" fnn-other && printf 'x' >>fnn-other
rc=0
"$mpirun" -np 1 "$fnn" search --out bad "${args[@]}" : -np 1 ./fnn-other search --out bad "${args[@]}" \
    >binary.log 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat binary.log; fail "another binary: exit $rc, expected 2"; }
expect_refused "the fnn executable" binary.log

# The same command line in two working directories whose data differ by one byte.
mkdir -p a/d b/d
cp "$data"/train-* a/d/ && cp "$data"/train-* b/d/
labels=$(ls b/d/train-labels*)
gzip -dc "$labels" >labels.raw && printf '\x01' | dd of=labels.raw bs=1 seek=20 conv=notrunc status=none
gzip -c labels.raw >"$labels"
rel=("${args[@]}"); rel[1]=d
rc=0
"$mpirun" -np 1 -wdir "$work/a" "$fnn" search --out bad --no-final-test "${rel[@]}" : \
    -np 1 -wdir "$work/b" "$fnn" search --out bad --no-final-test "${rel[@]}" >data.log 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat data.log; fail "other data: exit $rc, expected 2"; }
expect_refused "the data at --data d" data.log
[ ! -e a/bad ] && [ ! -e b/bad ] || fail "a refused search made its directory"
# ---- the other commands run as one process: several ranks of one are refused
rc=0
"$mpirun" -np 2 "$fnn" eval none.safetensors >eval.log 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat eval.log; fail "mpirun -np 2 fnn eval: exit $rc, expected 2"; }
grep -q "fnn eval: started by mpirun as one of 2 ranks: only fnn train and fnn search" eval.log ||
    { cat eval.log; fail "no message that fnn eval runs as one process"; }
echo "$name: ok"
