//! Durable state behind one seam: SQLite by default, PostgreSQL selected by URL.
//!
//! The store speaks sqlx's `Any` driver, so every query is written once in the common subset
//! of SQL both engines accept (`$n` placeholders, `RETURNING`, `ON CONFLICT`, partial
//! indexes); only the schema files differ per engine (`relay/migrations/<engine>/`).
//!
//! Writes go through one connection under [`Store`]'s write lock, and the bus messages a write
//! produces are published before the lock is released. So on one node, events leave in the
//! order their transactions committed, and parent resume positions (`events.seq`) grow in
//! that order too.
//!
//! Every method that answers a client returns after `COMMIT`: a 2xx means the change is on
//! disk (in the WAL) and survives the process being killed.
//!
//! # Layout
//! - `mod.rs`: opening, migrations, errors, the event log (resume), meta keys.
//! - `registry.rs`: children, guardians, devices.
//! - `commands.rs`: the command lifecycle.
//! - `notify.rs`: notifications, screen time, pairing.

mod commands;
mod notify;
mod registry;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Row};
use tokio::sync::Mutex;

pub use commands::{device_frame, AckOutcome, CommandFilter, NewCommand};
pub use notify::{NewNotification, Pairing, PairingStatus, ScreenTimeOutcome};
pub use registry::{ChildPatch, ChildWriter};

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
    /// The database failed; the transaction was rolled back.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Shorthand.
pub type StoreResult<T> = Result<T, StoreError>;

type Tx = sqlx::Transaction<'static, Any>;

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

/// Options that are not part of the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite `synchronous`: `normal` or `full`.
    pub sqlite_sync: String,
}

/// The relay's durable state. Cheap to share (`Arc`).
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    write_lock: Mutex<()>,
    bus: Arc<dyn Bus>,
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

