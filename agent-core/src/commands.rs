//! The command executor — running commands exactly once: dedup, expiry,
//! started-before-run, completion, timeout. It owns the host's command callback, the
//! ledger's command side and the timers; finished commands' acks go to the [`Outbox`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::command::{check, AckStatus, Checked, CommandOutcome};
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
            match check(item, self.relay.now_ms()) {
                Checked::Garbage { why } => {
                    tracing::warn!(source, why, "dropping a command without a usable id");
                }
                Checked::Expired { id } => {
                    if !lock(&self.ledger).knows(&id) {
                        tracing::info!(id = %id, source, "command expired; not run, not acked");
                    }
                }
                Checked::Refuse { id, reason, exp } => {
                    let mut ledger = lock(&self.ledger);
                    if ledger.knows(&id) {
                        continue;
                    }
                    tracing::warn!(id = %id, source, reason, "command refused; acking FAILED");
                    let error = Some(reason.to_owned());
                    if let Err(e) =
                        ledger.record_final(&id, exp, AckStatus::Failed, error.clone(), now)
                    {
                        tracing::error!(id = %id, error = %e, "could not persist the refusal");
                    }
                    // Queued under the ledger's lock: the outbox sees acks in ledger order.
                    self.outbox.queue(PendingAck {
                        id,
                        status: AckStatus::Failed,
                        error,
                        attempts: 0,
                    });
                }
                Checked::Run { cmd, exp } => {
                    {
                        let mut ledger = lock(&self.ledger);
                        if ledger.knows(&cmd.id) {
                            tracing::debug!(id = %cmd.id, source, "duplicate delivery; not run again");
                            if ledger.has_ack(&cmd.id) {
                                self.outbox.wake();
                            }
                            continue;
                        }
                        if let Err(e) = ledger.begin(&cmd.id, Some(exp), now) {
                            // Without a durable "started" record we cannot promise
                            // exactly-once; the relay redelivers it later.
                            tracing::error!(id = %cmd.id, error = %e, "cannot record command start; not running it");
                            continue;
                        }
                    }
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
        let (status, error) = outcome.to_ack();
        let now = self.clock.now_unix_ms();
        {
            let mut ledger = lock(&self.ledger);
            match ledger.finish(id, status, error.clone(), now) {
                Ok(false) => return Err(AgentError::UnknownCommand),
                Ok(true) => tracing::info!(id = %id, status = status.as_str(), "command finished"),
                Err(e) => {
                    tracing::error!(id = %id, error = %e, "command finished but the outbox write failed; ack kept in memory")
                }
            }
            self.outbox.queue(PendingAck {
                id: id.to_owned(),
                status,
                error,
                attempts: 0,
            });
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
