#!/usr/bin/env bash
# Where a command's CPU goes (issue 21, step 1): run relay-bench's round trip against a relay
# under valgrind's callgrind and split the relay's instruction counts into setup / commands /
# shutdown parts, so the "commands" part holds only the steady round trips.
#
#   scripts/profile-command.sh [rate] [secs] [RUST_LOG]      (defaults: 10 30 warn)
#   BENCH_ARGS=--webhook-sink scripts/profile-command.sh     (the same with webhooks on)
#
# relay-bench starts the relay with RUST_LOG=warn; pass `info` to profile the default level
# (two INFO lines per command). Needs target/release/relay-bench (cargo build --release -p relay-bench);
# builds the relay with line tables into /tmp/prof-target (a few minutes, once; REBUILD=1 to
# rebuild after a change; rm -rf /tmp/prof-target when done, it is large; PROF_TARGET and
# RELAY_BENCH point at another build and relay-bench, e.g. a baseline to compare with).
# Output in $OUT (default /tmp/prof-command-<level>): callgrind.out.<part>-<thread> (part 2 is
# the round trips), summary.txt (the tables in BENCHMARKS.md), valgrind.log (valgrind's and
# the relay's stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-10}; SECS=${2:-30}; LOG=${3:-warn}
DEVICES=100
OUT=${OUT:-/tmp/prof-command-$LOG}
TARGET=${PROF_TARGET:-/tmp/prof-target}
BENCH_BIN=${RELAY_BENCH:-target/release/relay-bench}
rm -rf "$OUT"; mkdir -p "$OUT"

if [ ! -x "$TARGET/release/safestream-relay" ] || [ "${REBUILD:-0}" = 1 ]; then
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p relay --target-dir "$TARGET"
fi
[ -x "$BENCH_BIN" ] || cargo build --release -p relay-bench

# relay-bench clears the environment and SIGKILLs its relay at the end, which would lose
# callgrind's output: the wrapper keeps valgrind as a child (it survives the SIGKILL of the
# wrapper) and this script stops it with SIGTERM, on which the relay shuts down cleanly.
cat > "$OUT/relay.sh" <<W
#!/bin/bash
echo "\$SAFESTREAM_LISTEN" > "$OUT/listen"; echo "\$SAFESTREAM_DB" > "$OUT/db"
/usr/bin/valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/callgrind.out" \
  $TARGET/release/safestream-relay "\$@" 2>>"$OUT/valgrind.log" &
echo \$! > "$OUT/vg.pid"
wait
W
chmod +x "$OUT/relay.sh"

"$BENCH_BIN" --relay-bin "$OUT/relay.sh" --phases roundtrip \
  --rt-devices $DEVICES --rates "$RATE" --rt-secs "$SECS" --relay-env "RUST_LOG=$LOG" ${BENCH_ARGS:-} \
  > "$OUT/bench.txt" 2> "$OUT/bench.err" &
BENCH=$!

until [ -s "$OUT/vg.pid" ] && [ -s "$OUT/db" ]; do sleep 0.2; done
VG=$(cat "$OUT/vg.pid"); DB=$(cat "$OUT/db")
# Part 1 (setup: registrations, pairing, socket connects) ends at the first command row.
until [ "$(sqlite3 "file:$DB?mode=ro" 'select count(*) from commands' 2>/dev/null || echo 0)" -gt 0 ]; do
  sleep 0.05
done
callgrind_control -d "$VG" > /dev/null
# Part 2 (the round trips) ends when relay-bench prints its row (all commands completed).
until grep -q "^| $DEVICES | $RATE |" "$OUT/bench.txt"; do
  kill -0 $BENCH 2>/dev/null || { cat "$OUT/bench.err"; exit 1; }
  sleep 0.1
done
callgrind_control -d "$VG" > /dev/null
wait $BENCH || true
kill -TERM "$VG"; while kill -0 "$VG" 2>/dev/null; do sleep 0.2; done   # part 3: shutdown

