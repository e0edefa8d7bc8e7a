//! The webhook outbox (`webhook_outbox`): one row per event and endpoint, written by the same
//! transaction as the change it reports ([`W::webhook`], flushed when the operation ends), so
//! no change commits without its event and none is lost to a crash.
//!
//! Rows are sent by `crate::webhooks` on every node. A row is written already leased to the
//! writing node's sender when its queue has room, and handed to it after the commit
//! ([`Store::start_webhook_handoff`]): the common case costs no claim. Other rows (a full
//! queue, retries come due, leases of a dead node run out) are *claimed*: a node sets
//! `lease_owner`/`lease_until` on due rows of one endpoint (PostgreSQL: `FOR UPDATE SKIP
//! LOCKED`, so two nodes never claim the same row). Either way the sender records the outcome only while its lease is
//! still its own: delivered (row deleted), retry later, or parked (`failed_at`). A node that
//! dies leaves its leases to expire; another node then claims the rows.

use serde_json::{json, Value};

use super::db::{args, Row};
use super::write::W;
use super::{Store, StoreError, StoreResult};
use crate::model::{rfc3339, Millis};

/// A webhook event logged by an operation, written to the outbox when it ends.
pub(super) struct PendingHook {
    kind: &'static str,
    /// The event's data, serialized once (JSON).
    data: String,
    now: Millis,
}

impl W<'_> {
    /// Logs a webhook event of type `kind` in this write; `data` is only built (and
    /// serialized, once, straight to JSON text) when at least one endpoint is configured
    /// (otherwise this costs nothing).
    pub(super) fn webhook<T: serde::Serialize>(
        &mut self,
        kind: &'static str,
        now: Millis,
        data: impl FnOnce() -> T,
    ) {
        if self.hook_endpoints.is_empty() {
            return;
        }
        self.hooks.push(PendingHook {
            kind,
            data: serde_json::to_string(&data()).unwrap_or_else(|_| "null".into()),
            now,
        });
    }

    /// Writes the operation's webhook events: one outbox row per event and endpoint, each
    /// with its own id. A row for which this node's sender has room in its queue is written
    /// already leased to it and handed over after the commit ([`Handoff`]); the others are
    /// written free, for a claim. Returns how many were written free.
    pub(super) fn flush_webhooks(&mut self) -> StoreResult<usize> {
        if self.hooks.is_empty() {
            return Ok(0);
        }
        let hooks = std::mem::take(&mut self.hooks);
        let endpoints = self.hook_endpoints.clone();
        let mut free = 0;
        for h in &hooks {
            let timestamp = rfc3339(h.now);
            for endpoint in endpoints.iter() {
                let id = new_event_id();
                // The envelope is written as text around the serialized data: the id
                // (`evt_` + hex), the type (a constant) and the RFC 3339 time need no escaping.
                let body = format!(
                    r#"{{"id":"{id}","type":"{}","timestamp":"{timestamp}","data":{}}}"#,
                    h.kind, h.data
                );
                let place = self
                    .handoff
                    .as_ref()
                    .and_then(|hd| hd.tx.clone().try_reserve_owned().ok().map(|p| (hd, p)));
                match place {
                    Some((hd, place)) => {
                        let lease_until = crate::model::now_ms() + hd.lease_ms;
                        self.conn.exec(
                            "INSERT INTO webhook_outbox (event_id, endpoint, type, timestamp, payload, attempts, \
                             next_attempt_at, window_start, lease_owner, lease_until) \
                             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?4, ?4, ?6, ?7)",
                            args![id, endpoint, h.kind, h.now, body, &*hd.owner, lease_until],
                        )?;
                        let row = Claimed {
                            id,
                            endpoint: endpoint.clone(),
                            kind: h.kind.to_string(),
                            payload: body,
                            attempts: 0,
                            window_start: h.now,
                            timestamp: h.now,
                        };
                        self.handed.push((place, Leased { row, lease_until }));
                    }
                    None => {
                        self.conn.exec(
                            "INSERT INTO webhook_outbox (event_id, endpoint, type, timestamp, payload, attempts, \
                             next_attempt_at, window_start) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?4, ?4)",
                            args![id, endpoint, h.kind, h.now, body],
                        )?;
                        free += 1;
                    }
                }
            }
        }
        Ok(free)
    }
}

/// This node's webhook sender, as the write path sees it: its queue, the owner its leases
/// carry, and how long a lease holds.
#[derive(Clone)]
pub(super) struct Handoff {
    tx: tokio::sync::mpsc::Sender<Leased>,
    owner: std::sync::Arc<str>,
    lease_ms: i64,
}

