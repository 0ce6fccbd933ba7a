#!/usr/bin/env bash
# Run a command (the test suite) with a PostgreSQL server for the audit tests.
#
#   tests/services/with_postgres.sh .venv/bin/pytest [args...]
#
# Uses the server at CDS_TEST_POSTGRES_URL (default: this machine's, postgresql://postgres@127.0.0.1:5432/postgres)
# when it answers. Otherwise starts a throwaway cluster on a free loopback port from Debian's packages
# (installing `postgresql` with apt-get if its binaries are missing) and stops and deletes it when the
# command ends, whatever the outcome. The command gets CDS_TEST_POSTGRES_URL, or CDS_TEST_POSTGRES_SKIP
# with the reason when no server could be had: the PostgreSQL tests (audit, and every gunicorn test, whose
# audit store is PostgreSQL) then fail when CI is set and skip elsewhere, saying why (tests/servers.py require).
# Exits with the command's status.
set -uo pipefail

PY="${PYTHON:-python3}"
URL="${CDS_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
DATADIR=""
PG_BIN=""
STOP_CLUSTERS=()

say() { echo "with_postgres: $*" >&2; }

can_connect() {
    "$PY" -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' "$1" >/dev/null 2>&1
}

find_bin() {
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || { SKIP="PostgreSQL is not installed and apt-get is not available"; return 1; }
    [ "$(id -u)" = 0 ] || { SKIP="PostgreSQL is not installed and installing it needs root"; return 1; }
    local before
    before="$(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1 "/" $2}')"
    say "installing postgresql from Debian's packages"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
            || { SKIP="apt-get install postgresql failed"; return 1; }
    fi
    # The package may start its own cluster: it was not running before us, so it stops with us.
    local cluster
    for cluster in $(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1 "/" $2}'); do
        case " $before " in *" $cluster "*) ;; *) STOP_CLUSTERS+=("$cluster") ;; esac
    done
    find_bin || { SKIP="postgresql installed but initdb/pg_ctl not found"; return 1; }
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_own_cluster() {
    local port
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    DATADIR="$(mktemp -d /tmp/dexfree-pg.XXXXXX)"
    [ "$(id -u)" = 0 ] && chown postgres: "$DATADIR"
    as_postgres "$PG_BIN/initdb" -D "$DATADIR/data" -U postgres -A trust -E UTF8 --no-sync >"$DATADIR/initdb.log" 2>&1 \
        || { SKIP="initdb failed (see $DATADIR/initdb.log)"; return 1; }
    as_postgres "$PG_BIN/pg_ctl" -D "$DATADIR/data" -l "$DATADIR/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $DATADIR -c fsync=off" >/dev/null 2>&1 \
        || { SKIP="the PostgreSQL server did not start (see $DATADIR/server.log)"; return 1; }
    URL="postgresql://postgres@127.0.0.1:$port/postgres"
    say "started a throwaway PostgreSQL on 127.0.0.1:$port"
}

cleanup() {
    if [ -n "$DATADIR" ]; then
        if [ -f "$DATADIR/data/postmaster.pid" ]; then
            as_postgres "$PG_BIN/pg_ctl" -D "$DATADIR/data" -m fast -w stop >/dev/null 2>&1
            say "stopped the throwaway PostgreSQL"
        fi
        rm -rf "$DATADIR"
    fi
    local cluster
    for cluster in "${STOP_CLUSTERS[@]}"; do
        pg_ctlcluster --skip-systemctl-redirect "${cluster%/*}" "${cluster#*/}" stop >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SKIP=""
if ! can_connect "$URL"; then
    say "no PostgreSQL answers at the usual address; starting one for this run"
    if { find_bin || install_postgres; } && start_own_cluster && ! can_connect "$URL"; then
        SKIP="the throwaway PostgreSQL does not accept connections"
    fi
fi

if [ -n "$SKIP" ]; then
    say "no PostgreSQL for the tests (they fail under CI, skip elsewhere): $SKIP"
    export CDS_TEST_POSTGRES_SKIP="$SKIP"
    unset CDS_TEST_POSTGRES_URL
else
    export CDS_TEST_POSTGRES_URL="$URL"
    unset CDS_TEST_POSTGRES_SKIP
fi

"$@"
exit $?
