//! Durable state behind one seam: the [`Store`].
//!
//! Two engines run the same statements through [`Db`] (`db.rs`): SQLite (rusqlite, bundled;
//! the embedded default) and PostgreSQL (several nodes). Every write is a closure over a
//! transaction, run on a writer thread: an async caller sends its closure, a thread runs it
//! and answers — one thread hop per operation, whatever the number of statements.
//!
//! - **SQLite**: one writer thread commits in groups: it takes every job waiting (up to
//!   256), runs each inside its own `SAVEPOINT` (a failing job rolls back alone), commits
//!   once, then publishes the bus messages the jobs produced, in order, and only then answers
//!   the callers. Reads use read-only connections (WAL readers do not block the writer):
//!   inline on the calling thread when one of a few is free, else on two reader threads.
//! - **PostgreSQL**: four writer threads, one transaction per job (other nodes write at the
//!   same time); four reader threads. Read-then-write steps lock their rows
//!   ([`Db::for_update`]); every state transition is a conditional `UPDATE`, so each happens
//!   once cluster-wide whichever node runs it.
//!
//! On both:
//! - a 2xx is answered after `COMMIT`;
//! - nothing reaches a socket before the change it reports is committed;
//! - each parent's events are numbered 1, 2, 3, ... in `user_seqs`, gap-free and in commit
//!   order for that parent (see [`Store::log_event`]), which is what resume relies on.
//!
//! # Layout
//! - `mod.rs`: threads, opening, migrations, errors, the event log (resume), meta keys.
//! - `db.rs`: the engine-neutral statement surface.
//! - `registry.rs`: children, guardians, devices (with an in-memory device cache).
//! - `commands.rs`: the command lifecycle.
//! - `notify.rs`: notifications, screen time, pairing.

mod commands;
mod db;
mod notify;
mod registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use commands::{device_frame, AckOutcome, CommandFilter, NewCommand};
pub(crate) use db::args;
pub use db::{Arg, Db, PgConn, Row, ToArg};
pub use notify::{NewNotification, Pairing, PairingStatus, ScreenTimeOutcome};
pub use registry::{ChildPatch, ChildWriter, DeviceAuth};

use crate::bus::{room, Bus, BusMessage, OutFrame};
use crate::model::Millis;

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

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The migrations of one dialect (`relay/migrations/<dialect>/`): the same versions and
/// names for both engines, so version N is the same schema in either.
macro_rules! migrations {
    ($dialect:literal) => {
        &[
            Migration {
                version: 1,
                name: "init",
                sql: include_str!(concat!("../../migrations/", $dialect, "/0001_init.sql")),
            },
            Migration {
                version: 2,
                name: "per_user_event_seq",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0002_per_user_event_seq.sql"
                )),
            },
            Migration {
                version: 3,
                name: "pending_by_time",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0003_pending_by_time.sql"
                )),
            },
        ]
    };
}
const SQLITE_MIGRATIONS: &[Migration] = migrations!("sqlite");
const PG_MIGRATIONS: &[Migration] = migrations!("postgres");

/// Jobs taken into one transaction at most.
const MAX_BATCH: usize = 256;
/// Reader threads (SQLite).
const READERS: usize = 2;
/// Read connections used inline by async callers (one per runtime worker is plenty).
const INLINE_READERS: usize = 4;
/// A batch smaller than this waits [`LINGER`] once for more jobs before committing, when
/// jobs arrive fast enough that one is expected within it (see [`Arrivals`]).
const LINGER_BELOW: usize = 16;
/// How long a small batch waits (adds at most this to a write's latency).
const LINGER: std::time::Duration = std::time::Duration::from_micros(250);
/// Over how long the writer measures its arrival rate.
const ARRIVAL_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);
/// PostgreSQL writer threads (one connection and one transaction per job each).
const PG_WRITERS: usize = 4;
/// PostgreSQL reader threads.
const PG_READERS: usize = 4;
/// Key of the advisory lock held while migrating PostgreSQL (several nodes may start at once).
const PG_MIGRATION_LOCK: i64 = 0x5afe_57ea;

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_sync: "normal".into(),
            wal_restart_frames: WAL_RESTART_FRAMES,
            checkpoint_every: CHECKPOINT_EVERY,
        }
    }
}

