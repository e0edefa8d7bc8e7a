//! Durable state behind one seam: the [`Store`].
//!
//! Two engines run the same statements through [`Db`] (`db.rs`): SQLite (rusqlite, bundled;
//! the embedded default) and PostgreSQL (several nodes). Every write is a closure over a
//! transaction (a job), whatever the number of statements.
//!
//! - **SQLite**: one write connection, no writer thread: the caller that finds it free
//!   commits every job waiting (up to 256) in one transaction, each inside its own
//!   `SAVEPOINT` when there are several (a failing job rolls back alone), then publishes the
//!   bus messages the jobs produced, in order, and only then answers their callers; jobs
//!   that arrive meanwhile wait for it to take them next (`sqlite_writer::Writer`; when jobs
//!   come fast it first waits a timer tick for company, and a write nobody waits for joins
//!   the next batch or commits within 5 ms: `Store::write_later`). Reads use
//!   read-only connections (WAL readers do not block the writer): inline on the calling
//!   thread when one of a few is free, else on two reader threads.
//! - **PostgreSQL**: four writer threads that callers hand jobs to, one transaction per job
//!   (other nodes write at the
//!   same time); four reader threads. Read-then-write steps lock their rows
//!   ([`Db::for_update`]); every state transition is a conditional `UPDATE`, so each happens
//!   once cluster-wide whichever node runs it.
//!
//! On both:
//! - a 2xx is answered after `COMMIT`;
//! - nothing reaches a socket before the change it reports is committed;
//! - each parent's events are numbered 1, 2, 3, ..., gap-free and in commit order for that
//!   parent (by `user_seqs` on PostgreSQL, by the single writer's cache on SQLite; see
//!   `store/events.rs`), which is what resume relies on.
//!
//! # Layout
//! - `mod.rs`: the public surface: [`Store`], [`StoreOptions`], [`StoreError`], [`Engine`],
//!   opening the store.
//! - `url.rs`: `SAFESTREAM_DB` parsing (engine, path or URL).
//! - `migrate.rs`: both dialects' migrations (`relay/migrations/<dialect>/`).
//! - `db.rs`: the engine-neutral statement surface ([`Db`], [`Row`], `args!`).
//! - `write.rs`: the write path both engines share: [`W`] (a write in progress), jobs,
//!   `Store::write`.
//! - `sqlite_writer.rs`: the SQLite group-commit writer (flat combining); opening SQLite
//!   connections.
//! - `checkpoint.rs`: the SQLite checkpoint thread and its `PassGate`.
//! - `pg_writer.rs`: the PostgreSQL writer threads (and migrating under a lock).
//! - `readers.rs`: `Store::read`, inline reads, the reader threads of both engines.
//! - `events.rs`: the parent event log (positions, resume reads, pruning).
//! - `meta.rs`: the device-token signing key.
//! - `registry.rs`: children, guardians, devices (with an in-memory device cache).
//! - `rotation.rs`: device token generations: which are accepted, rotation, promotion.
//! - `commands.rs`: the command lifecycle.
//! - `notifications.rs`, `screen_time.rs`, `pairing.rs`: what their names say.
//! - `webhooks.rs`: the webhook outbox: rows written with the change they report, claims
//!   with a lease, outcomes, the parked list.
//! - `push.rs`: push tokens and durable wake-ups (written with the command, claimed with a
//!   lease like the webhook outbox).

mod checkpoint;
mod commands;
mod db;
mod events;
mod meta;
mod migrate;
mod notifications;
mod pairing;
mod pg_writer;
mod push;
mod readers;
mod registry;
mod rotation;
mod screen_time;
mod sqlite_writer;
mod url;
mod wal_vfs;
mod webhooks;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

pub use checkpoint::{CHECKPOINT_EVERY, WAL_RESTART_FRAMES};
pub use commands::{AckOutcome, CommandFilter, NewCommand};
pub(crate) use db::args;
pub use db::{Arg, Db, PgConn, Row, ToArg};
pub use events::LoggedEvent;
pub use notifications::NewNotification;
pub use pairing::{Pairing, PairingStatus};
pub use push::{PushOutcome, PushTarget, ONLINE_RECHECK_MS, PUSH_DELAY_MS, PUSH_WINDOW_MS};
pub use registry::{ChildPatch, ChildWriter, DeviceAuth, TokenGens};
pub use rotation::{Rotation, TokenVerdict};
pub use screen_time::ScreenTimeOutcome;
pub use webhooks::{Claimed, EndpointStats, FailedCursor, FailedHook, HookOutcome, Leased};
pub use write::W;

use crate::bus::Bus;
use readers::ReadJob;
use write::WriteJob;

/// What a store operation can fail with. Everything but `Db` is the client's doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input is invalid in a way only the stored state reveals.
    #[error("{0}")]
    BadRequest(String),
    /// No such record.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not touch it.
    #[error("{0}")]
    Forbidden(String),
    /// It is in a state that contradicts the request.
    #[error("{0}")]
    Conflict(String),
    /// It existed but has expired.
    #[error("{0}")]
    Gone(String),
    /// The database failed; the operation was rolled back.
    #[error("database: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Shorthand.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite file (the embedded default).
    Sqlite,
    /// PostgreSQL server (several nodes).
    Postgres,
}

