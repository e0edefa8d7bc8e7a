-- Version 5: the webhook outbox (docs/protocol.md, "Webhooks").
-- One row per event and endpoint, written in the same transaction as the change it reports
-- (only when at least one endpoint is configured). A delivered row is deleted; a row that
-- can no longer be delivered is parked (failed_at set) until the backend retries it.
CREATE TABLE webhook_outbox (
    -- The event's id, sent as `webhook-id` on every attempt (evt_<32 hex>).
    event_id TEXT PRIMARY KEY,
    -- The endpoint URL this row is for.
    endpoint TEXT NOT NULL,
    -- The event type (command.status, device.online, ...).
    type TEXT NOT NULL,
    -- When the change was committed (ms).
    timestamp INTEGER NOT NULL,
    -- The full JSON body, signed and sent as is.
    payload TEXT NOT NULL,
    -- Failed attempts so far.
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Not before this time (ms).
    next_attempt_at INTEGER NOT NULL,
    -- Start of the current retry window (ms): the timestamp, or when the backend retried it.
    window_start INTEGER NOT NULL,
    -- The node sending it now, and until when its claim holds (ms).
    lease_owner TEXT,
    lease_until INTEGER,
    -- Parked: when, and why.
    failed_at INTEGER,
    last_error TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(endpoint, next_attempt_at) WHERE failed_at IS NULL;
CREATE INDEX webhook_outbox_failed ON webhook_outbox(failed_at, event_id) WHERE failed_at IS NOT NULL;