/// A write in progress, handed to an operation's closure on a writer thread.
pub struct W<'c> {
    conn: Db<'c>,
    out: Vec<BusMessage>,
    /// Parent events logged by the operation, written when it ends (see [`W::flush_events`]).
    events: Vec<PendingEvent>,
}

/// A parent event waiting for its position.
struct PendingEvent {
    user_id: String,
    event: String,
    data: Value,
    now: Millis,
}

impl W<'_> {
    /// Queues a bus message, published after commit.
    fn publish(&mut self, msg: BusMessage) {
        self.out.push(msg);
    }

    /// Writes the operation's parent events, in one pass **sorted by user** (stable, so each
    /// user's events keep their order). Taking a position locks that user's `user_seqs` row
    /// until commit; taking them last and in one global order means two transactions never
    /// wait on each other's users in opposite orders (no deadlock between nodes).
    fn flush_events(&mut self) -> StoreResult<()> {
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

struct Done {
    failed: bool,
    msgs: Vec<BusMessage>,
    reply: Box<dyn FnOnce(Option<String>) + Send>,
}

type WriteJob = Box<dyn FnOnce(Db<'_>) -> Done + Send>;
type ReadJob = Box<dyn FnOnce(Db<'_>) + Send>;

/// The relay's durable state. Cheap to share (`Arc`).
pub struct Store {
    writer: mpsc::Sender<WriteJob>,
    reader: mpsc::Sender<ReadJob>,
    /// Read connections used inline by the calling thread when one is free (SQLite only).
    inline: Vec<Mutex<rusqlite::Connection>>,
    devices: Arc<Mutex<HashMap<String, DeviceAuth>>>,
    engine: Engine,
    /// Dropped with the store: stops the SQLite checkpointer thread.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
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

/// Turns `SAFESTREAM_DB` into an engine and a path or URL.
fn parse_db(db: &str) -> Result<(Engine, String), String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        db.parse::<postgres::Config>()
            .map_err(|e| format!("SAFESTREAM_DB is not a valid PostgreSQL URL: {e}"))?;
        return Ok((Engine::Postgres, db.to_string()));
    }
    let path = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .unwrap_or(db);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(
            "SAFESTREAM_DB must name a SQLite file (in-memory databases are not durable)".into(),
        );
    }
    Ok((Engine::Sqlite, path.to_string()))
}

fn open_sqlite(path: &str, write: bool, sync: &str) -> Result<rusqlite::Connection, String> {
    use rusqlite::OpenFlags;
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .map_err(|e| format!("opening {path}: {e}"))?;
    let pragmas = format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=10000; \
         PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456; \
         PRAGMA temp_store=MEMORY;"
    );
    conn.execute_batch(&pragmas)
        .map_err(|e| format!("configuring {path}: {e}"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Starts a thread that first opens its connection with `open` (reporting the outcome),
/// then runs `body` with it.
async fn spawn_db_thread<C: 'static>(
    name: String,
    open: impl FnOnce() -> Result<C, String> + Send + 'static,
    body: impl FnOnce(C) + Send + 'static,
) -> Result<(), String> {
    let (tx, rx) = oneshot::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || match open() {
            Ok(c) => {
                let _ = tx.send(Ok(()));
                body(c);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| e.to_string())?;
    rx.await
        .map_err(|_| "a store thread died while opening".to_string())?
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts the
    /// writer and reader threads.
    pub async fn open(db: &str, opts: &StoreOptions, bus: Arc<dyn Bus>) -> Result<Store, String> {
        let (engine, path) = parse_db(db)?;
        let (wtx, wrx) = mpsc::channel::<WriteJob>(4096);
        let (rtx, rrx) = mpsc::channel::<ReadJob>(4096);
        let rrx = Arc::new(Mutex::new(rrx));
        let mut inline = Vec::new();
        let mut checkpointer = None;
        match engine {
            Engine::Sqlite => {
                let sync = if opts.sqlite_sync == "full" {
                    "FULL"
                } else {
                    "NORMAL"
                };
                let wconn = open_sqlite(&path, true, sync)?;
                migrate(Db::Lite(&wconn), SQLITE_MIGRATIONS)?;
                // The writer never checkpoints (a checkpoint on the commit path stalls every
                // write behind it for milliseconds); a thread of its own does, concurrently.
                wconn
                    .execute_batch(&format!(
                        "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={WAL_SIZE_LIMIT}"
                    ))
                    .map_err(|e| format!("configuring {path}: {e}"))?;
                let cconn = open_sqlite(&path, true, sync)?;
                let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
                checkpointer = Some(stop_tx);
                let catch_up = Arc::new(AtomicBool::new(false));
                let restart_frames = opts.wal_restart_frames.max(1);
                let every = opts.checkpoint_every;
                let writer_catch_up = catch_up.clone();
                let commits = Arc::new(AtomicU64::new(0));
                let writer_commits = commits.clone();
                std::thread::Builder::new()
                    .name("store-checkpoint".into())
                    .spawn(move || {
                        sqlite_checkpoint_loop(
                            cconn,
                            stop_rx,
                            catch_up,
                            commits,
                            restart_frames,
                            every,
                        )
                    })
                    .map_err(|e| e.to_string())?;
                std::thread::Builder::new()
                    .name("store-writer".into())
                    .spawn(move || {
                        sqlite_writer_loop(wconn, wrx, bus, writer_catch_up, writer_commits)
                    })
                    .map_err(|e| e.to_string())?;
                for i in 0..READERS {
                    let conn = open_sqlite(&path, false, sync)?;
                    let rrx = rrx.clone();
                    std::thread::Builder::new()
                        .name(format!("store-reader-{i}"))
                        .spawn(move || reader_loop(Db::Lite(&conn), rrx, || Ok(())))
                        .map_err(|e| e.to_string())?;
                }
                for _ in 0..INLINE_READERS {
                    inline.push(Mutex::new(open_sqlite(&path, false, sync)?));
                }
            }
            Engine::Postgres => {
                let url = path.clone();
                spawn_db_thread(
                    "store-migrate".into(),
                    move || {
                        let c = PgConn::connect(&url)?;
                        pg_migrate(&c)
                    },
                    |_| {},
                )
                .await?;
                let wrx = Arc::new(Mutex::new(wrx));
                for i in 0..PG_WRITERS {
                    let (url, wrx, bus) = (path.clone(), wrx.clone(), bus.clone());
                    spawn_db_thread(
                        format!("store-writer-{i}"),
                        move || PgConn::connect(&url),
                        move |c| pg_writer_loop(c, wrx, bus),
                    )
                    .await?;
                }
                for i in 0..PG_READERS {
                    let (url, rrx) = (path.clone(), rrx.clone());
                    spawn_db_thread(
                        format!("store-reader-{i}"),
                        move || PgConn::connect(&url),
                        move |c| reader_loop(Db::Pg(&c), rrx, || c.ensure()),
                    )
                    .await?;
                }
            }
        }
        Ok(Store {
            writer: wtx,
            reader: rtx,
            inline,
            devices: Arc::new(Mutex::new(HashMap::new())),
            engine,
            _checkpointer: checkpointer,
        })
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Runs `f` in the next write transaction; see the module doc.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
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

    /// Runs a read. Reads are short (indexed lookups, bounded pages), so on SQLite, when one
    /// of the inline connections is free, the calling thread runs `f` itself — no thread hop,
    /// which is most of a small read's cost; otherwise it goes to the reader threads.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Db<'_>) -> StoreResult<T> + Send + 'static,
    {
        for slot in &self.inline {
            if let Ok(conn) = slot.try_lock() {
                return f(Db::Lite(&conn));
            }
        }
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: ReadJob = Box::new(move |conn: Db<'_>| {
            let _ = tx.send(f(conn));
        });
        self.reader
            .send(job)
            .await
            .map_err(|_| StoreError::Db("the store is closed".into()))?;
        rx.await
            .map_err(|_| StoreError::Db("the store reader stopped".into()))?
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.read(|c| c.int("SELECT 1", args![])).await.is_ok()
    }

    /// Stops accepting work (threads end when their queues drain).
    pub async fn close(&self) {
        // Dropping the senders ends the threads; an Arc<Store> may outlive shutdown in tests,
        // so there is nothing to force here: queued work still completes.
    }

    /// The relay's device-token signing key, created on first use (shared by every node).
    pub async fn device_key(&self) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut fresh);
        let fresh = base64::engine::general_purpose::STANDARD.encode(fresh);
        let v: String = self
            .write(move |w| {
                w.conn.exec(
                    "INSERT INTO meta (key, value) VALUES ('device_key', ?1) ON CONFLICT (key) DO NOTHING",
                    args![fresh],
                )?;
                w.conn.one("SELECT value FROM meta WHERE key = 'device_key'", args![], |r| r.text(0))
            })
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| StoreError::Db(format!("device key: {e}")))
    }

    // ---- the parent event log (resume) ---------------------------------------------------

    /// Logs an event for `user_id` in the current write: it gets the user's next position
    /// when the operation ends ([`W::flush_events`]) and is delivered after commit.
    ///
    /// Positions are per user and gap-free: the upsert on `user_seqs` takes the next number
    /// and holds the user's row lock until commit, so another writer (on any node) that logs
    /// for the same user waits, and position N+1 never commits before N.
    fn log_event(
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
    fn log_event_for_all(
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

/// How often the SQLite WAL is checkpointed. Small, frequent copies disturb the writer less
/// than large ones: each pass ends with an fsync of the WAL and of the database, and a
/// longer one holds the disk longer. At 2,000 commands/s, round-trip p99 was 12–20 ms with
/// 50 ms, 17–26 ms with 200 ms and 50–76 ms with 1 s (BENCHMARKS.md, fix 14). A pass is
/// skipped when nothing was committed since the last one and nothing was left to copy.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// WAL length (in frames, one page each) past which the writer finishes a checkpoint itself
/// so that its next transaction starts the WAL over (128 MiB of 4 KiB pages). Each restart
/// holds the writer for the last copy and two or three fsyncs, 5–40 ms on the benchmark
/// machine depending on the write load, so it should be rare: at 1,000 commands/s (about
/// 40 KB of WAL each) this is once every 3 s.
pub const WAL_RESTART_FRAMES: i64 = 32768;
/// The WAL file is truncated back to this size when it starts over after a burst.
const WAL_SIZE_LIMIT: i64 = 256 << 20;
/// Frames the writer's own catch-up may have left to copy: the checkpoint thread keeps
/// going until at most this many remain before it asks the writer.
const CATCH_UP_FRAMES: i64 = 256;
/// Passes the checkpoint thread makes at most, one after another, to get there.
const CATCH_UP_PASSES: usize = 8;

/// Runs a `PASSIVE` checkpoint; returns the WAL's length and how much of it is now copied
/// (in frames), or `None` on error.
fn wal_checkpoint(conn: &rusqlite::Connection) -> Option<(i64, i64)> {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    }) {
        Ok(frames) => Some(frames),
        Err(e) => {
            // At most one warning per 10 s: the checkpoint thread retries every 50 ms.
            static LAST: Mutex<Option<std::time::Instant>> = Mutex::new(None);
            let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
                *last = Some(std::time::Instant::now());
                tracing::warn!(error = %e, "store: WAL checkpoint failed");
            }
            None
        }
    }
}

