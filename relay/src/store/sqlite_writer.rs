//! The SQLite writer: one connection on which the callers themselves commit the waiting jobs
//! in groups ([`Writer`]: each job in its own `SAVEPOINT` when there are several), publishing
//! their bus messages after `COMMIT`; and the checkpoint thread that copies the WAL into the
//! database off the write path (`checkpoint.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use super::checkpoint::{sqlite_checkpoint_loop, wal_checkpoint};
use super::db::Db;
use super::events::SeqCache;
use super::migrate::{migrate, SQLITE_MIGRATIONS};
use super::write::{Done, WriteJob};
use super::{StoreOptions, StoreResult};
use crate::bus::Bus;

/// Jobs taken into one transaction at most.
const MAX_BATCH: usize = 256;
/// Batches one caller runs before it hands the rest to a task (see `Writer::run_waiting`).
const RUN_AT_MOST: usize = 4;
/// While jobs arrive at least one per this long on average ([`Arrivals`]), the caller that
/// would run a batch waits this long first for others to join it (tokio's timer rounds it
/// up to its 1 ms tick).
pub(super) const GATHER: std::time::Duration = std::time::Duration::from_micros(250);
/// Over how long the writer measures its arrival rate.
const ARRIVAL_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// The WAL file is truncated back to this size when it starts over after a burst.
const WAL_SIZE_LIMIT: i64 = 256 << 20;

/// Opens a connection with the relay's pragmas (WAL, `synchronous`, busy timeout, caches).
pub(super) fn open_sqlite(
    path: &str,
    write: bool,
    sync: &str,
) -> Result<rusqlite::Connection, String> {
    use rusqlite::OpenFlags;
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    // Connections that write hand a commit's WAL frames to the kernel in one write
    // (`wal_vfs`); the others never write the WAL.
    let conn = if write && super::wal_vfs::register() {
        rusqlite::Connection::open_with_flags_and_vfs(path, flags, super::wal_vfs::NAME)
    } else {
        rusqlite::Connection::open_with_flags(path, flags)
    }
    .map_err(|e| format!("opening {path}: {e}"))?;
    // A page cache of 1 MiB (256 pages): the database file is read through `mmap`, so the
    // cache holds the pages read from the WAL and the ones being written, which the WAL's
    // frequent restarts keep few. A larger one costs at every commit that split a b-tree
    // page: the split renumbers pages through a temporary number past the end of the
    // file, and the commit then walks the whole cache to drop pages past the end (4.6 % of
    // the relay's CPU at 2,000 commands/s with 16 MiB; BENCHMARKS.md, 2026-12-07 second
    // sitting).
    let pragmas = format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=10000; \
         PRAGMA foreign_keys=ON; PRAGMA cache_size=-1024; PRAGMA mmap_size=268435456; \
         PRAGMA temp_store=MEMORY;"
    );
    conn.execute_batch(&pragmas)
        .map_err(|e| format!("configuring {path}: {e}"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// How long [`lock_database`] waits for another writer to let go of the database: a relay
/// restarted by its supervisor may start while the old process is still exiting.
pub(super) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Locks `{path}.lock` (created if missing, never deleted) for the life of this process's
/// writer: one relay per SQLite file. Two writers on one file would each keep their own
/// event positions (`SeqCache`) and hand out the same ones; SQLite's own locks do not stop
/// that (they serialize transactions, not processes). Waits up to `wait` (`Store::open`:
/// [`LOCK_WAIT`]), then refuses with what to do. The lock is `flock`'s: the kernel releases
/// it when the holder exits, however it exits.
pub(super) async fn lock_database(
    path: &str,
    wait: std::time::Duration,
) -> Result<std::fs::File, String> {
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {lock_path}: {e}"))?;
    let until = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "another relay is using {path} (it holds {lock_path}): one relay per SQLite \
                     file; stop it first, or run several nodes on PostgreSQL"
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("locking {lock_path}: {e}"))
            }
        }
    }
}

