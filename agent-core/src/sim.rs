//! The model checker's seam (feature `sim`, used by the `model` crate, never by the app).
//!
//! A [`Device`] is the agent's delivery logic driven one step at a time, through the same
//! code the tokio tasks run:
//!
//! - a delivered command goes through [`admit`](crate::commands::admit), the executor's
//!   own decision (dedup, expiry by relay time, validation, the durable "started" record);
//! - a finished command through [`record_outcome`](crate::commands::record_outcome), the
//!   executor's own completion (ledger write, then the ack queued);
//! - acks through the outbox state machine ([`crate::machine::outbox`]) and the outbox
//!   driver's own reading of an answer ([`crate::outbox::answer`]), with the ledger's
//!   `remove_ack` on a final answer, as the driver does;
//! - a restart through [`Ledger::load`](crate::ledger::Ledger::load), which turns a command
//!   cut short into a FAILED "interrupted" ack.
//!
//! What survives a kill is exactly what the ledger wrote through its [`Storage`]: the
//! device's durable state *is* the bytes of its files (snapshot and journal), kept here as
//! a map. Between two steps the ledger is taken up again from those bytes
//! ([`Ledger::resume`](crate::ledger::Ledger::resume)); everything else (the outbox
//! machine, the commands the host holds) is volatile and a kill drops it.
//!
//! Not driven: the socket's link machine (connect, heartbeat, backoff: the model has a link
//! that is up or down), timers (retries become due by [`Device::retry_now`], the event the
//! driver sends when the relay is reachable again), and failing writes (storage never
//! fails in the model; a write error is a unit-tested path).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use crate::api::HttpError;
use crate::backoff::Rng;
use crate::command::CommandOutcome;
use crate::commands::{admit, record_outcome, Admission};
use crate::ledger::{Ledger, PendingAck, SimDigest};
use crate::machine::outbox::{Action, Event, Outbox};
use crate::machine::Time;
use crate::storage::MemoryStorage;

pub use crate::command::AckStatus;
pub use crate::commands::Faults;

/// How the relay's answer to an ack post looked to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// No answer: the request or its answer was lost, or the relay died.
    Network,
    /// An answer with this HTTP status (200, 404, 409, ...).
    Status(u16),
}

/// What the device did in a step, for the model to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The host was handed this command id (it runs it now).
    Ran(String),
    /// The outbox posts this ack (`PATCH /api/dashboard/remote-control/{id}`).
    Post {
        /// The command id.
        id: String,
        /// The status posted.
        status: AckStatus,
    },
}

/// One device: its durable files and its volatile state. See the module documentation.
#[derive(Clone)]
pub struct Device {
    files: BTreeMap<String, Vec<u8>>,
    /// What the files hold, as far as any decision goes ([`Ledger::sim_digest`]): states
    /// are told apart by this, not by the bytes (stamps and sequence numbers decide nothing).
    digest: SimDigest,
    outbox: Outbox,
    /// Commands the host holds and has not completed.
    running: BTreeSet<String>,
    /// Planted fault `start_after_run`: ran, "started" not yet written (id → expiry).
    unrecorded: BTreeMap<String, i64>,
    /// Planted fault `ack_before_write`: ack queued, ledger not yet written (id → status).
    unwritten: BTreeMap<String, AckStatus>,
    faults: Faults,
}

/// Readable in a counterexample: what the ledger's files hold (each id started or finished,
/// the acks waiting), the outbox machine's queue and post in flight, what the host holds.
impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ids, acks) = &self.digest;
        let ids: Vec<String> = ids
            .iter()
            .map(|(id, started, _)| {
                format!("{id}:{}", if *started { "started" } else { "finished" })
            })
            .collect();
        let acks: Vec<String> = acks
            .iter()
            .map(|(id, st)| format!("{id}:{}", st.as_str()))
            .collect();
        let (queue, in_flight, _) = self.outbox.sim_key();
        let queue: Vec<String> = queue.iter().map(|(id, _)| id.clone()).collect();
        let mut d = f.debug_struct("Device");
        d.field("ledger", &ids)
            .field("acks_on_disk", &acks)
            .field("outbox", &queue)
            .field("posting", &in_flight)
            .field("host_running", &self.running);
        if !self.unrecorded.is_empty() {
            d.field(
                "start_not_written",
                &self.unrecorded.keys().collect::<Vec<_>>(),
            );
        }
        if !self.unwritten.is_empty() {
            d.field(
                "outcome_not_written",
                &self.unwritten.keys().collect::<Vec<_>>(),
            );
        }
        d.finish()
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Device {}

