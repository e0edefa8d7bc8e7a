-- SafeStream relay schema, version 1 (PostgreSQL dialect; the same tables as
-- migrations/sqlite/0001_init.sql). Times are milliseconds since the Unix epoch (BIGINT);
-- JSON is stored as text, exactly as the relay wrote it.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE children (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    daily_limit_minutes BIGINT,
    timezone            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
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
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_seen  BIGINT
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
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    delivered_at  BIGINT,
    executed_at   BIGINT,
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
    created_at BIGINT NOT NULL,
    read_at    BIGINT
);
CREATE INDEX notifications_by_user ON notifications(user_id, created_at, id);

CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_by_user ON events(user_id, seq);

CREATE TABLE screen_time (
    child_id     TEXT NOT NULL REFERENCES children(id),
    day          TEXT NOT NULL,
    minutes_used BIGINT NOT NULL,
    alerted_at   BIGINT,
    updated_at   BIGINT NOT NULL,
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
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
