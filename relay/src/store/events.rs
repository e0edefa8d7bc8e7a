//! The parent event log (resume): each parent's events are numbered 1, 2, 3, ..., gap-free
//! and in commit order for that parent; the log is read back for resume, catch-up and gap
//! filling, and pruned by age.
//!
//! Where the numbers come from depends on the engine. PostgreSQL (several nodes write at
//! once): an upsert on `user_seqs` takes the next one and holds the parent's row lock until
//! commit. SQLite (one write connection, one batch at a time): the writer remembers each parent's
//! newest position ([`SeqCache`]), and `user_seqs` is only a floor raised before events are
//! pruned; the newest position is the larger of that floor and the parent's newest event.
//! The upsert was a statement and a B-tree page written per parent per transition.

use std::collections::HashMap;
use std::sync::Arc;

use super::db::args;
use super::registry::GuardianCache;
use super::write::W;
use super::{Store, StoreError, StoreResult};
use crate::message::{room, BusMessage, OutFrame};
use crate::model::Millis;

/// A parent event waiting for its position.
pub(super) struct PendingEvent {
    pub(super) user_id: String,
    pub(super) event: &'static str,
    /// The data as JSON text, serialized once for every guardian it goes to.
    pub(super) data: Arc<str>,
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
            let seq = match self.seqs.as_deref_mut() {
                Some(cache) => cache.take_next(self.conn, &e.user_id)?,
                None => self.conn.int(
                    "INSERT INTO user_seqs (user_id, seq, pruned_through) VALUES (?1, 1, 0) \
                     ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + 1 RETURNING seq",
                    args![e.user_id],
                )?,
            };
            // Serialized once: the same text is logged and sent.
            let frame = Arc::new(OutFrame::event_json(e.event, Some(seq), &e.data));
            let logged = self.conn.exec(
                "INSERT INTO events (user_id, seq, event, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![e.user_id, seq, e.event, &*e.data, e.now],
            );
            if let (Err(_), Some(cache)) = (&logged, self.seqs.as_deref_mut()) {
                // The position was taken already: something else wrote this database (it
                // must have one relay process only). Start over from what it holds, so the
                // next write reloads instead of failing the same way forever.
                cache.forget();
            }
            logged?;
            self.out
                .push(BusMessage::deliver(room::user(&e.user_id), frame));
        }
        Ok(())
    }
}

/// Each parent's newest event position, kept by SQLite's one writer so that an
/// event costs one `INSERT` (see the module doc).
///
/// It must only ever say what is committed, or what the open transaction wrote: the writer
/// calls [`SeqCache::job_started`] before each job, [`SeqCache::job_rolled_back`] when the
/// job's writes are rolled back (the positions it took are given back), and
/// [`SeqCache::forget`] when a whole transaction is (a failed `COMMIT`). A position taken
/// wrongly could only make the event's `INSERT` fail on the `(user_id, seq)` key, never
/// reuse a number.
#[derive(Default)]
pub(super) struct SeqCache {
    newest: HashMap<String, i64>,
    /// What the current job changed: each parent's newest before it (`None`: not cached).
    undo: Vec<(String, Option<i64>)>,
    /// Each child's guardians, forgotten with every rollback (see [`GuardianCache`]).
    pub(super) guardians: GuardianCache,
}

/// Parents remembered at most; past it the cache starts empty again (reloading a parent
/// costs two indexed lookups).
const SEQ_CACHE_MAX: usize = 100_000;

impl SeqCache {
    /// A job begins: what it changes can be undone until the next call. Between jobs the
    /// cache is also kept bounded.
    pub(super) fn job_started(&mut self) {
        self.undo.clear();
        if self.newest.len() >= SEQ_CACHE_MAX {
            self.newest.clear();
        }
    }

    /// The current job's writes were rolled back: so are the positions it took (and the
    /// guardians it may have read from its own writes are forgotten).
    pub(super) fn job_rolled_back(&mut self) {
        self.guardians.clear();
        for (user, before) in self.undo.drain(..).rev() {
            match before {
                Some(seq) => self.newest.insert(user, seq),
                None => self.newest.remove(&user),
            };
        }
    }

