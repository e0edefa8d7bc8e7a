#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on loopback for the tests and the cluster benchmark.
#
#   eval "$(scripts/services.sh start)"   # starts them (or reuses running ones), prints exports
#   scripts/services.sh stop
#
# PostgreSQL: a private cluster in $SS_SERVICES_DIR/pg (default /tmp/safestream-services) on
# port 55432, trust auth on loopback only, fsync off (test data is disposable). Redis: the tests
# start their own redis-server processes (they need to restart Redis); this script only checks
# the binary is there. Both come from Debian's postgresql and redis-server packages.
set -euo pipefail
DIR="${SS_SERVICES_DIR:-/tmp/safestream-services}"
PGPORT="${SS_PG_PORT:-55432}"
PGDATA="$DIR/pg"
log() { echo "services: $*" >&2; }

pg_bin() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$b" ] || [ ! -x "$b/pg_ctl" ]; then
    log "PostgreSQL server binaries not found (apt-get install postgresql)"; exit 1
  fi
  echo "$b"
}

as_pg() {
  # initdb and postgres refuse to run as root: use the postgres user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  command -v redis-server >/dev/null || { log "redis-server not found (apt-get install redis-server)"; exit 1; }
  local bin; bin=$(pg_bin)
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; exit 1; }
    fi
    as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$DIR/pg.log" -w -t 60 start -o \
      "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$DIR \
       -c max_connections=600 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null || { tail -20 "$DIR/pg.log" >&2; exit 1; }
    log "PostgreSQL started on 127.0.0.1:$PGPORT"
  else
    log "PostgreSQL already running on 127.0.0.1:$PGPORT"
  fi
  echo "export SAFESTREAM_TEST_PG=postgres://postgres@127.0.0.1:$PGPORT/postgres"
  echo "export SAFESTREAM_TEST_REDIS_SERVER=$(command -v redis-server)"
}

stop() {
  local bin; bin=$(pg_bin)
  if [ -f "$PGDATA/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null && log "PostgreSQL stopped"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
