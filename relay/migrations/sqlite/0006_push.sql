-- Version 6: push wake-ups (docs/protocol.md, "Push wake-up"; docs/deploy.md, "Push").
-- A device's push token: at most one per device, replaced when the platform rotates it,
-- deleted when the device is revoked or the provider says it is no longer valid.
CREATE TABLE push_tokens (
    device_id   TEXT PRIMARY KEY REFERENCES devices(id),
    -- 'fcm' or 'apns'.
    provider    TEXT NOT NULL,
    token       TEXT NOT NULL,
    -- APNs: 'production' or 'sandbox'; NULL for FCM.
    environment TEXT,
    updated_at  INTEGER NOT NULL
);
-- One durable wake-up per device, written in the same transaction as the command that needs
-- it (only when push is configured and the device has a token). due_at NULL: nothing to send
-- (the last push went at sent_at; kept for the coalescing window). A pull deletes the row.
CREATE TABLE push_wakeups (
    device_id   TEXT PRIMARY KEY,
    -- Not before this time (ms); NULL: settled.
    due_at      INTEGER,
    -- Bumped by every command that asks for a wake-up: a push sent for an older version
    -- leaves the row due again (a command may have come in while it was in flight).
    version     INTEGER NOT NULL DEFAULT 0,
    -- Failed attempts since the last success.
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- 1 once a wake-up found the device with a socket open and was put off (by
    -- ONLINE_RECHECK_MS): a socket that still looks open then, with commands still waiting,
    -- is taken for one the platform suspended, and the push goes.
    deferred    INTEGER NOT NULL DEFAULT 0,
    -- When the last push was accepted by the provider (ms).
    sent_at     INTEGER,
    -- The node sending it now, and until when its claim holds (ms).
    lease_owner TEXT,
    lease_until INTEGER,
    last_error  TEXT
);
CREATE INDEX push_wakeups_due ON push_wakeups(due_at) WHERE due_at IS NOT NULL;
