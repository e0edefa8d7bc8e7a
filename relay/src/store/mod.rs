//! Durable state behind one seam: the [`Store`].
//!
//! The embedded engine is SQLite (rusqlite, bundled). All writes run on **one writer thread**
//! as closures over a transaction: an async caller sends its closure, the thread runs it and
//! answers — one thread hop per operation, whatever the number of statements. The thread
//! commits in groups: it takes every job waiting (up to 256), runs each inside its own
//! `SAVEPOINT` (a failing job rolls back alone), commits once, then publishes the bus
//! messages the jobs produced, in order, and only then answers the callers. So:
//!
//! - a 2xx is answered after `COMMIT` (WAL; survives the process being killed);
//! - nothing reaches a socket before the change it reports is committed;
//! - events leave in commit order, and `events.seq` grows in that order.
//!
//! Reads use read-only connections (WAL readers do not block the writer): inline on the
//! calling thread when one of a few connections is free (a point read costs microseconds,
//! a thread hop more than that), else on a small pool of reader threads. The SQL is written with `?N` placeholders in the subset PostgreSQL
//! also accepts once `?N` becomes `$N` (`RETURNING`, `ON CONFLICT`, partial indexes), so a
//! PostgreSQL engine can run the same statements behind this same API.
//!
//! # Layout
//! - `mod.rs`: threads, opening, migrations, errors, the event log (resume), meta keys.
//! - `registry.rs`: children, guardians, devices (with an in-memory device cache).
//! - `commands.rs`: the command lifecycle.
//! - `notify.rs`: notifications, screen time, pairing.

mod commands;
mod notify;
mod registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use commands::{device_frame, AckOutcome, CommandFilter, NewCommand};
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
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/sqlite/0001_init.sql"),
}];

/// Jobs taken into one transaction at most.
const MAX_BATCH: usize = 256;
/// Reader threads.
const READERS: usize = 2;
/// Read connections used inline by async callers (one per runtime worker is plenty).
const INLINE_READERS: usize = 4;
/// A batch smaller than this waits [`LINGER`] once for more jobs before committing.
const LINGER_BELOW: usize = 16;
/// How long a small batch waits (adds at most this to a write's latency).
const LINGER: std::time::Duration = std::time::Duration::from_micros(250);

/// Options that are not part of the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite `synchronous`: `normal` or `full`.
    pub sqlite_sync: String,
}

/// A write in progress, handed to an operation's closure on the writer thread.
pub struct W<'c> {
    conn: &'c Connection,
    out: Vec<BusMessage>,
}

impl W<'_> {
    /// Queues a bus message, published after commit.
    fn publish(&mut self, msg: BusMessage) {
        self.out.push(msg);
    }
}

struct Done {
    failed: bool,
    msgs: Vec<BusMessage>,
    reply: Box<dyn FnOnce(Option<String>) + Send>,
}

type WriteJob = Box<dyn FnOnce(&Connection) -> Done + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The relay's durable state. Cheap to share (`Arc`).
pub struct Store {
    writer: mpsc::Sender<WriteJob>,
    reader: mpsc::Sender<ReadJob>,
    /// Read connections used inline by the calling thread when one is free.
    inline: Vec<Mutex<Connection>>,
    devices: Arc<Mutex<HashMap<String, DeviceAuth>>>,
    engine: Engine,
}

/// A parent event read back from the log for resume.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Position.
    pub seq: i64,
    /// Event name.
    pub event: String,
    /// Event data (JSON text).
    pub data: String,
}

/// Turns `SAFESTREAM_DB` into an engine and a path.
fn parse_db(db: &str) -> Result<(Engine, String), String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Err(
            "a PostgreSQL SAFESTREAM_DB is not supported by this build yet; \
                    use a SQLite file path"
                .into(),
        );
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