/// Turns `SAFESTREAM_DB` into a sqlx URL and an engine.
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

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(db: &str, opts: &StoreOptions, bus: Arc<dyn Bus>) -> Result<Store, String> {
        sqlx::any::install_default_drivers();
        let (engine, path) = parse_db(db)?;
        let sync = if opts.sqlite_sync == "full" {
            "FULL"
        } else {
            "NORMAL"
        };
        let pragmas: &'static str = if sync == "FULL" {
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;"
        } else {
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;"
        };
        let writer = connect_sqlite(&path, "rwc", 1, pragmas).await?;
        migrate(&writer, SQLITE_MIGRATIONS).await?;
        let reader = connect_sqlite(&path, "ro", 4, pragmas).await?;
        Ok(Store {
            writer,
            reader,
            write_lock: Mutex::new(()),
            bus,
            engine,
        })
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1")
            .fetch_one(&self.reader)
            .await
            .is_ok()
    }

    /// Closes the pools (at shutdown).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Starts a write: takes the write lock and opens a transaction. Dropping the result
    /// without [`WriteTx::commit`] rolls back and publishes nothing.
    async fn begin_write(&self) -> StoreResult<WriteTx<'_>> {
        let guard = self.write_lock.lock().await;
        let tx = self.writer.begin().await?;
        Ok(WriteTx {
            _guard: guard,
            tx,
            out: Vec::new(),
            bus: &*self.bus,
        })
    }

    /// The relay's device-token signing key, created on first use (shared by every node).
    pub async fn device_key(&self) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut fresh);
        let fresh = base64::engine::general_purpose::STANDARD.encode(fresh);
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('device_key', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(fresh)
        .execute(&mut *w.tx)
        .await?;
        let v: String = sqlx::query("SELECT value FROM meta WHERE key = 'device_key'")
            .fetch_one(&mut *w.tx)
            .await?
            .try_get("value")?;
        w.commit().await?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))
    }

    // ---- the parent event log (resume) ---------------------------------------------------

    /// Appends an event for `user_id` inside a write and queues its delivery.
    async fn log_event(
        w: &mut WriteTx<'_>,
        user_id: &str,
        event: &str,
        data: &Value,
        now: Millis,
    ) -> StoreResult<i64> {
        let seq: i64 = sqlx::query(
            "INSERT INTO events (user_id, event, data, created_at) VALUES ($1, $2, $3, $4) RETURNING seq",
        )
        .bind(user_id)
        .bind(event)
        .bind(data.to_string())
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await?
        .try_get("seq")?;
        w.out.push(BusMessage::deliver(
            room::user(user_id),
            Arc::new(OutFrame::event(event, Some(seq), data)),
        ));
        Ok(seq)
    }

    /// Logs one event for every user in `users`.
    async fn log_event_for_all(
        w: &mut WriteTx<'_>,
        users: &[String],
        event: &str,
        data: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        for u in users {
            Self::log_event(w, u, event, data, now).await?;
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
        let rows = sqlx::query(
            "SELECT seq, event, data FROM events WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LoggedEvent {
                    seq: r.try_get("seq")?,
                    event: r.try_get("event")?,
                    data: r.try_get("data")?,
                })
            })
            .collect()
    }

    /// `(pruned_through, newest)`: every event at or below the first was deleted; the second
    /// is the newest position ever assigned (or the first if none is left).
    pub async fn event_positions(&self) -> StoreResult<(i64, i64)> {
        let pruned = self
            .meta_i64(&self.reader, "events_pruned_through")
            .await?
            .unwrap_or(0);
        let newest: Option<i64> = sqlx::query("SELECT MAX(seq) AS m FROM events")
            .fetch_one(&self.reader)
            .await?
            .try_get("m")?;
        Ok((pruned, newest.unwrap_or(0).max(pruned)))
    }

    /// Deletes events created before `before`; returns how many.
    pub async fn prune_events(&self, before: Millis) -> StoreResult<u64> {
        let mut w = self.begin_write().await?;
        let max: Option<i64> =
            sqlx::query("SELECT MAX(seq) AS m FROM events WHERE created_at < $1")
                .bind(before)
                .fetch_one(&mut *w.tx)
                .await?
                .try_get("m")?;
        let Some(max) = max else { return Ok(0) };
        let n = sqlx::query("DELETE FROM events WHERE seq <= $1")
            .bind(max)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('events_pruned_through', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(max.to_string())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(n)
    }

    async fn meta_i64(&self, pool: &AnyPool, key: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<String, _>("value")?.parse().ok(),
            None => None,
        })
    }
}

/// An open write transaction holding the store's write lock; see [`Store::begin_write`].
struct WriteTx<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    tx: Tx,
    out: Vec<BusMessage>,
    bus: &'a dyn Bus,
}

impl WriteTx<'_> {
    /// Queues a bus message, published after commit.
    fn publish(&mut self, msg: BusMessage) {
        self.out.push(msg);
    }

    /// Commits, then publishes the queued messages in order, then releases the lock.
    async fn commit(self) -> StoreResult<()> {
        let WriteTx {
            _guard,
            tx,
            out,
            bus,
        } = self;
        tx.commit().await?;
        for msg in out {
            bus.publish(msg);
        }
        Ok(())
    }
}

async fn connect_sqlite(
    path: &str,
    mode: &str,
    max: u32,
    pragmas: &'static str,
) -> Result<AnyPool, String> {
    let url = format!("sqlite://{path}?mode={mode}");
    let opts = AnyConnectOptions::from_str(&url).map_err(|e| format!("SAFESTREAM_DB: {e}"))?;
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, pragmas).await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(|e| format!("opening {path}: {e}"))
}

async fn migrate(pool: &AnyPool, migrations: &[Migration]) -> Result<(), String> {
    let err = |e: sqlx::Error| format!("migrating the database: {e}");
    let mut conn = pool.acquire().await.map_err(err)?;
    let conn: &mut AnyConnection = &mut conn;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?
        .try_get("v")
        .map_err(err)?;
    let current = current.unwrap_or(0);
    let newest = migrations.last().map(|m| m.version).unwrap_or(0);
    if current > newest {
        return Err(format!(
            "the database schema is version {current}, newer than this relay knows ({newest}); \
             run a newer relay"
        ));
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(err)?;
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(err)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::model::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
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
}
