//! The command executor — running commands exactly once: dedup, expiry,
//! started-before-run, completion, timeout. It owns the host's command callback, the
//! ledger's command side and the timers; finished commands' acks go to the [`Outbox`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::command::{check, AckStatus, Checked, Command, CommandOutcome};
use crate::error::AgentError;
use crate::ledger::{Ledger, PendingAck};
use crate::lock;
use crate::outbox::Outbox;
use crate::platform::{guard, Platform};
use crate::time::{Clock, RelayClock};

/// The ledger, shared by the executor (commands) and the outbox task (acks).
pub(crate) type SharedLedger = Arc<Mutex<Ledger>>;

/// Runs commands through the host and records their outcome.
pub(crate) struct Executor {
    platform: Arc<dyn Platform>,
    /// The device's wall clock: stamps ledger entries, nothing else.
    clock: Arc<dyn Clock>,
    /// The relay's clock: judges expiry and when an id may be forgotten.
    relay: RelayClock,
    ledger: SharedLedger,
    outbox: Arc<Outbox>,
    /// How long the host has to complete a command.
    timeout: Duration,
    /// One timer per running command.
    timers: Mutex<HashMap<String, AbortHandle>>,
    runtime: tokio::runtime::Handle,
    stop: watch::Receiver<bool>,
}

impl Executor {
    /// An executor running timers on `runtime` until `stop` says stopped.
    pub(crate) fn new(
        platform: Arc<dyn Platform>,
        clock: Arc<dyn Clock>,
        ledger: SharedLedger,
        outbox: Arc<Outbox>,
        timeout: Duration,
        runtime: tokio::runtime::Handle,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            platform,
            clock,
            relay: RelayClock::default(),
            ledger,
            outbox,
            timeout,
            timers: Mutex::new(HashMap::new()),
            runtime,
            stop,
        }
    }

    /// The relay said its clock reads `relay_ms` now (`ready`, or an HTTPS pull). Also
    /// forgets the ids that can never be delivered again by that clock.
    pub(crate) fn relay_time(&self, relay_ms: i64) {
        self.relay.heard(relay_ms);
        match lock(&self.ledger).forget_expired(relay_ms) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(forgotten = n, "expired command ids forgotten"),
            Err(e) => tracing::warn!(error = %e, "could not record forgotten ids"),
        }
    }

    /// Handles command objects from the socket (`command:new`) or from `sync_now`.
    /// Returns how many were handed to the host.
    ///
    /// The dedup check and the "started" record happen under one lock, so the same
    /// command arriving on both paths at once still runs once.
    pub(crate) fn handle_commands(self: &Arc<Self>, items: &[Value], source: &'static str) -> u32 {
        let mut ran = 0;
        for item in items {
            let now = self.clock.now_unix_ms();
            let admitted = {
                let mut ledger = lock(&self.ledger);
                let a = admit(
                    &mut ledger,
                    item,
                    self.relay.now_ms(),
                    now,
                    source,
                    Faults::NONE,
                );
                if let Admission::Refused(ack) = &a {
                    // Queued under the ledger's lock: the outbox sees acks in ledger order.
                    self.outbox.queue(ack.clone());
                }
                a
            };
            match admitted {
                Admission::Run { cmd, .. } => {
                    let id = cmd.id.clone();
                    self.arm_timeout(&id);
                    tracing::info!(id = %id, command_type = cmd.command_type.as_str(), source, "running command");
                    ran += 1;
                    let platform = self.platform.clone();
                    if guard("run_command", move || platform.run_command(cmd)).is_none() {
                        let _ = self.finish_command(
                            &id,
                            CommandOutcome::Failed {
                                error: "host error".into(),
                            },
                        );
                    }
                }
                Admission::Duplicate { ack_waiting: true } => self.outbox.wake(),
                Admission::Duplicate { .. }
                | Admission::Refused(_)
                | Admission::Expired
                | Admission::Dropped => {}
            }
        }
        // A long-lived socket hears the relay's time only once: forget what expired since.
        if let Some(relay_now) = self.relay.now_ms() {
            if let Err(e) = lock(&self.ledger).forget_expired(relay_now) {
                tracing::warn!(error = %e, "could not record forgotten ids");
            }
        }
        ran
    }

    /// Records the outcome of a started command and queues its ack.
    pub(crate) fn finish_command(
        &self,
        id: &str,
        outcome: CommandOutcome,
    ) -> Result<(), AgentError> {
        let now = self.clock.now_unix_ms();
        {
            let mut ledger = lock(&self.ledger);
            let ack = record_outcome(&mut ledger, id, &outcome, now, Faults::NONE)?;
            self.outbox.queue(ack);
        }
        if let Some(t) = lock(&self.timers).remove(id) {
            t.abort();
        }
        Ok(())
    }

    /// Stops every command timer (the agent stopped).
    pub(crate) fn stop_timers(&self) {
        for (_, t) in lock(&self.timers).drain() {
            t.abort();
        }
    }

    /// Acks FAILED "timeout" if the host has not completed `id` in time. One timer per
    /// running command, none when idle.
    fn arm_timeout(self: &Arc<Self>, id: &str) {
        let weak = Arc::downgrade(self);
        let after = self.timeout;
        let owned = id.to_owned();
        let task = self.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(executor) = weak.upgrade() {
                lock(&executor.timers).remove(&owned);
                if executor
                    .finish_command(&owned, CommandOutcome::Failed { error: "timeout".into() })
                    .is_ok()
                {
                    tracing::warn!(id = %owned, "host did not complete the command in time; acked FAILED timeout");
                }
            }
        });
        if *self.stop.borrow() {
            task.abort();
            return;
        }
        lock(&self.timers).insert(id.to_owned(), task.abort_handle());
    }
}

