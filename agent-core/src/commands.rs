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
use crate::time::Clock;

/// The ledger, shared by the executor (commands) and the outbox task (acks).
pub(crate) type SharedLedger = Arc<Mutex<Ledger>>;

/// Runs commands through the host and records their outcome.
pub(crate) struct Executor {
    platform: Arc<dyn Platform>,
    clock: Arc<dyn Clock>,
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
            ledger,
            outbox,
            timeout,
            timers: Mutex::new(HashMap::new()),
            runtime,
            stop,
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
            match check(item, now) {
                Checked::Garbage { why } => {
                    tracing::warn!(source, why, "dropping a command without a usable id");
                }
                Checked::Expired { id } => {
                    if !lock(&self.ledger).knows(&id) {
                        tracing::info!(id = %id, source, "command expired; not run, not acked");
                    }
                }
                Checked::Refuse { id, reason } => {
                    let mut ledger = lock(&self.ledger);
                    if ledger.knows(&id) {
                        continue;
                    }
                    tracing::warn!(id = %id, source, reason, "command refused; acking FAILED");
                    let error = Some(reason.to_owned());
                    if let Err(e) = ledger.record_final(&id, AckStatus::Failed, error.clone(), now)
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
                Checked::Run(cmd) => {
                    {
                        let mut ledger = lock(&self.ledger);
                        if ledger.knows(&cmd.id) {
                            tracing::debug!(id = %cmd.id, source, "duplicate delivery; not run again");
                            if ledger.has_ack(&cmd.id) {
                                self.outbox.wake();
                            }
                            continue;
                        }
                        if let Err(e) = ledger.begin(&cmd.id, now) {
                            // Without a durable "started" record we cannot promise
                            // exactly-once; the relay redelivers it later.
                            tracing::error!(id = %cmd.id, error = %e, "cannot record command start; not running it");
                            continue;
                        }
                    }
                    let id = cmd.id.clone();
                    self.arm_timeout(&id);
                    tracing::info!(id = %id, command_type = cmd.command_type.as_wire(), source, "running command");
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
                Ok(true) => tracing::info!(id = %id, status = status.as_wire(), "command finished"),
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
