//! The PostgreSQL writer: migrating under an advisory lock, then four writer threads, each
//! with its own connection, running one job per transaction.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::db::{Db, PgConn};
use super::migrate::pg_migrate;
use super::write::WriteJob;
use crate::bus::Bus;

/// PostgreSQL writer threads (one connection and one transaction per job each).
const PG_WRITERS: usize = 4;

/// Migrates, then starts the writer threads (each connects first; an error stops the start).
pub(super) async fn start(
    path: &str,
    bus: Arc<dyn Bus>,
    wrx: mpsc::Receiver<WriteJob>,
) -> Result<(), String> {
    let url = path.to_string();
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
        let (url, wrx, bus) = (path.to_string(), wrx.clone(), bus.clone());
        spawn_db_thread(
            format!("store-writer-{i}"),
            move || PgConn::connect(&url),
            move |c| pg_writer_loop(c, wrx, bus),
        )
        .await?;
    }
    Ok(())
}

/// Starts a thread that first opens its connection with `open` (reporting the outcome),
/// then runs `body` with it.
pub(super) async fn spawn_db_thread<C: 'static>(
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
            let done = (job.run)(db, None);
            let _ = db.batch("ROLLBACK");
            (done.reply)(Some(msg));
            continue;
        }
        let done = (job.run)(db, None);
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
