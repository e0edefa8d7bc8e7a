//! The SQLite checkpoint thread: copies the WAL into the database off the write path
//! ([`PassGate`] decides when a pass is due), and asks the writer to finish the copy when the
//! WAL is long, so that it starts over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
/// Frames the writer's own catch-up may have left to copy: the checkpoint thread keeps
/// going until at most this many remain before it asks the writer.
const CATCH_UP_FRAMES: i64 = 256;
/// Passes the checkpoint thread makes at most, one after another, to get there.
const CATCH_UP_PASSES: usize = 8;
/// Commits since the last pass that make the next tick's pass due (100 commits/s at one
/// tick per 50 ms): under load every tick copies, as before.
const PASS_COMMITS: u64 = 5;
/// How long fewer commits wait for their pass. At a few commits per second a pass after
/// each one let the WAL start over at almost every commit, and each restart zeroes the
/// first 32 KiB of the WAL index (~32,000 instructions, with the pass itself ~13,000 more:
/// 9 % of a command at 10/s; BENCHMARKS.md, 2026-12-07).
const PASS_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs a `PASSIVE` checkpoint; returns the WAL's length and how much of it is now copied
/// (in frames), or `None` on error.
pub(super) fn wal_checkpoint(conn: &rusqlite::Connection) -> Option<(i64, i64)> {
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
pub(super) fn sqlite_checkpoint_loop(
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
                if !gate.due(commits.load(Ordering::Relaxed), std::time::Instant::now()) {
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

/// Whether the checkpoint thread's next tick should make a pass: after [`PASS_COMMITS`]
/// commits, or [`PASS_AT_MOST`] after the first commit not yet copied, or when the last pass
/// left frames to copy or failed. An idle relay does not pay for a pass every 50 ms, and a
/// quiet one copies (and lets the WAL start over) once per few commits, not after each.
struct PassGate {
    seen: u64,
    /// When a commit the last pass did not see was first noticed.
    waiting_since: Option<std::time::Instant>,
    left: bool,
}

impl PassGate {
    fn new() -> PassGate {
        // The first tick always runs (a WAL may be left from an earlier process).
        PassGate {
            seen: u64::MAX,
            waiting_since: None,
            left: false,
        }
    }

    /// Given the writer's commit count and the time; when it says yes, the pass is assumed
    /// to fail until [`PassGate::copied`] says otherwise.
    fn due(&mut self, commits: u64, now: std::time::Instant) -> bool {
        let first = self.seen == u64::MAX;
        if !first && !self.left {
            let new = commits.wrapping_sub(self.seen);
            if new == 0 {
                return false;
            }
            let since = *self.waiting_since.get_or_insert(now);
            if new < PASS_COMMITS && now.duration_since(since) < PASS_AT_MOST {
                return false;
            }
        }
        self.seen = commits;
        self.waiting_since = None;
        self.left = true;
        true
    }

    /// What a pass found: the WAL's length and how much of it is copied, in frames.
    fn copied(&mut self, frames: i64, copied: i64) {
        self.left = copied < frames;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_passes_run_after_commits_and_until_the_wal_is_copied() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let mut g = PassGate::new();
        assert!(g.due(0, at(0)), "the first tick runs");
        g.copied(10, 10);
        assert!(
            !g.due(0, at(50)),
            "nothing committed, nothing left: skipped"
        );
        assert!(!g.due(1, at(100)), "one commit waits for company");
        assert!(!g.due(4, at(1050)), "four commits wait up to PASS_AT_MOST");
        assert!(g.due(4, at(1100)), "then they are copied");
        g.copied(20, 20);
        assert!(
            g.due(4 + PASS_COMMITS, at(1150)),
            "PASS_COMMITS commits: at once"
        );
        g.copied(20, 15);
        assert!(
            g.due(9, at(1200)),
            "frames left to copy: runs again without a commit"
        );
        // A failed pass (no `copied`) is tried again on the next tick.
        assert!(g.due(9, at(1250)));
        g.copied(20, 20);
        assert!(!g.due(9, at(1300)));
        assert!(
            !g.due(10, at(1350)),
            "the wait starts again from the next commit"
        );
        assert!(g.due(10, at(2350)));
    }
}