/// Copies committed WAL pages into the database file off the write path (`PASSIVE`: never
/// waits for the writer or readers), until the store is dropped.
///
/// A passive checkpoint alone never lets the WAL start over under a steady write load: by
/// the time it has copied what it saw, the writer has appended more, and SQLite rewinds the
/// WAL only when a write begins with every frame copied. Without help the WAL grew by
/// ~90 MB/s at 2,000 commands/s and never shrank. So once the WAL is past
/// [`WAL_RESTART_FRAMES`], this thread makes passes until at most [`CATCH_UP_FRAMES`] are
/// left to copy, then raises `catch_up`; the writer runs one more passive checkpoint
/// between two batches (those frames plus at most one batch's pages, then two or three
/// fsyncs) and its next transaction rewinds the WAL. A reader still in an old snapshot only
/// puts the rewind off to a later cycle.
fn sqlite_checkpoint_loop(
    conn: rusqlite::Connection,
    stop: std::sync::mpsc::Receiver<()>,
    catch_up: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    restart_frames: i64,
    every: std::time::Duration,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut gate = PassGate::new();
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {
                if !gate.due(commits.load(Ordering::Relaxed)) {
                    continue;
                }
                let mut passes = 0;
                while let Some((frames, copied)) = wal_checkpoint(&conn) {
                    passes += 1;
                    gate.copied(frames, copied);
                    if frames < restart_frames {
                        break;
                    }
                    if frames - copied <= CATCH_UP_FRAMES {
                        catch_up.store(true, Ordering::Relaxed);
                        break;
                    }
                    if passes >= CATCH_UP_PASSES {
                        break;
                    }
                }
            }
            _ => return,
        }
    }
}

