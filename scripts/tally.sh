#!/bin/sh
# Keeps the count of passed and failed checks over every suite a run executes.
# Usage: tally.sh add LABEL PASSED FAILED | tally.sh summary
# The file is $TEST_TALLY; each line is "label passed failed".
set -eu
: "${TEST_TALLY:?TEST_TALLY must name the tally file}"
case ${1:-} in
add)
    echo "$2 $3 $4" >>"$TEST_TALLY"
    ;;
check)
    # check LABEL COMMAND...: runs the command, counts it as one check
    label=$2
    shift 2
    if "$@"; then
        echo "$label 1 0" >>"$TEST_TALLY"
    else
        echo "$label 0 1" >>"$TEST_TALLY"
        exit 1
    fi
    ;;
summary)
    touch "$TEST_TALLY"
    awk '{ printf "  %-40s %6d passed %4d failed\n", $1, $2, $3 }' "$TEST_TALLY"
    awk '{ p += $2; f += $3 } END { printf "%d passed, %d failed\n", p, f }' "$TEST_TALLY"
    ;;
*)
    echo "usage: tally.sh add LABEL PASSED FAILED | check LABEL CMD... | summary" >&2
    exit 64
    ;;
esac
