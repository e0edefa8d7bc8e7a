//! The command ledger and the ack outbox: one bounded, crash-safe state file.
//!
//! Every transition that matters for exactly-once is written (temp file, fsync, rename)
//! before the agent acts on it:
//!
//! - `begin`: the id is recorded as **started** before the host sees the command;
//! - `finish`: the ack is put in the **outbox** and the id marked **finished** in the same
//!   write, before the first attempt to post it;
//! - `remove_ack`: the outbox entry is dropped once the relay answered.
//!
//! At load, an id still **started** belonged to a run cut short by the app's death: it is
//! turned into a FAILED "interrupted" ack and never run again.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::command::AckStatus;
use crate::storage::Storage;

/// Name of the state file in the state directory.
pub(crate) const STATE_FILE: &str = "agent-state.json";
/// Version of the state file's layout.
pub(crate) const SCHEMA_VERSION: u32 = 1;
/// Command ids remembered (oldest finished ones are forgotten first).
pub(crate) const MAX_IDS: usize = 512;
/// Acks waiting to be posted, at most.
pub(crate) const MAX_OUTBOX: usize = 512;
/// The error text of an ack for a run cut short by the app's death.
pub(crate) const INTERRUPTED: &str = "interrupted";

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
    /// Unix ms of the last transition.
    pub at: i64,
}

/// One ack waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingAck {
    pub id: String,
    pub status: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    commands: VecDeque<Entry>,
    #[serde(default)]
    outbox: Vec<PendingAck>,
}

/// The ledger plus outbox, with its storage. When each ack may be tried next is not
/// here: the outbox state machine ([`crate::machine::outbox`]) decides that, and it is not
/// persisted (after a restart every ack is tried at once).
pub(crate) struct Ledger {
    storage: Arc<dyn Storage>,
    data: Persisted,
}

