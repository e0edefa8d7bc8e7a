#!/usr/bin/env bash
# The relay against the plan's Node Socket.IO server on identical work (issue 21's check:
# relay CPU per command at most half of Socket.IO's at every rate): relay-bench's round trip
# ($DEVICES devices, default 1,000; rates $RATES, default 500,1000,2000; $SECS s each, after
# an unreported $WARMUP s at the first rate, default 10, which every server gets: Node's
# code is slow until its JIT has compiled it, ~1.4 ms per command in its first seconds),
# alternating four servers $ROUNDS times (default 3) in one stretch:
#
#   node     tests/bench/node-baseline/server.mjs, clients speak Socket.IO
#   sio      the relay, clients speak Socket.IO (what the dashboard's socket.io-client does)
#   native   the relay, clients speak its native protocol (what agent-core does)
#   floor    relay-bench's own floor server (tests/bench/src/rtfloor.rs): the relay's stack
#            (tokio on one thread, hyper, tokio-tungstenite, jsonwebtoken) doing the plan's
#            exchange with a HashMap and nothing else; native clients
#
# then prints per server and rate the median CPU per command, achieved rate and parent p99,
# and each server's CPU per command as a fraction of Node's. Raw tables stay in $OUT
# (default /tmp/bench-vs-node). Takes ~50 s per server and round with the defaults.
#
#   scripts/bench-vs-node.sh                  (builds the release relay and relay-bench first,
#                                              installs the baseline's npm packages)
#   ROUNDS=5 RATES=250,500,750 scripts/bench-vs-node.sh
#
# Needs node (>= 18) and npm. BENCHMARKS.md, "2026-12-07, fourth sitting".
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; DEVICES=${DEVICES:-1000}; RATES=${RATES:-500,1000,2000}; SECS=${SECS:-10}
WARMUP=${WARMUP:-10}
OUT=${OUT:-/tmp/bench-vs-node}
[[ $WARMUP =~ ^[0-9]+$ ]] || { echo "WARMUP must be a whole number, not '$WARMUP'" >&2; exit 2; }
for v in ROUNDS DEVICES SECS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive whole number, not '${!v}'" >&2; exit 2; }
done
[[ $RATES =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "RATES must be like 500,1000,2000, not '$RATES'" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are needed" >&2; exit 2; }
cargo build --release -q -p relay -p relay-bench
# npm ci when the installed packages are missing or older than the lock file.
(cd tests/bench/node-baseline &&
  { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --silent; })
echo "node $(node --version); $(nproc) cores" >&2
mkdir -p "$OUT"; rm -f "$OUT"/*.txt
NODE_SERVER=$(realpath tests/bench/node-baseline/server.mjs)
SERVERS=(node sio native floor)
for r in $(seq 1 "$ROUNDS"); do
  # Each round starts one server later, so that no server always runs first.
  for k in 0 1 2 3; do
    s=${SERVERS[$(( (k + r - 1) % 4 ))]}
    case $s in
      node) extra=(--socketio --relay-bin "$NODE_SERVER") ;;
      sio) extra=(--socketio) ;;
      native) extra=() ;;
      floor) extra=(--relay-bin "$(realpath target/release/relay-bench)") ;;
    esac
    echo "round $r/$ROUNDS: $s" >&2
    target/release/relay-bench --phases roundtrip "${extra[@]}" --rt-devices "$DEVICES" \
      --rates "$RATES" --rt-secs "$SECS" --rt-warmup "$WARMUP" >"$OUT/$s-$r.txt" 2>"$OUT/$s-$r.err"
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}  # (server, rate) -> [(cpu, achieved, p99, errors, not completed)] per round
order = ["node", "sio", "native", "floor"]
for s in order:
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{s}-{r}.txt"):
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            if len(c) != 9 or not c[0].isdigit():
                continue
            rate, achieved = int(c[1]), float(c[2])
            p99 = float(c[4].split("/")[1])
            # errors, and commands offered but never completed (counted in the CPU figure's
            # denominator, so a server that drops them would look cheaper)
            lost = int(c[5].split("not completed:")[1].strip(" )"))
            rows.setdefault((s, rate), []).append((float(c[6]), achieved, p99, int(c[5].split()[0]), lost))
med = lambda xs: statistics.median(xs)
print("| server | offered /s | achieved /s (median) | → parent p99 (ms, median) | errors, not completed (all rounds) | CPU per command (ms), each round | median | ÷ Node's |")
print("|---|---|---|---|---|---|---|---|")
for (s, rate), v in sorted(rows.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]))):
    cpu = med([x[0] for x in v])
    node = med([x[0] for x in rows.get(("node", rate), [(float("nan"),)])])
    print(f"| {s} | {rate} | {med([x[1] for x in v]):.0f} | {med([x[2] for x in v]):.1f} | "
          f"{sum(x[3] for x in v)}, {sum(x[4] for x in v)} | {', '.join(f'{x[0]:.3f}' for x in v)} | {cpu:.3f} | {cpu / node:.2f} |")
PY
