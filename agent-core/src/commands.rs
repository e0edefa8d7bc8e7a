//! Running commands exactly once: dedup, expiry, started-before-run, completion, timeout.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::agent::{guard, lock, Inner};
use crate::command::{check, AckStatus, Checked, CommandOutcome};
use crate::error::AgentError;

impl Inner {
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
                    if let Err(e) =
                        ledger.record_final(&id, AckStatus::Failed, Some(reason.to_owned()), now)
                    {
                        tracing::error!(id = %id, error = %e, "could not persist the refusal");
                    }
                    drop(ledger);
                    self.outbox_wake.notify_one();
                }
                Checked::Run(cmd) => {
                    {
                        let mut ledger = lock(&self.ledger);
                        if ledger.knows(&cmd.id) {
                            tracing::debug!(id = %cmd.id, source, "duplicate delivery; not run again");
                            if ledger.has_ack(&cmd.id) {
                                self.outbox_wake.notify_one();
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
        let res = lock(&self.ledger).finish(id, status, error, now);
        match res {
            Ok(false) => return Err(AgentError::UnknownCommand),
            Ok(true) => tracing::info!(id = %id, status = status.as_wire(), "command finished"),
            Err(e) => {
                tracing::error!(id = %id, error = %e, "command finished but the outbox write failed; ack kept in memory")
            }
        }
        if let Some(t) = lock(&self.timers).remove(id) {
            t.abort();
        }
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Acks FAILED "timeout" if the host has not completed `id` in time. One timer per
    /// running command, none when idle.
    fn arm_timeout(self: &Arc<Self>, id: &str) {
        let weak = Arc::downgrade(self);
        let after = Duration::from_secs(self.cfg.command_timeout_secs);
        let owned = id.to_owned();
        let task = self.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(inner) = weak.upgrade() {
                lock(&inner.timers).remove(&owned);
                if inner
                    .finish_command(&owned, CommandOutcome::Failed { error: "timeout".into() })
                    .is_ok()
                {
                    tracing::warn!(id = %owned, "host did not complete the command in time; acked FAILED timeout");
                }
            }
        });
        if self.is_stopped() {
            task.abort();
            return;
        }
        lock(&self.timers).insert(id.to_owned(), task.abort_handle());
    }
}