/// A row written leased to this node's sender, with its reserved place in the sender's queue.
pub(super) type Handed = (tokio::sync::mpsc::OwnedPermit<Leased>, Leased);

/// A row leased to this node's sender by the write that created it, handed over in memory.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The row, as a claim would have returned it.
    pub row: Claimed,
    /// Until when the lease holds (ms): a row not sent well before is given back.
    pub lease_until: Millis,
}

/// `v` as JSON (the data of a webhook event).
pub(super) fn data_of<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A new event id: `evt_` and 32 hex digits (a UUIDv7: time-ordered, 74 random bits).
fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// A row claimed for delivery by this node.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The event id (`webhook-id`).
    pub id: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The event type.
    pub kind: String,
    /// The JSON body, as signed and sent.
    pub payload: String,
    /// Failed attempts before this one.
    pub attempts: i64,
    /// Start of the retry window (ms).
    pub window_start: Millis,
    /// When the change was committed (ms).
    pub timestamp: Millis,
}

/// What became of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Answered 2xx: the row goes.
    Delivered {
        /// The event id.
        id: String,
    },
    /// Failed; due again at `at` (ms).
    RetryAt {
        /// The event id.
        id: String,
        /// When it is due again.
        at: Millis,
        /// What went wrong.
        error: String,
    },
    /// Failed for good at `at` (ms): parked until the backend retries it.
    Parked {
        /// The event id.
        id: String,
        /// When.
        at: Millis,
        /// What went wrong.
        error: String,
    },
}

/// A parked event, as `GET /api/webhooks/failed` shows it.
#[derive(Debug, Clone)]
pub struct FailedHook {
    /// The event id.
    pub id: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The event type.
    pub kind: String,
    /// When the change was committed (ms).
    pub timestamp: Millis,
    /// Attempts made.
    pub attempts: i64,
    /// When it was parked (ms).
    pub failed_at: Millis,
    /// Why (the endpoint's answer or the transport error).
    pub last_error: Option<String>,
    /// The JSON body.
    pub payload: String,
}

impl FailedHook {
    /// The REST view.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "endpoint": self.endpoint,
            "type": self.kind,
            "timestamp": rfc3339(self.timestamp),
            "attempts": self.attempts,
            "failedAt": rfc3339(self.failed_at),
            "lastError": self.last_error,
            "payload": serde_json::from_str::<Value>(&self.payload).unwrap_or(Value::Null),
        })
    }
}

/// Where a page of parked events ends: `(failed_at, event_id)` of its last row. Pages are
/// newest first; the composite key keeps rows parked in the same millisecond apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCursor {
    /// `failed_at` of the last row shown.
    pub failed_at: Millis,
    /// Its event id.
    pub id: String,
}

impl FailedCursor {
    /// The cursor as the API hands it out: `<failed_at ms>.<event id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.failed_at, self.id)
    }

    /// Parses [`FailedCursor::encode`]'s form; `None` when malformed.
    pub fn decode(s: &str) -> Option<FailedCursor> {
        let (at, id) = s.split_once('.')?;
        let failed_at = at.parse::<i64>().ok()?;
        let ok_id = id.starts_with("evt_")
            && id.len() <= 64
            && id[4..].chars().all(|c| c.is_ascii_alphanumeric());
        ok_id.then(|| FailedCursor {
            failed_at,
            id: id.to_string(),
        })
    }
}

/// Per-endpoint backlog, as `GET /api/webhooks/endpoints` shows it.
#[derive(Debug, Clone, Default)]
pub struct EndpointStats {
    /// Events waiting to be sent (or being sent).
    pub pending: i64,
    /// Parked events.
    pub failed: i64,
    /// The oldest pending event's timestamp (ms).
    pub oldest_pending: Option<Millis>,
}

const CLAIM_COLS: &str = "event_id, endpoint, type, payload, attempts, window_start, timestamp";

fn claimed_from_row(r: &Row<'_>) -> StoreResult<Claimed> {
    Ok(Claimed {
        id: r.text(0)?,
        endpoint: r.text(1)?,
        kind: r.text(2)?,
        payload: r.text(3)?,
        attempts: r.int(4)?,
        window_start: r.int(5)?,
        timestamp: r.int(6)?,
    })
}

/// A failed attempt to be tried again at `?3`; the lease is given back.
const RETRY_AT: &str = "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?3, \
    last_error = ?4, lease_owner = NULL, lease_until = NULL WHERE event_id = ?1 AND lease_owner = ?2";
/// A failed attempt that parks the row (failed at `?3`); the lease is given back.
const PARK: &str = "UPDATE webhook_outbox SET attempts = attempts + 1, failed_at = ?3, \
    last_error = ?4, lease_owner = NULL, lease_until = NULL WHERE event_id = ?1 AND lease_owner = ?2";