/// Faults planted on purpose, for the model checker's tests that show it can fail
/// (`model/`, feature `sim`). Every production build passes [`Faults::NONE`]; without the
/// feature the type is empty and every check below is a constant `false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// Record "started" after the host ran the command instead of before.
    #[cfg(feature = "sim")]
    pub start_after_run: bool,
    /// Skip the dedup check: run every delivery.
    #[cfg(feature = "sim")]
    pub no_dedup: bool,
    /// Queue (and so post) the ack before the ledger records the outcome.
    #[cfg(feature = "sim")]
    pub ack_before_write: bool,
    /// Judge expiry by the device's wall clock instead of the relay's.
    #[cfg(feature = "sim")]
    pub device_clock: bool,
}

impl Faults {
    /// No fault: what every production build runs.
    pub const NONE: Faults = Faults {
        #[cfg(feature = "sim")]
        start_after_run: false,
        #[cfg(feature = "sim")]
        no_dedup: false,
        #[cfg(feature = "sim")]
        ack_before_write: false,
        #[cfg(feature = "sim")]
        device_clock: false,
    };

    fn start_after_run(&self) -> bool {
        #[cfg(feature = "sim")]
        {
            self.start_after_run
        }
        #[cfg(not(feature = "sim"))]
        {
            false
        }
    }

    fn no_dedup(&self) -> bool {
        #[cfg(feature = "sim")]
        {
            self.no_dedup
        }
        #[cfg(not(feature = "sim"))]
        {
            false
        }
    }

    fn ack_before_write(&self) -> bool {
        #[cfg(feature = "sim")]
        {
            self.ack_before_write
        }
        #[cfg(not(feature = "sim"))]
        {
            false
        }
    }

    fn device_clock(&self) -> bool {
        #[cfg(feature = "sim")]
        {
            self.device_clock
        }
        #[cfg(not(feature = "sim"))]
        {
            false
        }
    }
}