cat "$OUT/bench.txt"
ls "$OUT"/callgrind.out*
P2="$OUT/callgrind.out.2"
python3 - "$OUT" 2 <<'PY' | tee "$OUT/summary.txt"
import re, sys, glob, collections
out, part, ncmd_arg = sys.argv[1], sys.argv[2], None
files = sorted(glob.glob(f"{out}/callgrind.out.{part}-*"))
base = lambda n: re.sub(r"'\d+$", "", n)
def load(path):
    fnames, flnames = {}, {}
    def res(tab, v):
        m = re.match(r"\((\d+)\)(?: (.*))?", v)
        if not m: return v
        if m.group(2) is not None: tab[m.group(1)] = m.group(2)
        return tab[m.group(1)]
    selfc = collections.Counter(); selffile = collections.Counter(); edges = collections.Counter()
    calls = collections.Counter(); fn = cfn = fl = fi = None; pend = None
    for line in open(path):
        if not line.strip(): continue
        c = line[0]
        if c.isdigit() or c in "+-*":
            p = line.split()
            if len(p) < 2: continue
            v = int(p[1])
            if pend is not None:
                edges[(base(fn), base(pend[0]))] += v; calls[base(pend[0])] += pend[1]; pend = None
            else:
                selfc[base(fn)] += v; selffile[(fi or fl, base(fn))] += v
            continue
        k, _, v = line.rstrip("\n").partition("=")
        if k == "fn": fn = res(fnames, v); fi = None
        elif k == "fl": fl = res(flnames, v); fi = None
        elif k in ("fi", "fe"): fi = res(flnames, v)
        elif k in ("cfi", "cfl"): res(flnames, v)
        elif k == "cfn": cfn = res(fnames, v)
        elif k == "calls": pend = (cfn, int(v.split()[0]))
    return selfc, selffile, edges, calls
def incl(selfc, edges, pred):
    # cost of functions matching pred, plus everything they call that does not match pred
    t = sum(v for f, v in selfc.items() if pred(f))
    t += sum(v for (a, b), v in edges.items() if pred(a) and not pred(b))
    return t
threads = []
allself = collections.Counter(); allfile = collections.Counter(); allcalls = collections.Counter()
for f in files:
    s, sf, e, c = load(f)
    names = " ".join(s.keys()) + " " + " ".join(b for (_, b) in e.keys())
    if "multi_thread::worker::run" in names: kind = "tokio workers (SQLite writes included)"
    elif "checkpoint" in names: kind = "store-checkpoint thread (WAL checkpoints)"
    elif "reader_loop" in names: kind = "store-reader threads"
    else: kind = "other threads"
    threads.append((kind, f, s, sf, e, c))
    allself.update(s); allfile.update(sf); allcalls.update(c)