    /// The transaction was rolled back as a whole, or a position turned out to be taken:
    /// nothing remembered can be trusted (the current job's undo goes too).
    pub(super) fn forget(&mut self) {
        self.guardians.clear();
        self.newest.clear();
        self.undo.clear();
    }

    /// Takes `user_id`'s next position (loading their newest from the database first).
    fn take_next(&mut self, conn: super::db::Db<'_>, user_id: &str) -> StoreResult<i64> {
        let before = self.newest.get(user_id).copied();
        let newest = match before {
            Some(seq) => seq,
            None => newest_position(conn, user_id)?,
        };
        self.undo.push((user_id.to_string(), before));
        self.newest.insert(user_id.to_string(), newest + 1);
        Ok(newest + 1)
    }
}

/// The newest position `user_id` was given (0 if none): the larger of `user_seqs` (the
/// counter on PostgreSQL, a floor on SQLite) and their newest event.
fn newest_position(c: super::db::Db<'_>, user_id: &str) -> StoreResult<i64> {
    let counter = c
        .opt(
            "SELECT seq FROM user_seqs WHERE user_id = ?1",
            args![user_id],
            |r| r.int(0),
        )?
        .unwrap_or(0);
    let logged = c
        .opt(
            "SELECT seq FROM events WHERE user_id = ?1 ORDER BY seq DESC LIMIT 1",
            args![user_id],
            |r| r.int(0),
        )?
        .unwrap_or(0);
    Ok(counter.max(logged))
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
    /// Positions are per user and gap-free. On PostgreSQL the upsert on `user_seqs` takes the
    /// next number and holds the user's row lock until commit, so another writer (on any
    /// node) that logs for the same user waits, and position N+1 never commits before N; on
    /// SQLite the one writer commits in order and remembers the numbers ([`SeqCache`]).
    pub(super) fn log_event(
        w: &mut W<'_>,
        user_id: &str,
        event: &'static str,
        data: &impl serde::Serialize,
        now: Millis,
    ) -> StoreResult<()> {
        Self::log_event_for_all(
            w,
            std::slice::from_ref(&user_id.to_string()),
            event,
            data,
            now,
        )
    }

    /// Logs one event for every user in `users` (the data serialized once for all).
    pub(super) fn log_event_for_all(
        w: &mut W<'_>,
        users: &[String],
        event: &'static str,
        data: &impl serde::Serialize,
        now: Millis,
    ) -> StoreResult<()> {
        let text: Arc<str> = serde_json::to_string(data)
            .map_err(|e| StoreError::Db(format!("serializing {event}: {e}")))?
            .into();
        for u in users {
            w.events.push(PendingEvent {
                user_id: u.clone(),
                event,
                data: text.clone(),
                now,
            });
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
            let newest = newest_position(c, &user_id)?;
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

    /// Test support: `user_id`'s next `n` positions are never used, as if their events had
    /// been logged and pruned unseen (a socket that was not sent them has a gap the history
    /// cannot fill). Goes through the writer, so SQLite's remembered positions agree.
    #[doc(hidden)]
    pub async fn skip_positions(&self, user_id: &str, n: i64) -> StoreResult<()> {
        let user_id = user_id.to_string();
        self.write(move |w| {
            let newest = match w.seqs.as_deref_mut() {
                Some(cache) => {
                    let mut last = 0;
                    for _ in 0..n {
                        last = cache.take_next(w.conn, &user_id)?;
                    }
                    last
                }
                None => newest_position(w.conn, &user_id)? + n,
            };
            w.conn.exec(
                "INSERT INTO user_seqs (user_id, seq, pruned_through) VALUES (?1, ?2, 0) \
                 ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
                args![user_id, newest],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes events created before `before`; returns how many. Positions live on in
    /// `user_seqs` (never reused: on SQLite the floors of the parents concerned are raised
    /// first, in the same transaction); a resume that needs a deleted event gets `resync`
    /// (see [`Store::event_positions`]). On PostgreSQL only event rows are touched: no lock
    /// any other write waits on. (`user_seqs.pruned_through` is no longer used.)
    ///
    /// SQLite keeps the log in commit order (migration 9) with no time index: the oldest
    /// rows are walked up to the first one created at or after `before`, and everything
    /// older goes. The work is the rows deleted, plus one. (An event committed just after
    /// a slightly younger one may outlive `before` until the next pass.)
    pub async fn prune_events(&self, before: Millis) -> StoreResult<u64> {
        self.write(move |w| {
            if w.seqs.is_none() {
                return w
                    .conn
                    .exec("DELETE FROM events WHERE created_at < ?1", args![before]);
            }
            let keep_from = w.conn.int(
                "SELECT COALESCE((SELECT id FROM events WHERE created_at >= ?1 ORDER BY id LIMIT 1), \
                 (SELECT COALESCE(MAX(id), 0) + 1 FROM events))",
                args![before],
            )?;
            w.conn.exec(
                "INSERT INTO user_seqs (user_id, seq, pruned_through) \
                 SELECT user_id, MAX(seq), 0 FROM events NOT INDEXED WHERE id < ?1 GROUP BY user_id \
                 ON CONFLICT (user_id) DO UPDATE SET seq = MAX(user_seqs.seq, excluded.seq)",
                args![keep_from],
            )?;
            w.conn
                .exec("DELETE FROM events WHERE id < ?1", args![keep_from])
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{test_store, StoreError};

    /// Logs one event for `user`; with `fail`, the job fails after its position was taken.
    async fn log(store: &Store, user: &str, fail: bool) -> StoreResult<()> {
        log_at(store, user, fail, 1_000).await
    }

    /// [`log`], created at `at`.
    async fn log_at(store: &Store, user: &str, fail: bool, at: Millis) -> StoreResult<()> {
        let user = user.to_string();
        store
            .write(move |w| {
                Store::log_event(w, &user, "test", &serde_json::json!({}), at)?;
                w.flush_events()?;
                if fail {
                    return Err(StoreError::Conflict("rolled back".into()));
                }
                Ok(())
            })
            .await
    }

    async fn seqs(store: &Store, user: &str) -> Vec<i64> {
        let logged = store.events_after(user, 0, 1_000).await.unwrap();
        logged.iter().map(|e| e.seq).collect()
    }

    /// Positions stay gap-free when jobs that took one are rolled back, alone in their
    /// transaction or among others in one batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn positions_taken_by_a_rolled_back_job_are_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(test_store(&dir).await);
        log(&store, "u1", false).await.unwrap();
        assert!(log(&store, "u1", true).await.is_err());
        log(&store, "u1", false).await.unwrap();
        assert_eq!(seqs(&store, "u1").await, vec![1, 2]);
        let mut tasks = vec![];
        for i in 0..60 {
            let s = store.clone();
            let user = if i % 3 == 0 { "u2" } else { "u1" };
            tasks.push(tokio::spawn(async move { log(&s, user, i % 2 == 1).await }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap().is_ok());
        }
        assert_eq!(ok, 30);
        let (u1, u2) = (seqs(&store, "u1").await, seqs(&store, "u2").await);
        assert_eq!(u1.len() + u2.len(), 32);
        assert_eq!(u1, (1..=u1.len() as i64).collect::<Vec<_>>(), "gap-free");
        assert_eq!(u2, (1..=u2.len() as i64).collect::<Vec<_>>(), "gap-free");
    }

    /// A position is never given twice: not after every event of a parent was pruned, and
    /// not after a restart (the remembered positions are gone, the database has them).
    #[tokio::test]
    async fn positions_survive_pruning_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(&dir).await;
        for _ in 0..3 {
            log(&store, "u1", false).await.unwrap();
        }
        log(&store, "u2", false).await.unwrap();
        assert_eq!(store.prune_events(2_000).await.unwrap(), 4);
        assert_eq!(seqs(&store, "u1").await, Vec::<i64>::new());
        assert_eq!(
            store.event_positions("u1", Some(1)).await.unwrap(),
            (3, false)
        );
        log(&store, "u1", false).await.unwrap();
        assert_eq!(seqs(&store, "u1").await, vec![4]);
        drop(store);
        let store = test_store(&dir).await;
        assert_eq!(store.event_positions("u1", None).await.unwrap(), (4, true));
        log(&store, "u1", false).await.unwrap();
        log(&store, "u2", false).await.unwrap();
        assert_eq!(seqs(&store, "u1").await, vec![4, 5]);
        assert_eq!(seqs(&store, "u2").await, vec![2]);
    }

    /// Pruning deletes exactly the events older than the cut, for every parent, and keeps
    /// the younger ones readable in order; positions are never reused afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_deletes_the_old_events_of_every_parent_and_keeps_the_young() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(&dir).await;
        // Interleaved parents, times rising in commit order.
        for (i, user) in ["u1", "u2", "u1", "u3", "u2", "u1"].iter().enumerate() {
            log_at(&store, user, false, 1_000 + i as i64 * 100)
                .await
                .unwrap();
        }
        assert_eq!(store.prune_events(1_000).await.unwrap(), 0, "nothing older");
        // Cut at 1,250: the first three go (u1 #1, u2 #1, u1 #2).
        assert_eq!(store.prune_events(1_250).await.unwrap(), 3);
        assert_eq!(seqs(&store, "u1").await, vec![3]);
        assert_eq!(seqs(&store, "u2").await, vec![2]);
        assert_eq!(seqs(&store, "u3").await, vec![1]);
        assert_eq!(
            store.event_positions("u1", Some(1)).await.unwrap(),
            (3, false)
        );
        assert_eq!(
            store.event_positions("u1", Some(2)).await.unwrap(),
            (3, true)
        );
        // Everything older than the newest: all go, and the positions carry on.
        assert_eq!(store.prune_events(10_000).await.unwrap(), 3);
        assert_eq!(store.prune_events(10_000).await.unwrap(), 0, "an empty log");
        for user in ["u1", "u2", "u3"] {
            assert_eq!(seqs(&store, user).await, Vec::<i64>::new());
        }
        log_at(&store, "u2", false, 20_000).await.unwrap();
        assert_eq!(seqs(&store, "u2").await, vec![3]);
        drop(store);
        let store = test_store(&dir).await;
        log_at(&store, "u1", false, 20_000).await.unwrap();
        assert_eq!(seqs(&store, "u1").await, vec![4]);
    }

    /// A database written by a relay of schema version 8 (the log clustered by parent) is
    /// migrated with its events: the same positions, data and order, and the next position
    /// follows them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_event_log_of_a_version_8_database_survives_migration_9() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let migrations = super::super::migrate::SQLITE_MIGRATIONS;
            super::super::migrate::migrate(super::super::db::Db::Lite(&conn), &migrations[..8])
                .unwrap();
            for (user, seq, at) in [("u1", 1, 100), ("u2", 1, 150), ("u1", 2, 200)] {
                conn.execute(
                    "INSERT INTO events (user_id, seq, event, data, created_at) VALUES (?1, ?2, 'e', ?3, ?4)",
                    rusqlite::params![user, seq, format!("{{\"n\":{seq}}}"), at],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO user_seqs (user_id, seq, pruned_through) VALUES ('u1', 2, 0)",
                [],
            )
            .unwrap();
        }
        let store = test_store(&dir).await;
        let layout = store
            .read(|c| {
                c.int(
                    "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'id' AND pk = 1",
                    args![],
                )
            })
            .await
            .unwrap();
        assert_eq!(layout, 1, "the log is in commit order now");
        let u1 = store.events_after("u1", 0, 10).await.unwrap();
        assert_eq!(u1.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(u1[1].data, r#"{"n":2}"#);
        assert_eq!(seqs(&store, "u2").await, vec![1]);
        log_at(&store, "u1", false, 300).await.unwrap();
        assert_eq!(seqs(&store, "u1").await, vec![1, 2, 3]);
        // Oldest first by time, as they were committed.
        assert_eq!(store.prune_events(160).await.unwrap(), 2);
        assert_eq!(seqs(&store, "u1").await, vec![2, 3]);
        assert_eq!(seqs(&store, "u2").await, Vec::<i64>::new());
    }
}
