//! The delivery loop one node runs: claim due rows per endpoint (up to its in-flight cap),
//! POST each, record the outcome while the lease is still ours.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{sign, Endpoint, Settings};
use crate::app::App;
use crate::model::now_ms;
use crate::store::{Claimed, HookOutcome, Leased};
use wire::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

/// Largest body sent; a bigger event (none is, today) is parked rather than sent.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How much of an endpoint's error answer is kept as `last_error`.
const ERROR_SNIPPET_BYTES: usize = 200;
/// How much of a success answer's body is read (and dropped) so that the connection can be
/// reused; a longer body is not read further (the connection is then closed).
const DRAIN_BYTES: usize = 4096;
/// Due rows are looked for at least this often (retries come due by time, other nodes'
/// rows and expired leases show up without a wake-up).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Claims of one node are at least this far apart, so that under load each takes a batch
/// of rows rather than one (a little latency for far fewer database writes).
const CLAIM_EVERY: Duration = Duration::from_millis(5);
/// Outcomes written in one database write, at most.
const RECORD_BATCH: usize = 512;
/// Room for handed-over rows in the sender's queue, per endpoint; rows written while it is
/// full wait in the database for a claim.
const HANDOFF_PER_ENDPOINT: usize = 4096;
/// The backlog gauges are refreshed this often.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// First retry delay (before jitter); it doubles with each failure...
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// ...up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// A `Retry-After` longer than this is shortened to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Sent,
    /// Try again later (5xx, 408, 429, timeout, connection error), not before
    /// `retry_after` when the endpoint said so.
    Retry {
        /// What went wrong.
        error: String,
        /// The endpoint's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Do not try again until the backend asks (any other 4xx, a redirect).
    Park {
        /// What went wrong.
        error: String,
    },
}

/// The outcome of an answer with `status`; `detail` is the start of its body.
pub fn classify(status: u16, retry_after: Option<Duration>, detail: &str) -> Outcome {
    let error = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    match status {
        200..=299 => Outcome::Sent,
        408 | 429 | 500..=599 => Outcome::Retry { error, retry_after },
        300..=399 => Outcome::Park {
            error: format!("{error} (redirects are not followed: configure the final URL)"),
        },
        _ => Outcome::Park { error },
    }
}

/// The delay before the next attempt after `failures` failed ones (1 or more): 1 s doubling
/// per failure up to an hour, each a random point in the upper half of its step (jitter:
/// events that failed together do not all come back together).
pub fn backoff(failures: i64, rng: &mut impl Rng) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let step = BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP);
    let half = step.as_millis() as u64 / 2;
    Duration::from_millis(half + rng.gen_range(0..=half))
}

/// After a failed attempt at `now`: when to try `row` again (ms), or `None` to park it
/// because its retry window (`window` from `row.window_start`) is over. The delay is the
/// backoff, or the endpoint's `Retry-After` when that is longer.
pub fn next_attempt(
    row: &Claimed,
    now: i64,
    window: Duration,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<i64> {
    if now - row.window_start >= window.as_millis() as i64 {
        return None;
    }
    let delay = backoff(row.attempts + 1, rng).max(retry_after.unwrap_or_default());
    Some(now + delay.as_millis() as i64)
}

/// `Retry-After`: seconds, or an HTTP date.
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            let ms = at.timestamp_millis() - now_ms();
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// A transport error, without the URL (which may carry a token).
pub(crate) fn transport_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut text = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text.chars().take(300).collect()
}

/// The start of an error answer's body, printable.
async fn snippet(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_SNIPPET_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(ERROR_SNIPPET_BYTES);
    String::from_utf8_lossy(&buf)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Reads a success answer's body, up to [`DRAIN_BYTES`] (within the request's time limit).
async fn drain(mut resp: reqwest::Response) {
    let mut read = 0;
    while read <= DRAIN_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => read += c.len(),
            _ => return,
        }
    }
}

