#!/bin/sh
# Keeps the count of passed and failed checks over every suite a run executes.
# Usage: tally.sh add LABEL PASSED FAILED | check LABEL CMD... | why LABEL LOG
#        | summary
# The file is $TEST_TALLY; each line is "label passed failed". Why a failed
# suite failed goes to $TEST_TALLY.why: summary prints it just above its
# last line, so that a truncated CI log still shows it.
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
why)
    # why LABEL LOG: if the suite LABEL failed (LABEL ending in "-": any
    # suite whose label starts with it), the lines of LOG that say what
    # failed (test headings, exceptions, the stack runs' FAILED lines), 30
    # at most
    label=$2
    awk -v l="$label" '
        ($1 == l || (l ~ /-$/ && index($1, l) == 1)) && $3 > 0 { found = 1 }
        END { exit !found }' "$TEST_TALLY" || exit 0
    [ -f "$3" ] || exit 0
    # a unittest failure block: its heading and its exception lines; the
    # stack runs' FAILED lines; else (a run that died) its last exception
    awk -v l="$label" '
        function say(line) { if (n++ < 30) printf "  %s: %s\n", l, substr(line, 1, 300) }
        /^(FAIL|ERROR): / { block = 1; blocks++; say($0); next }
        /^(=+|Ran [0-9]+ tests? in .*)$/ { block = 0 }
        block && /^[A-Za-z_.]*(Error|Exception|Timeout|Failure)(: |$)/ { say($0); next }
        /FAILED/ { say($0); next }
        /^[A-Za-z_.]*(Error|Exception|Timeout)(: |$)/ { last = $0 }
        END { if (!blocks && last != "") say(last) }' "$3" >>"$TEST_TALLY.why"
    ;;
summary)
    touch "$TEST_TALLY"
    if [ -s "$TEST_TALLY.why" ]; then
        echo "why:"
        cat "$TEST_TALLY.why"
    fi
    awk '{ printf "  %-40s %6d passed %4d failed\n", $1, $2, $3 }' "$TEST_TALLY"
    awk '{ p += $2; f += $3 } END { printf "%d passed, %d failed\n", p, f }' "$TEST_TALLY"
    ;;
*)
    echo "usage: tally.sh add LABEL PASSED FAILED | check LABEL CMD... | why LABEL LOG | summary" >&2
    exit 64
    ;;
esac
