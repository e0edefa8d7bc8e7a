//! The command ledger and the ack outbox: crash-safe, and bounded by what can still happen,
//! not by a count.
//!
//! Every transition that matters for exactly-once is durable before the agent acts on it:
//!
//! - `begin`: the id is recorded as **started** before the host sees the command;
//! - `finish`: the ack is put in the **outbox** and the id marked **finished** in the same
//!   write, before the first attempt to post it;
//! - `remove_ack`: the outbox entry is dropped once the relay answered.
//!
//! At load, an id still **started** belonged to a run cut short by the app's death: it is
//! turned into a FAILED "interrupted" ack and never run again.
//!
//! **When an id is forgotten.** Only when the command can never be delivered again: its ack
//! is no longer waiting (the relay answered it) *and* it is past its expiry by the relay's
//! clock (plus [`FORGET_GRACE_MS`]). The relay never writes a command to a socket at or
//! after its expiry, and the agent refuses one it judges expired by relay time, so a
//! forgotten id cannot run again. No ack is ever dropped to make room. Ids of an older
//! state file, which did not record expiry, keep the old rule: at most [`MAX_LEGACY_IDS`].
//!
//! **Storage.** A snapshot (`agent-state.json`, replaced atomically) plus a journal
//! (`agent-state.journal`, one JSON record per line, appended and synced per transition),
//! so a transition costs one small append whatever the number of ids. The journal is folded
//! into a new snapshot once it outgrows the live state. Records carry a sequence number;
//! the snapshot says up to which one it includes, so a crash between writing the snapshot
//! and emptying the journal replays nothing twice, and a torn last line (a crash during an
//! append) is ignored: its transition was never acknowledged to anyone.
//!
//! Hand-written on purpose: an embedded database (SQLite) would add about a megabyte to a
//! library that ships inside a phone app (`BENCHMARKS.md`, agent footprint), for a state of
//! a few kilobytes that needs only "append, sync, occasionally rewrite".

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::command::AckStatus;
use crate::storage::Storage;

/// Name of the snapshot in the state directory.
pub(crate) const STATE_FILE: &str = "agent-state.json";
/// Name of the journal beside it.
pub(crate) const JOURNAL_FILE: &str = "agent-state.journal";
/// Version of the snapshot's layout (1: no expiry, no journal).
pub(crate) const SCHEMA_VERSION: u32 = 2;
/// Ids from a version-1 state file (no expiry recorded) kept at most.
pub(crate) const MAX_LEGACY_IDS: usize = 512;
/// How long past its expiry (relay time) an acknowledged id is still remembered: room for
/// an estimate of the relay's clock that moves back a little at the next `ready`.
pub(crate) const FORGET_GRACE_MS: i64 = 10 * 60 * 1000;
/// The error text of an ack for a run cut short by the app's death.
pub(crate) const INTERRUPTED: &str = "interrupted";
/// The journal is folded into the snapshot past this many bytes, or past four times the
/// snapshot's size, whichever is larger.
const JOURNAL_FOLD_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    Started,
    Finished,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub id: String,
    pub phase: Phase,
    /// Unix ms (device clock) of the last transition: informative only.
    pub at: i64,
    /// The command's expiry, relay time (Unix ms); `None` for ids of a version-1 file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// One ack waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct PendingAck {
    pub id: String,
    pub status: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
}

/// See [`Ledger::sim_digest`].
#[cfg(feature = "sim")]
pub(crate) type SimDigest = (Vec<(String, bool, Option<i64>)>, Vec<(String, AckStatus)>);

/// The snapshot file.
#[derive(Default, Serialize, Deserialize)]
struct Snapshot {
    #[serde(default)]
    version: u32,
    /// The last journal record this snapshot includes.
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    commands: Vec<Entry>,
    #[serde(default)]
    outbox: Vec<PendingAck>,
}