/// The HTTP client: time limit, no redirects, no proxy from the environment.
fn client(s: &Settings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(s.timeout)
        .connect_timeout(s.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(s.max_in_flight)
        .no_proxy()
        .user_agent(concat!("safestream-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhook client: {e}"))
}

/// One attempt: sign (with every active secret) and POST.
pub async fn attempt(
    client: &reqwest::Client,
    s: &Settings,
    ep: &Endpoint,
    row: &Claimed,
) -> Outcome {
    if row.payload.len() > MAX_BODY_BYTES {
        return Outcome::Park {
            error: format!(
                "the body is {} bytes, over {MAX_BODY_BYTES}",
                row.payload.len()
            ),
        };
    }
    let ts = now_ms() / 1000;
    let sig = sign::signature_header(&s.secrets, &row.id, ts, &row.payload);
    let req = client
        .post(ep.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_ID, &row.id)
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, sig)
        .body(row.payload.clone());
    match req.send().await {
        Err(e) => Outcome::Retry {
            error: transport_error(e),
            retry_after: None,
        },
        Ok(resp) => {
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                drain(resp).await;
                return Outcome::Sent;
            }
            let after = retry_after(resp.headers());
            let detail = snippet(resp).await;
            classify(status, after, &detail)
        }
    }
}

/// Runs one claimed row to its outcome and hands that to the recorder (`out`); `_slot` frees
/// the endpoint's in-flight place when done (the row stays leased until recorded).
async fn deliver_one(
    s: Arc<Settings>,
    client: reqwest::Client,
    ep: usize,
    row: Claimed,
    out: mpsc::Sender<HookOutcome>,
    _slot: OwnedSemaphorePermit,
) {
    let Some(endpoint) = s.endpoints.get(ep) else {
        return;
    };
    let outcome = attempt(&client, &s, endpoint, &row).await;
    let record = match outcome {
        Outcome::Sent => {
            metrics::counter!("safestream_webhooks_sent_total").increment(1);
            HookOutcome::Delivered { id: row.id }
        }
        Outcome::Retry { error, retry_after } => {
            metrics::counter!("safestream_webhooks_failed_total").increment(1);
            let now = now_ms();
            let next = next_attempt(
                &row,
                now,
                s.retry_window,
                retry_after,
                &mut rand::thread_rng(),
            );
            match next {
                None => {
                    metrics::counter!("safestream_webhooks_parked_total").increment(1);
                    let hours = s.retry_window.as_secs() / 3600;
                    let error = format!(
                        "gave up after {} attempts in {hours} h: {error}",
                        row.attempts + 1
                    );
                    tracing::warn!(event = %row.id, kind = %row.kind, %error, "webhook parked");
                    HookOutcome::Parked {
                        id: row.id,
                        at: now,
                        error,
                    }
                }
                Some(at) => {
                    metrics::counter!("safestream_webhooks_retried_total").increment(1);
                    tracing::debug!(event = %row.id, %error, delay_ms = at - now, "webhook retry");
                    HookOutcome::RetryAt {
                        id: row.id,
                        at,
                        error,
                    }
                }
            }
        }
        Outcome::Park { error } => {
            metrics::counter!("safestream_webhooks_failed_total").increment(1);
            metrics::counter!("safestream_webhooks_parked_total").increment(1);
            tracing::warn!(event = %row.id, kind = %row.kind, %error, "webhook parked");
            HookOutcome::Parked {
                id: row.id,
                at: now_ms(),
                error,
            }
        }
    };
    // The recorder ends only after every delivery (see `run`): a send cannot fail but for a
    // bug, and then the lease runs out and the row is sent again.
    let _ = out.send(record).await;
}

