-- Version 2 (PostgreSQL dialect of migrations/sqlite/0002_per_user_event_seq.sql): each
-- parent's events get their own gap-free sequence. The upsert on user_seqs holds the user's
-- row lock until commit, so position N+1 never commits before N, whichever node writes.

CREATE TABLE user_seqs (
    user_id        TEXT PRIMARY KEY,
    seq            BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);

INSERT INTO user_seqs (user_id, seq, pruned_through)
SELECT user_id, MAX(seq),
       COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'events_pruned_through'), 0)
FROM events GROUP BY user_id;

CREATE TABLE events_v2 (
    user_id    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
INSERT INTO events_v2 (user_id, seq, event, data, created_at)
SELECT user_id, seq, event, data, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_by_time ON events(created_at);

DELETE FROM meta WHERE key = 'events_pruned_through';
