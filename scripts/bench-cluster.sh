#!/usr/bin/env bash
# The round trip on one node (SQLite), one node (PostgreSQL) and three nodes (PostgreSQL +
# Redis), in one run, each repeated: what the bus and the database cost (BENCHMARKS.md).
#
#   scripts/bench-cluster.sh [RATES] [REPEATS]      # default: 500 3
#
# Starts its own PostgreSQL with default (durable) settings in /tmp/safestream-bench-pg on
# 127.0.0.1:55433 and a redis-server on 127.0.0.1:6391, and stops both at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${1:-500}"
REPEATS="${2:-3}"
DIR=/tmp/safestream-bench-pg
PORT=55433
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cargo build --release -q -p relay -p relay-bench
mkdir -p "$DIR"; [ "$(id -u)" = 0 ] && chown postgres "$DIR"
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >/dev/null
fi
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start -o \
  "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR -c max_connections=300" >/dev/null
redis-server --port 6391 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
trap 'redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true; as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null' EXIT
PG="postgres://postgres@127.0.0.1:$PORT/postgres"
RB=target/release/relay-bench
COMMON=(--phases roundtrip --rt-devices 1000 --rates "$RATES" --rt-secs 10)
for i in $(seq "$REPEATS"); do
  echo "### run $i: one node, SQLite"
  "$RB" "${COMMON[@]}" | grep '^| 1000'
  db="bench_one_${i}_$$"
  psql -q "$PG" -c "CREATE DATABASE $db"
  echo "### run $i: one node, PostgreSQL"
  "$RB" "${COMMON[@]}" --relay-env "SAFESTREAM_DB=postgres://postgres@127.0.0.1:$PORT/$db" 2>/dev/null | grep '^| 1000'
  echo "### run $i: three nodes, PostgreSQL + Redis"
  "$RB" "${COMMON[@]}" --nodes 3 --pg "$PG" --redis redis://127.0.0.1:6391/ | grep '^| 1000'
done
