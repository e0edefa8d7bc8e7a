//! Push tokens (`push_tokens`) and durable wake-ups (`push_wakeups`).
//!
//! When push is configured, the write that creates a command also upserts one wake-up row
//! per target device that has a token ([`W::wake_devices`]): no command for a pushable device
//! commits without its wake-up, so a relay killed after the 201 still sends the push.
//!
//! Coalescing lives in the row: a row already due keeps its due time (a burst of commands
//! gives one push), and a row whose last push went less than [`PUSH_WINDOW_MS`] ago comes due
//! only when that window ends. Every upsert bumps `version`: a push sent for an older version
//! leaves the row due again at the end of the window, since a command may have come in while
//! the push was in flight.
//!
//! Rows are sent by `crate::push` on every node with the webhooks' pattern: claim due rows
//! with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), record the outcome only while the
//! lease is still one's own. A pull (`GET /api/devices/me/commands`) deletes the device's row
//! *before* reading its commands, so a command committed after the read always has a row.

use super::db::{args, Row};
use super::write::W;
use super::{Store, StoreResult};
use crate::model::Millis;
use wire::push::{ApnsEnvironment, PushProvider, PushToken};

/// The first push for a command waits this long (ms), so that a burst of commands, or a
/// device that is just connecting, costs one push or none.
pub const PUSH_DELAY_MS: i64 = 200;
/// At most one push per device per this window (ms), however many commands arrive.
pub const PUSH_WINDOW_MS: i64 = 10_000;
/// A wake-up that finds the device with a socket open is put off by this long (ms), once.
/// A socket that works delivers and gets the ack well within it, and the row is then
/// dropped; a socket that still looks open with commands still waiting is taken for one the
/// platform suspended (a backgrounded app keeps "online" for up to two of its slow
/// heartbeats, ten minutes and more), and the push goes.
pub const ONLINE_RECHECK_MS: i64 = 10_000;

/// A claimed wake-up, with the token to send it to.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// The device to wake.
    pub device_id: String,
    /// Its token.
    pub token: PushToken,
    /// The row's version when claimed.
    pub version: i64,
    /// Failed attempts before this one.
    pub attempts: i64,
    /// Whether it was already put off once because the device looked online.
    pub deferred: bool,
    /// Whether the device has commands it has not acknowledged (unexpired, PENDING or
    /// DELIVERED) as of the claim: without any there is nothing to wake it for.
    pub waiting: bool,
}

/// What became of one claimed wake-up, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The provider accepted it.
    Sent {
        /// The device.
        device_id: String,
        /// The row's version when claimed.
        version: i64,
        /// When (ms).
        at: Millis,
    },
    /// The device has an open socket: looked at again in [`ONLINE_RECHECK_MS`].
    Online {
        /// The device.
        device_id: String,
        /// When to look again (ms).
        at: Millis,
    },
    /// The device has no command waiting: the row goes (unless a command came meanwhile).
    Settled {
        /// The device.
        device_id: String,
        /// The row's version when claimed.
        version: i64,
    },
    /// Try again at `at` (ms).
    Retry {
        /// The device.
        device_id: String,
        /// When.
        at: Millis,
        /// What went wrong.
        error: String,
    },
    /// The provider says the token is no longer valid: drop it (if it is still `token`).
    Invalid {
        /// The device.
        device_id: String,
        /// The token that was refused.
        token: String,
    },
    /// A failure retrying will not fix: the wake-up is dropped.
    Failed {
        /// The device.
        device_id: String,
    },
}

fn token_from_row(r: &Row<'_>, first: usize) -> StoreResult<Option<PushToken>> {
    let provider = r.text(first)?;
    let token = r.text(first + 1)?;
    let env = r.opt_text(first + 2)?;
    Ok(PushProvider::parse(&provider).map(|provider| PushToken {
        provider,
        token,
        apns_environment: env.as_deref().and_then(ApnsEnvironment::parse),
    }))
}