/// Whether the checkpoint thread's next tick should make a pass: only after a commit, or
/// when the last pass left frames to copy or failed, so an idle relay does not pay for a
/// pass every 50 ms.
struct PassGate {
    seen: u64,
    left: bool,
}

impl PassGate {
    fn new() -> PassGate {
        // The first tick always runs (a WAL may be left from an earlier process).
        PassGate {
            seen: u64::MAX,
            left: false,
        }
    }

    /// Given the writer's commit count; when it says yes, the pass is assumed to fail
    /// until [`PassGate::copied`] says otherwise.
    fn due(&mut self, commits: u64) -> bool {
        if commits == self.seen && !self.left {
            return false;
        }
        self.seen = commits;
        self.left = true;
        true
    }

    /// What a pass found: the WAL's length and how much of it is copied, in frames.
    fn copied(&mut self, frames: i64, copied: i64) {
        self.left = copied < frames;
    }
}

fn sqlite_writer_loop(
    conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<WriteJob>,
    bus: Arc<dyn Bus>,
    wal_catch_up: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
) {
    let db = Db::Lite(&conn);
    // The statements every batch runs, prepared once (`execute_batch` would parse them anew
    // each time: a few percent of the writer's CPU).
    let run = |sql: &str| -> StoreResult<()> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    let mut arrivals = Arrivals::new();
    while let Some(first) = rx.blocking_recv() {
        if wal_catch_up.swap(false, Ordering::Relaxed) {
            // See `sqlite_checkpoint_loop`: with every frame copied, this batch rewinds the WAL.
            wal_checkpoint(&conn);
        }
        batch.push(first);
        drain_into(&mut rx, &mut batch);
        if batch.len() < LINGER_BELOW && arrivals.busy() {
            // A commit costs about the same for one job or many: wait a moment for company.
            std::thread::sleep(LINGER);
            drain_into(&mut rx, &mut batch);
        }
        arrivals.count(batch.len());
        let mut dones = Vec::with_capacity(batch.len());
        if let Err(e) = run("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store: BEGIN failed");
            for job in batch.drain(..) {
                let done = job_failed_before_run(job, db);
                (done.reply)(Some(msg.clone()));
            }
            if !conn.is_autocommit() {
                // A transaction left open (a COMMIT and its ROLLBACK both failed) would make
                // every later BEGIN fail too.
                let _ = db.batch("ROLLBACK");
            }
            continue;
        }
        for job in batch.drain(..) {
            let _ = run("SAVEPOINT job");
            let done = job(db);
            if done.failed {
                let _ = db.batch("ROLLBACK TO job; RELEASE job");
            } else {
                let _ = run("RELEASE job");
            }
            dones.push(done);
        }
        metrics::counter!("safestream_store_commits_total").increment(1);
        metrics::counter!("safestream_store_jobs_total").increment(dones.len() as u64);
        match run("COMMIT") {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for d in dones {
                    for m in d.msgs {
                        bus.publish(m);
                    }
                    (d.reply)(None);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "store: COMMIT failed; the batch was rolled back");
                let _ = db.batch("ROLLBACK");
                for d in dones {
                    (d.reply)(Some(msg.clone()));
                }
            }
        }
    }
}

