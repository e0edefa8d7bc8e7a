//! The write path both engines share: an operation is a closure over a transaction ([`W`]),
//! a job run by SQLite's writer (`sqlite_writer.rs`, on the caller's thread) or sent to a
//! PostgreSQL writer thread (`pg_writer.rs`), which answers after `COMMIT` and publishes the
//! bus messages the operation queued.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::db::Db;
use super::events::{PendingEvent, SeqCache};
use super::webhooks::{Handed, Handoff, PendingHook};
use super::{Store, StoreError, StoreResult};
use crate::message::BusMessage;

/// A write in progress, handed to an operation's closure by a writer.
pub struct W<'c> {
    pub(super) conn: Db<'c>,
    /// SQLite's single writer: each parent's newest event position, remembered (see
    /// [`SeqCache`]); `None` on PostgreSQL, where `user_seqs` is the counter.
    pub(super) seqs: Option<&'c mut SeqCache>,
    pub(super) out: Vec<BusMessage>,
    /// Parent events logged by the operation, written when it ends (see [`W::flush_events`]).
    pub(super) events: Vec<PendingEvent>,
    /// Webhook endpoints configured (none: webhooks are off and nothing is queued).
    pub(super) hook_endpoints: Arc<[String]>,
    /// Webhook events logged by the operation, written to the outbox when it ends
    /// (see [`W::flush_webhooks`]).
    pub(super) hooks: Vec<PendingHook>,
    /// This node's webhook sender, when started: rows it has room for are written leased to
    /// it and handed over after the commit.
    pub(super) handoff: Option<Handoff>,
    /// Rows written leased to this node's sender, with their places in its queue.
    pub(super) handed: Vec<Handed>,
    /// Whether push is on: commands write wake-up rows (see `store/push.rs`).
    pub(super) push_on: bool,
    /// Whether this write wrote wake-up rows (the push sender is woken after commit).
    pub(super) pushed: bool,
}

impl W<'_> {
    /// The guardians of `child_id`, sorted: remembered by SQLite's writer (see
    /// `registry::GuardianCache`), looked up on PostgreSQL.
    pub(super) fn guardians(&mut self, child_id: &str) -> StoreResult<Arc<[String]>> {
        match self.seqs.as_deref_mut() {
            Some(memo) => memo.guardians.get(self.conn, child_id),
            None => Ok(super::registry::guardians_of(self.conn, child_id)?.into()),
        }
    }

    /// Queues a bus message, published after commit.
    pub(super) fn publish(&mut self, msg: BusMessage) {
        self.out.push(msg);
    }
}

/// What a job hands back to its writer: whether it failed, the messages to publish
/// after commit, and how to answer its caller.
pub(super) struct Done {
    pub(super) failed: bool,
    pub(super) msgs: Vec<BusMessage>,
    pub(super) reply: Box<dyn FnOnce(Option<String>) + Send>,
}

/// One operation, as a writer runs it (with SQLite's position cache, if any).
pub(super) struct WriteJob {
    /// The operation fails only before its first write, or on a database error: SQLite's
    /// writer runs it without a savepoint of its own (see `sqlite_writer::WriterState::run_batch`).
    pub(super) checks_first: bool,
    /// Runs it.
    pub(super) run: JobFn,
}

/// A job's body.
pub(super) type JobFn = Box<dyn for<'c> FnOnce(Db<'c>, Option<&'c mut SeqCache>) -> Done + Send>;