/// Writes `outcomes` (see [`Store::webhook_outcomes`]): a delivery deletes the row, a retry
/// or a park counts the attempt and is recorded only while `owner` holds the lease.
fn record_outcomes(w: &mut W<'_>, outcomes: Vec<HookOutcome>, owner: &str) -> StoreResult<()> {
    for o in outcomes {
        let (sql, id, at, error) = match o {
            HookOutcome::Delivered { id } => {
                w.conn
                    .exec("DELETE FROM webhook_outbox WHERE event_id = ?1", args![id])?;
                continue;
            }
            HookOutcome::RetryAt { id, at, error } => (RETRY_AT, id, at, error),
            HookOutcome::Parked { id, at, error } => (PARK, id, at, error),
        };
        w.conn.exec(sql, args![id, owner, at, error])?;
    }
    Ok(())
}

impl Store {
    /// The write handle's wake-up: notified after every commit that wrote outbox rows.
    pub fn webhook_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.hook_wake.clone()
    }

    /// Starts handing this node's new outbox rows to its sender (`owner`, leases of
    /// `lease_ms`): from now on a row is written already leased to `owner` when the
    /// returned queue (of `capacity`) has room, and put in it after its commit. Once per
    /// store; `None` if already started.
    pub fn start_webhook_handoff(
        &self,
        owner: std::sync::Arc<str>,
        lease_ms: i64,
        capacity: usize,
    ) -> Option<tokio::sync::mpsc::Receiver<Leased>> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.hook_handoff
            .set(Handoff {
                tx,
                owner,
                lease_ms,
            })
            .ok()?;
        Some(rx)
    }

    /// Whether webhooks are on (at least one endpoint).
    pub fn webhooks_on(&self) -> bool {
        !self.hook_endpoints.is_empty()
    }

    /// Records a webhook event that no other stored change carries (device presence): its
    /// own transaction, one row per endpoint. Does nothing when no endpoint is configured.
    pub async fn emit_webhook(
        &self,
        kind: &'static str,
        data: Value,
        now: Millis,
    ) -> StoreResult<()> {
        if self.hook_endpoints.is_empty() {
            return Ok(());
        }
        self.write(move |w| {
            w.webhook(kind, now, || data);
            Ok(())
        })
        .await
    }

    /// Whether `endpoint` has a row a claim would take at `now` (a read: an idle node's poll
    /// costs no write transaction).
    pub async fn webhooks_due(&self, endpoint: &str, now: Millis) -> StoreResult<bool> {
        let endpoint = endpoint.to_string();
        self.read(move |c| {
            c.exists(
                "SELECT 1 FROM webhook_outbox WHERE endpoint = ?1 AND failed_at IS NULL \
                 AND next_attempt_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2) LIMIT 1",
                args![endpoint, now],
            )
        })
        .await
    }

    /// Claims up to `limit` due rows of `endpoint` for `owner` until `lease_until`: rows not
    /// parked, due by `now`, and not under another live lease. On PostgreSQL, rows another
    /// node is claiming at the same moment are skipped (`SKIP LOCKED`), never claimed twice.
    pub async fn claim_webhooks(
        &self,
        endpoint: &str,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<Claimed>> {
        let (endpoint, owner) = (endpoint.to_string(), owner.to_string());
        self.write(move |w| {
            let lock = if w.conn.is_pg() {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            w.conn.map(
                &format!(
                    "UPDATE webhook_outbox SET lease_owner = ?2, lease_until = ?3 WHERE event_id IN \
                     (SELECT event_id FROM webhook_outbox WHERE endpoint = ?1 AND failed_at IS NULL \
                      AND next_attempt_at <= ?4 AND (lease_until IS NULL OR lease_until <= ?4) \
                      ORDER BY next_attempt_at, event_id LIMIT ?5{lock}) \
                     AND (lease_until IS NULL OR lease_until <= ?4) RETURNING {CLAIM_COLS}"
                ),
                args![endpoint, owner, lease_until, now, limit],
                claimed_from_row,
            )
        })
        .await
    }

    /// Records the outcomes of attempts, in one write. A retry or a park is recorded only
    /// while `owner` still holds the row's lease (a node whose lease ran out and was taken
    /// over records nothing); a delivery deletes the row whoever holds it.
    pub async fn webhook_outcomes(
        &self,
        outcomes: Vec<HookOutcome>,
        owner: &str,
    ) -> StoreResult<()> {
        let owner = owner.to_string();
        self.write(move |w| record_outcomes(w, outcomes, &owner))
            .await
    }

    /// [`Store::webhook_outcomes`] without a transaction of its own: the outcomes join the
    /// next write, or commit within a few milliseconds (see `Store::write_later`). Until
    /// then the rows stay leased to `owner`, so nobody sends them again; if the relay dies
    /// first, the leases run out and they are sent again (at least once, never lost). A
    /// later [`Store::webhook_outcomes`] commits them first (the queue keeps its order).
    pub fn webhook_outcomes_later(&self, outcomes: Vec<HookOutcome>, owner: &str) {
        let owner = owner.to_string();
        self.write_later(
            "could not record webhook outcomes",
            move |w| record_outcomes(w, outcomes, &owner),
            |()| {},
        );
    }

    /// Gives back `owner`'s leases on `ids` (claimed, never sent): due again at once.
    pub async fn release_webhooks(&self, ids: Vec<String>, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_string();
        self.write(move |w| {
            let mut n = 0;
            for id in ids {
                n += w.conn.exec(
                    "UPDATE webhook_outbox SET lease_owner = NULL, lease_until = NULL \
                     WHERE event_id = ?1 AND lease_owner = ?2",
                    args![id, owner],
                )?;
            }
            Ok(n)
        })
        .await
    }

    /// Parked events, newest first, after `after`, at most `limit`.
    pub async fn failed_webhooks(
        &self,
        after: Option<FailedCursor>,
        limit: i64,
    ) -> StoreResult<Vec<FailedHook>> {
        let (at, id) = match after {
            Some(c) => (c.failed_at, c.id),
            None => (i64::MAX, String::new()),
        };
        self.read(move |c| {
            c.map(
                "SELECT event_id, endpoint, type, timestamp, attempts, failed_at, last_error, payload \
                 FROM webhook_outbox WHERE failed_at IS NOT NULL \
                 AND (failed_at < ?1 OR (failed_at = ?1 AND (?2 = '' OR event_id < ?2))) \
                 ORDER BY failed_at DESC, event_id DESC LIMIT ?3",
                args![at, id, limit],
                |r| {
                    Ok(FailedHook {
                        id: r.text(0)?,
                        endpoint: r.text(1)?,
                        kind: r.text(2)?,
                        timestamp: r.int(3)?,
                        attempts: r.int(4)?,
                        failed_at: r.int(5)?,
                        last_error: r.opt_text(6)?,
                        payload: r.text(7)?,
                    })
                },
            )
        })
        .await
    }

    /// The backend retries a parked event: due now, attempts reset, a new retry window.
    /// `NotFound` for an unknown id, `Conflict` for one that is not parked.
    pub async fn retry_failed_webhook(&self, id: &str, now: Millis) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |w| {
            let n = w.conn.exec(
                "UPDATE webhook_outbox SET failed_at = NULL, attempts = 0, next_attempt_at = ?2, \
                 window_start = ?2, last_error = NULL, lease_owner = NULL, lease_until = NULL \
                 WHERE event_id = ?1 AND failed_at IS NOT NULL",
                args![id, now],
            )?;
            if n == 1 {
                return Ok(());
            }
            if w.conn.exists(
                "SELECT 1 FROM webhook_outbox WHERE event_id = ?1",
                args![id],
            )? {
                return Err(StoreError::Conflict(
                    "this event is not parked: it is still being delivered".into(),
                ));
            }
            Err(StoreError::NotFound("no such webhook event".into()))
        })
        .await
    }

    /// Backlog of `endpoint`: pending and parked counts and the oldest pending timestamp.
    pub async fn webhook_stats(&self, endpoint: &str) -> StoreResult<EndpointStats> {
        let endpoint = endpoint.to_string();
        self.read(move |c| {
            let pending = c.one(
                "SELECT COUNT(*), MIN(timestamp) FROM webhook_outbox WHERE endpoint = ?1 AND failed_at IS NULL",
                args![endpoint],
                |r| Ok((r.int(0)?, r.opt_int(1)?)),
            )?;
            let failed = c.int(
                "SELECT COUNT(*) FROM webhook_outbox WHERE endpoint = ?1 AND failed_at IS NOT NULL",
                args![endpoint],
            )?;
            Ok(EndpointStats {
                pending: pending.0,
                failed,
                oldest_pending: pending.1,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::FailedCursor;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = FailedCursor {
            failed_at: 1_700_000_000_123,
            id: "evt_0190aabbccddeeff0011223344556677".into(),
        };
        assert_eq!(FailedCursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "123",
            "x.evt_1",
            "123.evt_a b",
            "123.abc",
            "123.evt_1'--",
        ] {
            assert_eq!(FailedCursor::decode(bad), None, "{bad:?}");
        }
    }
}