/// PostgreSQL: several writer threads, each running one job per transaction (other nodes
/// write concurrently, so a batch would only widen lock waits and deadlock exposure; the
/// server's own group commit shares the WAL flushes). Messages are published after COMMIT.
fn pg_writer_loop(conn: PgConn, rx: Arc<Mutex<mpsc::Receiver<WriteJob>>>, bus: Arc<dyn Bus>) {
    let db = Db::Pg(&conn);
    loop {
        let job = {
            let mut guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            guard.blocking_recv()
        };
        let Some(job) = job else { return };
        if let Err(e) = conn.ensure().and_then(|_| db.batch("BEGIN")) {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store: BEGIN failed");
            let done = job(db);
            let _ = db.batch("ROLLBACK");
            (done.reply)(Some(msg));
            continue;
        }
        let done = job(db);
        if done.failed {
            let _ = db.batch("ROLLBACK");
            (done.reply)(None);
            continue;
        }
        match db.batch("COMMIT") {
            Ok(()) => {
                for m in done.msgs {
                    bus.publish(m);
                }
                (done.reply)(None);
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "store: COMMIT failed; the job was rolled back");
                let _ = db.batch("ROLLBACK");
                (done.reply)(Some(msg));
            }
        }
    }
}

/// The SQLite writer's recent arrival rate, which decides whether a small batch lingers.
///
/// Lingering pays when another job is likely to arrive within [`LINGER`] (at least one per
/// `LINGER` on average, 4,000 jobs/s): commits are then shared and the writer spends less
/// per job. Below that rate a linger mostly adds its whole length to each write (a command
/// waits for two writes) and saves little: at 1,000 commands/s (3,000 jobs/s) lingering
/// raised the round trip's p50 from 0.7–0.9 to 1.5–1.8 ms for the same CPU, while at
/// 2,000/s not lingering cost ~15 % more CPU per command (BENCHMARKS.md, fix 15).
struct Arrivals {
    since: std::time::Instant,
    jobs: usize,
    busy: bool,
}

