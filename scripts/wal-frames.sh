#!/usr/bin/env bash
# Which b-trees a command's commits write: runs relay-bench's round trip at 500 commands/s,
# copies the relay's SQLite database and WAL mid-run, and counts the current WAL
# generation's frames by page, each page mapped to its table or index with SQLite's
# `dbstat`. Prints frames per commit by b-tree (BENCHMARKS.md, 2026-12-06 third sitting).
#
#   scripts/wal-frames.sh [relay-bin] [extra relay-bench args...]
#
# Needs target/release/relay-bench (cargo build --release -p relay -p relay-bench), python3
# and the sqlite3 shell (installed with apt when missing). About 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/safestream-relay}
shift || true
BENCH=target/release/relay-bench
[ -x "$BENCH" ] || { echo "build it first: cargo build --release -p relay -p relay-bench" >&2; exit 2; }
command -v sqlite3 >/dev/null || apt-get install -y -qq sqlite3 >/dev/null
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
BEFORE=$(ls -d /tmp/.tmp* 2>/dev/null || true)
"$BENCH" --phases roundtrip --rt-devices 1000 --rates 500 --rt-secs 12 --relay-bin "$BIN" "$@" >"$OUT/bench.txt" 2>&1 &
PID=$!
sleep 11.5
WAL=""
for d in /tmp/.tmp*; do
  if [ -f "$d/bench.db-wal" ] && ! grep -qx "$d" <<<"$BEFORE"; then WAL="$d/bench.db-wal"; fi
done
[ -n "$WAL" ] || { echo "no bench.db-wal found" >&2; wait $PID; exit 1; }
mkdir "$OUT/c"
cp "${WAL%-wal}" "$OUT/c/bench.db"
cp "$WAL" "$OUT/c/bench.db-wal"
cp "$WAL" "$OUT/wal"
wait $PID
python3 - "$OUT" <<'PY'
import collections, struct, subprocess, sys
out = sys.argv[1]
wal = open(out + "/wal", "rb").read()
_, _, page_size, _, salt1, salt2 = struct.unpack(">IIIIII", wal[:24])
off, size = 32, 24 + page_size
pages, frames, commits = collections.Counter(), 0, 0
while off + size <= len(wal):
    page, commit, s1, s2 = struct.unpack(">IIII", wal[off:off + 16])
    if (s1, s2) != (salt1, salt2):
        break  # an older generation of the WAL
    pages[page] += 1
    frames += 1
    commits += commit != 0
    off += size
db = out + "/c/bench.db"
subprocess.run(["sqlite3", db, "PRAGMA wal_checkpoint;"], capture_output=True, check=True)
names = {}
for line in subprocess.run(["sqlite3", db, "SELECT name, pageno FROM dbstat;"],
                           capture_output=True, text=True, check=True).stdout.splitlines():
    name, page = line.rsplit("|", 1)
    names[int(page)] = name
by = collections.Counter()
for page, n in pages.items():
    by[names.get(page, "(pages in no b-tree now: freed)")] += n
commits = max(commits, 1)
print(f"WAL frames {frames}, commits {commits}: {frames / commits:.2f} frames per commit")
print("| b-tree | frames | share | per commit |")
print("|---|---|---|---|")
for name, n in by.most_common():
    print(f"| {name} | {n} | {100 * n / frames:.1f} % | {n / commits:.2f} |")
PY
grep "^| 1000" "$OUT/bench.txt" || cat "$OUT/bench.txt"
