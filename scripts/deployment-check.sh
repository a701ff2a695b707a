#!/bin/sh
# The module as operators run it (docs/developer/deployment-check.rst): the
# wheel built from this checkout, installed (not editable) in a virtualenv
# beside openwisp-monitoring, -firmware-upgrader, -network-topology and
# -notifications; a project shaped like ansible-openwisp2's and
# docker-openwisp's (tests/deployment/openwisp2: DEBUG off, compressed
# manifest static storage, PostGIS, Redis, InfluxDB); migrate from zero,
# collectstatic, makemigrations --check, check --deploy, a crawl of every
# admin page and REST endpoint of the module as a superuser and as an
# organization administrator, then the removal: migrate modem_upgrader zero,
# the app out of the settings, a device deleted.
#
# Each step counts in the tally (scripts/tally.sh, labels deployment-*); run
# alone it prints its own "N passed, M failed". The virtualenv is kept in
# .deploycheck/venv and rebuilt when a pin changes (tests/deployment/
# requirements.txt, requirements.txt, setup.py); the wheel is reinstalled on
# every run. Needs Debian's influxdb, redis-server and PostgreSQL/PostGIS
# (scripts/bootstrap.sh installs them). Traffic stays on 127.0.0.1.
# shellcheck disable=SC2317  # the steps are functions run through check()
set -eu
cd "$(dirname "$0")/.."
root="$(pwd)"
state="$root/.deploycheck"
venv="$state/venv"
work="$state/run"
project="$root/tests/deployment"
python="$venv/bin/python"

own_tally=""
if [ -z "${TEST_TALLY:-}" ]; then
    TEST_TALLY=$(mktemp)
    own_tally=1
fi
export TEST_TALLY
status=0
start=$(date +%s)

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS DESCRIPTION COMMAND...: until the command succeeds
wait_for() {
    deadline=$(($(date +%s) + $1))
    description=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "$description: not ready" >&2
            return 1
        fi
        sleep 0.2
    done
}

# check LABEL COMMAND...: one check in the tally (a shell function too; the
# functions stop at their first failing command with "|| return 1")
check() {
    label=$1
    shift
    echo "== $label"
    if "$@"; then
        ./scripts/tally.sh add "deployment-$label" 1 0
    else
        ./scripts/tally.sh add "deployment-$label" 0 1
        status=1
        return 1
    fi
}