impl Hash for Device {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

type Key<'a> = (
    &'a SimDigest,
    (Vec<(String, AckStatus)>, Option<String>, bool),
    &'a BTreeSet<String>,
    &'a BTreeMap<String, i64>,
    &'a BTreeMap<String, AckStatus>,
    Faults,
);

impl Device {
    /// A device that never ran, with these planted faults ([`Faults::NONE`] for the real
    /// code), started at `wall_ms` by its own clock.
    pub fn new(faults: Faults, wall_ms: i64) -> Self {
        let mut d = Self {
            files: BTreeMap::new(),
            digest: SimDigest::default(),
            outbox: Outbox::new(true, Rng::seeded(1)),
            running: BTreeSet::new(),
            unrecorded: BTreeMap::new(),
            unwritten: BTreeMap::new(),
            faults,
        };
        d.boot(wall_ms);
        d
    }

    fn key(&self) -> Key<'_> {
        (
            &self.digest,
            self.outbox.sim_key(),
            &self.running,
            &self.unrecorded,
            &self.unwritten,
            self.faults,
        )
    }

    /// The process is killed and started again: what was not written is gone; the ledger
    /// loads what was, a command cut short becomes a FAILED "interrupted" ack, and every
    /// waiting ack is queued again. Returns the posts the restarted outbox makes.
    pub fn kill_and_restart(&mut self, wall_ms: i64) -> Vec<Effect> {
        self.running.clear();
        self.unrecorded.clear();
        self.unwritten.clear();
        self.boot(wall_ms)
    }

    fn boot(&mut self, wall_ms: i64) -> Vec<Effect> {
        let storage = MemoryStorage::with_files(&self.files);
        let Ok((ledger, _)) = Ledger::load(Arc::new(storage.clone()), wall_ms) else {
            unreachable!("the model's storage never fails");
        };
        // As `Agent::start`: every ack the ledger holds goes to a fresh outbox machine.
        self.outbox = Outbox::new(true, Rng::seeded(1));
        let mut effects = Vec::new();
        for ack in ledger.outbox().to_vec() {
            let actions = self.outbox.handle(Time::default(), Event::Queued(ack));
            self.act(&storage, actions, &mut effects);
        }
        self.save(&storage);
        effects
    }

    /// A `command:new` item (or an item of the HTTPS pull) arrives. `relay_ms` is the
    /// relay's clock as the agent knows it, `wall_ms` the device's own clock.
    pub fn deliver(&mut self, item: &Value, relay_ms: Option<i64>, wall_ms: i64) -> Vec<Effect> {
        let (storage, mut ledger) = self.ledger();
        let mut effects = Vec::new();
        match admit(&mut ledger, item, relay_ms, wall_ms, "model", self.faults) {
            Admission::Run { cmd, begin_after } => {
                if let Some(exp) = begin_after {
                    self.unrecorded.insert(cmd.id.clone(), exp);
                }
                self.running.insert(cmd.id.clone());
                effects.push(Effect::Ran(cmd.id));
            }
            Admission::Refused(ack) => {
                let actions = self.outbox.handle(Time::default(), Event::Queued(ack));
                self.act(&storage, actions, &mut effects);
            }
            Admission::Duplicate { .. } | Admission::Expired | Admission::Dropped => {}
        }
        // As the executor after every batch: forget what expired by relay time.
        if let Some(now) = relay_ms {
            let _ = ledger.forget_expired(now);
        }
        self.save(&storage);
        effects
    }

    /// The relay said its time (`ready`, or the HTTPS pull's `serverTime`): the executor
    /// forgets the ids that can never be delivered again by that clock.
    pub fn relay_time(&mut self, relay_ms: i64) {
        let (storage, mut ledger) = self.ledger();
        let _ = ledger.forget_expired(relay_ms);
        self.save(&storage);
    }

    /// Planted fault `start_after_run` only: the "started" record of `id`, written after the
    /// host ran it.
    pub fn record_start(&mut self, id: &str, wall_ms: i64) {
        let Some(exp) = self.unrecorded.remove(id) else {
            return;
        };
        let (storage, mut ledger) = self.ledger();
        let _ = ledger.begin(id, Some(exp), wall_ms);
        self.save(&storage);
    }

    /// The host completes `id` (EXECUTED, or FAILED with `error`).
    pub fn complete(&mut self, id: &str, error: Option<&str>, wall_ms: i64) -> Vec<Effect> {
        let outcome = match error {
            None => CommandOutcome::Executed,
            Some(e) => CommandOutcome::Failed { error: e.into() },
        };
        let (storage, mut ledger) = self.ledger();
        let mut effects = Vec::new();
        if let Ok(ack) = record_outcome(&mut ledger, id, &outcome, wall_ms, self.faults) {
            self.running.remove(id);
            if self.faults != Faults::NONE && !ledger.has_ack(id) {
                // Planted fault `ack_before_write`: the ledger is written by a later step.
                self.unwritten.insert(id.to_owned(), ack.status);
            }
            let actions = self.outbox.handle(Time::default(), Event::Queued(ack));
            self.act(&storage, actions, &mut effects);
        }
        self.save(&storage);
        effects
    }

    /// Planted fault `ack_before_write` only: the ledger write of `id`'s outcome, late.
    pub fn write_outcome(&mut self, id: &str, wall_ms: i64) {
        let Some(status) = self.unwritten.remove(id) else {
            return;
        };
        let (storage, mut ledger) = self.ledger();
        let _ = ledger.finish(id, status, None, wall_ms);
        self.save(&storage);
    }

    /// The post of `id`'s ack got this answer.
    pub fn answered(&mut self, id: &str, answer: Answer) -> Vec<Effect> {
        let res = match answer {
            Answer::Network => Err(HttpError::Network("lost".into())),
            Answer::Status(s) if (200..300).contains(&s) => Ok(()),
            Answer::Status(status) => Err(HttpError::Status {
                status,
                code: String::new(),
                retry_after: None,
            }),
        };
        let probe = PendingAck {
            id: id.to_owned(),
            status: AckStatus::Failed,
            error: None,
            attempts: 0,
        };
        let answer = crate::outbox::answer(&probe, res, &mut None);
        let (storage, _) = self.ledger();
        let mut effects = Vec::new();
        let actions = self.outbox.handle(
            Time::default(),
            Event::Answered {
                id: id.to_owned(),
                answer,
            },
        );
        self.act(&storage, actions, &mut effects);
        self.save(&storage);
        effects
    }

    /// The relay is reachable again: every waiting ack is due (the driver's `RetryNow`).
    pub fn retry_now(&mut self) -> Vec<Effect> {
        let (storage, _) = self.ledger();
        let mut effects = Vec::new();
        let actions = self.outbox.handle(Time::default(), Event::RetryNow);
        self.act(&storage, actions, &mut effects);
        self.save(&storage);
        effects
    }

    /// Commands the host holds and has not completed, in id order.
    pub fn running(&self) -> impl Iterator<Item = &String> {
        self.running.iter()
    }

    /// Ids whose "started" record is not written yet (planted fault `start_after_run`).
    pub fn unrecorded(&self) -> impl Iterator<Item = &String> {
        self.unrecorded.keys()
    }

    /// Ids whose outcome is not written yet (planted fault `ack_before_write`).
    pub fn unwritten(&self) -> impl Iterator<Item = &String> {
        self.unwritten.keys()
    }

    /// The ack being posted, if any.
    pub fn in_flight(&self) -> Option<String> {
        self.outbox.sim_key().1
    }

    /// Acks waiting in the outbox machine (including the one in flight).
    pub fn waiting_acks(&self) -> usize {
        self.outbox.sim_key().0.len()
    }

    /// Whether the ledger remembers `id` (in any phase).
    pub fn knows(&self, id: &str) -> bool {
        self.ledger().1.knows(id)
    }

    /// Keeps what the storage holds now, and its digest.
    fn save(&mut self, storage: &MemoryStorage) {
        self.files = storage.files();
        self.digest = self.ledger().1.sim_digest();
    }

    /// The ledger, taken up again from the files.
    fn ledger(&self) -> (MemoryStorage, Ledger) {
        let storage = MemoryStorage::with_files(&self.files);
        let Ok(ledger) = Ledger::resume(Arc::new(storage.clone())) else {
            unreachable!("the model's storage never fails");
        };
        (storage, ledger)
    }

    /// Carries out the outbox machine's actions as the outbox driver does.
    fn act(&mut self, storage: &MemoryStorage, actions: Vec<Action>, effects: &mut Vec<Effect>) {
        for action in actions {
            match action {
                Action::Post(ack) => effects.push(Effect::Post {
                    id: ack.id,
                    status: ack.status,
                }),
                // The driver counts the attempt in memory (written with the next change): it
                // only sets the next delay, which the model abstracts away.
                Action::Retry { .. } => {}
                Action::Finished { ack, .. } => {
                    let Ok(mut ledger) = Ledger::resume(Arc::new(storage.clone())) else {
                        unreachable!("the model's storage never fails");
                    };
                    let _ = ledger.remove_ack(&ack.id);
                }
            }
        }
    }
}