impl Arrivals {
    fn new() -> Arrivals {
        Arrivals {
            since: std::time::Instant::now(),
            jobs: 0,
            busy: false,
        }
    }

    /// Whether the last full window saw at least one job per [`LINGER`].
    fn busy(&self) -> bool {
        self.busy
    }

    /// Counts `n` jobs taken; closes the window when it is over.
    fn count(&mut self, n: usize) {
        self.jobs += n;
        let elapsed = self.since.elapsed();
        if elapsed >= ARRIVAL_WINDOW {
            // jobs / elapsed >= 1 / LINGER
            self.busy = self.jobs as u128 * LINGER.as_nanos() >= elapsed.as_nanos();
            self.jobs = 0;
            self.since = std::time::Instant::now();
        }
    }
}

fn drain_into(rx: &mut mpsc::Receiver<WriteJob>, batch: &mut Vec<WriteJob>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

/// When the transaction cannot even begin, a job still has to answer: run it inside a
/// savepoint that is always rolled back, and report the error.
fn job_failed_before_run(job: WriteJob, db: Db<'_>) -> Done {
    let _ = db.batch("SAVEPOINT doomed");
    let done = job(db);
    let _ = db.batch("ROLLBACK TO doomed; RELEASE doomed");
    done
}

fn reader_loop(
    db: Db<'_>,
    rx: Arc<Mutex<mpsc::Receiver<ReadJob>>>,
    ensure: impl Fn() -> StoreResult<()>,
) {
    loop {
        let job = {
            let mut guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            guard.blocking_recv()
        };
        match job {
            Some(job) => {
                if let Err(e) = ensure() {
                    tracing::warn!(error = %e, "store reader: reconnecting failed");
                }
                job(db)
            }
            None => return,
        }
    }
}

/// Migrates PostgreSQL under an advisory lock, so nodes starting together take turns.
fn pg_migrate(c: &PgConn) -> Result<(), String> {
    let db = Db::Pg(c);
    let err = |e: StoreError| format!("migrating the database: {e}");
    db.exec("SELECT pg_advisory_lock(?1)", args![PG_MIGRATION_LOCK])
        .map_err(err)?;
    let res = migrate(db, PG_MIGRATIONS);
    let _ = db.exec("SELECT pg_advisory_unlock(?1)", args![PG_MIGRATION_LOCK]);
    res
}

fn migrate(db: Db<'_>, migrations: &[Migration]) -> Result<(), String> {
    let err = |e: StoreError| format!("migrating the database: {e}");
    db.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .map_err(err)?;
    let current = db
        .int(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            args![],
        )
        .map_err(err)?;
    let newest = migrations.last().map(|m| m.version).unwrap_or(0);
    if current > newest {
        return Err(format!(
            "the database schema is version {current}, newer than this relay knows ({newest}); \
             run a newer relay"
        ));
    }
    let begin = if db.is_pg() {
        "BEGIN"
    } else {
        "BEGIN IMMEDIATE"
    };
    for m in migrations.iter().filter(|m| m.version > current) {
        db.batch(begin).map_err(err)?;
        let applied = db.batch(m.sql).and_then(|_| {
            db.exec(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                args![m.version, m.name, crate::model::now_ms()],
            )
        });
        match applied {
            Ok(_) => db.batch("COMMIT").map_err(err)?,
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                return Err(err(e));
            }
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_urls() {
        assert_eq!(parse_db("safestream.db").unwrap().1, "safestream.db");
        assert_eq!(parse_db("sqlite:///tmp/x.db").unwrap().1, "/tmp/x.db");
        assert_eq!(parse_db("sqlite:x.db?mode=rwc").unwrap().1, "x.db");
        assert!(parse_db(":memory:").is_err());
        assert_eq!(parse_db("postgres://u@h/db").unwrap().0, Engine::Postgres);
        assert!(parse_db("postgres://u@h:notaport/db").is_err());
    }

    struct NullBus;
    impl Bus for NullBus {
        fn publish(&self, _: BusMessage) {}
    }

    #[test]
    fn checkpoint_passes_run_after_commits_and_until_the_wal_is_copied() {
        let mut g = PassGate::new();
        assert!(g.due(0), "the first tick runs");
        g.copied(10, 10);
        assert!(!g.due(0), "nothing committed, nothing left: skipped");
        assert!(g.due(1), "a commit since");
        g.copied(20, 15);
        assert!(g.due(1), "frames left to copy: runs again without a commit");
        // A failed pass (no `copied`) is tried again on the next tick.
        assert!(g.due(1));
        g.copied(20, 20);
        assert!(!g.due(1));
    }

    #[test]
    fn the_writer_lingers_only_when_jobs_come_at_least_one_per_linger() {
        let mut a = Arrivals::new();
        assert!(!a.busy(), "a fresh writer does not linger");
        // 100 jobs in a window of at least 100 ms: at most 1,000/s, below one per 250 µs.
        a.since -= ARRIVAL_WINDOW;
        a.count(100);
        assert!(!a.busy());
        // 1,000 jobs in about 100 ms: ~10,000/s.
        a.since -= ARRIVAL_WINDOW;
        a.count(1000);
        assert!(a.busy());
        // Within a window nothing changes; a quiet window turns it off again.
        a.count(1);
        assert!(a.busy());
        a.since -= ARRIVAL_WINDOW * 10;
        a.count(1);
        assert!(!a.busy());
    }

    #[tokio::test]
    async fn notifications_of_the_same_millisecond_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = Store::open(
            db.to_str().unwrap(),
            &StoreOptions::default(),
            Arc::new(NullBus),
        )
        .await
        .unwrap();
        let now = 1_700_000_000_000;
        for i in 0..20 {
            let n = crate::store::NewNotification {
                user_id: "u1".into(),
                kind: "RESTRICTED_CONTENT".into(),
                title: format!("n{i}"),
                message: "m".into(),
                metadata: serde_json::json!({}),
            };
            store.create_notification(n, now).await.unwrap();
        }
        let titles: Vec<String> = store
            .list_notifications("u1", 50, None)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.title)
            .collect();
        let expected: Vec<String> = (0..20).rev().map(|i| format!("n{i}")).collect();
        assert_eq!(titles, expected);
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let opts = StoreOptions::default();
        let store = Arc::new(
            Store::open(db.to_str().unwrap(), &opts, Arc::new(NullBus))
                .await
                .unwrap(),
        );
        let mut tasks = vec![];
        for i in 0..50 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.write(move |w| {
                    w.conn.exec(
                        "INSERT INTO meta (key, value) VALUES (?1, 'x')",
                        args![format!("k{i}")],
                    )?;
                    if i % 2 == 1 {
                        return Err(StoreError::Conflict("odd".into()));
                    }
                    Ok(())
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().is_ok(), i % 2 == 0);
        }
        let n: i64 = store
            .read(|c| c.int("SELECT COUNT(*) FROM meta WHERE key LIKE 'k%'", args![]))
            .await
            .unwrap();
        assert_eq!(n, 25, "only the successful jobs' writes remain");
    }

    /// Under a steady write load the WAL starts over instead of growing with every write
    /// (a passive checkpoint alone never lets it: this test fails without the catch-up).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_steady_load() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let opts = StoreOptions {
            wal_restart_frames: 64,
            checkpoint_every: std::time::Duration::from_millis(10),
            ..StoreOptions::default()
        };
        let store = Arc::new(
            Store::open(db.to_str().unwrap(), &opts, Arc::new(NullBus))
                .await
                .unwrap(),
        );
        let wal = dir.path().join("t.db-wal");
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (wal, sampling) = (wal.clone(), sampling.clone());
            tokio::spawn(async move {
                let mut biggest = 0u64;
                while sampling.load(Ordering::Relaxed) {
                    biggest = biggest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                biggest
            })
        };
        // 3,000 rows of 4 KB, 32 writes always in flight (no idle moment in which a passive
        // checkpoint could catch up by itself): 12 MB of WAL if it never started over.
        let blob = "x".repeat(4000);
        let results: Vec<StoreResult<u64>> = futures_util::stream::iter(0..3000)
            .map(|i| {
                let (s, blob) = (store.clone(), blob.clone());
                async move {
                    s.write(move |w| {
                        w.conn.exec(
                            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                            args![format!("w{i}"), blob],
                        )
                    })
                    .await
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        sampling.store(false, Ordering::Relaxed);
        let biggest = sampler.await.unwrap();
        assert!(results.iter().all(|r| r.is_ok()));
        let n: i64 = store
            .read(|c| c.int("SELECT COUNT(*) FROM meta WHERE key LIKE 'w%'", args![]))
            .await
            .unwrap();
        assert_eq!(n, 3000);
        assert!(
            biggest < 6 << 20,
            "the WAL grew to {biggest} bytes: it never started over"
        );
    }
}