redis_pid=""
influx_pid=""
cleanup() {
    [ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null || true
    [ -z "$influx_pid" ] || kill "$influx_pid" 2>/dev/null || true
    PG_DIR="$state/pg" ./scripts/postgres.sh stop
    if [ "$status" -ne 0 ] && [ -f "$work/openwisp2.log" ]; then
        echo "== the deployment's log (last 80 lines of $work/openwisp2.log)"
        tail -n 80 "$work/openwisp2.log"
    fi
    echo "deployment check finished in $(($(date +%s) - start))s (exit $status)"
    if [ -n "$own_tally" ]; then
        ./scripts/tally.sh summary
        rm -f "$TEST_TALLY"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pip, quietly (the index mirrors warn about every package); its log is
# shown when it fails
pip_quiet() {
    "$venv/bin/pip" "$@" >"$state/pip.log" 2>&1 || {
        grep -v "^WARNING: Location" "$state/pip.log" | tail -n 30
        return 1
    }
}

# the virtualenv, only when a pin changed (pip waits on the network); the
# module's own pins are resolved together with the deployment's
stamp="$venv/.pins-$(cat "$project/requirements.txt" requirements.txt setup.py | sha256sum | cut -c1-16)"
virtualenv() {
    rm -rf "$venv" || return 1
    /usr/bin/python3 -m venv "$venv" || return 1
    pip_quiet install -U pip setuptools wheel || return 1
    pip_quiet install -r "$project/requirements.txt" -r requirements.txt || return 1
    touch "$stamp"
}

# the wheel of this checkout (tracked and new files, as they are now), built
# away from the source tree, installed as a user would
wheel() {
    rm -rf "$work/src" "$work/dist" || return 1
    mkdir -p "$work/src" || return 1
    git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$work/src" || return 1
    pip_quiet wheel --no-deps -w "$work/dist" "$work/src" || return 1
    set -- "$work"/dist/openwisp_modem_upgrader-*.whl
    pip_quiet uninstall -y openwisp-modem-upgrader || return 1
    pip_quiet install "$1" -r "$project/requirements.txt" || return 1
    pip_quiet check
}

services() {
    redis_port=$(free_port) || return 1
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        >"$work/redis.log" 2>&1 &
    redis_pid=$!
    influx_port=$(free_port) || return 1
    influx_rpc_port=$(free_port) || return 1
    mkdir -p "$work/influxdb" || return 1
    cat >"$work/influxdb/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$influx_rpc_port"
[meta]
  dir = "$work/influxdb/meta"
[data]
  dir = "$work/influxdb/data"
  wal-dir = "$work/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$influx_port"
  log-enabled = false
[monitor]
  store-enabled = false
EOF
    influxd -config "$work/influxdb/influxdb.conf" >"$work/influxdb.log" 2>&1 &
    influx_pid=$!
    pg_port=$(free_port) || return 1
    rm -rf "$state/pg" || return 1
    PG_DIR="$state/pg" POSTGRES_PORT=$pg_port ./scripts/postgres.sh start >/dev/null || return 1
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c "CREATE DATABASE openwisp2" || return 1
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d openwisp2 \
        -c "CREATE EXTENSION postgis" || return 1
    wait_for 60 redis redis-cli -p "$redis_port" ping || return 1
    wait_for 60 influxdb curl -sf "http://127.0.0.1:$influx_port/ping" || return 1
    export DEPLOYCHECK_REDIS_PORT="$redis_port" DEPLOYCHECK_INFLUXDB_PORT="$influx_port"
    export DEPLOYCHECK_DB_PORT="$pg_port" DEPLOYCHECK_DB_NAME=openwisp2
}

# the deployment's Python, in its project directory; whatever it would send
# off the machine (django-loci's deploy check geocodes an address) meets a
# closed loopback port instead
deployment_python() {
    (
        cd "$project" || exit 1
        closed=http://127.0.0.1:9
        export HTTP_PROXY="$closed" HTTPS_PROXY="$closed" http_proxy="$closed" https_proxy="$closed"
        export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
        exec "$python" "$@"
    )
}
# reported LABEL COMMAND...: a check script that reports its own counts
# (crawl.py); one that dies before it reports counts as one failure
reported() {
    label=$1
    shift
    if ! "$@"; then
        status=1
        grep -q "^deployment-$label " "$TEST_TALLY" ||
            ./scripts/tally.sh add "deployment-$label" 0 1
    fi
}
# a Django command of the deployment
django() {
    deployment_python -m django "$@"
}
crawl() {
    deployment_python crawl.py "$@"
}
without_module() {
    DEPLOYCHECK_WITHOUT_MODULE=1 "$@"
}

mkdir -p "$state"
rm -rf "$work"
mkdir -p "$work"
export DEPLOYCHECK_DIR="$work" DJANGO_SETTINGS_MODULE=openwisp2.settings
DEPLOYCHECK_SECRET_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
export DEPLOYCHECK_SECRET_KEY PYTHONDONTWRITEBYTECODE=1

if [ ! -f "$stamp" ]; then
    check virtualenv virtualenv || exit 1
fi
check wheel wheel || exit 1
check services services || exit 1
check migrate django migrate --noinput -v 0 || exit 1
check collectstatic django collectstatic --noinput -v 0 || true
check makemigrations django makemigrations --check --dry-run || true
check check-deploy django check --deploy --fail-level ERROR || true
# check --deploy's messages: none from this module
reported deploy-messages crawl checks
reported crawl crawl crawl
check migrate-zero django migrate --noinput modem_upgrader zero || exit 1
check check-without-module without_module django check || true
reported removal without_module crawl removed
exit "$status"