impl Store {
    /// Builds the job that runs `f`; `answer` gets its outcome after the commit (or the
    /// failure), with whether it wrote webhook rows nobody holds and push wake-ups.
    fn job<T, F>(
        &self,
        f: F,
        answer: impl FnOnce(StoreResult<T>, bool, bool) + Send + 'static,
    ) -> WriteJob
    where
        T: Send + 'static,
        F: FnOnce(&mut W<'_>) -> StoreResult<T> + Send + 'static,
    {
        let hook_endpoints = self.hook_endpoints.clone();
        let handoff = if hook_endpoints.is_empty() {
            None
        } else {
            self.hook_handoff.get().cloned()
        };
        let push_on = self.push_on;
        let run: JobFn = Box::new(move |conn, seqs| {
            let mut w = W {
                conn,
                seqs,
                out: Vec::new(),
                events: Vec::new(),
                hook_endpoints,
                hooks: Vec::new(),
                handoff,
                handed: Vec::new(),
                push_on,
                pushed: false,
            };
            let mut hooked = false;
            let res = f(&mut w)
                .and_then(|v| w.flush_events().map(|()| v))
                .and_then(|v| w.flush_webhooks().map(|n| (v, n)))
                .map(|(v, n)| {
                    hooked = n > 0;
                    v
                });
            let failed = res.is_err();
            let pushed = !failed && w.pushed;
            let msgs = if failed { Vec::new() } else { w.out };
            // Rows of a failed job were rolled back with it: nothing to hand over (dropping
            // the places frees them).
            let handed = if failed { Vec::new() } else { w.handed };
            Done {
                failed,
                msgs,
                reply: Box::new(move |commit_error: Option<String>| match commit_error {
                    None => {
                        // Committed rows leased to this node's sender: into its queue, here
                        // on the writer (so a caller that went away cannot strand them), in
                        // places reserved when they were written.
                        for (place, row) in handed {
                            place.send(row);
                        }
                        answer(res, hooked, pushed)
                    }
                    Some(e) => answer(Err(StoreError::Db(e)), false, false),
                }),
            }
        });
        WriteJob {
            checks_first: false,
            run,
        }
    }

    /// Runs `f` in a write transaction nobody waits for: on SQLite it joins the next
    /// transaction (or commits alone within `sqlite_writer::LATER_AT_MOST`), on PostgreSQL
    /// it is sent to a writer thread. A failure is logged with `what`; `committed` gets the
    /// result once it is committed.
    ///
    /// For bookkeeping whose callers go on without it: recording a delivery (DELIVERED). It
    /// is as durable as any write once committed, and published only then; what it reports
    /// reaches parents up to a few milliseconds later than a write of its own would. `f`
    /// must fail only before its first write or on a database error, as for
    /// [`Store::write_checks_first`].
    pub(super) fn write_later<T, F>(
        &self,
        what: &'static str,
        f: F,
        committed: impl FnOnce(T) + Send + 'static,
    ) where
        T: Send + 'static,
        F: FnOnce(&mut W<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (hook_wake, push_wake) = (self.hook_wake.clone(), self.push_wake.clone());
        let mut job = self.job(f, move |res, hooked, pushed| {
            match res {
                Ok(v) => committed(v),
                Err(e) => tracing::warn!(error = %e, "{what}"),
            }
            if hooked {
                hook_wake.notify_one();
            }
            if pushed {
                push_wake.notify_one();
            }
        });
        job.checks_first = true;
        match &self.writer {
            super::Writer::Sqlite(w) => w.submit_later(job),
            super::Writer::Pg(tx) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if tx.send(job).await.is_err() {
                        tracing::warn!("{what}: the store is closed");
                    }
                });
            }
        }
    }

    /// Runs `f` in the next write transaction; see the module doc.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut W<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.write_job(f, false).await
    }

    /// [`Store::write`] for an operation that fails only before its first write (its
    /// checks come first) or on a database error: on SQLite it needs no savepoint of its
    /// own in a batch. Should it fail after writing anyway, the writer rolls back the whole
    /// transaction, and the jobs before it in that transaction fail with it.
    pub(super) async fn write_checks_first<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut W<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.write_job(f, true).await
    }

    async fn write_job<T, F>(&self, f: F, checks_first: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut W<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<(StoreResult<T>, bool, bool)>();
        let mut job = self.job(f, move |res, hooked, pushed| {
            let _ = tx.send((res, hooked, pushed));
        });
        job.checks_first = checks_first;
        match &self.writer {
            super::Writer::Sqlite(w) => {
                if let super::sqlite_writer::Submitted::Gather(batch) = w.submit(job) {
                    // Others join this batch meanwhile; dropping the guard commits it (if
                    // this write is cancelled during the wait, too).
                    tokio::time::sleep(super::sqlite_writer::GATHER).await;
                    drop(batch);
                }
            }
            super::Writer::Pg(tx) => tx
                .send(job)
                .await
                .map_err(|_| StoreError::Db("the store is closed".into()))?,
        }
        let (res, hooked, pushed) = rx
            .await
            .map_err(|_| StoreError::Db("the store writer stopped".into()))?;
        if hooked {
            // Committed outbox rows nobody holds: wake this node's webhook sender to claim them.
            self.hook_wake.notify_one();
        }
        if pushed {
            // Committed wake-up rows: wake this node's push sender.
            self.push_wake.notify_one();
        }
        res
    }
}