/// Opens the writer's connection, migrates, and starts the checkpoint thread. Returns the
/// writer and the checkpoint thread's stop handle (dropping it stops the thread).
pub(super) fn start(
    path: &str,
    lock: std::fs::File,
    sync: &str,
    opts: &StoreOptions,
    bus: Arc<dyn Bus>,
) -> Result<(Arc<Writer>, std::sync::mpsc::Sender<()>), String> {
    let wconn = open_sqlite(path, true, sync)?;
    migrate(Db::Lite(&wconn), SQLITE_MIGRATIONS)?;
    // The writer never checkpoints (a checkpoint on the commit path stalls every
    // write behind it for milliseconds); a thread of its own does, concurrently.
    wconn
        .execute_batch(&format!(
            "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={WAL_SIZE_LIMIT}"
        ))
        .map_err(|e| format!("configuring {path}: {e}"))?;
    let cconn = open_sqlite(path, true, sync)?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let catch_up = Arc::new(AtomicBool::new(false));
    let restart_frames = opts.wal_restart_frames.max(1);
    let every = opts.checkpoint_every;
    let commits = Arc::new(AtomicU64::new(0));
    let seqs = SeqCache::default();
    // Any change to `guardians` on this connection, committed or not, empties the guardian
    // cache before its next answer (see `registry::GuardianCache`).
    let guardians_changed = seqs.guardians.changed_flag();
    wconn.update_hook(Some(
        move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if table == "guardians" {
                guardians_changed.store(true, Ordering::Relaxed);
            }
        },
    ));
    let writer = Arc::new(Writer {
        _lock: lock,
        later_pending: AtomicBool::new(false),
        gathering: AtomicBool::new(false),
        busy: AtomicBool::new(false),
        queue: Mutex::new(Vec::new()),
        state: Mutex::new(WriterState {
            conn: wconn,
            bus,
            seqs,
            catch_up: catch_up.clone(),
            commits: commits.clone(),
            arrivals: Arrivals::new(),
            commits_total: metrics::counter!("safestream_store_commits_total"),
            jobs_total: metrics::counter!("safestream_store_jobs_total"),
        }),
    });
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            sqlite_checkpoint_loop(cconn, stop_rx, catch_up, commits, restart_frames, every)
        })
        .map_err(|e| e.to_string())?;
    Ok((writer, stop_tx))
}

/// SQLite's write side: one connection, and the jobs waiting for it.
///
/// There is no writer thread. The task that submits a job runs the waiting jobs itself, as
/// one batch in one transaction, when nobody else is; otherwise the one who is takes its job
/// into the next batch (flat combining). A write then costs no hand-over to another thread
/// and back (at 1,000 commands/s the relay's CPU in `futex` went from 14 % to 7 %, and a
/// command's from 0.61 to 0.44 ms with the other changes of BENCHMARKS.md, 2026-12-06), and
/// jobs that arrive while a batch commits still share the next commit. A batch blocks the
/// submitting tokio worker for its commit (tens to hundreds of microseconds: the WAL is
/// written, not synced, at `synchronous=NORMAL`; the rare batch that finishes a WAL
/// catch-up, 5–40 ms), as the inline reader connections already do for reads; the other
/// worker goes on.
pub(super) struct Writer {
    /// The database's lock file, locked for as long as this writer lives ([`lock_database`]).
    _lock: std::fs::File,
    queue: Mutex<Vec<WriteJob>>,
    state: Mutex<WriterState>,
    /// A timer is on its way to commit jobs queued by [`Writer::submit_later`].
    later_pending: AtomicBool,
    /// A caller is gathering a batch ([`Submitted::Gather`]): others leave their jobs to it.
    gathering: AtomicBool,
    /// Whether jobs came fast over the last window (see [`Arrivals`]).
    busy: AtomicBool,
}

/// What [`Writer::submit`] did with a job.
#[derive(Debug)]
pub(super) enum Submitted {
    /// Committed (by this caller or by whoever was running a batch), or left to the caller
    /// who is gathering one: its answer comes through the job's `reply`.
    Queued,
    /// Jobs come fast: this caller gathers the next batch. It waits [`GATHER`] (async), then
    /// drops the returned guard, which runs the batch — also if the waiting is cancelled.
    Gather(GatherGuard),
}