impl Ledger {
    /// Loads the state, turning every started-but-unfinished command into a FAILED
    /// "interrupted" ack. Returns the ledger and the ids so converted.
    pub(crate) fn load(storage: Arc<dyn Storage>, now_ms: i64) -> io::Result<(Self, Vec<String>)> {
        let data = match storage.load(STATE_FILE)? {
            None => Persisted::default(),
            Some(bytes) => match serde_json::from_slice::<Persisted>(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    // Only a bug or a tampered file gets here (writes are atomic). Keep the
                    // evidence and start afresh rather than refusing to run at all.
                    tracing::error!(error = %e, "state file unreadable; starting with an empty ledger");
                    let _ = storage.save(&format!("{STATE_FILE}.corrupt"), &bytes);
                    Persisted::default()
                }
            },
        };
        let mut data = data;
        data.version = SCHEMA_VERSION;
        let mut ledger = Self { storage, data };
        let mut interrupted = Vec::new();
        for i in 0..ledger.data.commands.len() {
            if ledger.data.commands[i].phase == Phase::Started {
                let id = ledger.data.commands[i].id.clone();
                ledger.data.commands[i].phase = Phase::Finished;
                ledger.data.commands[i].at = now_ms;
                if !ledger.data.outbox.iter().any(|a| a.id == id) {
                    ledger.push_ack(PendingAck {
                        id: id.clone(),
                        status: AckStatus::Failed,
                        error: Some(INTERRUPTED.to_owned()),
                        attempts: 0,
                    });
                }
                interrupted.push(id);
            }
        }
        if !interrupted.is_empty() {
            ledger.save()?;
        }
        Ok((ledger, interrupted))
    }

    fn save(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.data).map_err(io::Error::other)?;
        self.storage.save(STATE_FILE, &bytes)
    }

    /// Whether this command id was seen before (in any phase).
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.data.commands.iter().any(|e| e.id == id)
    }

    /// Whether the command was handed to the host and not finished yet.
    #[cfg(test)]
    pub(crate) fn is_started(&self, id: &str) -> bool {
        self.data
            .commands
            .iter()
            .any(|e| e.id == id && e.phase == Phase::Started)
    }

    /// Whether an ack for `id` waits in the outbox.
    pub(crate) fn has_ack(&self, id: &str) -> bool {
        self.data.outbox.iter().any(|a| a.id == id)
    }

    /// Records `id` as started. On a write error nothing changes and the command must not
    /// be run.
    pub(crate) fn begin(&mut self, id: &str, now_ms: i64) -> io::Result<()> {
        self.data.commands.push_back(Entry {
            id: id.to_owned(),
            phase: Phase::Started,
            at: now_ms,
        });
        if let Err(e) = self.save() {
            self.data.commands.pop_back();
            return Err(e);
        }
        self.evict();
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
        let Some(entry) = self
            .data
            .commands
            .iter_mut()
            .find(|e| e.id == id && e.phase == Phase::Started)
        else {
            return Ok(false);
        };
        entry.phase = Phase::Finished;
        entry.at = now_ms;
        self.push_ack(PendingAck {
            id: id.to_owned(),
            status,
            error,
            attempts: 0,
        });
        self.save().map(|()| true)
    }

    /// Records a command that is answered without running it (unsupported or invalid): the
    /// id is remembered and its ack queued, in one write.
    pub(crate) fn record_final(
        &mut self,
        id: &str,
        status: AckStatus,
        error: Option<String>,
        now_ms: i64,
    ) -> io::Result<()> {
        self.data.commands.push_back(Entry {
            id: id.to_owned(),
            phase: Phase::Finished,
            at: now_ms,
        });
        self.push_ack(PendingAck {
            id: id.to_owned(),
            status,
            error,
            attempts: 0,
        });
        self.evict();
        self.save()
    }

    fn push_ack(&mut self, ack: PendingAck) {
        self.data.outbox.retain(|a| a.id != ack.id);
        self.data.outbox.push(ack);
        while self.data.outbox.len() > MAX_OUTBOX {
            let dropped = self.data.outbox.remove(0);
            tracing::error!(id = %dropped.id, "outbox full; dropping the oldest ack");
        }
    }

    /// Forgets the oldest finished ids beyond [`MAX_IDS`]. Started ids and ids whose ack is
    /// still queued are kept.
    fn evict(&mut self) {
        while self.data.commands.len() > MAX_IDS {
            let outbox = &self.data.outbox;
            let Some(pos) =
                self.data.commands.iter().position(|e| {
                    e.phase == Phase::Finished && !outbox.iter().any(|a| a.id == e.id)
                })
            else {
                break;
            };
            self.data.commands.remove(pos);
        }
    }

    /// The acks waiting, oldest first.
    pub(crate) fn outbox(&self) -> &[PendingAck] {
        &self.data.outbox
    }

    /// Counts a failed attempt to post the ack of `id` (kept in memory, written with the
    /// next change); returns the count.
    pub(crate) fn count_attempt(&mut self, id: &str) -> u32 {
        let mut attempts = 0;
        if let Some(a) = self.data.outbox.iter_mut().find(|a| a.id == id) {
            a.attempts = a.attempts.saturating_add(1);
            attempts = a.attempts;
        }
        attempts
    }

    /// Drops the ack of `id` once the relay answered it.
    pub(crate) fn remove_ack(&mut self, id: &str) -> io::Result<()> {
        let before = self.data.outbox.len();
        self.data.outbox.retain(|a| a.id != id);
        if before == self.data.outbox.len() {
            return Ok(());
        }
        self.evict();
        self.save()
    }

    /// Number of acks waiting.
    pub(crate) fn outbox_len(&self) -> usize {
        self.data.outbox.len()
    }

    /// Number of remembered ids.
    #[cfg(test)]
    pub(crate) fn ids_len(&self) -> usize {
        self.data.commands.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    fn open(s: &MemoryStorage) -> (Ledger, Vec<String>) {
        Ledger::load(Arc::new(s.clone()), 1_000).unwrap()
    }

    #[test]
    fn remembers_ids_across_restart() {
        let s = MemoryStorage::default();
        let (mut l, _) = open(&s);
        l.begin("a", 1).unwrap();
        l.finish("a", AckStatus::Executed, None, 2).unwrap();
        l.remove_ack("a").unwrap();
        let (l2, interrupted) = open(&s);
        assert!(l2.knows("a"));
        assert!(interrupted.is_empty());
        assert_eq!(l2.outbox_len(), 0);
    }

    #[test]
    fn started_becomes_interrupted_once() {
        let s = MemoryStorage::default();
        let (mut l, _) = open(&s);
        l.begin("a", 1).unwrap();
        drop(l);
        let (l2, interrupted) = open(&s);
        assert_eq!(interrupted, vec!["a".to_owned()]);
        let ack = l2.outbox()[0].clone();
        assert_eq!(ack.status, AckStatus::Failed);
        assert_eq!(ack.error.as_deref(), Some(INTERRUPTED));
        drop(l2);
        let (l3, again) = open(&s);
        assert!(again.is_empty(), "interrupted is recorded durably");
        assert_eq!(l3.outbox_len(), 1);
    }

    #[test]
    fn finished_with_queued_ack_is_not_interrupted() {
        let s = MemoryStorage::default();
        let (mut l, _) = open(&s);
        l.begin("a", 1).unwrap();
        assert!(l.finish("a", AckStatus::Executed, None, 2).unwrap());
        assert!(!l
            .finish("a", AckStatus::Failed, Some("x".into()), 3)
            .unwrap());
        let (l2, interrupted) = open(&s);
        assert!(interrupted.is_empty());
        assert_eq!(l2.outbox()[0].status, AckStatus::Executed);
    }

    #[test]
    fn failed_write_does_not_start() {
        let s = MemoryStorage::default();
        let (mut l, _) = open(&s);
        s.set_fail_saves(true);
        assert!(l.begin("a", 1).is_err());
        assert!(!l.knows("a"));
    }

    #[test]
    fn bounded_and_keeps_pending() {
        let s = MemoryStorage::default();
        let (mut l, _) = open(&s);
        l.begin("keep", 0).unwrap();
        for i in 0..(MAX_IDS * 2) {
            let id = format!("c{i}");
            l.begin(&id, 0).unwrap();
            l.finish(&id, AckStatus::Executed, None, 0).unwrap();
            l.remove_ack(&id).unwrap();
        }
        assert!(l.ids_len() <= MAX_IDS);
        assert!(l.is_started("keep"));
        assert!(l.knows(&format!("c{}", MAX_IDS * 2 - 1)));
        assert!(!l.knows("c0"));
        let size = s.get(STATE_FILE).unwrap().len();
        assert!(size < 64 * 1024, "state file {size} bytes");
    }

    #[test]
    fn corrupt_file_is_set_aside() {
        let s = MemoryStorage::default();
        s.save(STATE_FILE, b"{not json").unwrap();
        let (l, _) = open(&s);
        assert_eq!(l.outbox_len(), 0);
        assert!(s.get("agent-state.json.corrupt").is_some());
    }

    #[test]
    fn attempts_are_counted_and_kept() {
        let s = MemoryStorage::default();
        let (mut l, _) = open(&s);
        l.record_final("u", AckStatus::Failed, Some("unsupported".into()), 0)
            .unwrap();
        assert_eq!(l.count_attempt("u"), 1);
        assert_eq!(l.count_attempt("u"), 2);
        assert_eq!(l.count_attempt("absent"), 0);
        assert_eq!(l.outbox()[0].attempts, 2);
        // Written with the next change.
        l.record_final("v", AckStatus::Failed, Some("unsupported".into()), 0)
            .unwrap();
        let (l2, _) = open(&s);
        assert_eq!(l2.outbox()[0].attempts, 2);
    }
}