impl W<'_> {
    /// Asks for a wake-up of the child's devices (or only `device_id`) that have a push
    /// token; does nothing when push is off. Part of the command's own write.
    pub(super) fn wake_devices(
        &mut self,
        child_id: &str,
        device_id: Option<&str>,
        now: Millis,
    ) -> StoreResult<()> {
        if !self.push_on {
            return Ok(());
        }
        let only = if device_id.is_some() {
            " AND d.id = ?4"
        } else {
            ""
        };
        let sql = format!(
                "INSERT INTO push_wakeups (device_id, due_at, version, attempts) \
                 SELECT t.device_id, CAST(?2 AS BIGINT), 1, 0 FROM push_tokens t \
                 JOIN devices d ON d.id = t.device_id \
                 WHERE d.child_id = ?1 AND d.revoked_at IS NULL{only} \
                 ON CONFLICT (device_id) DO UPDATE SET version = push_wakeups.version + 1, \
                 attempts = CASE WHEN push_wakeups.due_at IS NULL THEN 0 ELSE push_wakeups.attempts END, \
                 due_at = CASE WHEN push_wakeups.due_at IS NOT NULL THEN push_wakeups.due_at \
                 WHEN push_wakeups.sent_at IS NOT NULL AND push_wakeups.sent_at + CAST(?3 AS BIGINT) > excluded.due_at \
                 THEN push_wakeups.sent_at + CAST(?3 AS BIGINT) ELSE excluded.due_at END"
        );
        let due = now + PUSH_DELAY_MS;
        let n = match device_id {
            Some(d) => self
                .conn
                .exec(&sql, args![child_id, due, PUSH_WINDOW_MS, d])?,
            None => self.conn.exec(&sql, args![child_id, due, PUSH_WINDOW_MS])?,
        };
        if n > 0 {
            self.pushed = true;
        }
        Ok(())
    }

    /// Forgets a device's token and wake-up (the device is revoked).
    pub(super) fn forget_push(&mut self, device_id: &str) -> StoreResult<()> {
        self.conn.exec(
            "DELETE FROM push_tokens WHERE device_id = ?1",
            args![device_id],
        )?;
        self.conn.exec(
            "DELETE FROM push_wakeups WHERE device_id = ?1",
            args![device_id],
        )?;
        Ok(())
    }
}

impl Store {
    /// Whether push is on (wake-up rows are written).
    pub fn push_on(&self) -> bool {
        self.push_on
    }

