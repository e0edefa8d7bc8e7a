//! Reads: inline on the calling thread when one of a few SQLite connections is free, else
//! on reader threads (two on SQLite, four on PostgreSQL).

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::db::{Db, PgConn};
use super::pg_writer::spawn_db_thread;
use super::sqlite_writer::open_sqlite;
use super::{Store, StoreError, StoreResult};

/// Reader threads (SQLite).
const READERS: usize = 2;
/// Read connections used inline by async callers (one per runtime worker is plenty).
const INLINE_READERS: usize = 4;
/// PostgreSQL reader threads.
const PG_READERS: usize = 4;

/// One read, as a reader thread runs it.
pub(super) type ReadJob = Box<dyn FnOnce(Db<'_>) + Send>;

/// SQLite: starts the reader threads and opens the inline connections (returned).
pub(super) fn start_sqlite(
    path: &str,
    sync: &str,
    rrx: Arc<Mutex<mpsc::Receiver<ReadJob>>>,
) -> Result<Vec<Mutex<rusqlite::Connection>>, String> {
    let mut inline = Vec::new();
    for i in 0..READERS {
        let conn = open_sqlite(path, false, sync)?;
        let rrx = rrx.clone();
        std::thread::Builder::new()
            .name(format!("store-reader-{i}"))
            .spawn(move || reader_loop(Db::Lite(&conn), rrx, || Ok(())))
            .map_err(|e| e.to_string())?;
    }
    for _ in 0..INLINE_READERS {
        inline.push(Mutex::new(open_sqlite(path, false, sync)?));
    }
    Ok(inline)
}

/// PostgreSQL: starts the reader threads, each with its own connection.
pub(super) async fn start_pg(
    path: &str,
    rrx: Arc<Mutex<mpsc::Receiver<ReadJob>>>,
) -> Result<(), String> {
    for i in 0..PG_READERS {
        let (url, rrx) = (path.to_string(), rrx.clone());
        spawn_db_thread(
            format!("store-reader-{i}"),
            move || PgConn::connect(&url),
            move |c| reader_loop(Db::Pg(&c), rrx, || c.ensure()),
        )
        .await?;
    }
    Ok(())
}

impl Store {
    /// Runs a read. Reads are short (indexed lookups, bounded pages), so on SQLite, when one
    /// of the inline connections is free, the calling thread runs `f` itself — no thread hop,
    /// which is most of a small read's cost; otherwise it goes to the reader threads.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
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