/// Writes outcomes as they come, each write taking every outcome waiting (up to
/// [`RECORD_BATCH`]): one write per batch instead of one per event; on SQLite that write
/// joins the next transaction of the one writer.
async fn recorder(app: Arc<App>, owner: Arc<str>, mut rx: mpsc::Receiver<HookOutcome>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        if app.store.engine() == crate::store::Engine::Sqlite {
            // Joins the next write (a command's, usually) instead of a commit of its own:
            // the rows stay leased to this node until then (BENCHMARKS.md, 2026-12-06, third
            // sitting). PostgreSQL commits each write on its own anyway.
            app.store.webhook_outcomes_later(batch, &owner);
        } else if let Err(e) = app.store.webhook_outcomes(batch, &owner).await {
            // The leases run out and the rows are sent again: at least once, never lost.
            tracing::warn!(error = %e, "could not record webhook outcomes");
        }
    }
    // Every sender is gone: commit what is still waiting before `run` returns (a write
    // commits the queue in order, the waiting outcomes first).
    if let Err(e) = app.store.webhook_outcomes(Vec::new(), &owner).await {
        // The leases run out and the rows are sent again: at least once, never lost.
        tracing::warn!(error = %e, "could not record webhook outcomes");
    }
}

/// Refreshes the backlog gauges.
async fn gauges(app: &App, s: &Settings) {
    let (mut pending, mut parked, mut oldest) = (0, 0, None::<i64>);
    for ep in &s.endpoints {
        match app.store.webhook_stats(&ep.raw).await {
            Ok(st) => {
                pending += st.pending;
                parked += st.failed;
                oldest = match (oldest, st.oldest_pending) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Err(e) => tracing::debug!(error = %e, "webhook backlog read failed"),
        }
    }
    let age = oldest.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
    metrics::gauge!("safestream_webhook_backlog_age_seconds").set(age);
    metrics::gauge!("safestream_webhook_backlog").set(pending as f64);
    metrics::gauge!("safestream_webhook_parked").set(parked as f64);
}

/// The next handed-over row; pending forever when there is no queue (another sender of
/// this store took it: tests that start two).
async fn recv_some(rx: &mut Option<mpsc::Receiver<Leased>>) -> Option<Leased> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// This node's sender, until shutdown; then it waits for the deliveries in flight (up to
/// the request time limit and a little more) so their outcomes are recorded. Rows still
/// in flight after that keep their lease, which expires: never two senders at once.
pub async fn run(app: Arc<App>, s: Arc<Settings>) {
    let client = match client(&s) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled");
            return;
        }
    };
    // Unique per process: a restarted node never mistakes its predecessor's leases for its own.
    let owner: Arc<str> = format!(
        "{}-{}",
        app.node_id,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .into();
    let lease_ms = s.lease().as_millis() as i64;
    let wake = app.store.webhook_wake();
    // Rows this node writes come leased to it, straight from the write path: no claim.
    let capacity = HANDOFF_PER_ENDPOINT * s.endpoints.len().max(1);
    let mut handed = app
        .store
        .start_webhook_handoff(owner.clone(), lease_ms, capacity);
    let mut queue: VecDeque<Leased> = VecDeque::new();
    let mut stop = app.shutdown_signal();
    let slots: Vec<Arc<Semaphore>> = s
        .endpoints
        .iter()
        .map(|_| Arc::new(Semaphore::new(s.max_in_flight)))
        .collect();
    let mut in_flight = JoinSet::new();
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gauges_at = tokio::time::Instant::now();
    let (out, outcomes) = mpsc::channel::<HookOutcome>(4096);
    let recording = tokio::spawn(recorder(app.clone(), owner.clone(), outcomes));
    let mut claimed_at = tokio::time::Instant::now() - CLAIM_EVERY;
    // Whether rows may be waiting in the database for a claim: other nodes' rows, retries
    // come due, expired leases (the poll), rows written while the queue was full (a wake),
    // or a claim that came back full.
    let mut claim = true;
    tracing::info!(endpoints = s.endpoints.len(), "webhook sender started");
    while !app.is_shutting_down() {
        // Handed-over rows first, oldest first, while their endpoint has room; one whose
        // lease would run out before an attempt could end is given back for a claim.
        let mut give_back = Vec::new();
        let now = now_ms();
        let mut blocked = vec![false; s.endpoints.len()];
        let mut n_blocked = 0;
        let mut kept = VecDeque::new();
        while let Some(l) = queue.pop_front() {
            if n_blocked == s.endpoints.len() {
                // Every endpoint is full: the rest waits as it is (no scan per wake-up).
                kept.push_back(l);
                kept.append(&mut queue);
                break;
            }
            if now + s.timeout.as_millis() as i64 + 2_000 >= l.lease_until {
                give_back.push(l.row.id);
                continue;
            }
            let Some(i) = s.endpoints.iter().position(|e| e.raw == l.row.endpoint) else {
                // Not an endpoint of this node's settings (none is): left to its lease.
                continue;
            };
            if blocked[i] {
                kept.push_back(l);
                continue;
            }
            match slots[i].clone().try_acquire_owned() {
                Ok(slot) => {
                    in_flight.spawn(deliver_one(
                        s.clone(),
                        client.clone(),
                        i,
                        l.row,
                        out.clone(),
                        slot,
                    ));
                }
                Err(_) => {
                    blocked[i] = true;
                    n_blocked += 1;
                    kept.push_back(l);
                }
            }
        }
        queue = kept;
        if !give_back.is_empty() {
            claim = true;
            if let Err(e) = app.store.release_webhooks(give_back, &owner).await {
                tracing::warn!(error = %e, "giving back webhook rows failed (their leases expire)");
            }
        }
        let due = claimed_at + CLAIM_EVERY;
        if claim && queue.is_empty() && tokio::time::Instant::now() >= due {
            claimed_at = tokio::time::Instant::now();
            claim = false;
            for (i, ep) in s.endpoints.iter().enumerate() {
                let free = slots[i].available_permits();
                if free == 0 {
                    claim = true;
                    continue;
                }
                let now = now_ms();
                // A read first: most polls find nothing, and a claim is a write.
                if let Ok(false) = app.store.webhooks_due(&ep.raw, now).await {
                    continue;
                }
                let rows = match app
                    .store
                    .claim_webhooks(&ep.raw, &owner, now, now + lease_ms, free as i64)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhooks failed");
                        continue;
                    }
                };
                if rows.len() >= free {
                    claim = true;
                }
                for row in rows {
                    match slots[i].clone().try_acquire_owned() {
                        Ok(slot) => {
                            in_flight.spawn(deliver_one(
                                s.clone(),
                                client.clone(),
                                i,
                                row,
                                out.clone(),
                                slot,
                            ));
                        }
                        Err(_) => {
                            let _ = app.store.release_webhooks(vec![row.id], &owner).await;
                        }
                    }
                }
            }
        }
        if gauges_at.elapsed() >= GAUGES_EVERY {
            gauges(&app, &s).await;
            gauges_at = tokio::time::Instant::now();
        }
        let claim_later = claim && queue.is_empty();
        tokio::select! {
            _ = wake.notified() => claim = true,
            _ = poll.tick() => claim = true,
            Some(l) = recv_some(&mut handed) => {
                queue.push_back(l);
                if let Some(rx) = handed.as_mut() {
                    while let Ok(l) = rx.try_recv() {
                        queue.push_back(l);
                    }
                }
            }
            _ = tokio::time::sleep_until(due), if claim_later => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                while in_flight.try_join_next().is_some() {}
            }
            _ = stop.changed() => break,
        }
    }
    // Handed-over rows never started: given back, so that the next node or start sends them
    // without waiting for their leases.
    if let Some(rx) = handed.as_mut() {
        rx.close();
        while let Ok(l) = rx.try_recv() {
            queue.push_back(l);
        }
    }
    if !queue.is_empty() {
        let ids = queue.into_iter().map(|l| l.row.id).collect();
        let _ = app.store.release_webhooks(ids, &owner).await;
    }
    let limit = s.timeout + Duration::from_secs(5);
    let drained = tokio::time::timeout(limit, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = in_flight.len(),
            "webhook deliveries still in flight at shutdown: their leases expire and they are sent again"
        );
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
    }
    // Every delivery task (and its sender) is gone: the recorder writes what is left, ends.
    drop(out);
    if tokio::time::timeout(Duration::from_secs(5), recording)
        .await
        .is_err()
    {
        tracing::warn!("webhook outcomes not recorded at shutdown: those events are sent again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn answers_are_classified_as_the_docs_say() {
        assert_eq!(classify(200, None, ""), Outcome::Sent);
        assert_eq!(classify(204, None, ""), Outcome::Sent);
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(
                matches!(classify(s, None, ""), Outcome::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 410, 413, 422] {
            assert!(matches!(classify(s, None, ""), Outcome::Park { .. }), "{s}");
        }
        let Outcome::Park { error } = classify(301, None, "") else {
            panic!("a redirect parks");
        };
        assert!(error.contains("redirects are not followed"), "{error}");
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            classify(429, after, "slow down"),
            Outcome::Retry {
                error: "HTTP 429: slow down".into(),
                retry_after: after
            }
        );
    }

    #[test]
    fn backoff_doubles_from_a_second_to_an_hour_with_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (failures, step) in [
            (1, 1_000u64),
            (2, 2_000),
            (3, 4_000),
            (12, 2_048_000),
            (13, 3_600_000),
            (500, 3_600_000),
        ] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                let d = backoff(failures, &mut rng).as_millis() as u64;
                assert!(
                    d >= step / 2 && d <= step,
                    "{failures}: {d} not in [{}, {step}]",
                    step / 2
                );
                seen.insert(d);
            }
            assert!(seen.len() > 1, "{failures}: no jitter");
        }
        // Out-of-range counts stay within the first step.
        assert!(backoff(0, &mut rng) <= Duration::from_secs(1));
    }

    #[test]
    fn retries_follow_the_backoff_or_a_longer_retry_after_until_the_window_ends() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let day = 24 * 3_600_000;
        let row = Claimed {
            id: "evt_1".into(),
            endpoint: "https://h.example/x".into(),
            kind: "command.status".into(),
            payload: "{}".into(),
            attempts: 2,
            window_start: 0,
            timestamp: 0,
        };
        let window = Duration::from_secs(72 * 3600);
        let now = 10_000;
        // Third failure: 2-4 s.
        let at = next_attempt(&row, now, window, None, &mut rng).unwrap();
        assert!((now + 2_000..=now + 4_000).contains(&at), "{at}");
        // A longer Retry-After wins; a shorter one does not shorten the backoff.
        let at = next_attempt(&row, now, window, Some(Duration::from_secs(120)), &mut rng);
        assert_eq!(at, Some(now + 120_000));
        let at = next_attempt(&row, now, window, Some(Duration::from_millis(1)), &mut rng).unwrap();
        assert!(at >= now + 2_000, "{at}");
        // Still retried just before 72 h, parked from then on.
        assert!(next_attempt(&row, 3 * day - 1, window, None, &mut rng).is_some());
        assert_eq!(next_attempt(&row, 3 * day, window, None, &mut rng), None);
        // A retry from the backend starts a new window.
        let again = Claimed {
            window_start: 3 * day,
            attempts: 0,
            ..row
        };
        assert!(next_attempt(&again, 3 * day + 5, window, None, &mut rng).is_some());
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert("retry-after", "99999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let at = chrono::Utc::now() + chrono::Duration::seconds(60);
        h.insert("retry-after", at.to_rfc2822().parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        // The form HTTP servers send (IMF-fixdate, RFC 9110): "GMT", not "+0000".
        let imf = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        h.insert("retry-after", imf.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{imf}: {d:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