/// Options that are not part of the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite `synchronous`: `normal` or `full`.
    pub sqlite_sync: String,
    /// SQLite: WAL length in frames past which it is made to start over
    /// ([`WAL_RESTART_FRAMES`] in production; tests use a small one).
    pub wal_restart_frames: i64,
    /// SQLite: how often the checkpoint thread runs ([`CHECKPOINT_EVERY`] in production).
    pub checkpoint_every: std::time::Duration,
    /// Webhook endpoints: every write that reports a change also writes one outbox row per
    /// endpoint (none: no outbox rows).
    pub webhook_endpoints: Vec<String>,
    /// Push wake-ups are on: every command for a device with a push token also writes its
    /// wake-up row (off: no rows).
    pub push: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_sync: "normal".into(),
            wal_restart_frames: WAL_RESTART_FRAMES,
            checkpoint_every: CHECKPOINT_EVERY,
            webhook_endpoints: Vec::new(),
            push: false,
        }
    }
}

/// Where writes go.
enum Writer {
    /// Run by the callers themselves, one batch at a time.
    Sqlite(Arc<sqlite_writer::Writer>),
    /// Sent to the PostgreSQL writer threads.
    Pg(mpsc::Sender<WriteJob>),
}

/// The relay's durable state. Cheap to share (`Arc`).
pub struct Store {
    writer: Writer,
    reader: mpsc::Sender<ReadJob>,
    /// Read connections used inline by the calling thread when one is free (SQLite only).
    inline: Vec<Mutex<rusqlite::Connection>>,
    devices: Arc<Mutex<HashMap<String, DeviceAuth>>>,
    engine: Engine,
    /// See [`StoreOptions::webhook_endpoints`].
    hook_endpoints: Arc<[String]>,
    /// Notified after a commit that wrote outbox rows nobody holds (see `hook_handoff`).
    hook_wake: Arc<tokio::sync::Notify>,
    /// This node's webhook sender, once started: outbox rows are written already leased to
    /// it and handed over in memory after the commit, so the hot path needs no claim.
    hook_handoff: std::sync::OnceLock<webhooks::Handoff>,
    /// See [`StoreOptions::push`].
    push_on: bool,
    /// Notified after a commit that wrote wake-up rows.
    push_wake: Arc<tokio::sync::Notify>,
    /// Dropped with the store: stops the SQLite checkpointer thread.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts the
    /// writer and reader threads.
    pub async fn open(db: &str, opts: &StoreOptions, bus: Arc<dyn Bus>) -> Result<Store, String> {
        let (engine, path) = url::parse_db(db)?;
        let (rtx, rrx) = mpsc::channel::<ReadJob>(4096);
        let rrx = Arc::new(Mutex::new(rrx));
        let (writer, inline, checkpointer) = match engine {
            Engine::Sqlite => {
                let sync = if opts.sqlite_sync == "full" {
                    "FULL"
                } else {
                    "NORMAL"
                };
                let lock = sqlite_writer::lock_database(&path, sqlite_writer::LOCK_WAIT).await?;
                let (writer, checkpointer) = sqlite_writer::start(&path, lock, sync, opts, bus)?;
                let inline = readers::start_sqlite(&path, sync, rrx)?;
                (Writer::Sqlite(writer), inline, Some(checkpointer))
            }
            Engine::Postgres => {
                let (wtx, wrx) = mpsc::channel::<WriteJob>(4096);
                pg_writer::start(&path, bus, wrx).await?;
                readers::start_pg(&path, rrx).await?;
                (Writer::Pg(wtx), Vec::new(), None)
            }
        };
        Ok(Store {
            writer,
            reader: rtx,
            inline,
            devices: Arc::new(Mutex::new(HashMap::new())),
            engine,
            hook_endpoints: opts.webhook_endpoints.clone().into(),
            hook_wake: Arc::new(tokio::sync::Notify::new()),
            hook_handoff: std::sync::OnceLock::new(),
            push_on: opts.push,
            push_wake: Arc::new(tokio::sync::Notify::new()),
            _checkpointer: checkpointer,
        })
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.read(|c| c.int("SELECT 1", args![])).await.is_ok()
    }

    /// Stops accepting work (threads end when their queues drain).
    pub async fn close(&self) {
        // Writes nobody waits for (DELIVERED records) are committed now, not by their timer,
        // which a stopping runtime may never run. Otherwise queued work still completes:
        // dropping the senders ends the PostgreSQL threads, and an Arc<Store> may outlive
        // shutdown in tests.
        if let Writer::Sqlite(w) = &self.writer {
            w.flush();
        }
    }
}

/// A bus that drops every message (the store's unit tests).
#[cfg(test)]
struct NullBus;

/// A SQLite store in `dir` publishing nowhere (the store's unit tests).
#[cfg(test)]
async fn test_store(dir: &tempfile::TempDir) -> Store {
    let db = dir.path().join("t.db");
    Store::open(
        db.to_str().unwrap_or("t.db"),
        &StoreOptions::default(),
        std::sync::Arc::new(NullBus),
    )
    .await
    .expect("a test store opens")
}

#[cfg(test)]
impl Bus for NullBus {
    fn publish(&self, _: crate::message::BusMessage) {}
}