/// Runs the gathered batch when dropped (see [`Submitted::Gather`]).
#[derive(Debug)]
pub(super) struct GatherGuard(Arc<Writer>);

impl Drop for GatherGuard {
    fn drop(&mut self) {
        self.0.gathering.store(false, Ordering::SeqCst);
        self.0.run_waiting();
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sqlite_writer::Writer")
    }
}

/// How long a write nobody waits for ([`Writer::submit_later`]) may wait for another write
/// to share a transaction with before it commits alone.
pub(super) const LATER_AT_MOST: std::time::Duration = std::time::Duration::from_millis(5);

struct WriterState {
    arrivals: Arrivals,
    conn: rusqlite::Connection,
    bus: Arc<dyn Bus>,
    seqs: SeqCache,
    catch_up: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    commits_total: metrics::Counter,
    jobs_total: metrics::Counter,
}

impl Writer {
    /// Queues `job` and, unless another caller is running a batch (which then takes it),
    /// runs batches until the queue is empty. Every job is answered through its `reply`.
    ///
    /// Why no job is left behind: a caller pushes, then tries the lock; a batch runner
    /// releases the lock, then looks at the queue. Either the runner sees the job, or the
    /// push came after that look, so the caller's try comes after the release and succeeds
    /// (or fails to a newer runner, to whom the same holds).
    ///
    /// While jobs arrive fast (at least one per [`GATHER`] over the last
    /// [`ARRIVAL_WINDOW`]), the first caller to find nobody gathering is told to gather the
    /// next batch instead: a commit costs about the same for one job or many (at 2,000
    /// commands/s, committing at once cost ~15 % more CPU per command; BENCHMARKS.md).
    pub(super) fn submit(self: &Arc<Self>, job: WriteJob) -> Submitted {
        lock(&self.queue).push(job);
        if self.gathering.load(Ordering::SeqCst) {
            // The gatherer drains the queue after it stops gathering, which is after this.
            return Submitted::Queued;
        }
        if self.busy.load(Ordering::Relaxed) && !self.gathering.swap(true, Ordering::SeqCst) {
            return Submitted::Gather(GatherGuard(self.clone()));
        }
        self.run_waiting();
        Submitted::Queued
    }

    /// Queues `job` without running it: the next [`Writer::submit`] takes it into its batch
    /// (before its own job: the queue keeps the order), or a timer runs it within
    /// [`LATER_AT_MOST`]. Under load such a write costs no transaction of its own.
    pub(super) fn submit_later(self: &Arc<Self>, job: WriteJob) {
        lock(&self.queue).push(job);
        if self.later_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let me = self.clone();
                rt.spawn(async move {
                    tokio::time::sleep(LATER_AT_MOST).await;
                    me.later_pending.store(false, Ordering::Release);
                    me.run_waiting();
                });
            }
            Err(_) => {
                self.later_pending.store(false, Ordering::Release);
                self.run_waiting();
            }
        }
    }

    /// Commits whatever is queued now (or leaves it to whoever is committing).
    pub(super) fn flush(self: &Arc<Self>) {
        self.run_waiting();
    }

    /// Runs batches until the queue is empty, unless another caller is running them. After
    /// [`RUN_AT_MOST`] batches a caller hands what is left to a task of its own, so one
    /// request is not kept committing others' writes for as long as they keep coming.
    fn run_waiting(self: &Arc<Self>) {
        loop {
            let mut state = match self.state.try_lock() {
                Ok(state) => state,
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Poisoned(p)) => {
                    // A job, a reply or a publish panicked mid-batch: that batch's callers were
                    // answered with an error when their jobs were dropped; undo what it left.
                    self.state.clear_poison();
                    let mut state = p.into_inner();
                    state.recover();
                    state
                }
            };
            let mut batches = 0;
            loop {
                if batches == RUN_AT_MOST {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        drop(state);
                        let me = self.clone();
                        rt.spawn(async move { me.run_waiting() });
                        return;
                    }
                }
                batches += 1;
                let batch: Vec<WriteJob> = {
                    let mut q = lock(&self.queue);
                    let n = q.len().min(MAX_BATCH);
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let n = batch.len();
                state.run_batch(batch);
                if let Some(busy) = state.arrivals.count(n) {
                    self.busy.store(busy, Ordering::Relaxed);
                }
            }
            drop(state);
            if lock(&self.queue).is_empty() {
                return;
            }
        }
    }
}