total = sum(allself.values())
creates = allcalls.get("relay::http::commands::create_command::{{closure}}", 0) or allcalls.get("core::ptr::drop_in_place<relay::http::commands::create_command::{{closure}}>", 0)
acks = allcalls.get("core::ptr::drop_in_place<relay::http::commands::ack_command::{{closure}}>", 0)
n = max(acks, 1)
print(f"part {part}: {total:,} instructions; {creates} POSTs and {acks} PATCHes completed in it; per command = / {n}")
def row(label, v): print(f"| {label} | {v/n:,.0f} | {100*v/total:.1f}% |")
print("\n### by thread\n| thread | instructions per command | share |\n|---|---|---|")
bykind = collections.Counter()
for kind, f, s, *_ in threads: bykind[kind] += sum(s.values())
for k, v in bykind.most_common(): row(k, v)
row("**total**", total)
# stages. SQLite writes run on the tokio workers (sqlite_writer::Writer, flat combining):
# a batch is everything under WriterState::run_batch, whichever thread ran it.
print("\n### by stage\n| stage | instructions per command | share |\n|---|---|---|")
T = [t for t in threads if t[0].startswith("tokio workers")]
def sum_incl(ts, pred): return sum(incl(t[2], t[4], pred) for t in ts)
stages = collections.OrderedDict()
is_batch = lambda f: f.startswith("relay::store::sqlite_writer::WriterState::run_batch")
wt = sum_incl(T, is_batch)
# The batch's own statements (BEGIN/COMMIT/SAVEPOINT/RELEASE): its calls into SQLite,
# directly or through rusqlite (execute, and the reset when a cached statement is dropped).
sqlite_callee = lambda b: b in ("sqlite3_step", "sqlite3_prepare_v2", "sqlite3_reset") or b.startswith(("rusqlite::", "core::ptr::drop_in_place<rusqlite::"))
commit = sum(v for t in T for (a, b), v in t[4].items() if is_batch(a) and sqlite_callee(b))
flush = sum_incl(T, lambda f: f.startswith("relay::store::events::<impl relay::store::write::W>::flush_events"))
stages["writes: BEGIN/COMMIT (and SAVEPOINT/RELEASE when a batch has several jobs): WAL frames, checksums, wal-index"] = commit
stages["writes: event log (events INSERTs, positions, event JSON)"] = flush
stages["writes: the jobs' own statements, Command/JSON building, status frames, publishing, malloc"] = wt - commit - flush
tt = sum(sum(t[2].values()) for t in T) - wt
auth = sum_incl(T, lambda f: "relay::http::Caller as axum_core::extract::FromRequestParts" in f)
body = sum_incl(T, lambda f: "relay::http::JsonBody as axum_core::extract::FromRequest" in f)
is_ws = lambda f: f.startswith("relay::ws::") or "tungstenite" in f
# A session records a delivery with a write (and may run others' jobs in that batch): writes
# are counted above, so what the sessions call into the writer is taken out here.
into_writes = sum(v for t in T for (a, b), v in t[4].items() if is_ws(a) and b.startswith("relay::store::sqlite_writer::Writer::submit"))
ws = sum_incl(T, is_ws) - into_writes
hub = sum_incl(T, lambda f: f.startswith("relay::hub::") or f.startswith("<relay::bus::"))
stages["async: auth extractor (JWT HS256 verify, token/device lookups)"] = auth
stages["async: JSON body extractor (read body, serde_json parse)"] = body
stages["async: WebSocket sessions (frames to device and guardians, ws writes, frame reads; the DELIVERED write they start is under writes)"] = ws
stages["async: hub/bus fan-out after commit"] = hub
stages["async: the rest (hyper HTTP/1 parse+encode, axum/tower routing, handler bodies, reads, tokio scheduling, epoll)"] = tt - auth - body - ws - hub
for k in ("store-reader threads", "store-checkpoint thread (WAL checkpoints)", "other threads"):
    if bykind[k]: stages[k] = bykind[k]
