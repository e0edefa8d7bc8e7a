#!/usr/bin/env bash
# Where the relay's time goes under a steady round trip, by the kernel's own counters
# (issue 21): runs relay-bench's round trip (1,000 devices, one rate, 12 s), attaches perf
# to the relay after 6 s for 5 s, and leaves the result in $OUT.
#
#   scripts/perf-roundtrip.sh stat   [rate] [relay-bin]   context switches, migrations per thread
#   scripts/perf-roundtrip.sh record [rate] [relay-bin]   perf record -g (then: perf report -i $OUT/perf.data)
#   scripts/perf-roundtrip.sh trace  [rate] [relay-bin]   system calls by count and time
#
# Defaults: rate 500, target/release/safestream-relay; OUT=/tmp/perf-roundtrip. Needs perf
# (apt: linux-perf) and target/release/relay-bench. Divide the counts by rate × 5 for
# figures per command. BENCHMARKS.md, 2026-12-07 third sitting.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-stat}; RATE=${2:-500}; BIN=$(realpath "${3:-target/release/safestream-relay}")
OUT=${OUT:-/tmp/perf-roundtrip}
BENCH=target/release/relay-bench
[ -x "$BENCH" ] || { echo "build it first: cargo build --release -p relay -p relay-bench" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }
case $MODE in stat|record|trace) ;; *) echo "mode: stat, record or trace" >&2; exit 2 ;; esac
mkdir -p "$OUT"
"$BENCH" --phases roundtrip --rt-devices 1000 --rates "$RATE" --rt-secs 12 --relay-bin "$BIN" \
  >"$OUT/bench.txt" 2>"$OUT/bench.err" &
BENCH_PID=$!
PID=""
for _ in $(seq 1 60); do
  sleep 0.5
  PID=$(pgrep -n -f "^$BIN" || true)
  [ -n "$PID" ] && break
done
[ -n "$PID" ] || { echo "the relay did not start; see $OUT/bench.err" >&2; wait "$BENCH_PID"; exit 1; }
sleep 6
case $MODE in
  stat) perf stat -e task-clock,context-switches,cpu-migrations -p "$PID" --per-thread -- sleep 5 2>"$OUT/perf.txt" ;;
  record) perf record -F 1999 -g -p "$PID" -o "$OUT/perf.data" -- sleep 5 >/dev/null 2>&1 ;;
  trace) perf trace -s -p "$PID" -- sleep 5 2>"$OUT/perf.txt" >/dev/null ;;
esac
wait "$BENCH_PID"
grep "^| 1000 |" "$OUT/bench.txt" || cat "$OUT/bench.txt"
[ "$MODE" = record ] || grep -v "not counted" "$OUT/perf.txt"
echo "in $OUT"