impl Drop for Writer {
    /// Jobs still queued (writes nobody waits for) are committed before the connection
    /// closes.
    fn drop(&mut self) {
        let mut jobs = std::mem::take(self.queue.get_mut().unwrap_or_else(|p| p.into_inner()));
        let poisoned = self.state.is_poisoned();
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if poisoned {
            state.recover();
        }
        while !jobs.is_empty() {
            let rest = jobs.split_off(jobs.len().min(MAX_BATCH));
            state.run_batch(jobs);
            jobs = rest;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WriterState {
    /// After a panic in a batch: roll back the transaction it left open and forget the
    /// positions it may have taken.
    fn recover(&mut self) {
        tracing::error!("store: a write panicked; its batch was rolled back");
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.seqs.forget();
    }

    /// Runs `batch` in one transaction, each job in its own savepoint when there are
    /// several; publishes their messages after `COMMIT` and answers them.
    // Not inlined: scripts/profile-command.sh finds the writes under this name.
    #[inline(never)]
    fn run_batch(&mut self, mut batch: Vec<WriteJob>) {
        let WriterState {
            arrivals: _,
            conn,
            bus,
            seqs,
            catch_up,
            commits,
            commits_total,
            jobs_total,
        } = self;
        let conn = &*conn;
        let db = Db::Lite(conn);
        // The statements every batch runs, prepared once (`execute_batch` would parse them
        // anew each time: a few percent of the writer's CPU).
        let run = |sql: &str| -> StoreResult<()> {
            conn.prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        if catch_up.swap(false, Ordering::Relaxed) {
            // See `checkpoint::sqlite_checkpoint_loop`: with every frame copied, this batch rewinds the WAL.
            wal_checkpoint(conn);
        }
        if let Err(e) = run("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store: BEGIN failed");
            for job in batch.drain(..) {
                let done = job_failed_before_run(job, db, seqs);
                (done.reply)(Some(msg.clone()));
            }
            if !conn.is_autocommit() {
                // A transaction left open (a COMMIT and its ROLLBACK both failed) would make
                // every later BEGIN fail too.
                let _ = db.batch("ROLLBACK");
            }
            return;
        }
        // A job alone in its transaction needs no savepoint: if it fails, the whole
        // transaction is rolled back instead of committed (two statements fewer per write
        // when writes come one at a time). Nor does a job whose checks come first (see
        // `Store::write_checks_first`): when it fails it has written nothing, which
        // `total_changes` confirms; if it did write, the whole transaction is rolled back,
        // and the jobs before it in it fail too. A savepoint costs its two statements and a
        // copy of every page the job touches (the sub-journal; ~22,000 instructions per
        // command when the DELIVERED record and the ack share a transaction; BENCHMARKS.md,
        // 2026-12-07 second sitting).
        let alone = batch.len() == 1;
        let mut any_ok = false;
        // Each job's outcome, and an error to answer instead when a later job's failure
        // rolled back the transaction it had written in.
        let mut dones: Vec<(Done, Option<String>)> = Vec::with_capacity(batch.len());
        let mut jobs = batch.drain(..);
        while let Some(job) = jobs.next() {
            seqs.job_started();
            let shield = !alone && !job.checks_first;
            if shield {
                let _ = run("SAVEPOINT job");
            }
            let changes = conn.total_changes();
            let done = (job.run)(db, Some(&mut *seqs));
            if !done.failed {
                any_ok = true;
                if shield {
                    let _ = run("RELEASE job");
                }
                dones.push((done, None));
                continue;
            }
            seqs.job_rolled_back();
            if shield {
                let _ = db.batch("ROLLBACK TO job; RELEASE job");
            } else if !alone && (conn.total_changes() != changes || conn.is_autocommit()) {
                let msg = "a write in the same transaction failed; it was rolled back with it";
                tracing::error!("store: a job without a savepoint failed after writing; its transaction was rolled back");
                if !conn.is_autocommit() {
                    let _ = db.batch("ROLLBACK");
                }
                seqs.forget();
                for (d, err) in dones.iter_mut().filter(|(d, _)| !d.failed) {
                    d.msgs.clear();
                    *err = Some(msg.to_string());
                }
                any_ok = false;
                dones.push((done, None));
                if jobs.len() > 0 {
                    if let Err(e) = run("BEGIN IMMEDIATE") {
                        let msg = e.to_string();
                        tracing::error!(error = %msg, "store: BEGIN failed");
                        for job in jobs.by_ref() {
                            let done = job_failed_before_run(job, db, seqs);
                            (done.reply)(Some(msg.clone()));
                        }
                        for (d, err) in dones {
                            (d.reply)(err);
                        }
                        return;
                    }
                }
                continue;
            }
            dones.push((done, None));
        }
        drop(jobs);
        jobs_total.increment(dones.len() as u64);
        let end = if any_ok {
            run("COMMIT")
        } else {
            run("ROLLBACK")
        };
        match end {
            Ok(()) => {
                if any_ok {
                    commits.fetch_add(1, Ordering::Relaxed);
                    commits_total.increment(1);
                }
                for (d, err) in dones {
                    if err.is_none() {
                        for m in d.msgs {
                            bus.publish(m);
                        }
                    }
                    (d.reply)(err);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "store: COMMIT failed; the batch was rolled back");
                let _ = db.batch("ROLLBACK");
                seqs.forget();
                for (d, _) in dones {
                    (d.reply)(Some(msg.clone()));
                }
            }
        }
    }
}

/// The writer's recent arrival rate, which decides whether callers gather batches.
///
/// Gathering pays when another job is likely to arrive within [`GATHER`] (at least one per
/// `GATHER` on average, 4,000 jobs/s): commits are then shared and the writer spends less
/// per job. Below that rate a wait mostly adds its whole length to each write (a command
/// waits for two writes) and saves little: at 1,000 commands/s (3,000 jobs/s) lingering
/// raised the round trip's p50 from 0.7–0.9 to 1.5–1.8 ms for the same CPU, while at
/// 2,000/s not lingering cost ~15 % more CPU per command (BENCHMARKS.md, fix 15).
struct Arrivals {
    since: std::time::Instant,
    jobs: usize,
}

impl Arrivals {
    fn new() -> Arrivals {
        Arrivals {
            since: std::time::Instant::now(),
            jobs: 0,
        }
    }

    /// Counts `n` jobs committed; when the window is over, says whether it saw at least one
    /// job per [`GATHER`] and starts the next.
    fn count(&mut self, n: usize) -> Option<bool> {
        self.jobs += n;
        let elapsed = self.since.elapsed();
        if elapsed < ARRIVAL_WINDOW {
            return None;
        }
        // jobs / elapsed >= 1 / GATHER
        let busy = self.jobs as u128 * GATHER.as_nanos() >= elapsed.as_nanos();
        self.jobs = 0;
        self.since = std::time::Instant::now();
        Some(busy)
    }
}

/// When the transaction cannot even begin, a job still has to answer: run it inside a
/// savepoint that is always rolled back, and report the error.
fn job_failed_before_run(job: WriteJob, db: Db<'_>, seqs: &mut SeqCache) -> Done {
    let _ = db.batch("SAVEPOINT doomed");
    seqs.job_started();
    let done = (job.run)(db, Some(&mut *seqs));
    seqs.job_rolled_back();
    let _ = db.batch("ROLLBACK TO doomed; RELEASE doomed");
    done
}

#[cfg(test)]
mod tests;
