#!/bin/sh
# Runs the whole test suite: the module's tests (browser and router tests
# included) and the device-script tests on SpatiaLite; beside them, on
# PostgreSQL/PostGIS (as production runs it), the module's tests against the
# swapped models of the sample app, the real stack and the fault run.
# Closes with one line: "N passed, M failed" over everything it ran.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

# browser tests: Debian's chromium, no driver download, no window
export SELENIUM_HEADLESS=1 SE_CHROMEDRIVER=/usr/bin/chromedriver
# .ci/run passes its own tally to add its checks to the same count
own_tally=""
if [ -z "${TEST_TALLY:-}" ]; then
    TEST_TALLY=$(mktemp)
    own_tally=1
fi
export TEST_TALLY

status=0
# run_suite LABEL COMMAND...: a suite that dies before reporting counts as failed
run_suite() {
    label=$1
    shift
    if ! TEST_TALLY_LABEL=$label "$@"; then
        status=1
        grep -q "^$label " "$TEST_TALLY" || ./scripts/tally.sh add "$label" 0 1
    fi
}

# Four processes side by side, their outputs shown one after the other:
# - on SpatiaLite, the module's tests without routers, and the device-script
#   tests (CPU-bound, short);
# - on SpatiaLite, the tests with emulated routers behind a live server
#   (tag "router", browser tests included), in two processes: they mostly
#   wait on flashes, timeouts and link outages, not on a core;
# - on PostgreSQL/PostGIS (as production runs it), the module's tests
#   against the swapped models of the sample app, with the real stack beside
#   them (mostly waiting on routers), then the fault run.
logs=$(mktemp -d)
trap './scripts/postgres.sh stop; rm -rf "$logs"' EXIT
(
    run_suite spatialite .venv/bin/python runtests.py openwisp_modem_upgrader device \
        --exclude-tag router "$@"
    # .ci/run starts its API fuzzing once a core is free: this CPU-bound
    # run is over, or the PostgreSQL runs below are
    [ -z "${SUITES_DONE_FILE:-}" ] || touch "$SUITES_DONE_FILE"
    exit $status
) >"$logs/spatialite.log" 2>&1 &
spatialite_pid=$!
(
    run_suite spatialite-routers .venv/bin/python runtests.py openwisp_modem_upgrader \
        --tag router --exclude-tag long-router "$@"
    exit $status
) >"$logs/spatialite-routers.log" 2>&1 &
routers_pid=$!
(
    run_suite spatialite-long-routers .venv/bin/python runtests.py \
        openwisp_modem_upgrader --tag long-router "$@"
    exit $status
) >"$logs/spatialite-long-routers.log" 2>&1 &
long_routers_pid=$!

postgres_env=$(./scripts/postgres.sh start) || {
    echo "could not start PostgreSQL (see .pg/server.log)" >&2
    ./scripts/tally.sh add postgres-start 0 1
    status=1
}
if [ -n "$postgres_env" ]; then
    eval "$postgres_env"
    # the router tests run once, above: the real stack runs the engine on
    # PostgreSQL; it has a database of its own on the same cluster
    (
        run_suite real-stack .venv/bin/python tests/integration/real_stack.py
        exit $status
    ) >"$logs/real-stack.log" 2>&1 &
    real_stack_pid=$!
    run_suite postgres-sample-app env SAMPLE_APP=1 .venv/bin/python runtests.py \
        openwisp_modem_upgrader --exclude-tag selenium --exclude-tag router \
        "$@" >"$logs/postgres.log" 2>&1
    wait "$real_stack_pid" || status=1
    # restarts the PostgreSQL cluster: nothing else may use it meanwhile
    run_suite fault-stack .venv/bin/python tests/integration/fault_stack.py \
        >"$logs/fault-stack.log" 2>&1
fi
# one core is free now (the SpatiaLite runs may still go on): .ci/run's API
# fuzzing may start
[ -z "${SUITES_DONE_FILE:-}" ] || touch "$SUITES_DONE_FILE"
wait "$spatialite_pid" || status=1
wait "$routers_pid" || status=1
wait "$long_routers_pid" || status=1

# why a failed suite failed, printed again just above the closing line
for suite in spatialite spatialite-routers spatialite-long-routers \
    postgres-sample-app:postgres real-stack fault-stack; do
    ./scripts/tally.sh why "${suite%%:*}" "$logs/${suite#*:}.log"
done

echo "== on SpatiaLite: the module's tests without routers, device scripts =="
cat "$logs/spatialite.log"
echo "== on SpatiaLite: emulated routers behind a live server, browser tests =="
cat "$logs/spatialite-routers.log"
echo "== on SpatiaLite: emulated routers, the long waits (link drops, health, resume, two modems) =="
cat "$logs/spatialite-long-routers.log"
echo "== on PostgreSQL/PostGIS, swapped sample models (SAMPLE_APP=1) =="
[ ! -f "$logs/postgres.log" ] || cat "$logs/postgres.log"
echo "== real stack: PostgreSQL, Redis, Celery workers, ASGI server, routers =="
[ ! -f "$logs/real-stack.log" ] || cat "$logs/real-stack.log"
echo "== faults on the real stack: Redis, PostgreSQL, ASGI, worker, beat, router =="
[ ! -f "$logs/fault-stack.log" ] || cat "$logs/fault-stack.log"

if [ -n "$own_tally" ]; then
    ./scripts/tally.sh summary
    rm -f "$TEST_TALLY" "$TEST_TALLY.why"
fi
exit $status
