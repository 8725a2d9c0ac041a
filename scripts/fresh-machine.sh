#!/usr/bin/env bash
# Proves the README's two commands on a pristine Debian 12: builds a minimal root (mmdebstrap's
# minbase with make, git and ca-certificates, nothing else), clones this repository's HEAD into
# it, and runs `make run`, then `make test`, then `make run` once more, as root under chroot.
# Fails if any of them fails. CI runs it (.ci/run); each phase's time is printed
# ("ci: fresh root: NAME: N s (exit RC)").
usage="Usage (as root): scripts/fresh-machine.sh

Tests the commit at HEAD of the repository this script is in: uncommitted changes are not
tested. The root lives in a mktemp folder under \$TMPDIR (default /var/tmp; it grows to a
few GB) and is removed at the end, also when the script is interrupted or killed with SIGTERM.
Inputs the fuzzers found to crash are first copied out to a dated folder under
\$FRESH_ARTIFACTS (default /var/tmp/fnn-fresh-artifacts)."
set -euo pipefail

case "${1:-}" in
    "") ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "fresh-machine: must run as root (mmdebstrap, mount and chroot need it)" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit="$(git -C "$repo" rev-parse HEAD)"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "fresh-machine: testing $commit; its uncommitted changes are not tested" >&2
fi
if ! command -v mmdebstrap >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
fi
# The host's Debian sources, as a new machine of this kind would have them; mmdebstrap's
# default mirror where the host has none in this form.
sources=()
[ -f /etc/apt/sources.list.d/debian.sources ] && sources=(/etc/apt/sources.list.d/debian.sources)

# realpath: processes inside are found by their root (/proc/PID/root), which the kernel gives
# with symbolic links resolved.
tmp="$(realpath "$(mktemp -d "${TMPDIR:-/var/tmp}/fnn-fresh.XXXXXX")")"
root="$tmp/root"
keep="${FRESH_ARTIFACTS:-/var/tmp/fnn-fresh-artifacts}/$(date +%Y%m%d-%H%M%S)"
phase_pid=""
start=$(date +%s)

# Every mount under $tmp, newest first: the order to unmount them in.
mounts_under_tmp() {
    findmnt -ln -o TARGET | awk -v p="$tmp/" 'index($0, p) == 1' | tac
}

# Processes whose root is the chroot: an interrupted make's children, chromium, valgrind.
signal_inside() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -"$1" "${p#/proc/}" 2>/dev/null
    done
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    # A phase still running (only after a signal) is stopped first: its processes hold the
    # mounts busy, and mmdebstrap undoes its own mounts when it gets SIGTERM.
    if [ -n "$phase_pid" ] && kill -0 -- "-$phase_pid" 2>/dev/null; then
        kill -TERM -- "-$phase_pid" 2>/dev/null
        signal_inside TERM
        for _ in $(seq 20); do
            kill -0 -- "-$phase_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$phase_pid" 2>/dev/null
    fi
    signal_inside KILL
    # The fuzzers' findings outlive the root: an input that crashed once may not come again.
    if compgen -G "$root/root/fnn/build/fuzz/artifacts/*" >/dev/null; then
        mkdir -p "$keep"
        cp -p "$root"/root/fnn/build/fuzz/artifacts/* "$keep/"
        echo "fresh-machine: the fuzzers' findings are kept in $keep" >&2
    fi
    mounts_under_tmp | while IFS= read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    # Never remove through a mount: rm would empty the host's /dev or /sys.
    if [ -n "$(mounts_under_tmp)" ]; then
        echo "fresh-machine: still mounted, so $tmp is left in place:" >&2
        mounts_under_tmp >&2
        rc=1
    else
        rm -rf --one-file-system "$tmp"
    fi
    echo "ci: fresh root: in all: $(($(date +%s) - start)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs one timed phase in a process group of its own, in the background, so that a signal
# reaches this script's trap at once (not when the phase ends) and the trap can stop the
# whole phase.
phase() {
    setsid "$repo/scripts/timed.sh" "fresh root: $1" "${@:2}" </dev/null &
    phase_pid=$!
    wait "$phase_pid"
    phase_pid=""
}

# A shell command in the clone inside the root, as root with a login's environment and nothing
# of this one (no CI, no OPENBLAS_*), as a user on a new machine would run it.
in_root=(chroot "$root" /usr/bin/env -i HOME=/root
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c)

echo "fresh-machine: testing $commit in $root"
phase "mmdebstrap" mmdebstrap --variant=minbase --include=make,git,ca-certificates \
    bookworm "$root" "${sources[@]}"
# apt inside needs name resolution, and npm (onnxruntime-node, for make test) the certificate
# authorities this machine adds to Debian's for its network; a new machine gets both from its
# network setup.
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp -L /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
git clone --quiet --no-hardlinks "$repo" "$root/root/fnn"
git -C "$root/root/fnn" fetch --quiet "$repo" HEAD # a detached HEAD is on no branch
git -C "$root/root/fnn" checkout --quiet --detach "$commit"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
# rslave: unmounting the copies of /dev/pts and /dev/shm must not unmount the host's.
mount --rbind --make-rslave /dev "$root/dev"

phase "make run" "${in_root[@]}" "cd /root/fnn && make run"
phase "make test" "${in_root[@]}" "cd /root/fnn && make test"
phase "make run, after make test" "${in_root[@]}" "cd /root/fnn && make run"
