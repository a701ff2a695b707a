#!/bin/sh
# Runs the whole test suite: the module's tests, the device-script tests, and
# the same module tests again against the swapped models of the sample app,
# and on PostgreSQL/PostGIS as production runs it.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

# browser tests: Debian's chromium, no driver download, no window
export SELENIUM_HEADLESS=1 SE_CHROMEDRIVER=/usr/bin/chromedriver

status=0
echo "== test suite (openwisp_modem_upgrader + device scripts) =="
.venv/bin/python runtests.py "$@" || status=1
echo "== test suite against the swapped sample models (SAMPLE_APP=1) =="
SAMPLE_APP=1 .venv/bin/python runtests.py "$@" || status=1
echo "== test suite on PostgreSQL/PostGIS (DB=postgres) =="
trap './scripts/postgres.sh stop' EXIT
postgres_env=$(./scripts/postgres.sh start) || {
    echo "could not start PostgreSQL (see .pg/server.log)" >&2
    exit 1
}
eval "$postgres_env"
.venv/bin/python runtests.py openwisp_modem_upgrader "$@" || status=1
echo "== real stack: PostgreSQL, Redis, Celery workers, ASGI server, routers =="
.venv/bin/python tests/integration/real_stack.py || status=1
exit $status
