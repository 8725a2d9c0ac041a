#!/bin/sh
# Open MPI's plm_rsh_agent for tests/mpi_hosts.sh, in place of ssh: mpirun calls it as
# "AGENT [ssh options] HOST COMMAND..." to start its daemon on HOST; here HOST is a network
# namespace's address, and the daemon is started inside that namespace. The map from address
# to namespace comes in FNN_NETNS_MAP ("10.1.0.1=ns1 10.1.0.2=ns2"). The namespaces share this
# machine's name and /tmp, where each Open MPI daemon makes its session directory named after
# the host: each "host" gets a directory of its own under FNN_NETNS_TMP, or their daemons race
# for one ("mkdir: File exists").
# nsenter --net switches the network namespace alone (see tests/mpi_hosts.sh).
while [ $# -gt 0 ]; do
    case "$1" in
    -*) shift ;;
    *) break ;;
    esac
done
host=$1
shift
for pair in $FNN_NETNS_MAP; do
    if [ "${pair%%=*}" = "$host" ]; then
        ns=${pair#*=}
        mkdir -p "$FNN_NETNS_TMP/$ns" || exit 1
        exec nsenter --net="/run/netns/$ns" env OMPI_MCA_orte_tmpdir_base="$FNN_NETNS_TMP/$ns" sh -c "$*"
    fi
done
echo "netns-agent: no namespace for host '$host' in FNN_NETNS_MAP='$FNN_NETNS_MAP'" >&2
exit 1
