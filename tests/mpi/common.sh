# Sourced by tests/mpi_*.sh: mpirun's settings for the tests, set here rather than taken from
# the machine's Open MPI configuration, and small helpers. Expects $1 = the fnn binary, $2 = a
# directory for work files, $3 = mpirun.
set -euo pipefail
fnn=$1
mpirun_bin=${3:-mpirun}
# Ranks run without LeakSanitizer's exit check in a sanitizer build: Open MPI keeps allocations
# until the process ends, made through plugins whose frames LSan cannot unwind to name them for
# a suppression. fnn's own leaks are checked by the single-process runs here and the rest of
# the suite.
mpi_run() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$mpirun_bin" "$@"; }
mpirun=mpi_run
data=${FNN_DATA:-/usr/share/datasets/fashion-mnist}
name=$(basename "$0" .sh)
skip() { echo "$name: SKIPPED: $*"; exit 77; }
fail() { echo "$name: FAILED: $*" >&2; exit 1; }
[ -x "$fnn" ] || fail "no fnn binary at $fnn"
command -v "$mpirun_bin" >/dev/null || skip "no $mpirun_bin"
[ -d "$data" ] || skip "no data at $data (dataset-fashion-mnist)"
work=$(mktemp -d "${2:-/tmp}/$name.XXXXXX")

# mpirun refuses root without these; the tests run as root in CI.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# More ranks than cores (CI machines have two), TCP between ranks as between hosts, and the
# loopback interface only unless a test names others.
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=tcp,self
export OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo}
export OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
# No binding of a rank to one core (Open MPI's default for two ranks): fnn's threads and
# search's trials use the cores the rank's host gives it, as without mpirun.
export OMPI_MCA_hwloc_base_binding_policy=none
# No warnings about the idle cores of an oversubscribed node or a missing high-speed network.
export OMPI_MCA_btl_base_warn_component_unused=0 OMPI_MCA_mpi_yield_when_idle=1

# results.csv without its seconds column: what a search ranks, in its order.
ranking() { cut -d, -f1-"$(($(head -1 "$1" | tr ',' '\n' | grep -n '^seconds$' | cut -d: -f1) - 1))" "$1"; }
