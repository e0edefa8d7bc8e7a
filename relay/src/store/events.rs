//! The parent event log (resume): each parent's events are numbered 1, 2, 3, ... in
//! `user_seqs`, gap-free and in commit order for that parent; the log is read back for
//! resume, catch-up and gap filling, and pruned by age.

use std::sync::Arc;

use serde_json::Value;

use super::db::args;
use super::write::W;
use super::{Store, StoreResult};
use crate::message::{room, BusMessage, OutFrame};
use crate::model::Millis;

/// A parent event waiting for its position.
pub(super) struct PendingEvent {
    pub(super) user_id: String,
    pub(super) event: String,
    pub(super) data: Value,
    pub(super) now: Millis,
}

impl W<'_> {
    /// Writes the operation's parent events, in one pass **sorted by user** (stable, so each
    /// user's events keep their order). Taking a position locks that user's `user_seqs` row
    /// until commit; taking them last and in one global order means two transactions never
    /// wait on each other's users in opposite orders (no deadlock between nodes).
    pub(super) fn flush_events(&mut self) -> StoreResult<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.events);
        events.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        for e in events {
            let seq = self.conn.int(
                "INSERT INTO user_seqs (user_id, seq, pruned_through) VALUES (?1, 1, 0) \
                 ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + 1 RETURNING seq",
                args![e.user_id],
            )?;
            // Serialized once: the same text is logged and sent.
            let text = e.data.to_string();
            let frame = Arc::new(OutFrame::event_json(&e.event, Some(seq), &text));
            self.conn.exec(
                "INSERT INTO events (user_id, seq, event, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![e.user_id, seq, e.event, text, e.now],
            )?;
            self.out
                .push(BusMessage::deliver(room::user(&e.user_id), frame));
        }
        Ok(())
    }
}

/// A parent event read back from the log for resume.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Position in the user's own sequence.
    pub seq: i64,
    /// Event name.
    pub event: String,
    /// Event data (JSON text).
    pub data: String,
}

impl Store {
    /// Logs an event for `user_id` in the current write: it gets the user's next position
    /// when the operation ends ([`W::flush_events`]) and is delivered after commit.
    ///
    /// Positions are per user and gap-free: the upsert on `user_seqs` takes the next number
    /// and holds the user's row lock until commit, so another writer (on any node) that logs
    /// for the same user waits, and position N+1 never commits before N.
    pub(super) fn log_event(
        w: &mut W<'_>,
        user_id: &str,
        event: &str,
        data: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        w.events.push(PendingEvent {
            user_id: user_id.to_string(),
            event: event.to_string(),
            data: data.clone(),
            now,
        });
        Ok(())
    }

    /// Logs one event for every user in `users`.
    pub(super) fn log_event_for_all(
        w: &mut W<'_>,
        users: &[String],
        event: &str,
        data: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        for u in users {
            Self::log_event(w, u, event, data, now)?;
        }
        Ok(())
    }

    /// Events for `user_id` after position `after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        user_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<LoggedEvent>> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            c.map(
                "SELECT seq, event, data FROM events WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                args![user_id, after, limit],
                |r| {
                    Ok(LoggedEvent {
                        seq: r.int(0)?,
                        event: r.text(1)?,
                        data: r.text(2)?,
                    })
                },
            )
        })
        .await
    }

    /// Whether `user_id` has more than `n` events after `after` (reads positions only).
    pub async fn more_events_than(&self, user_id: &str, after: i64, n: i64) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            c.exists(
                "SELECT seq FROM events WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT 1 OFFSET ?3",
                args![user_id, after, n],
            )
        })
        .await
    }

    /// `(newest, next_kept)` for `user_id`: the newest position they were given (0 if none),
    /// and — when `after` is below it — whether the event right after `after` is still kept
    /// (if not, it was pruned and a resume from `after` cannot be complete).
    pub async fn event_positions(
        &self,
        user_id: &str,
        after: Option<i64>,
    ) -> StoreResult<(i64, bool)> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            let newest = c
                .opt(
                    "SELECT seq FROM user_seqs WHERE user_id = ?1",
                    args![user_id],
                    |r| r.int(0),
                )?
                .unwrap_or(0);
            let next_kept = match after {
                Some(a) if a < newest => c.exists(
                    "SELECT 1 FROM events WHERE user_id = ?1 AND seq = ?2",
                    args![user_id, a + 1],
                )?,
                _ => true,
            };
            Ok((newest, next_kept))
        })
        .await
    }

    /// For each user with events created in `[from, to)`: their newest position (the
    /// cluster's in-flight sweep compares it with what each parent socket was sent).
    pub async fn recent_event_heads(
        &self,
        from: Millis,
        to: Millis,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        self.read(move |c| {
            c.map(
                "SELECT user_id, MAX(seq) FROM events WHERE created_at >= ?1 AND created_at < ?2 \
                 GROUP BY user_id LIMIT ?3",
                args![from, to, limit],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )
        })
        .await
    }

    /// Deletes events created before `before`; returns how many. Positions live on in
    /// `user_seqs` (never reused); a resume that needs a deleted event gets `resync` (see
    /// [`Store::event_positions`]). Only event rows are touched: no lock any other write
    /// waits on. (`user_seqs.pruned_through` is no longer used.)
    pub async fn prune_events(&self, before: Millis) -> StoreResult<u64> {
        self.write(move |w| {
            w.conn
                .exec("DELETE FROM events WHERE created_at < ?1", args![before])
        })
        .await
    }
}
