-- Version 2: each parent's events get their own gap-free sequence (1, 2, 3, ...), so that
-- several writers (PostgreSQL nodes) can hand out positions in commit order per parent.
-- Existing positions are kept; each user's counter continues from their newest.

CREATE TABLE user_seqs (
    user_id        TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL,
    pruned_through INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO user_seqs (user_id, seq, pruned_through)
SELECT user_id, MAX(seq),
       COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'events_pruned_through'), 0)
FROM events GROUP BY user_id;

CREATE TABLE events_v2 (
    user_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
INSERT INTO events_v2 (user_id, seq, event, data, created_at)
SELECT user_id, seq, event, data, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_by_time ON events(created_at);

DELETE FROM meta WHERE key = 'events_pruned_through';