/// What [`admit`] decided for one delivered command object.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Recorded as started (durably): hand it to the host now.
    Run {
        /// The command.
        cmd: Command,
        /// Only under the planted fault `start_after_run`: the "started" record was not
        /// written; the caller writes it (with this expiry) after the host ran it. Always
        /// `None` in a build without the `sim` feature.
        #[cfg_attr(not(feature = "sim"), allow(dead_code))]
        begin_after: Option<i64>,
    },
    /// Seen before: not run again. `ack_waiting`: its ack is still in the outbox (wake it).
    Duplicate {
        /// Whether an ack for it waits in the outbox.
        ack_waiting: bool,
    },
    /// Not runnable: recorded as finished with this FAILED ack (queue it).
    Refused(PendingAck),
    /// Expired by the relay's clock: never run, never acked.
    Expired,
    /// No usable id, or the "started" record could not be written: not run (the relay
    /// redelivers what it still has).
    Dropped,
}

/// The executor's decision for one command object from the socket or the HTTPS pull, with
/// its ledger write: dedup, expiry by `relay_now` (the relay's clock as the agent knows
/// it), validation, and the durable "started" record before the host may see it.
/// `wall_now` (the device's clock) only stamps ledger entries.
pub(crate) fn admit(
    ledger: &mut Ledger,
    item: &Value,
    relay_now: Option<i64>,
    wall_now: i64,
    source: &'static str,
    faults: Faults,
) -> Admission {
    let judge = if faults.device_clock() {
        Some(wall_now)
    } else {
        relay_now
    };
    match check(item, judge) {
        Checked::Garbage { why } => {
            tracing::warn!(source, why, "dropping a command without a usable id");
            Admission::Dropped
        }
        Checked::Expired { id } => {
            if !ledger.knows(&id) {
                tracing::info!(id = %id, source, "command expired; not run, not acked");
            }
            Admission::Expired
        }
        Checked::Refuse { id, reason, exp } => {
            if ledger.knows(&id) {
                return Admission::Duplicate {
                    ack_waiting: ledger.has_ack(&id),
                };
            }
            tracing::warn!(id = %id, source, reason, "command refused; acking FAILED");
            let error = Some(reason.to_owned());
            if let Err(e) =
                ledger.record_final(&id, exp, AckStatus::Failed, error.clone(), wall_now)
            {
                tracing::error!(id = %id, error = %e, "could not persist the refusal");
            }
            Admission::Refused(PendingAck {
                id,
                status: AckStatus::Failed,
                error,
                attempts: 0,
            })
        }
        Checked::Run { cmd, exp } => {
            if ledger.knows(&cmd.id) && !faults.no_dedup() {
                tracing::debug!(id = %cmd.id, source, "duplicate delivery; not run again");
                return Admission::Duplicate {
                    ack_waiting: ledger.has_ack(&cmd.id),
                };
            }
            if faults.start_after_run() {
                return Admission::Run {
                    cmd,
                    begin_after: Some(exp),
                };
            }
            if let Err(e) = ledger.begin(&cmd.id, Some(exp), wall_now) {
                // Without a durable "started" record we cannot promise exactly-once; the
                // relay redelivers it later.
                tracing::error!(id = %cmd.id, error = %e, "cannot record command start; not running it");
                return Admission::Dropped;
            }
            Admission::Run {
                cmd,
                begin_after: None,
            }
        }
    }
}

