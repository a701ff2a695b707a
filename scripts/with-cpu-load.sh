#!/bin/sh
# Usage: scripts/with-cpu-load.sh COMMAND [ARG...]
# Runs COMMAND while one busy loop per CPU core (normal priority) keeps the
# machine busy, as on a shared CI runner, then stops the loops and exits with
# COMMAND's status. CPU_LOAD_LOOPS overrides the number of loops.
#
# The loops stop when COMMAND ends, fails or is interrupted (Ctrl-C reaches
# COMMAND, then this script), and on their own once this script is gone,
# even after a SIGKILL: each loop spins on "is the script still alive?".
set -u
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

loops=${CPU_LOAD_LOOPS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
case $loops in
    '' | *[!0-9]*)
        echo "CPU_LOAD_LOOPS must be a number, not '$loops'" >&2
        exit 2
        ;;
esac

pids=""
stop_loops() {
    # shellcheck disable=SC2086 # one word per loop's pid
    [ -z "$pids" ] || kill $pids 2>/dev/null
    pids=""
}
trap stop_loops EXIT
trap 'stop_loops; exit 130' INT
trap 'stop_loops; exit 143' TERM

i=0
while [ "$i" -lt "$loops" ]; do
    # never sleeps: one core's worth of work while this script ($$) lives
    sh -c 'while kill -0 "$1" 2>/dev/null; do :; done' with-cpu-load-loop "$$" &
    pids="$pids $!"
    i=$((i + 1))
done
echo "with-cpu-load: $loops busy loop(s) at normal priority (pids$pids)" >&2

status=0
"$@" || status=$?
stop_loops
exit "$status"
