//! The SQLite writer's tests: batches, savepoints, later writes, the lock, the WAL.

use super::*;
use crate::store::db::args;
use crate::store::{test_store, NullBus, Store, StoreError};

/// A write that inserts `key` into `meta`.
fn insert(key: String) -> impl FnOnce(&mut crate::store::W<'_>) -> StoreResult<()> + Send {
    move |w| {
        w.conn
            .exec("INSERT INTO meta (key, value) VALUES (?1, 'x')", args![key])
            .map(|_| ())
    }
}

/// How many `meta` rows have a key `LIKE pattern`.
async fn count(store: &Store, pattern: &'static str) -> i64 {
    store
        .read(move |c| {
            c.int(
                "SELECT COUNT(*) FROM meta WHERE key LIKE ?1",
                args![pattern],
            )
        })
        .await
        .unwrap()
}

#[test]
fn callers_gather_batches_only_when_jobs_come_at_least_one_per_gather() {
    let mut a = Arrivals::new();
    assert_eq!(
        a.count(1),
        None,
        "within the first window nothing is decided"
    );
    // 100 jobs in a window of at least 100 ms: at most 1,000/s, below one per 250 µs.
    a.since -= ARRIVAL_WINDOW;
    assert_eq!(a.count(99), Some(false));
    // 1,000 jobs in about 100 ms: ~10,000/s.
    a.since -= ARRIVAL_WINDOW;
    assert_eq!(a.count(1000), Some(true));
    // A quiet window turns it off again.
    a.since -= ARRIVAL_WINDOW * 10;
    assert_eq!(a.count(1), Some(false));
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

/// A job whose checks come first runs without a savepoint: when it fails before writing,
/// the jobs around it in its transaction commit; when it fails after writing (breaking
/// its promise), the whole transaction is rolled back, the jobs before it fail with it,
/// and the jobs after it run in a new one.
#[tokio::test]
async fn a_job_whose_checks_come_first_fails_without_a_savepoint() {
    use std::sync::atomic::AtomicUsize;
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(&dir).await;
    let committed = Arc::new(AtomicUsize::new(0));
    let counted = |c: &Arc<AtomicUsize>| {
        let c = c.clone();
        move |()| {
            c.fetch_add(1, Ordering::SeqCst);
        }
    };
    // One batch, in queue order: two later writes, then a write that takes them along.
    store.write_later("test", insert("a1".into()), counted(&committed));
    store.write_later(
        "test",
        |_w| Err(StoreError::Conflict("refused before writing".into())),
        counted(&committed),
    );
    store.write(insert("c1".into())).await.unwrap();
    assert_eq!(count(&store, "a1").await, 1);
    assert_eq!(count(&store, "c1").await, 1);
    assert_eq!(
        committed.load(Ordering::SeqCst),
        1,
        "a1 committed, the refusal not"
    );

    store.write_later("test", insert("a2".into()), counted(&committed));
    store.write_later(
        "test",
        |w| {
            insert("b2".into())(w)?;
            Err(StoreError::Conflict("refused after writing".into()))
        },
        counted(&committed),
    );
    store.write(insert("c2".into())).await.unwrap();
    assert_eq!(
        count(&store, "b2").await,
        0,
        "the failed job's write is undone"
    );
    assert_eq!(
        count(&store, "a2").await,
        0,
        "and the job before it in its transaction"
    );
    assert_eq!(
        committed.load(Ordering::SeqCst),
        1,
        "which is not reported committed"
    );
    assert_eq!(count(&store, "c2").await, 1, "the job after it commits");
}

/// A write nobody waits for commits with the next write (before it, in queue order), or
/// alone within LATER_AT_MOST when none comes.
#[tokio::test]
async fn a_later_write_joins_the_next_write_or_commits_alone_soon() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(&dir).await;
    store.write_later("test", insert("later-1".into()), |()| {});
    assert_eq!(count(&store, "later-1").await, 0, "not run at once");
    store.write(insert("now".into())).await.unwrap();
    assert_eq!(count(&store, "later-1").await, 1, "taken by the next write");
    store.write_later("test", insert("later-2".into()), |()| {});
    tokio::time::sleep(LATER_AT_MOST * 4).await;
    assert_eq!(count(&store, "later-2").await, 1, "committed alone soon");
}

