#!/usr/bin/env bash
# Several hosts for real: network namespaces on this machine, each with its own address on a
# bridge of veth pairs, are the hosts of an mpirun job over TCP (Open MPI starts its daemon in
# each through tests/mpi/netns-agent.sh instead of ssh). The search over three hosts must rank
# as the single-process search does, and training over them must agree with one process. Needs
# root and ip netns; skipped otherwise. The namespaces and links are removed however the test
# ends. Commands enter a host with nsenter --net, not `ip netns exec` or `ip -n`, which also
# remount / and fail where / is no mount point (a chroot, where scripts/fresh-machine.sh runs
# the tests).
# usage: mpi_hosts.sh FNN_BINARY TEST_DIR MPIRUN (from ctest; exit 77: skipped)
. "$(dirname "$0")/mpi/common.sh"
agent=$(cd "$(dirname "$0")/mpi" && pwd)/netns-agent.sh
[ "$(id -u)" -eq 0 ] || { rm -rf "$work"; skip "needs root for ip netns"; }
command -v ip >/dev/null || { rm -rf "$work"; skip "no ip command (iproute2)"; }

hosts=3
tag=f$$ # names unique to this run: other runs may be making their own hosts
net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)) # a /24 that exists only inside the namespaces
cleanup() {
    # Whatever still runs in a host (a daemon of a failed run) ends with it.
    for i in $(seq 1 $hosts); do
        pids=$(ip netns pids "${tag}h$i" 2>/dev/null || true)
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    done
    for i in $(seq 1 $hosts); do ip netns del "${tag}h$i" 2>/dev/null || true; done
    ip netns del "${tag}sw" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "$name: working in $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Runs a command in a namespace's network (nsenter; `ip -n NS` and `ip netns exec` remount /).
in_ns() {
    local ns=$1
    shift
    nsenter --net="/run/netns/$ns" "$@"
}

# A switch (a bridge in a namespace of its own) and one veth pair per host.
ip netns add "${tag}sw" 2>/dev/null || skip "cannot make network namespaces here (ip netns add failed)"
in_ns "${tag}sw" ip link add br0 type bridge
in_ns "${tag}sw" ip link set br0 up
map=""
printf '' >"$work/hostfile"
for i in $(seq 1 $hosts); do
    ns=${tag}h$i
    ip netns add "$ns"
    ip link add "${tag}e$i" netns "$ns" type veth peer name "p$i" netns "${tag}sw"
    in_ns "${tag}sw" ip link set "p$i" master br0 up
    in_ns "$ns" ip link set lo up
    in_ns "$ns" ip addr add "$net.$i/24" dev "${tag}e$i"
    in_ns "$ns" ip link set "${tag}e$i" up
    map="$map $net.$i=$ns"
    echo "$net.$i slots=1" >>"$work/hostfile"
done

export FNN_NETNS_MAP=$map FNN_NETNS_TMP=$work/hosts-tmp
# Daemons and ranks talk over the hosts' veth interfaces only ($net.0/24).
export OMPI_MCA_btl_tcp_if_include=$net.0/24 OMPI_MCA_oob_tcp_if_include=$net.0/24
export OMPI_MCA_plm_rsh_agent=$agent
# mpirun runs on host 1, as a user's would on the first machine of the hostfile.
on_hosts() {
    in_ns "${tag}h1" env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        "$mpirun_bin" --hostfile "$work/hostfile" -np $hosts "$@"
}

cd "$work"
on_hosts sh -c 'echo "rank $OMPI_COMM_WORLD_RANK: $(ip -o -4 addr show scope global | awk "{print \$4}")"' \
    >where.log 2>&1 || { cat where.log; fail "mpirun cannot start a rank on every host"; }
for i in $(seq 1 $hosts); do
    grep -q "rank $((i - 1)): $net.$i/24" where.log || { cat where.log; fail "rank $((i - 1)) did not run on host $i"; }
done

# ---- search: three hosts rank as one process does
args=(--data "$data" --limit 1500 --epochs 1 --workers 1 --arch "flatten dense:{width}:relu dense:10:softmax"
      --grid width=16,32 --grid lr=0.001,0.004)
"$fnn" search --out one "${args[@]}" >one.log 2>&1 || { cat one.log; fail "the single-process search failed"; }
on_hosts "$fnn" search --out hosts "${args[@]}" >hosts.log 2>&1 ||
    { cat hosts.log; fail "fnn search over $hosts hosts failed"; }
diff <(ranking one/results.csv) <(ranking hosts/results.csv) >diff.txt ||
    { cat diff.txt; fail "the ranking over $hosts hosts differs from the single-process one"; }
cmp -s one/trial-best.safetensors hosts/trial-best.safetensors ||
    fail "the best model over $hosts hosts differs from the single-process one"

# ---- training: three hosts train what one process trains, up to the order of summation
targs=(--data "$data" --limit 3000 --epochs 2 --threads 1 --seed 5 --json
       --arch "flatten dense:32:relu dropout:0.2 dense:10:softmax")
"$fnn" train "${targs[@]}" --out one.safetensors >one.json 2>one-train.log ||
    { cat one-train.log; fail "the single-process training failed"; }
on_hosts "$fnn" train "${targs[@]}" --out hosts.safetensors >hosts.json 2>hosts-train.log ||
    { cat hosts-train.log; fail "fnn train over $hosts hosts failed"; }
python3 - one.json hosts.json <<'PY' || fail "one process and $hosts hosts disagree"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b["config"]["ranks"] == 3
for k in ("accuracy", "loss"):
    assert abs(a["test"][k] - b["test"][k]) < 0.01, (k, a["test"][k], b["test"][k])
PY
echo "$name: ok"
