#!/usr/bin/env bash
# A model of the WAL frames a command costs, today and in the "append-only record per
# transition, folded into the tables in batches" shape (issue 21; BENCHMARKS.md, 2026-12-07
# third sitting, "Why the remaining gaps"). Builds the relay's SQLite schema from its
# migrations (the same statements the relay runs at start), then replays a round trip's
# writes in Python's sqlite3 (WAL, 4 KiB pages, no checkpoints, 50,000 commands of history
# first) and counts WAL frames per command. "today" reproduces scripts/wal-frames.sh's
# measured figure (~2 commits of ~5.4 frames).
#
#   scripts/wal-model.sh        (~20 s; needs python3 and the sqlite3 shell, installed with apt when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sqlite3 >/dev/null || apt-get install -y -qq sqlite3 >/dev/null
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for f in relay/migrations/sqlite/*.sql; do
  sqlite3 "$OUT/relay.db" <"$f" || { echo "migration $f failed" >&2; exit 1; }
done
sqlite3 "$OUT/relay.db" .schema | grep -v sqlite_sequence >"$OUT/schema.sql"
python3 - "$OUT" <<'PY'
import sys, sqlite3, os, random, json
SCHEMA = open(sys.argv[1] + '/schema.sql').read()
def fresh(path):
    for s in ('', '-wal', '-shm'):
        try: os.remove(path + s)
        except FileNotFoundError: pass
    c = sqlite3.connect(path, isolation_level=None)
    c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA wal_autocheckpoint=0')
    c.executescript(SCHEMA)
    c.execute('CREATE TABLE log (id INTEGER PRIMARY KEY, rec BLOB NOT NULL)')
    return c
def frames(path):
    return (os.path.getsize(path + '-wal') - 32) // (4096 + 24)
CH, PAR = 1000, 200
now = [1796649093113]
def uid():
    # time-ordered like UUIDv7
    now[0] += 2
    return f"{now[0]:012x}-{random.getrandbits(64):016x}"
seq = {}
def event(c, user, ev, data):
    seq[user] = seq.get(user, 0) + 1
    c.execute('INSERT INTO events (user_id, seq, event, data, created_at) VALUES (?,?,?,?,?)', (user, seq[user], ev, data, now[0]))
def create(c, cid, k):
    child = f"c{k % CH}"; parent = f"p{(k % CH) % PAR}"
    c.execute("INSERT INTO commands (id, child_id, device_id, command_type, payload, status, created_by, created_at, expires_at) VALUES (?,?,NULL,'PAUSE',?, 'PENDING', ?, ?, ?)",
              (cid, child, json.dumps({"n": k, "run": 1}), parent, now[0], now[0] + 300000))
    event(c, parent, 'command:sent', 'x' * 175)
def deliver_ack(c, cid, k):
    parent = f"p{(k % CH) % PAR}"
    c.execute("UPDATE commands SET status='DELIVERED', delivered_at=? WHERE id=?", (now[0], cid))
    event(c, parent, 'command:status', 'x' * 175)
    c.execute("UPDATE commands SET status='EXECUTED', executed_at=?, ack_device_id='d' WHERE id=?", (now[0], cid))
    event(c, parent, 'command:status', 'x' * 175)
def warm(c, n):
    c.execute('BEGIN')
    for k in range(n):
        cid = uid(); create(c, cid, k); deliver_ack(c, cid, k)
    c.execute('COMMIT'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)')
def run_a(c, n, lag):
    # today: each create commits alone; a command's delivery+ack commit together `lag` commands later
    ids = []; f0 = frames(P)
    for k in range(n):
        cid = uid(); ids.append(cid)
        c.execute('BEGIN'); create(c, cid, k); c.execute('COMMIT')
        if k >= lag:
            j = k - lag
            c.execute('BEGIN'); deliver_ack(c, ids[j], j); c.execute('COMMIT')
    return (frames(P) - f0) / n
def run_b(c, n, lag, fold_every):
    # sketch: one log row per transition per commit; the tables get them in folds of `fold_every` commands
    ids = []; f0 = frames(P); pending = []
    for k in range(n):
        cid = uid(); ids.append(cid)
        c.execute('BEGIN'); c.execute('INSERT INTO log (rec) VALUES (?)', (b'x' * 300,)); c.execute('COMMIT')
        pending.append(('c', cid, k))
        if k >= lag:
            j = k - lag
            c.execute('BEGIN'); c.execute('INSERT INTO log (rec) VALUES (?)', (b'x' * 300,)); c.execute('COMMIT')
            pending.append(('a', ids[j], j))
        if len(pending) >= 2 * fold_every:
            c.execute('BEGIN')
            for t, i, kk in pending:
                create(c, i, kk) if t == 'c' else deliver_ack(c, i, kk)
            c.execute('DELETE FROM log'); c.execute('COMMIT'); pending = []
    return (frames(P) - f0) / n
P = sys.argv[1] + '/t.db'
random.seed(1)
for name, fn in [('today (2 commits per command)', lambda c: run_a(c, 2000, 1)),
                 ('log + fold every 25 commands (500/s, 50 ms)', lambda c: run_b(c, 2000, 1, 25)),
                 ('log + fold every 5 commands (10 ms at 500/s)', lambda c: run_b(c, 2000, 1, 5)),
                 ('log + fold every 100 commands (2,000/s, 50 ms)', lambda c: run_b(c, 2000, 1, 100))]:
    c = fresh(P); seq.clear(); warm(c, 50000)
    print(f"{name}: {fn(c):.2f} WAL frames per command")
# Where a fold's frames go: the same fold without one scattered index at a time (a
# measurement of the index's share, not a proposal to drop it).
for index in ('events_by_user', 'commands_by_child'):
    c = fresh(P); seq.clear(); c.execute(f'DROP INDEX {index}'); warm(c, 50000)
    print(f"log + fold every 25 commands, without {index}: {run_b(c, 2000, 1, 25):.2f} WAL frames per command")
PY