/// One journal record: a transition, applied in order after the snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Op {
    /// An id recorded (started; or finished at once for a refusal, with its ack in the same
    /// record so a torn append cannot keep one without the other).
    Put {
        entry: Entry,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<PendingAck>,
    },
    /// An ack queued (replacing one for the same id); its id marked finished.
    Ack { ack: PendingAck, at: i64 },
    /// The relay answered the ack of `id`.
    Acked { id: String },
    /// Attempts counted for `id`.
    Attempts { id: String, n: u32 },
    /// Ids forgotten.
    Forget { ids: Vec<String> },
}

#[derive(Serialize, Deserialize)]
struct Record {
    seq: u64,
    #[serde(flatten)]
    op: Op,
}

/// The ledger plus outbox, with its storage. When each ack may be tried next is not
/// here: the outbox state machine ([`crate::machine::outbox`]) decides that, and it is not
/// persisted (after a restart every ack is tried at once).
pub(crate) struct Ledger {
    storage: Arc<dyn Storage>,
    commands: HashMap<String, Entry>,
    /// Waiting acks, oldest first.
    outbox: Vec<PendingAck>,
    /// The last journal record written (or replayed).
    seq: u64,
    /// Bytes in the journal since the last snapshot.
    journal_bytes: usize,
    /// Size of the last snapshot.
    snapshot_bytes: usize,
    /// Ids whose attempt count changed since it was last written.
    dirty_attempts: HashSet<String>,
    /// An append failed (maybe leaving a torn line) or the journal holds records from
    /// before this run: fold before appending again, so no record is ever written after a
    /// torn one.
    must_fold: bool,
}

impl Ledger {
    /// Loads the state, turning every started-but-unfinished command into a FAILED
    /// "interrupted" ack. Returns the ledger and the ids so converted.
    pub(crate) fn load(storage: Arc<dyn Storage>, now_ms: i64) -> io::Result<(Self, Vec<String>)> {
        let (mut ledger, journal_len, stale_journal, version) = Self::read(storage)?;
        let mut interrupted: Vec<String> = ledger
            .commands
            .values()
            .filter(|e| e.phase == Phase::Started)
            .map(|e| e.id.clone())
            .collect();
        interrupted.sort();
        for id in &interrupted {
            let queued = ledger.outbox.iter().any(|a| &a.id == id);
            if let Some(e) = ledger.commands.get_mut(id) {
                e.phase = Phase::Finished;
                e.at = now_ms;
            }
            if !queued {
                ledger.push_ack(PendingAck {
                    id: id.clone(),
                    status: AckStatus::Failed,
                    error: Some(INTERRUPTED.to_owned()),
                    attempts: 0,
                });
            }
        }
        ledger.evict_legacy();
        // Start every run from one snapshot and an empty journal (a journal that is not
        // empty may end in a torn line, which must not have records appended after it).
        if !interrupted.is_empty() || journal_len > 0 || stale_journal || version != SCHEMA_VERSION
        {
            if let Err(e) = ledger.fold() {
                // The state is loaded; folding is retried before the next append.
                tracing::warn!(error = %e, "could not rewrite the state file at start");
                ledger.must_fold = true;
            }
        }
        Ok((ledger, interrupted))
    }

    /// The state as the files hold it, in the middle of a run (nothing converted, nothing
    /// rewritten): how the model checker (`model/`) takes the ledger up again between two
    /// steps. Only valid when every write of the run succeeded.
    #[cfg(feature = "sim")]
    pub(crate) fn resume(storage: Arc<dyn Storage>) -> io::Result<Self> {
        let (mut ledger, journal_len, _, _) = Self::read(storage)?;
        ledger.journal_bytes = journal_len;
        Ok(ledger)
    }

