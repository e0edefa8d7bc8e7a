-- Version 9: SQLite keeps the parent event log in commit order.
--
-- Version 2 clustered the log by (user_id, seq) and added events_by_time for pruning. Each
-- event was then written into the middle of the table, in its parent's range: a ~400-byte
-- row into a leaf page that fills and splits every few events, plus the last page of
-- events_by_time, in every commit. A WAL capture at 500 commands/s (BENCHMARKS.md,
-- 2026-12-06, third sitting) found 58 % of all WAL frames in those two b-trees.
--
-- Now the rows are appended in commit order (the rowid), so consecutive events share the
-- table's last page, and (user_id, seq) is a small unique index (a position and a rowid
-- per entry). Pruning walks the oldest rowids until the first event young enough to keep
-- (relay/src/store/events.rs), so no time index is needed. One node only: PostgreSQL
-- keeps version 2's layout (several writers).
CREATE TABLE events_v9 (
    id         INTEGER PRIMARY KEY,
    user_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO events_v9 (user_id, seq, event, data, created_at)
SELECT user_id, seq, event, data, created_at FROM events ORDER BY created_at, user_id, seq;
DROP TABLE events;
ALTER TABLE events_v9 RENAME TO events;
CREATE UNIQUE INDEX events_by_user ON events(user_id, seq);
