-- SafeStream relay schema, version 1 (SQLite dialect).
-- Times are milliseconds since the Unix epoch; JSON is stored as text.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE children (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    daily_limit_minutes INTEGER,
    timezone            TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE guardians (
    child_id TEXT NOT NULL REFERENCES children(id),
    user_id  TEXT NOT NULL,
    PRIMARY KEY (child_id, user_id)
);
CREATE INDEX guardians_by_user ON guardians(user_id);

CREATE TABLE devices (
    id         TEXT PRIMARY KEY,
    child_id   TEXT NOT NULL REFERENCES children(id),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_seen  INTEGER
);
CREATE INDEX devices_by_child ON devices(child_id);

CREATE TABLE commands (
    id            TEXT PRIMARY KEY,
    child_id      TEXT NOT NULL REFERENCES children(id),
    device_id     TEXT,
    command_type  TEXT NOT NULL,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    delivered_at  INTEGER,
    executed_at   INTEGER,
    error         TEXT,
    ack_device_id TEXT
);
CREATE INDEX commands_by_child ON commands(child_id, created_at);
CREATE INDEX commands_open ON commands(expires_at) WHERE status IN ('PENDING', 'DELIVERED');

CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    title      TEXT NOT NULL,
    message    TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read_at    INTEGER
);
CREATE INDEX notifications_by_user ON notifications(user_id, created_at, id);

-- The parents' durable event log: one row per (recipient, event); seq is the resume position.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_user ON events(user_id, seq);
CREATE INDEX events_by_time ON events(created_at);

CREATE TABLE screen_time (
    child_id     TEXT NOT NULL REFERENCES children(id),
    day          TEXT NOT NULL,
    minutes_used INTEGER NOT NULL,
    alerted_at   INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (child_id, day)
);

CREATE TABLE pairings (
    id          TEXT PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    device_name TEXT NOT NULL,
    status      TEXT NOT NULL,
    claimed_by  TEXT,
    child_id    TEXT,
    device_id   TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