    /// What the ledger holds, as far as any decision goes: each id with its phase (started?)
    /// and expiry, and the acks waiting (id, status), in order. Left out: the entries' wall
    /// clock stamps, sequence numbers and attempt counts, which decide nothing. The model
    /// checker tells device states apart by this instead of the files' bytes.
    #[cfg(feature = "sim")]
    pub(crate) fn sim_digest(&self) -> SimDigest {
        let mut ids: Vec<(String, bool, Option<i64>)> = self
            .commands
            .values()
            .map(|e| (e.id.clone(), e.phase == Phase::Started, e.exp))
            .collect();
        ids.sort();
        let acks = self
            .outbox
            .iter()
            .map(|a| (a.id.clone(), a.status))
            .collect();
        (ids, acks)
    }

    /// Reads the snapshot and replays the journal. Returns the ledger, the journal's size,
    /// whether the journal was stale (not replayed) and the snapshot's version.
    fn read(storage: Arc<dyn Storage>) -> io::Result<(Self, usize, bool, u32)> {
        let mut snapshot_bytes = 0;
        let loaded = storage.load(STATE_FILE)?;
        let snapshot_present = loaded.is_some();
        let snapshot = match loaded {
            None => Snapshot::default(),
            Some(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(p) => {
                    snapshot_bytes = bytes.len();
                    p
                }
                Err(e) => {
                    // Only a bug or a tampered file gets here (writes are atomic). Keep the
                    // evidence and start afresh rather than refusing to run at all.
                    tracing::error!(error = %e, "state file unreadable; starting with an empty ledger");
                    let _ = storage.save(&format!("{STATE_FILE}.corrupt"), &bytes);
                    Snapshot::default()
                }
            },
        };
        let mut ledger = Self {
            storage,
            commands: snapshot
                .commands
                .into_iter()
                .map(|e| (e.id.clone(), e))
                .collect(),
            outbox: snapshot.outbox,
            seq: snapshot.seq,
            journal_bytes: 0,
            snapshot_bytes,
            dirty_attempts: HashSet::new(),
            must_fold: false,
        };
        // A snapshot older than the journal's format (an older app version ran last and
        // rewrote it) makes any journal left beside it stale: it is not replayed.
        let stale_journal = snapshot_present && snapshot.version < SCHEMA_VERSION;
        let journal_len = if stale_journal { 0 } else { ledger.replay()? };
        // Version 0 when there was no readable snapshot: the first start writes one.
        Ok((ledger, journal_len, stale_journal, snapshot.version))
    }

