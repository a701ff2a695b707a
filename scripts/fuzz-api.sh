#!/bin/sh
# Fuzzes the operator REST API with schemathesis against a live test server.
#
# Starts the test project on a free 127.0.0.1 port with a throwaway SQLite
# database, the demo data and eager Celery (no Redis needed), then runs
# schemathesis from the published OpenAPI schema, authenticated as the demo
# superuser. Fails on any 5xx and on any response that violates the schema.
# Bounded by FUZZ_MAX_EXAMPLES (per operation and phase) and FUZZ_MAX_TIME
# (seconds for the whole run).
set -eu
cd "$(dirname "$0")/.."
root="$(pwd)"
python="$root/.venv/bin/python"
max_examples="${FUZZ_MAX_EXAMPLES:-20}"
max_time="${FUZZ_MAX_TIME:-300}"

work_dir="$(mktemp -d)"
server_pid=""
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work_dir"
}
trap cleanup EXIT INT TERM

cat >"$work_dir/fuzz_settings.py" <<EOF
from openwisp2.settings import *  # noqa

DEBUG = False
DATABASES["default"]["NAME"] = "$work_dir/db.sqlite3"
PRIVATE_STORAGE_ROOT = "$work_dir/private"
MEDIA_ROOT = "$work_dir/media"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
# the fuzzer sends thousands of requests a minute
OPENWISP_MODEM_UPGRADER_API_THROTTLE_RATE = "1000000/minute"
LOGGING = {"version": 1, "root": {"handlers": [], "level": "CRITICAL"}}
EOF

export PYTHONPATH="$work_dir:$root/tests${PYTHONPATH:+:$PYTHONPATH}"
export DJANGO_SETTINGS_MODULE=fuzz_settings
manage() { "$python" "$root/tests/manage.py" "$@"; }

manage migrate --noinput -v 0 2>/dev/null
manage shell -c "from openwisp2.demo import load; load()" >/dev/null 2>&1
# real objects for the {id} operations, and the config pointing at them
manage shell -c "from openwisp2.fuzz_data import load; load('$work_dir/schemathesis.toml')" >/dev/null
token="$(manage shell -c "
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
print(Token.objects.get_or_create(user=get_user_model().objects.get(username='admin'))[0].key)
" 2>/dev/null | tail -n 1)"

port="$("$python" -c "
import socket
s = socket.socket()
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1])
s.close()
")"
base="http://127.0.0.1:$port"
# not through manage(): $! must be the server's own PID for the clean-up
"$python" "$root/tests/manage.py" runserver "127.0.0.1:$port" --noreload \
    >"$work_dir/server.log" 2>&1 &
server_pid=$!

schema_url="$base/api/v1/modem-upgrader/schema/?format=openapi"
tries=0
until curl -fs -o /dev/null "$schema_url" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 60 ] || ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the test server did not start:" >&2
        cat "$work_dir/server.log" >&2
        exit 1
    fi
    sleep 0.5
done

status=0
# from the throwaway directory: schemathesis keeps a cache in the current one
cd "$work_dir"
timeout "$((max_time + 60))" "$root/.venv/bin/schemathesis" \
    --config-file "$work_dir/schemathesis.toml" run "$schema_url" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --request-timeout 30 \
    --seed "${FUZZ_SEED:-20240501}" \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    echo "== server log (last 60 lines) ==" >&2
    tail -n 60 "$work_dir/server.log" >&2
fi
exit "$status"