    /// Notified after a commit that wrote wake-up rows.
    pub fn push_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.push_wake.clone()
    }

    /// Stores a device's push token, replacing any other.
    pub async fn set_push_token(
        &self,
        device_id: &str,
        token: PushToken,
        now: Millis,
    ) -> StoreResult<()> {
        let device_id = device_id.to_string();
        self.write(move |w| {
            w.conn.exec(
                "INSERT INTO push_tokens (device_id, provider, token, environment, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (device_id) DO UPDATE SET \
                 provider = excluded.provider, token = excluded.token, \
                 environment = excluded.environment, updated_at = excluded.updated_at",
                args![
                    device_id,
                    token.provider.as_str(),
                    token.token,
                    token.apns_environment.map(|e| e.as_str()),
                    now
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// A device's push token.
    pub async fn push_token(&self, device_id: &str) -> StoreResult<Option<PushToken>> {
        let device_id = device_id.to_string();
        self.read(move |c| {
            c.opt(
                "SELECT provider, token, environment FROM push_tokens WHERE device_id = ?1",
                args![device_id],
                |r| token_from_row(r, 0),
            )
            .map(Option::flatten)
        })
        .await
    }

    /// Deletes a device's push token (and any wake-up waiting for it); whether it had one.
    pub async fn delete_push_token(&self, device_id: &str) -> StoreResult<bool> {
        let device_id = device_id.to_string();
        self.write(move |w| {
            let n = w.conn.exec(
                "DELETE FROM push_tokens WHERE device_id = ?1",
                args![device_id],
            )?;
            w.conn.exec(
                "DELETE FROM push_wakeups WHERE device_id = ?1",
                args![device_id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// The device is pulling its commands: its wake-up is done. Called *before* the read, so
    /// that a command committed after it has a wake-up of its own. Nothing when push is off.
    pub async fn settle_push(&self, device_id: &str) -> StoreResult<()> {
        if !self.push_on {
            return Ok(());
        }
        let device_id = device_id.to_string();
        self.write(move |w| {
            w.conn.exec(
                "DELETE FROM push_wakeups WHERE device_id = ?1",
                args![device_id],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether a wake-up is due at `now` and free to claim (a read: an idle node's poll costs
    /// no write transaction).
    pub async fn push_due(&self, now: Millis) -> StoreResult<bool> {
        self.read(move |c| {
            c.exists(
                "SELECT 1 FROM push_wakeups WHERE due_at IS NOT NULL AND due_at <= ?1 \
                 AND (lease_until IS NULL OR lease_until <= ?1) LIMIT 1",
                args![now],
            )
        })
        .await
    }

    /// Claims up to `limit` due wake-ups for `owner` until `lease_until` (PostgreSQL: rows
    /// another node is claiming are skipped, never claimed twice), with their tokens. A row
    /// whose token is gone is deleted.
    pub async fn claim_push(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<PushTarget>> {
        let owner = owner.to_string();
        self.write(move |w| {
            let lock = if w.conn.is_pg() {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            let rows = w.conn.map(
                &format!(
                    "UPDATE push_wakeups SET lease_owner = ?1, lease_until = ?2 WHERE device_id IN \
                     (SELECT device_id FROM push_wakeups WHERE due_at IS NOT NULL AND due_at <= ?3 \
                      AND (lease_until IS NULL OR lease_until <= ?3) ORDER BY due_at LIMIT ?4{lock}) \
                     AND (lease_until IS NULL OR lease_until <= ?3) RETURNING device_id, version, attempts, deferred"
                ),
                args![owner, lease_until, now, limit],
                |r| Ok((r.text(0)?, r.int(1)?, r.int(2)?, r.int(3)? != 0)),
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for (device_id, version, attempts, deferred) in rows {
                let token = w
                    .conn
                    .opt(
                        "SELECT provider, token, environment FROM push_tokens WHERE device_id = ?1",
                        args![device_id],
                        |r| token_from_row(r, 0),
                    )?
                    .flatten();
                match token {
                    Some(token) => {
                        let waiting = w.conn.exists(
                            "SELECT 1 FROM commands c JOIN devices d ON d.child_id = c.child_id \
                             WHERE d.id = ?1 AND (c.device_id IS NULL OR c.device_id = ?1) \
                             AND c.status IN ('PENDING', 'DELIVERED') AND c.expires_at > ?2 LIMIT 1",
                            args![device_id, now],
                        )?;
                        out.push(PushTarget {
                            device_id,
                            token,
                            version,
                            attempts,
                            deferred,
                            waiting,
                        })
                    }
                    None => {
                        w.conn.exec(
                            "DELETE FROM push_wakeups WHERE device_id = ?1",
                            args![device_id],
                        )?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Records outcomes, in one write, each only while `owner` still holds the row's lease.
    /// Returns how many tokens were dropped.
    pub async fn push_outcomes(&self, outcomes: Vec<PushOutcome>, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_string();
        self.write(move |w| {
            let mut dropped = 0;
            for o in outcomes {
                match o {
                    PushOutcome::Sent {
                        device_id,
                        version,
                        at,
                    } => {
                        w.conn.exec(
                            "UPDATE push_wakeups SET due_at = CASE WHEN version = ?3 THEN NULL \
                             ELSE CAST(?4 AS BIGINT) END, sent_at = ?5, attempts = 0, deferred = 0, \
                             last_error = NULL, lease_owner = NULL, lease_until = NULL \
                             WHERE device_id = ?1 AND lease_owner = ?2",
                            args![device_id, owner, version, at + PUSH_WINDOW_MS, at],
                        )?;
                    }
                    PushOutcome::Online { device_id, at } => {
                        w.conn.exec(
                            "UPDATE push_wakeups SET due_at = ?3, deferred = 1, \
                             lease_owner = NULL, lease_until = NULL WHERE device_id = ?1 AND lease_owner = ?2",
                            args![device_id, owner, at],
                        )?;
                    }
                    PushOutcome::Settled { device_id, version } => {
                        let gone = w.conn.exec(
                            "DELETE FROM push_wakeups WHERE device_id = ?1 AND lease_owner = ?2 AND version = ?3",
                            args![device_id, owner, version],
                        )?;
                        if gone == 0 {
                            release(w, &device_id, &owner)?;
                        }
                    }
                    PushOutcome::Retry {
                        device_id,
                        at,
                        error,
                    } => {
                        w.conn.exec(
                            "UPDATE push_wakeups SET attempts = attempts + 1, due_at = ?3, last_error = ?4, \
                             lease_owner = NULL, lease_until = NULL WHERE device_id = ?1 AND lease_owner = ?2",
                            args![device_id, owner, at, error],
                        )?;
                    }
                    PushOutcome::Invalid { device_id, token } => {
                        let n = w.conn.exec(
                            "DELETE FROM push_tokens WHERE device_id = ?1 AND token = ?2",
                            args![device_id, token],
                        )?;
                        dropped += n;
                        if n == 1 {
                            w.conn.exec(
                                "DELETE FROM push_wakeups WHERE device_id = ?1 AND lease_owner = ?2",
                                args![device_id, owner],
                            )?;
                        } else {
                            // A new token came meanwhile: wake the device through that one.
                            release(w, &device_id, &owner)?;
                        }
                    }
                    PushOutcome::Failed { device_id } => {
                        w.conn.exec(
                            "DELETE FROM push_wakeups WHERE device_id = ?1 AND lease_owner = ?2",
                            args![device_id, owner],
                        )?;
                    }
                }
            }
            Ok(dropped)
        })
        .await
    }

    /// Wake-ups still due or being sent (the backlog gauge, tests).
    pub async fn push_backlog(&self) -> StoreResult<i64> {
        self.read(|c| {
            c.int(
                "SELECT COUNT(*) FROM push_wakeups WHERE due_at IS NOT NULL",
                args![],
            )
        })
        .await
    }
}

/// Gives back `owner`'s lease on a device's row: due again at its `due_at`.
fn release(w: &mut W<'_>, device_id: &str, owner: &str) -> StoreResult<()> {
    w.conn.exec(
        "UPDATE push_wakeups SET lease_owner = NULL, lease_until = NULL \
         WHERE device_id = ?1 AND lease_owner = ?2",
        args![device_id, owner],
    )?;
    Ok(())
}