/// One writer per SQLite file: a second store on a file in use waits, then refuses with
/// what to do; once the first is gone (its last pending write included), it opens.
#[tokio::test]
async fn a_second_writer_on_the_same_file_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(&dir).await;
    let path = dir.path().join("t.db");
    let path = path.to_str().unwrap();
    let short = std::time::Duration::from_millis(100);
    let err = lock_database(path, short).await.unwrap_err();
    assert!(
        err.contains("another relay is using") && err.contains("PostgreSQL"),
        "{err}"
    );
    // A write still queued keeps the writer (and the lock) alive until it commits.
    store.write_later("test", insert("last".into()), |()| {});
    drop(store);
    let lock = lock_database(path, std::time::Duration::from_secs(5)).await;
    assert!(lock.is_ok(), "{:?}", lock.err());
    drop(lock);
    let again = test_store(&dir).await;
    assert_eq!(
        count(&again, "last").await,
        1,
        "the pending write was committed before the lock was let go"
    );
}

/// While jobs come fast one caller gathers each batch; a gatherer that is cancelled
/// during its wait still commits what it gathered, and the next write is not stranded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathered_batches_commit_even_when_the_gatherer_is_cancelled() {
    use futures_util::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(test_store(&dir).await);
    let super::super::Writer::Sqlite(writer) = &store.writer else {
        panic!("a SQLite store");
    };
    writer.busy.store(true, Ordering::Relaxed);
    // Polled once: it becomes the gatherer and waits; dropped there.
    assert!(store
        .write(insert("g-cancelled".into()))
        .now_or_never()
        .is_none());
    assert!(!writer.gathering.load(Ordering::SeqCst));
    let mut tasks = vec![];
    for i in 0..40 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.write(insert(format!("g{i}"))).await
        }));
    }
    for t in tasks {
        let done = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        done.expect("a write was stranded").unwrap().unwrap();
    }
    assert_eq!(
        count(&store, "g%").await,
        41,
        "the cancelled gatherer's job and every later one committed"
    );
}

/// A write that panics mid-transaction (a bug) is rolled back, and the next write still
/// commits instead of waiting forever on a poisoned writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_leaves_the_writer_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(test_store(&dir).await);
    let s = store.clone();
    let crashed = tokio::spawn(async move {
        s.write(|w| -> StoreResult<()> {
            w.conn
                .exec("INSERT INTO meta (key, value) VALUES ('p1', 'x')", args![])?;
            panic!("a bug in a write");
        })
        .await
    })
    .await;
    assert!(crashed.is_err(), "the writing task panicked");
    let after = store.write(|w| {
        w.conn
            .exec("INSERT INTO meta (key, value) VALUES ('p2', 'x')", args![])
            .map(|_| ())
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), after)
        .await
        .expect("the next write was stranded")
        .unwrap();
    let keys: Vec<String> = store
        .read(|c| {
            c.map(
                "SELECT key FROM meta WHERE key LIKE 'p%' ORDER BY key",
                args![],
                |r| r.text(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        keys,
        vec!["p2".to_string()],
        "the panicked write was rolled back"
    );
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
    // 6,000 rows of 4 KB, 32 writes always in flight (no idle moment in which a passive
    // checkpoint could catch up by itself): 24 MB of WAL if it never started over. (With
    // the tests running side by side on two cores, the first start-over has come after
    // up to ~7 MB: the checkpoint thread gets fewer turns while writes run flat out.)
    let blob = "x".repeat(4000);
    let results: Vec<StoreResult<u64>> = futures_util::stream::iter(0..6000)
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
    assert_eq!(n, 6000);
    assert!(
        biggest < 12 << 20,
        "the WAL grew to {biggest} bytes: it never started over"
    );
}