for k, v in stages.items(): row(k, v)
row("**total**", total)
print("\n### by code (self cost, all threads)\n| code | instructions per command | share |\n|---|---|---|")
cat = collections.Counter()
for (fl, fn), v in allfile.items():
    fl = fl or ""
    if "sqlite3.c" in fl: k = "SQLite (C)"
    elif re.search(r"malloc|free|^realloc|memalign", fn) and "sqlite" not in fn: k = "malloc/free (glibc)"
    elif re.match(r"__mem(set|cpy|move|cmp)|__str", fn): k = "memset/memcpy/memcmp (glibc)"
    elif "pthread" in fn or "futex" in fn or "lll_" in fn: k = "pthread mutex/condvar (glibc)"
    elif "sha2" in fl or "ring" in fl or "sha256" in fn or "hmac" in fl or "jsonwebtoken" in fl or "base64" in fl: k = "JWT: SHA-256/HMAC/base64"
    elif "serde_json" in fl or "serde_core" in fl or "serde-" in fl: k = "serde_json"
    elif "rusqlite" in fl or "hashlink" in fl: k = "rusqlite"
    elif "tracing" in fl or "nu-ansi-term" in fl or "nu_ansi_term" in fn: k = "tracing"
    elif "tokio-1" in fl or "mio-" in fl: k = "tokio/mio"
    elif re.search(r"/(hyper|http|httparse|h2|bytes)-", "/" + fl) or fl.startswith(("hyper", "http", "httparse", "bytes")) or "/hyper-" in fl or "/http-" in fl or "/httparse-" in fl or "/bytes-" in fl: k = "hyper/http/bytes"
    elif "/axum" in fl or "/tower" in fl or "matchit" in fl: k = "axum/tower"
    elif "tungstenite" in fl: k = "tungstenite"
    elif "/work/main/" in fl: k = "relay + wire (own code)"
    elif "/library/" in fl or fl.startswith(("alloc/", "core/", "std/")): k = "Rust std (fmt, collections, str; inlined)"
    else: k = "other (" + (fl.split("/")[-1] if fl else "?") + ")" if False else "other crates/libs"
    cat[k] += v
for k, v in cat.most_common(): row(k, v)
row("**total**", total)
PY
N=$(grep -o "and [0-9]* PATCHes" "$OUT/summary.txt" | grep -o "[0-9]*")
python3 - "$OUT" "$N" <<'PY' | tee -a "$OUT/summary.txt"
import re, sys, collections
paths=__import__('glob').glob(sys.argv[1]+'/callgrind.out.2-*'); target='relay/src/store/commands.rs'
# Each transition's source lines: from its function's line to the line before the next item
# at the same indentation (found afresh, so edits to commands.rs do not skew the split).
src=open(target).read().split('\n')
def span(pat):
    start=next(i for i,l in enumerate(src) if re.match(pat,l))
    indent=len(src[start])-len(src[start].lstrip())
    end=next((i for i in range(start+1,len(src)) if src[i].strip() and len(src[i])-len(src[i].lstrip())<=indent
              and not src[i].lstrip().startswith(('}',')','//','#'))), len(src))
    return (start+1,end)
ranges=[span(r'\s*pub async fn create_command\b')+('create',), span(r'fn deliver\b')+('delivered',),
        span(r'\s*pub async fn ack_command\b')+('ack',)]
fl=fi=None; flnames={}; pend=False; out=collections.Counter(); last=0
def res(v):
    m=re.match(r"\((\d+)\)(?: (.*))?", v)
    if not m: return v
    if m.group(2) is not None: flnames[m.group(1)]=m.group(2)
    return flnames[m.group(1)]
for path in paths:
  flnames.clear(); fl=fi=None; last=0
  for line in open(path):
      if not line.strip(): continue
      c=line[0]
      if c.isdigit() or c in '+-*':
          cur=fi or fl
          p=line.split()
          t=p[0]
          if t=='*': pass
          elif t[0] in '+-': last+=int(t)
          else: last=int(t)
          if cur and cur.endswith(target) and len(p)>=2:
              if True:
                  ln=last
                  for a,b,name in ranges:
                      if a<=ln<=b: out[name]+=int(p[1])
          pend=False; continue
      k,_,v=line.rstrip('\n').partition('=')
      if k=='fl': fl=res(v); fi=None
      elif k=='fn': fi=None
      elif k in ('fi','fe'): fi=res(v)
      elif k in ('cfi','cfl'): res(v)
n=int(sys.argv[2])
print("\nwrite job closures by transition (source lines of relay/src/store/commands.rs, calls included; event log and COMMIT not included), per command:")
for k,v in out.items(): print(f"  {k}: {v/n:,.0f}")
PY
echo "callgrind parts (per thread) in $OUT; remove it when done: rm -rf $OUT"
