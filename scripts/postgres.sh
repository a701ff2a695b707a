#!/bin/sh
# Starts (or stops) a private PostgreSQL/PostGIS cluster for the tests:
#   eval "$(scripts/postgres.sh start)"   # prints DB=postgres POSTGRES_* exports
#   scripts/postgres.sh stop
# The cluster lives in .pg/ (or $PG_DIR; owned by the postgres user, socket
# in run/ there), listens on 127.0.0.1:${POSTGRES_PORT:-55432} only, trusts
# local logins.
set -eu
cd "$(dirname "$0")/.."
PG_BIN=/usr/lib/postgresql/15/bin
base="${PG_DIR:-$(pwd)/.pg}"
data="$base/data"
run="$base/run"
port="${POSTGRES_PORT:-55432}"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else su postgres -s /bin/sh -c "$*"; fi
}

case "${1:-}" in
start)
    mkdir -p "$run"
    chown -R postgres "$base"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_postgres "$PG_BIN/initdb -D '$data' -A trust -U postgres" >/dev/null
    fi
    if ! as_postgres "$PG_BIN/pg_ctl -D '$data' status" >/dev/null 2>&1; then
        as_postgres "$PG_BIN/pg_ctl -D '$data' -w -l '$base/server.log' \
            -o \"-p $port -k $run -c listen_addresses=127.0.0.1 -c fsync=off\" start" \
            >/dev/null
    fi
    echo "export DB=postgres POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=$port POSTGRES_USER=postgres"
    ;;
stop)
    as_postgres "$PG_BIN/pg_ctl -D '$data' -m fast stop" >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 64
    ;;
esac
