//! The write path both engines share: an operation is a closure over a transaction ([`W`]),
//! sent as a job to a writer thread (`sqlite_writer.rs`, `pg_writer.rs`), which answers
//! after `COMMIT` and publishes the bus messages the operation queued.

use tokio::sync::oneshot;

use super::db::Db;
use super::events::PendingEvent;
use super::{Store, StoreError, StoreResult};
use crate::message::BusMessage;

/// A write in progress, handed to an operation's closure on a writer thread.
pub struct W<'c> {
    pub(super) conn: Db<'c>,
    pub(super) out: Vec<BusMessage>,
    /// Parent events logged by the operation, written when it ends (see [`W::flush_events`]).
    pub(super) events: Vec<PendingEvent>,
}

impl W<'_> {
    /// Queues a bus message, published after commit.
    pub(super) fn publish(&mut self, msg: BusMessage) {
        self.out.push(msg);
    }
}

/// What a job hands back to its writer thread: whether it failed, the messages to publish
/// after commit, and how to answer its caller.
pub(super) struct Done {
    pub(super) failed: bool,
    pub(super) msgs: Vec<BusMessage>,
    pub(super) reply: Box<dyn FnOnce(Option<String>) + Send>,
}

/// One operation, as a writer thread runs it.
pub(super) type WriteJob = Box<dyn FnOnce(Db<'_>) -> Done + Send>;

impl Store {
    /// Runs `f` in the next write transaction; see the module doc.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut W<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: WriteJob = Box::new(move |conn: Db<'_>| {
            let mut w = W {
                conn,
                out: Vec::new(),
                events: Vec::new(),
            };
            let res = f(&mut w).and_then(|v| w.flush_events().map(|()| v));
            let failed = res.is_err();
            let msgs = if failed { Vec::new() } else { w.out };
            Done {
                failed,
                msgs,
                reply: Box::new(move |commit_error: Option<String>| {
                    let _ = tx.send(match commit_error {
                        None => res,
                        Some(e) => Err(StoreError::Db(e)),
                    });
                }),
            }
        });
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Db("the store is closed".into()))?;
        rx.await
            .map_err(|_| StoreError::Db("the store writer stopped".into()))?
    }
}
