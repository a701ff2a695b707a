#!/bin/sh
# Starts a working demo: Redis, a Celery worker per queue, beat and the OpenWISP admin with
# this module on http://127.0.0.1:${DEMO_PORT:-8000}/admin/ (SpatiaLite
# database in tests/openwisp2/db.sqlite3). Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

port="${DEMO_PORT:-8000}"
redis_port="${DEMO_REDIS_PORT:-6390}"
export REDIS_URL="redis://127.0.0.1:$redis_port"
run_dir="$(pwd)/.demo"
mkdir -p "$run_dir"
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$run_dir" >"$run_dir/redis.log" 2>&1 &
pids="$pids $!"

export DEVICE_REPORT_BASE_URL="http://127.0.0.1:$port"
export DEMO_EMAIL_DIR="$run_dir/mail"
export DEMO_ROUTER_FILE="$run_dir/router.json"
rm -f "$DEMO_ROUTER_FILE"

cd tests
# emulated OpenWrt routers with Telit FN990A modems, so upgrades really run
../.venv/bin/python openwisp2/demo_router.py "$DEMO_ROUTER_FILE" \
    >"$run_dir/router.log" 2>&1 &
pids="$pids $!"
../.venv/bin/python manage.py migrate --noinput -v 0
tries=0
while [ ! -f "$DEMO_ROUTER_FILE" ] && [ $tries -lt 300 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
../.venv/bin/python manage.py shell -c "from openwisp2.demo import load; load()"
# a worker per queue (docs/developer/deployment.rst): image transfers, and
# the engine's short tasks (driver, dispatch, follow-ups) that must not wait
# behind them
../.venv/bin/celery -A openwisp2 worker -Q celery,modem_upgrader -l warning --concurrency 2 \
    -n transfers@%h >"$run_dir/celery.log" 2>&1 &
pids="$pids $!"
../.venv/bin/celery -A openwisp2 worker -Q modem_upgrader_control -l warning --concurrency 1 \
    -n control@%h >"$run_dir/celery-control.log" 2>&1 &
pids="$pids $!"
# beat drives the engine: starts waiting devices, follows the flashes
../.venv/bin/celery -A openwisp2 beat -l warning -s "$run_dir/beat-schedule" \
    >"$run_dir/beat.log" 2>&1 &
pids="$pids $!"
echo "Celery worker logs: $run_dir/celery.log, $run_dir/celery-control.log (beat: $run_dir/beat.log)"
echo "E-mails (notifications) are written to $DEMO_EMAIL_DIR"
echo "Open http://127.0.0.1:$port/admin/ and log in as admin / admin"
echo "Devices: modem columns; Modem Firmware > Modem Compliance; the dashboard chart"
echo "Devices > demo-router > Modem Firmware: choose the build and save to upgrade"
../.venv/bin/python manage.py runserver "127.0.0.1:$port" --noreload
