//! The outbox task: posts queued acks, retries with capped backoff on network errors, 5xx
//! and 429 (honouring `Retry-After`), drops an ack on any other answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::agent::{guard, lock, stopped, Inner};
use crate::api::HttpError;
use crate::backoff::{Rng, ACK};
use crate::platform::AckResult;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut stop = inner.stop_tx.subscribe();
    let mut rng = Rng::from_entropy();
    loop {
        if inner.is_stopped() {
            break;
        }
        let due = lock(&inner.ledger).next_due(Instant::now());
        let token = inner.current_token();
        if let (Some(ack), Some(token)) = (due, token) {
            let res = tokio::select! {
                r = inner.api.ack(&token.0, &ack.id, ack.status, ack.error.as_deref()) => r,
                () = stopped(&mut stop) => break,
            };
            let result = match res {
                Ok(()) => {
                    tracing::info!(id = %ack.id, status = ack.status.as_wire(), "ack confirmed");
                    Some(AckResult::Confirmed)
                }
                Err(e) if e.is_retryable() => {
                    let mut delay = ACK.delay(ack.attempts, &mut rng);
                    if let HttpError::Status {
                        retry_after: Some(ra),
                        ..
                    } = &e
                    {
                        delay = delay.max((*ra).min(MAX_RETRY_AFTER));
                    }
                    let attempts =
                        lock(&inner.ledger).schedule_retry(&ack.id, Instant::now() + delay);
                    tracing::warn!(id = %ack.id, error = ?e, attempts, delay_ms = delay.as_millis() as u64, "ack not delivered; will retry");
                    None
                }
                Err(HttpError::Status { status, code, .. }) => {
                    tracing::warn!(id = %ack.id, status, code = %code, "ack refused by the relay; dropped (final)");
                    Some(AckResult::Rejected { status })
                }
                Err(e) => {
                    tracing::warn!(id = %ack.id, error = ?e, "ack failed; dropped (final)");
                    Some(AckResult::Rejected { status: 0 })
                }
            };
            if let Some(result) = result {
                if let Err(e) = lock(&inner.ledger).remove_ack(&ack.id) {
                    tracing::error!(id = %ack.id, error = %e, "could not persist the outbox");
                }
                inner.outbox_drained.notify_waiters();
                let (platform, id, status) = (inner.platform.clone(), ack.id, ack.status);
                guard("ack_finished", move || {
                    platform.ack_finished(id, status, result)
                });
            }
            continue;
        }
        let next = lock(&inner.ledger).earliest_retry();
        tokio::select! {
            () = sleep_until_opt(next) => {}
            () = inner.outbox_wake.notified() => {}
            () = stopped(&mut stop) => break,
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