    /// Applies the journal's records newer than the snapshot; returns the journal's size.
    fn replay(&mut self) -> io::Result<usize> {
        let Some(bytes) = self.storage.load(JOURNAL_FILE)? else {
            return Ok(0);
        };
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(record) = serde_json::from_slice::<Record>(line) else {
                // A torn last append: its transition was never acted on.
                tracing::warn!("ignoring an incomplete journal record");
                break;
            };
            if record.seq <= self.seq {
                continue;
            }
            self.seq = record.seq;
            self.apply(record.op);
        }
        Ok(bytes.len())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Put { entry, ack } => {
                self.commands.insert(entry.id.clone(), entry);
                if let Some(ack) = ack {
                    self.push_ack(ack);
                }
            }
            Op::Ack { ack, at } => {
                if let Some(e) = self.commands.get_mut(&ack.id) {
                    e.phase = Phase::Finished;
                    e.at = at;
                }
                self.push_ack(ack);
            }
            Op::Acked { id } => self.outbox.retain(|a| a.id != id),
            Op::Attempts { id, n } => {
                if let Some(a) = self.outbox.iter_mut().find(|a| a.id == id) {
                    a.attempts = n;
                }
            }
            Op::Forget { ids } => {
                for id in ids {
                    self.commands.remove(&id);
                }
            }
        }
    }

    /// Writes `ops` (and any attempt counts not yet written) as journal records in one
    /// synced append.
    fn write(&mut self, ops: Vec<Op>) -> io::Result<()> {
        if self.must_fold {
            // Never append after a record that may be torn: start a new journal first. If
            // that fails too, nothing is written and the transition does not happen.
            self.fold()?;
        }
        let mut text = Vec::new();
        let mut seq = self.seq;
        let mut attempts: Vec<String> = self.dirty_attempts.iter().cloned().collect();
        attempts.sort();
        let attempt_ops = attempts.into_iter().filter_map(|id| {
            let n = self.outbox.iter().find(|a| a.id == id)?.attempts;
            Some(Op::Attempts { id, n })
        });
        for op in attempt_ops.collect::<Vec<_>>().into_iter().chain(ops) {
            seq += 1;
            serde_json::to_writer(&mut text, &Record { seq, op }).map_err(io::Error::other)?;
            text.push(b'\n');
        }
        // The numbers are used even if the append fails (its bytes may have reached the
        // file): a later record never reuses one, so replay cannot take one for the other.
        self.seq = seq;
        if let Err(e) = self.storage.append(JOURNAL_FILE, &text) {
            self.must_fold = true;
            return Err(e);
        }
        self.dirty_attempts.clear();
        self.journal_bytes += text.len();
        Ok(())
    }

    /// Folds the journal into a new snapshot once it has grown. Called after a transition
    /// is both written and applied in memory (the snapshot must include it).
    fn maybe_fold(&mut self) {
        if self.journal_bytes > JOURNAL_FOLD_BYTES.max(4 * self.snapshot_bytes) {
            // The journal is already durable: a failed fold only means a longer replay.
            if let Err(e) = self.fold() {
                tracing::warn!(error = %e, "could not fold the journal into the state file");
            }
        }
    }

    /// Writes the whole state as a new snapshot, then empties the journal.
    fn fold(&mut self) -> io::Result<()> {
        let mut commands: Vec<Entry> = self.commands.values().cloned().collect();
        commands.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let snapshot = Snapshot {
            version: SCHEMA_VERSION,
            seq: self.seq,
            commands,
            outbox: self.outbox.clone(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
        self.storage.save(STATE_FILE, &bytes)?;
        self.storage.save(JOURNAL_FILE, b"")?;
        self.snapshot_bytes = bytes.len();
        self.journal_bytes = 0;
        self.dirty_attempts.clear();
        self.must_fold = false;
        Ok(())
    }

    /// Whether this command id was seen before (in any phase).
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.commands.contains_key(id)
    }

    /// Whether the command was handed to the host and not finished yet.
    pub(crate) fn is_started(&self, id: &str) -> bool {
        self.commands
            .get(id)
            .is_some_and(|e| e.phase == Phase::Started)
    }

    /// Whether an ack for `id` waits in the outbox.
    pub(crate) fn has_ack(&self, id: &str) -> bool {
        self.outbox.iter().any(|a| a.id == id)
    }

    /// Records `id` (expiring at `exp`, relay time) as started. On a write error nothing
    /// changes and the command must not be run.
    pub(crate) fn begin(&mut self, id: &str, exp: Option<i64>, now_ms: i64) -> io::Result<()> {
        let entry = Entry {
            id: id.to_owned(),
            phase: Phase::Started,
            at: now_ms,
            exp,
        };
        self.write(vec![Op::Put {
            entry: entry.clone(),
            ack: None,
        }])?;
        self.commands.insert(id.to_owned(), entry);
        self.maybe_fold();
        Ok(())
    }

    /// Finishes a started command: marks it finished and queues its ack, in one write.
    /// Returns `Ok(false)` when `id` is not a started command. A write error still leaves
    /// the ack queued in memory.
    pub(crate) fn finish(
        &mut self,
        id: &str,
        status: AckStatus,
        error: Option<String>,
        now_ms: i64,
    ) -> io::Result<bool> {
        if !self
            .commands
            .get(id)
            .is_some_and(|e| e.phase == Phase::Started)
        {
            return Ok(false);
        }
        let ack = PendingAck {
            id: id.to_owned(),
            status,
            error,
            attempts: 0,
        };
        self.apply(Op::Ack {
            ack: ack.clone(),
            at: now_ms,
        });
        self.write(vec![Op::Ack { ack, at: now_ms }])?;
        self.maybe_fold();
        Ok(true)
    }

    /// Records a command that is answered without running it (unsupported or invalid): the
    /// id is remembered and its ack queued, in one write.
    pub(crate) fn record_final(
        &mut self,
        id: &str,
        exp: Option<i64>,
        status: AckStatus,
        error: Option<String>,
        now_ms: i64,
    ) -> io::Result<()> {
        let entry = Entry {
            id: id.to_owned(),
            phase: Phase::Finished,
            at: now_ms,
            exp,
        };
        let ack = PendingAck {
            id: id.to_owned(),
            status,
            error,
            attempts: 0,
        };
        self.commands.insert(id.to_owned(), entry.clone());
        self.push_ack(ack.clone());
        self.write(vec![Op::Put {
            entry,
            ack: Some(ack),
        }])?;
        self.maybe_fold();
        Ok(())
    }

    fn push_ack(&mut self, ack: PendingAck) {
        self.outbox.retain(|a| a.id != ack.id);
        self.outbox.push(ack);
    }

    /// Forgets ids of a version-1 state file (no recorded expiry) beyond
    /// [`MAX_LEGACY_IDS`], oldest first; never a started one or one whose ack waits.
    fn evict_legacy(&mut self) {
        let legacy = self.commands.values().filter(|e| e.exp.is_none()).count();
        if legacy <= MAX_LEGACY_IDS {
            return;
        }
        let mut evictable: Vec<(i64, String)> = self
            .commands
            .values()
            .filter(|e| e.exp.is_none() && e.phase == Phase::Finished)
            .filter(|e| !self.outbox.iter().any(|a| a.id == e.id))
            .map(|e| (e.at, e.id.clone()))
            .collect();
        evictable.sort();
        for (_, id) in evictable.iter().take(legacy - MAX_LEGACY_IDS) {
            self.commands.remove(id);
        }
    }

    /// Forgets every id that can never be delivered again: finished, its ack answered by
    /// the relay, and past its expiry by `relay_now_ms` plus [`FORGET_GRACE_MS`]. Returns
    /// how many were forgotten.
    pub(crate) fn forget_expired(&mut self, relay_now_ms: i64) -> io::Result<usize> {
        let ids: Vec<String> = self
            .commands
            .values()
            .filter(|e| e.phase == Phase::Finished)
            .filter(|e| {
                e.exp
                    .is_some_and(|exp| exp.saturating_add(FORGET_GRACE_MS) < relay_now_ms)
            })
            .filter(|e| !self.outbox.iter().any(|a| a.id == e.id))
            .map(|e| e.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        self.write(vec![Op::Forget { ids: ids.clone() }])?;
        for id in ids {
            self.commands.remove(&id);
        }
        self.maybe_fold();
        Ok(n)
    }

    /// The acks waiting, oldest first.
    pub(crate) fn outbox(&self) -> &[PendingAck] {
        &self.outbox
    }

    /// Counts a failed attempt to post the ack of `id` (kept in memory, written with the
    /// next change); returns the count.
    pub(crate) fn count_attempt(&mut self, id: &str) -> u32 {
        let mut attempts = 0;
        if let Some(a) = self.outbox.iter_mut().find(|a| a.id == id) {
            a.attempts = a.attempts.saturating_add(1);
            attempts = a.attempts;
            self.dirty_attempts.insert(id.to_owned());
        }
        attempts
    }

    /// Drops the ack of `id` once the relay answered it.
    pub(crate) fn remove_ack(&mut self, id: &str) -> io::Result<()> {
        let before = self.outbox.len();
        self.outbox.retain(|a| a.id != id);
        if before == self.outbox.len() {
            return Ok(());
        }
        self.dirty_attempts.remove(id);
        self.write(vec![Op::Acked { id: id.to_owned() }])?;
        self.maybe_fold();
        Ok(())
    }

    /// Number of acks waiting.
    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Number of remembered ids.
    #[cfg(test)]
    pub(crate) fn ids_len(&self) -> usize {
        self.commands.len()
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