/// Records the outcome of a started command in the ledger (finished, ack in the outbox, one
/// durable write) and returns the ack to queue for posting. A write error is logged and the
/// ack still returned: it is kept in memory and posted. Under the planted fault
/// `ack_before_write` nothing is written: the caller writes it later with
/// [`Ledger::finish`].
pub(crate) fn record_outcome(
    ledger: &mut Ledger,
    id: &str,
    outcome: &CommandOutcome,
    wall_now: i64,
    faults: Faults,
) -> Result<PendingAck, AgentError> {
    let (status, error) = outcome.to_ack();
    if faults.ack_before_write() {
        if !ledger.is_started(id) {
            return Err(AgentError::UnknownCommand);
        }
    } else {
        match ledger.finish(id, status, error.clone(), wall_now) {
            Ok(false) => return Err(AgentError::UnknownCommand),
            Ok(true) => tracing::info!(id = %id, status = status.as_str(), "command finished"),
            Err(e) => {
                tracing::error!(id = %id, error = %e, "command finished but the outbox write failed; ack kept in memory")
            }
        }
    }
    Ok(PendingAck {
        id: id.to_owned(),
        status,
        error,
        attempts: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;
    use crate::tests::fakes::{command, FakeHost, NOW_MS};
    use crate::time::ManualClock;

    /// An executor over a fresh ledger. The runtime only holds the command timers; it is
    /// never run, so none fires.
    fn executor(
        host: Arc<FakeHost>,
        outbox: Arc<Outbox>,
    ) -> (Arc<Executor>, tokio::runtime::Runtime) {
        executor_at(host, outbox, NOW_MS)
    }

    /// [`executor`] with the device's wall clock at `wall_ms`; the relay's clock at
    /// `NOW_MS`.
    fn executor_at(
        host: Arc<FakeHost>,
        outbox: Arc<Outbox>,
        wall_ms: i64,
    ) -> (Arc<Executor>, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (ledger, _) = Ledger::load(Arc::new(MemoryStorage::default()), NOW_MS).unwrap();
        let ex = Executor::new(
            host,
            Arc::new(ManualClock::new(wall_ms)),
            Arc::new(Mutex::new(ledger)),
            outbox,
            Duration::from_secs(30),
            rt.handle().clone(),
            watch::channel(false).1,
        );
        let _guard = rt.enter();
        ex.relay_time(NOW_MS);
        (Arc::new(ex), rt)
    }

    #[test]
    fn duplicate_deliveries_run_once_and_are_acked_once() {
        let host = Arc::new(FakeHost::default());
        let outbox = Arc::new(Outbox::default());
        let (ex, _rt) = executor(host.clone(), outbox.clone());
        let c1 = command("c1", "PAUSE", 300);
        assert_eq!(ex.handle_commands(&[c1.clone(), c1.clone()], "socket"), 1);
        assert_eq!(ex.handle_commands(&[c1], "sync"), 0);
        assert_eq!(host.command_ids(), vec!["c1"]);
        assert!(outbox.take_queued().is_empty(), "no ack before completion");

        ex.finish_command("c1", CommandOutcome::Executed).unwrap();
        let queued = outbox.take_queued();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (queued[0].id.as_str(), queued[0].status, queued[0].attempts),
            ("c1", AckStatus::Executed, 0)
        );
        assert_eq!(
            ex.finish_command("c1", CommandOutcome::Executed),
            Err(AgentError::UnknownCommand)
        );
        assert!(outbox.take_queued().is_empty());
    }

    #[test]
    fn refused_once_and_expired_never() {
        let host = Arc::new(FakeHost::default());
        let outbox = Arc::new(Outbox::default());
        let (ex, _rt) = executor(host.clone(), outbox.clone());
        let bad = command("u1", "SELF_DESTRUCT", 300);
        let old = command("e1", "PAUSE", -1);
        assert_eq!(ex.handle_commands(&[bad.clone(), old, bad], "socket"), 0);
        assert!(host.command_ids().is_empty());
        let queued = outbox.take_queued();
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(
            (
                queued[0].id.as_str(),
                queued[0].status,
                queued[0].error.as_deref()
            ),
            ("u1", AckStatus::Failed, Some("unsupported"))
        );
    }

    #[test]
    fn the_devices_wall_clock_decides_nothing() {
        const DAY: i64 = 24 * 3600 * 1000;
        for wall in [NOW_MS + DAY, NOW_MS - DAY] {
            let host = Arc::new(FakeHost::default());
            let outbox = Arc::new(Outbox::default());
            let (ex, _rt) = executor_at(host.clone(), outbox.clone(), wall);
            // Five minutes left by the relay's clock: it runs, whatever the phone says.
            let lock = command("lock", "LOCK_DEVICE", 300);
            // Expired a second ago by the relay's clock: never run, never acked.
            let gone = command("gone", "LOCK_DEVICE", -1);
            assert_eq!(
                ex.handle_commands(&[lock, gone], "socket"),
                1,
                "wall {wall}"
            );
            assert_eq!(host.command_ids(), vec!["lock"], "wall {wall}");
            ex.finish_command("lock", CommandOutcome::Executed).unwrap();
            assert_eq!(outbox.take_queued().len(), 1);
        }
    }
}
