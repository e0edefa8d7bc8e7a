//! The sender loop one node runs: claim due wake-ups, skip devices that are online, send the
//! rest, record each outcome while the lease is still ours.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;

use super::{Attempt, Settings, REQUEST_TIMEOUT};
use crate::app::App;
use crate::model::now_ms;
use crate::store::{PushOutcome, PushTarget, ONLINE_RECHECK_MS, PUSH_DELAY_MS};

/// Due rows are looked for at least this often (retries, other nodes' rows, expired leases).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Sends in flight on one node, at most.
const MAX_IN_FLIGHT: usize = 64;
/// How long a claim holds: longer than any attempt and its recording.
const LEASE: Duration = Duration::from_secs(30);
/// First retry delay (before jitter); it doubles with each failure...
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// ...up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A `Retry-After` longer than this is shortened to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// A wake-up still failing after this many attempts is dropped (the device gets its commands
/// when it next connects or syncs).
const MAX_ATTEMPTS: i64 = 20;

/// The delay before the next attempt after `failures` failed ones: 1 s doubling up to 5 min,
/// each a random point in the upper half of its step.
pub fn backoff(failures: i64, rng: &mut impl Rng) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let step = BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP);
    let half = step.as_millis() as u64 / 2;
    Duration::from_millis(half + rng.gen_range(0..=half))
}

fn provider_label(t: &PushTarget) -> &'static str {
    t.token.provider.as_str()
}

/// One send, at most this long (the token fetch included): well within [`LEASE`], so no
/// other node claims the row while this one still works on it.
const SEND_LIMIT: Duration = Duration::from_secs(20);

/// One claimed wake-up to its outcome. Nothing is sent to a device with no command waiting;
/// a device that looks online is looked at again once, [`ONLINE_RECHECK_MS`] later, and then
/// pushed if commands still wait (a suspended app's socket looks open for minutes).
async fn wake_one(app: Arc<App>, s: Arc<Settings>, t: PushTarget) -> PushOutcome {
    if !t.waiting {
        return PushOutcome::Settled {
            device_id: t.device_id,
            version: t.version,
        };
    }
    if !t.deferred && crate::presence::lookup(&app, &t.device_id).await.is_some() {
        metrics::counter!("safestream_push_skipped_online_total").increment(1);
        return PushOutcome::Online {
            device_id: t.device_id,
            at: now_ms() + ONLINE_RECHECK_MS,
        };
    }
    let provider = provider_label(&t);
    let attempt = tokio::time::timeout(SEND_LIMIT, s.send(&t.token))
        .await
        .unwrap_or_else(|_| Attempt::Retry {
            error: format!("no answer within {} s", SEND_LIMIT.as_secs()),
            retry_after: None,
        });
    match attempt {
        Attempt::Sent => {
            metrics::counter!("safestream_push_sent_total", "provider" => provider).increment(1);
            tracing::debug!(device_id = %t.device_id, provider, "wake-up push sent");
            PushOutcome::Sent {
                device_id: t.device_id,
                version: t.version,
                at: now_ms(),
            }
        }
        Attempt::Invalid { error } => {
            metrics::counter!("safestream_push_failed_total", "provider" => provider).increment(1);
            tracing::info!(device_id = %t.device_id, provider, %error, "push token refused: dropped");
            PushOutcome::Invalid {
                device_id: t.device_id,
                token: t.token.token,
            }
        }
        Attempt::Failed { error } => {
            metrics::counter!("safestream_push_failed_total", "provider" => provider).increment(1);
            tracing::warn!(device_id = %t.device_id, provider, %error, "wake-up push failed");
            PushOutcome::Failed {
                device_id: t.device_id,
            }
        }
        Attempt::Retry { error, retry_after } => {
            metrics::counter!("safestream_push_failed_total", "provider" => provider).increment(1);
            if t.attempts + 1 >= MAX_ATTEMPTS {
                tracing::warn!(device_id = %t.device_id, provider, %error, attempts = t.attempts + 1,
                    "wake-up push given up");
                return PushOutcome::Failed {
                    device_id: t.device_id,
                };
            }
            let delay = backoff(t.attempts + 1, &mut rand::thread_rng())
                .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
            tracing::debug!(device_id = %t.device_id, provider, %error, delay_ms = delay.as_millis() as u64,
                "wake-up push retry");
            PushOutcome::Retry {
                device_id: t.device_id,
                at: now_ms() + delay.as_millis() as i64,
                error,
            }
        }
    }
}

