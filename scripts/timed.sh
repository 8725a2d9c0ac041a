#!/usr/bin/env bash
# Runs a command and prints how long it took, for the CI log: "ci: NAME: 42 s (exit 0)".
# Usage: scripts/timed.sh NAME COMMAND [ARGS...]; exits with the command's status.
name="$1"
shift
start=$(date +%s)
rc=0
"$@" || rc=$?
echo "ci: $name: $(($(date +%s) - start)) s (exit $rc)"
exit $rc