fn open_conn(path: &str, write: bool, sync: &str) -> Result<Connection, String> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| format!("opening {path}: {e}"))?;
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

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts the
    /// writer and reader threads.
    pub async fn open(db: &str, opts: &StoreOptions, bus: Arc<dyn Bus>) -> Result<Store, String> {
        let (engine, path) = parse_db(db)?;
        let sync = if opts.sqlite_sync == "full" {
            "FULL"
        } else {
            "NORMAL"
        };
        let wconn = open_conn(&path, true, sync)?;
        migrate(&wconn, SQLITE_MIGRATIONS)?;
        let (wtx, wrx) = mpsc::channel::<WriteJob>(4096);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(wconn, wrx, bus))
            .map_err(|e| e.to_string())?;
        let (rtx, rrx) = mpsc::channel::<ReadJob>(4096);
        let rrx = Arc::new(Mutex::new(rrx));
        for i in 0..READERS {
            let conn = open_conn(&path, false, sync)?;
            let rrx = rrx.clone();
            std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || reader_loop(conn, rrx))
                .map_err(|e| e.to_string())?;
        }
        let mut inline = Vec::with_capacity(INLINE_READERS);
        for _ in 0..INLINE_READERS {
            inline.push(Mutex::new(open_conn(&path, false, sync)?));
        }
        Ok(Store {
            writer: wtx,
            reader: rtx,
            inline,
            devices: Arc::new(Mutex::new(HashMap::new())),
            engine,
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
        let job: WriteJob = Box::new(move |conn: &Connection| {
            let mut w = W {
                conn,
                out: Vec::new(),
            };
            let res = f(&mut w);
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

    /// Runs a read. Reads are short (indexed lookups, bounded pages), so when one of the
    /// inline connections is free the calling thread runs `f` itself — no thread hop, which
    /// is most of a small read's cost; otherwise it goes to the reader threads.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        for slot in &self.inline {
            if let Ok(conn) = slot.try_lock() {
                return f(&conn);
            }
        }
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: ReadJob = Box::new(move |conn: &Connection| {
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
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .is_ok()
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
                w.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('device_key', ?1) ON CONFLICT (key) DO NOTHING",
                    params![fresh],
                )?;
                Ok(w.conn.query_row("SELECT value FROM meta WHERE key = 'device_key'", [], |r| r.get(0))?)
            })
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| StoreError::Db(format!("device key: {e}")))
    }

    // ---- the parent event log (resume) ---------------------------------------------------

    /// Appends an event for `user_id` inside a write and queues its delivery.
    fn log_event(
        w: &mut W<'_>,
        user_id: &str,
        event: &str,
        data: &Value,
        now: Millis,
    ) -> StoreResult<i64> {
        let mut stmt = w
            .conn
            .prepare_cached("INSERT INTO events (user_id, event, data, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING seq")?;
        let seq: i64 =
            stmt.query_row(params![user_id, event, data.to_string(), now], |r| r.get(0))?;
        w.publish(BusMessage::deliver(
            room::user(user_id),
            Arc::new(OutFrame::event(event, Some(seq), data)),
        ));
        Ok(seq)
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
            let mut stmt =
                c.prepare_cached("SELECT seq, event, data FROM events WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
            let rows = stmt.query_map(params![user_id, after, limit], |r| {
                Ok(LoggedEvent {
                    seq: r.get(0)?,
                    event: r.get(1)?,
                    data: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Whether `user_id` has more than `n` events after `after` (reads positions only).
    pub async fn more_events_than(&self, user_id: &str, after: i64, n: i64) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq FROM events WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT 1 OFFSET ?3",
            )?;
            Ok(stmt.exists(params![user_id, after, n])?)
        })
        .await
    }

    /// `(pruned_through, newest)`: every event at or below the first was deleted; the second
    /// is the newest position ever assigned (or the first if none is left).
    pub async fn event_positions(&self) -> StoreResult<(i64, i64)> {
        self.read(|c| {
            let pruned: i64 = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'events_pruned_through'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let newest: i64 =
                c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            Ok((pruned, newest.max(pruned)))
        })
        .await
    }

    /// Deletes events created before `before`; returns how many.
    pub async fn prune_events(&self, before: Millis) -> StoreResult<u64> {
        self.write(move |w| {
            // Events are appended in time order, so the old ones are a prefix by seq: walk it
            // (no time index needed) and never delete the newest row (seq must keep growing).
            let newest: i64 =
                w.conn
                    .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            let max: Option<i64> = w.conn.query_row(
                "SELECT MAX(seq) FROM (SELECT seq, created_at FROM events WHERE seq < ?2 \
                 ORDER BY seq LIMIT 100000) WHERE created_at < ?1",
                params![before, newest],
                |r| r.get(0),
            )?;
            let Some(max) = max else { return Ok(0) };
            let n = w
                .conn
                .execute("DELETE FROM events WHERE seq <= ?1", params![max])?;
            w.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('events_pruned_through', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![max.to_string()],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<WriteJob>, bus: Arc<dyn Bus>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain_into(&mut rx, &mut batch);
        if batch.len() < LINGER_BELOW {
            // A commit costs about the same for one job or many: wait a moment for company.
            std::thread::sleep(LINGER);
            drain_into(&mut rx, &mut batch);
        }
        let mut dones = Vec::with_capacity(batch.len());
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begun {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store: BEGIN failed");
            for job in batch.drain(..) {
                let done = job_failed_before_run(job, &conn);
                (done.reply)(Some(msg.clone()));
            }
            continue;
        }
        for job in batch.drain(..) {
            let _ = conn.execute_batch("SAVEPOINT job");
            let done = job(&conn);
            if done.failed {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            } else {
                let _ = conn.execute_batch("RELEASE job");
            }
            dones.push(done);
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
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
                let _ = conn.execute_batch("ROLLBACK");
                for d in dones {
                    (d.reply)(Some(msg.clone()));
                }
            }
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
fn job_failed_before_run(job: WriteJob, conn: &Connection) -> Done {
    let _ = conn.execute_batch("SAVEPOINT doomed");
    let done = job(conn);
    let _ = conn.execute_batch("ROLLBACK TO doomed; RELEASE doomed");
    done
}

fn reader_loop(conn: Connection, rx: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        let job = {
            let mut guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            guard.blocking_recv()
        };
        match job {
            Some(job) => job(&conn),
            None => return,
        }
    }
}

fn migrate(conn: &Connection, migrations: &[Migration]) -> Result<(), String> {
    let err = |e: rusqlite::Error| format!("migrating the database: {e}");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(err)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    let newest = migrations.last().map(|m| m.version).unwrap_or(0);
    if current > newest {
        return Err(format!(
            "the database schema is version {current}, newer than this relay knows ({newest}); \
             run a newer relay"
        ));
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let applied = conn.execute_batch(m.sql).and_then(|_| {
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![m.version, m.name, crate::model::now_ms()],
            )
        });
        match applied {
            Ok(_) => conn.execute_batch("COMMIT").map_err(err)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
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
        assert!(parse_db("postgres://u@h/db").is_err());
    }

    struct NullBus;
    impl Bus for NullBus {
        fn publish(&self, _: BusMessage) {}
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let opts = StoreOptions {
            sqlite_sync: "normal".into(),
        };
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
                    w.conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, 'x')",
                        params![format!("k{i}")],
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
            .read(|c| {
                Ok(
                    c.query_row("SELECT COUNT(*) FROM meta WHERE key LIKE 'k%'", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(n, 25, "only the successful jobs' writes remain");
    }
}