/// This node's sender, until shutdown; then it waits for the sends in flight (up to the
/// request time limit and a little more) and records their outcomes. A send still running
/// after that keeps its lease, which expires: the wake-up is sent again, never lost.
pub async fn run(app: Arc<App>, s: Arc<Settings>) {
    // Unique per process: a restarted node never mistakes its predecessor's leases for its own.
    let owner = format!(
        "{}-{}",
        app.node_id,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let wake = app.store.push_wake();
    let mut stop = app.shutdown_signal();
    let mut in_flight: JoinSet<PushOutcome> = JoinSet::new();
    let mut done: Vec<PushOutcome> = Vec::new();
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(providers = s.describe(), "push sender started");
    while !app.is_shutting_down() {
        if !done.is_empty() {
            record(&app, std::mem::take(&mut done), &owner).await;
        }
        let free = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
        let now = now_ms();
        // A read first: most polls find nothing due, and a claim is a write.
        if free > 0 && !matches!(app.store.push_due(now).await, Ok(false)) {
            match app
                .store
                .claim_push(&owner, now, now + LEASE.as_millis() as i64, free as i64)
                .await
            {
                Ok(rows) => {
                    for t in rows {
                        in_flight.spawn(wake_one(app.clone(), s.clone(), t));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming push wake-ups failed"),
            }
        }
        tokio::select! {
            _ = wake.notified() => {
                // A commit wrote wake-ups: they come due after the coalescing delay.
                tokio::time::sleep(Duration::from_millis(PUSH_DELAY_MS as u64 + 5)).await;
            }
            _ = poll.tick() => {}
            Some(r) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok(o) = r { done.push(o); }
                while let Some(r) = in_flight.try_join_next() {
                    if let Ok(o) = r { done.push(o); }
                }
            }
            _ = stop.changed() => break,
        }
    }
    let limit = REQUEST_TIMEOUT + Duration::from_secs(5);
    let _ = tokio::time::timeout(limit, async {
        while let Some(r) = in_flight.join_next().await {
            if let Ok(o) = r {
                done.push(o);
            }
        }
    })
    .await;
    if !in_flight.is_empty() {
        tracing::warn!(
            left = in_flight.len(),
            "push sends still in flight at shutdown: their leases expire and they are sent again"
        );
        in_flight.abort_all();
    }
    if !done.is_empty() {
        record(&app, done, &owner).await;
    }
}

/// Writes outcomes, in one write.
async fn record(app: &App, outcomes: Vec<PushOutcome>, owner: &str) {
    match app.store.push_outcomes(outcomes, owner).await {
        Ok(dropped) if dropped > 0 => {
            metrics::counter!("safestream_push_tokens_dropped_total").increment(dropped);
        }
        Ok(_) => {}
        // The leases run out and the wake-ups are sent again: at least once, never lost.
        Err(e) => tracing::warn!(error = %e, "could not record push outcomes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (failures, step) in [
            (1, 1_000u64),
            (2, 2_000),
            (4, 8_000),
            (9, 256_000),
            (10, 300_000),
            (99, 300_000),
        ] {
            for _ in 0..20 {
                let d = backoff(failures, &mut rng).as_millis() as u64;
                assert!(d >= step / 2 && d <= step, "{failures}: {d}");
            }
        }
    }
}
