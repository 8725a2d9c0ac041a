#!/usr/bin/env bash
# mpirun -np N fnn train: the same seed and N give the same model, bit for bit; two ranks train
# what one process trains (up to the order of summation); a batch smaller than the ranks is a
# usage error; a rank killed mid-run ends the job with a message on the surviving rank, and
# the checkpoint it leaves resumes to the result of a run that was never stopped.
# usage: mpi_train.sh FNN_BINARY TEST_DIR MPIRUN (from ctest; exit 77: skipped)
. "$(dirname "$0")/mpi/common.sh"
if [ -n "${KEEP:-}" ]; then echo "$name: working in $work"; else trap 'rm -rf "$work"' EXIT; fi
cd "$work"
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

args=(--data "$data" --limit 3000 --epochs 2 --threads 1 --seed 3 --arch "flatten dense:32:relu dropout:0.2 dense:10:softmax" --json)

# ---- the same seed and number of ranks: the same model
for run in a b; do
    "$mpirun" -np 2 "$fnn" train "${args[@]}" --out np2$run.safetensors >np2$run.json 2>np2$run.log ||
        { cat np2$run.log; fail "mpirun -np 2 fnn train failed"; }
done
cmp -s np2a.safetensors np2b.safetensors || fail "two runs with the same seed over 2 ranks differ"
[ "$(json np2a.json 'd["config"]["ranks"]')" = 2 ] || fail "the output does not say 2 ranks"
# Rank 0 alone writes: one JSON document, one history.
[ "$(grep -c '"fnn_version"' np2a.json)" -eq 1 ] || fail "more than one rank printed its result"

# ---- one process and two ranks train the same model, up to the order of summation
"$fnn" train "${args[@]}" --out one.safetensors >one.json 2>one.log || { cat one.log; fail "fnn train failed"; }
python3 - one.json np2a.json <<'PY' || fail "one process and 2 ranks disagree"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for k in ("accuracy", "loss"):
    x, y = a["test"][k], b["test"][k]
    print(f"test {k}: 1 process {x:.6f}, 2 ranks {y:.6f}")
    assert abs(x - y) < 0.01, k
# The training numbers are every rank's rows, as one process's are all of them.
for k in ("train_loss", "train_accuracy", "val_accuracy"):
    for x, y in zip(a["history"][k], b["history"][k]):
        assert abs(x - y) < 0.01, (k, x, y)
PY

# ---- the global batch must give every rank a row
rc=0
"$mpirun" -np 3 "$fnn" train "${args[@]}" --batch-size 2 --out small.safetensors >small.log 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat small.log; fail "--batch-size 2 over 3 ranks: exit $rc, expected 2"; }
grep -q -- "--batch-size 2 is smaller than the 3 ranks" small.log || { cat small.log; fail "no message for the batch size"; }

# ---- a rank killed mid-run: the survivor says so, the checkpoint resumes the run
long=(--data "$data" --limit 3000 --threads 1 --seed 3 --arch "flatten dense:32:relu dense:10:softmax" --json)
"$mpirun" -np 2 "$fnn" train "${long[@]}" --epochs 50 --checkpoint ck.ckpt --out killed.safetensors \
    >killed.json 2>killed.log &
job=$!
for _ in $(seq 600); do [ -e ck.ckpt ] && break; sleep 0.1; done
[ -e ck.ckpt ] || { kill $job; fail "no checkpoint after 60 s"; }
victim=""
for p in $(pgrep -f "killed.safetensors" || true); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 &&
        [ "$(cat /proc/$p/comm)" = fnn ] && victim=$p
done
[ -n "$victim" ] || { kill $job; fail "cannot find rank 1's process"; }
kill -9 "$victim"
rc=0
wait $job || rc=$?
[ $rc -ne 0 ] || fail "the job with a killed rank exited 0"
grep -q "fnn train (rank 0 of 2): .*\(another rank\|stopped by mpirun\)" killed.log ||
    { cat killed.log; fail "rank 0 did not say why it stopped"; }
[ ! -e killed.safetensors ] || fail "the killed job wrote its model"
# The checkpoint is whole: the epochs it holds, read from its header, and resumed over 2 ranks
# for one more it gives what a run of that many epochs that was never stopped gives.
held=$(python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
print(json.loads(json.loads(b[8:8 + n])["__metadata__"]["state"])["epoch"])' ck.ckpt) ||
    fail "ck.ckpt is not a readable checkpoint"
"$mpirun" -np 2 "$fnn" train "${long[@]}" --epochs $((held + 1)) --resume ck.ckpt --out resumed.safetensors \
    >resumed.json 2>resumed.log || { cat resumed.log; fail "resuming the checkpoint over 2 ranks failed"; }
"$mpirun" -np 2 "$fnn" train "${long[@]}" --epochs $((held + 1)) --out straight.safetensors \
    >straight.json 2>straight.log || { cat straight.log; fail "the uninterrupted run failed"; }
python3 - resumed.json straight.json "$held" <<'PY' || fail "the resumed run differs from the uninterrupted one"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["resumed_epoch"] == int(sys.argv[3]), a["resumed_epoch"]
assert a["test"] == b["test"], (a["test"]["accuracy"], b["test"]["accuracy"])
PY
echo "$name: ok"
