#!/usr/bin/env bash
# Where the relay's time goes under a steady round trip, by the kernel's own counters
# (issue 21): runs relay-bench's round trip ($DEVICES devices, default 1,000; one rate), attaches perf
# to the relay after 6 s for $WINDOW s (default 5), and leaves the result in $OUT.
#
#   scripts/perf-roundtrip.sh stat   [rate] [relay-bin]   context switches, migrations per thread
#   scripts/perf-roundtrip.sh record [rate] [relay-bin]   perf record -g (then: perf report -i $OUT/perf.data)
#   scripts/perf-roundtrip.sh trace  [rate] [relay-bin]   system calls by count and time, and
#                                                         per command (all threads)
#   DEVICES=100 WINDOW=20 scripts/perf-roundtrip.sh trace 10
#                    the kernel side of the regression guard (profile-command.sh's workload):
#                    at 10/s every command is alone, so its system calls are a stable count
#                    (heartbeats included: ~0.5 ping and pong per command at 100 devices)
#
# Defaults: rate 500, target/release/safestream-relay; OUT=/tmp/perf-roundtrip. Needs perf
# (apt: linux-perf) and target/release/relay-bench. Divide the counts by rate × WINDOW
# for figures per command (`trace` prints them). BENCHMARKS.md, 2026-12-07 third sitting.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-stat}; RATE=${2:-500}; BIN=$(realpath "${3:-target/release/safestream-relay}")
OUT=${OUT:-/tmp/perf-roundtrip}
WINDOW=${WINDOW:-5}
DEVICES=${DEVICES:-1000}
BENCH=target/release/relay-bench
[ -x "$BENCH" ] || { echo "build it first: cargo build --release -p relay -p relay-bench" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }
case $MODE in stat|record|trace) ;; *) echo "mode: stat, record or trace" >&2; exit 2 ;; esac
for v in RATE WINDOW DEVICES; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive whole number, not '${!v}'" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "no relay binary at $BIN" >&2; exit 2; }
mkdir -p "$OUT"
"$BENCH" --phases roundtrip --rt-devices "$DEVICES" --rates "$RATE" --rt-secs $((WINDOW + 7)) --relay-bin "$BIN" \
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
  stat) perf stat -e task-clock,context-switches,cpu-migrations -p "$PID" --per-thread -- sleep "$WINDOW" 2>"$OUT/perf.txt" ;;
  record) perf record -F 1999 -g -p "$PID" -o "$OUT/perf.data" -- sleep "$WINDOW" >/dev/null 2>&1 ;;
  trace) perf trace -s -p "$PID" -- sleep "$WINDOW" 2>"$OUT/perf.txt" >/dev/null ;;
esac
wait "$BENCH_PID"
grep "^| $DEVICES |" "$OUT/bench.txt" || cat "$OUT/bench.txt"
[ "$MODE" = stat ] && grep -v "not counted" "$OUT/perf.txt"
if [ "$MODE" = trace ]; then
  python3 - "$OUT/perf.txt" "$((RATE * WINDOW))" <<'PY'
import collections, re, sys
calls = collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r"\s+([a-z_0-9]+)\s+(\d+)\s+\d+\s+[\d.]+", line)
    if m:
        calls[m.group(1)] += int(m.group(2))
n = int(sys.argv[2])
print(f"system calls per command ({n} commands scheduled in the window, all threads):")
print("| call | per command |\n|---|---|")
for name, c in calls.most_common():
    if c / n >= 0.05:
        print(f"| `{name}` | {c / n:.2f} |")
print(f"| all | {sum(calls.values()) / n:.1f} |")
PY
fi
echo "in $OUT"
