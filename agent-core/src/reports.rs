//! Reports from the child's device to the relay — screen time and restricted-content
//! attempts — kept in their own persisted queue until the relay answers.
//!
//! - [`ReportStore`]: the queue on disk (`agent-reports.json`, beside the ledger's state
//!   file, replaced atomically through [`Storage`]). A report is in it before
//!   [`Agent::report_screen_time`](crate::Agent::report_screen_time) or
//!   [`Agent::report_restricted_attempt`](crate::Agent::report_restricted_attempt) returns.
//! - [`Reports`]: the store plus the task's inputs from other threads.
//! - [`run`]: the task driving [`machine::reports`](crate::machine::reports) — feeds it the
//!   queued reports, the token and the relay's answers, and does what it decides (post over
//!   HTTP, drop an answered report from the file).
//!
//! Each report is bound to its [`Owner`]: the child (and device) named by the device
//! token current when it was queued (its `cid` and `sub` claims, read without verifying:
//! the relay verifies the token). It is posted only with a token naming the same child;
//! after a re-pairing to another child it is dropped unsent (logged), so one child's
//! attempts never reach another child's guardians. Clearing the token empties the queue.
//! A token without a `cid` claim (not relay-issued) names no child: such reports match
//! only such tokens. The screen-time body's child id is the token's, i.e. the owner's.
//!
//! Queue files written before owners were recorded (schema version 1) are dropped at load,
//! logged: whose reports they are cannot be known (that version kept the queue across a
//! re-pairing).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use wire::rest::FromBody;

use crate::api::{Api, HttpError};
use crate::backoff::Rng;
use crate::command::{AckStatus, Command};
use crate::machine::reports::{self as m, enqueue, Answer, Outcome, Owner, PendingReport, Report};
use crate::machine::Time;
use crate::platform::{AckResult, ConnectionState, LogLevel, Platform};
use crate::storage::Storage;
use crate::token::Credentials;
use crate::{lock, stopped};

/// The queue's file in the state directory.
pub(crate) const REPORTS_FILE: &str = "agent-reports.json";

const SCHEMA_VERSION: u32 = 2;

/// One report as written to the file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Stored {
    /// A screen-time value.
    #[serde(rename_all = "camelCase")]
    ScreenTime {
        seq: u64,
        minutes_used: u32,
        #[serde(default)]
        child_id: Option<String>,
        #[serde(default)]
        device_id: Option<String>,
    },
    /// A restricted attempt: the relay's request body.
    #[serde(rename_all = "camelCase")]
    RestrictedAttempt {
        seq: u64,
        body: Value,
        #[serde(default)]
        child_id: Option<String>,
        #[serde(default)]
        device_id: Option<String>,
    },
}

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    next_seq: u64,
    #[serde(default)]
    reports: Vec<Stored>,
}

fn to_stored(r: &PendingReport) -> Stored {
    let Owner {
        child_id,
        device_id,
    } = r.owner.clone();
    match &r.report {
        Report::ScreenTime { minutes_used } => Stored::ScreenTime {
            seq: r.seq,
            minutes_used: *minutes_used,
            child_id,
            device_id,
        },
        Report::Restricted(body) => Stored::RestrictedAttempt {
            seq: r.seq,
            body: serde_json::to_value(body).unwrap_or(Value::Null),
            child_id,
            device_id,
        },
    }
}

fn from_stored(s: Stored) -> Option<PendingReport> {
    let (seq, report, child_id, device_id) = match s {
        Stored::ScreenTime {
            seq,
            minutes_used,
            child_id,
            device_id,
        } => (
            seq,
            Report::ScreenTime { minutes_used },
            child_id,
            device_id,
        ),
        Stored::RestrictedAttempt {
            seq,
            body,
            child_id,
            device_id,
        } => match wire::rest::RestrictedAttempt::from_body(&body) {
            Ok(a) => (seq, Report::Restricted(a), child_id, device_id),
            Err(e) => {
                tracing::error!(seq, error = %e, "unreadable restricted attempt in the report queue; dropped");
                return None;
            }
        },
    };
    Some(PendingReport {
        seq,
        owner: Owner {
            child_id,
            device_id,
        },
        report,
        attempts: 0,
    })
}

/// The persisted report queue.
pub(crate) struct ReportStore {
    storage: Arc<dyn Storage>,
    queue: Vec<PendingReport>,
    next_seq: u64,
}

impl ReportStore {
    /// Loads the queue. A file that cannot be parsed (only by tampering: writes are
    /// atomic) is kept as `agent-reports.json.corrupt` and the queue starts empty.
    pub(crate) fn load(storage: Arc<dyn Storage>) -> io::Result<Self> {
        let data = match storage.load(REPORTS_FILE)? {
            None => Persisted::default(),
            Some(bytes) => match serde_json::from_slice::<Persisted>(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "report queue unreadable; starting with an empty one");
                    let _ = storage.save(&format!("{REPORTS_FILE}.corrupt"), &bytes);
                    Persisted::default()
                }
            },
        };
        let mut queue = Vec::new();
        let mut reports = data.reports;
        if data.version < 2 && !reports.is_empty() {
            // Written before reports recorded their child: whose they are is unknown.
            tracing::warn!(
                count = reports.len(),
                "report queue from an older version names no child; dropped"
            );
            reports.clear();
        }
        for r in reports.into_iter().filter_map(from_stored) {
            enqueue(&mut queue, r);
        }
        let next_seq = queue
            .iter()
            .map(|r| r.seq + 1)
            .max()
            .unwrap_or(0)
            .max(data.next_seq);
        Ok(Self {
            storage,
            queue,
            next_seq,
        })
    }

    fn save(&self) -> io::Result<()> {
        let data = Persisted {
            version: SCHEMA_VERSION,
            next_seq: self.next_seq,
            reports: self.queue.iter().map(to_stored).collect(),
        };
        let bytes = serde_json::to_vec(&data).map_err(io::Error::other)?;
        self.storage.save(REPORTS_FILE, &bytes)
    }

    /// The reports waiting, in posting order.
    pub(crate) fn pending(&self) -> &[PendingReport] {
        &self.queue
    }

    /// Adds a report and writes the file; on a failed write nothing changes. Logs the
    /// reports it displaced (a replaced screen-time value, restricted attempts over the
    /// bound).
    pub(crate) fn add(&mut self, report: Report, owner: Owner) -> io::Result<PendingReport> {
        let pending = PendingReport {
            seq: self.next_seq,
            owner,
            report,
            attempts: 0,
        };
        let before = (self.queue.clone(), self.next_seq);
        self.next_seq += 1;
        let displaced = enqueue(&mut self.queue, pending.clone());
        if let Err(e) = self.save() {
            (self.queue, self.next_seq) = before;
            return Err(e);
        }
        for d in displaced {
            match d.report {
                Report::ScreenTime { minutes_used } => {
                    tracing::debug!(
                        seq = d.seq,
                        minutes_used,
                        "unsent screen time replaced by a newer value"
                    );
                }
                Report::Restricted(_) => {
                    tracing::error!(
                        seq = d.seq,
                        max = m::MAX_RESTRICTED,
                        "report queue full; oldest unsent restricted attempt dropped"
                    );
                }
            }
        }
        Ok(pending)
    }

    /// Empties the queue and writes the file; returns how many reports were dropped.
    pub(crate) fn clear(&mut self) -> io::Result<usize> {
        let n = self.queue.len();
        if n == 0 {
            return Ok(0);
        }
        let before = std::mem::take(&mut self.queue);
        if let Err(e) = self.save() {
            self.queue = before;
            return Err(e);
        }
        Ok(n)
    }

    /// Drops an answered report and writes the file.
    pub(crate) fn remove(&mut self, seq: u64) -> io::Result<()> {
        let before = self.queue.len();
        self.queue.retain(|r| r.seq != seq);
        if self.queue.len() == before {
            return Ok(());
        }
        self.save()
    }
}

/// The report queue and the task's inputs from other threads.
pub(crate) struct Reports {
    store: Mutex<ReportStore>,
    /// Reports added since the task last looked, in queue order.
    inbox: Mutex<Vec<PendingReport>>,
    retry_now: AtomicBool,
    /// The queue was emptied (the token was cleared).
    cleared: AtomicBool,
    wake: Notify,
    /// A report left the queue.
    pub drained: Notify,
}

impl Reports {
    /// Wraps a loaded store; its reports are queued for the task.
    pub(crate) fn new(store: ReportStore) -> Self {
        let inbox = store.pending().to_vec();
        Self {
            store: Mutex::new(store),
            inbox: Mutex::new(inbox),
            retry_now: AtomicBool::new(false),
            cleared: AtomicBool::new(false),
            wake: Notify::new(),
            drained: Notify::new(),
        }
    }

    /// Persists a report of `owner` (see [`owner_of`]), then hands it to the task.
    pub(crate) fn record(&self, report: Report, owner: Owner) -> io::Result<()> {
        let mut store = lock(&self.store);
        let pending = store.add(report, owner)?;
        tracing::info!(
            seq = pending.seq,
            kind = pending.report.kind(),
            "report queued"
        );
        // Under the store's lock, so the machine sees reports in the file's order.
        lock(&self.inbox).push(pending);
        self.wake.notify_one();
        Ok(())
    }

    /// Drops every queued report (the token was cleared: they belong to a pairing that
    /// ended), from the file and from the task.
    pub(crate) fn clear(&self) -> io::Result<()> {
        let mut store = lock(&self.store);
        let n = store.clear()?;
        lock(&self.inbox).clear();
        if n > 0 {
            tracing::warn!(count = n, "token cleared; unsent reports dropped");
        }
        self.cleared.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.drained.notify_waiters();
        Ok(())
    }

    /// Reports waiting for the relay.
    pub(crate) fn len(&self) -> usize {
        lock(&self.store).pending().len()
    }

    /// Ends the queue's backoff wait (the relay is reachable, the network is back); a
    /// `Retry-After` the relay asked for still holds.
    pub(crate) fn retry_now(&self) {
        self.retry_now.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// The [`Platform`] given to the connection: the host's, plus "the socket is up" ends the
/// report queue's backoff wait (the relay is reachable again), as `ready` does for acks.
/// The connection reports each state once per change, so this is once per connect.
pub(crate) struct RetryOnConnect {
    /// The host.
    pub inner: Arc<dyn Platform>,
    /// The queue to wake.
    pub reports: Arc<Reports>,
}

impl Platform for RetryOnConnect {
    fn run_command(&self, command: Command) {
        self.inner.run_command(command)
    }
    fn connection_state_changed(&self, state: ConnectionState) {
        if state == ConnectionState::Connected {
            self.reports.retry_now();
        }
        self.inner.connection_state_changed(state)
    }
    fn log(&self, level: LogLevel, target: String, message: String) {
        self.inner.log(level, target, message)
    }
    fn ack_finished(&self, id: String, status: AckStatus, result: AckResult) {
        self.inner.ack_finished(id, status, result)
    }
    fn load_token(&self) -> Option<String> {
        self.inner.load_token()
    }
    fn save_token(&self, token: Option<String>) {
        self.inner.save_token(token)
    }
}

/// What the task needs besides its [`Reports`].
pub(crate) struct Deps {
    pub api: Arc<dyn Api>,
    pub credentials: Arc<Credentials>,
}

/// The child id in a relay-issued device token (a JWT whose payload has `cid`), read
/// without verifying the signature. `None` for anything else.
pub(crate) fn child_id_of(token: &str) -> Option<String> {
    claim_of(token, "cid")
}

/// Whose reports a token makes: its `cid` and `sub` claims (`None` without a token).
pub(crate) fn owner_of(token: Option<&str>) -> Owner {
    Owner {
        child_id: token.and_then(child_id_of),
        device_id: token.and_then(|t| claim_of(t, "sub")),
    }
}

/// A string claim that is a valid id, read from a JWT's payload without verifying it.
fn claim_of(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let value = v.get(name)?.as_str()?;
    wire::validate::valid_id(value).then(|| value.to_owned())
}

/// Decodes unpadded (or padded) base64url.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 8192 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Runs the report queue until `stop` (reports left stay in the file for the next start).
pub(crate) async fn run(reports: Arc<Reports>, deps: Deps, mut stop: watch::Receiver<bool>) {
    let origin = Instant::now();
    let now = || Time(origin.elapsed());
    let mut tokens = deps.credentials.subscribe();
    let mut seen = tokens.borrow_and_update().clone();
    let mut machine = m::Reports::new(seen.is_some(), Rng::from_entropy());
    let mut events = VecDeque::new();
    let mut last_error: Option<HttpError> = None;
    loop {
        if *stop.borrow() {
            events.push_back(m::Event::Stop);
        }
        // First, even before a timer that fired meanwhile (it would post a cleared
        // report), and before the inbox: reports queued after the clearing stay.
        if reports.cleared.swap(false, Ordering::SeqCst) {
            events.push_front(m::Event::Clear);
        }
        let queued: Vec<PendingReport> = std::mem::take(&mut *lock(&reports.inbox));
        events.extend(queued.into_iter().map(m::Event::Queued));
        if reports.retry_now.swap(false, Ordering::SeqCst) {
            events.push_back(m::Event::RetryNow);
        }
        let current = tokens.borrow_and_update().clone();
        let changed = current != seen;
        let present = current.is_some();
        seen = current;
        events.push_back(m::Event::Token { present, changed });
        while let Some(event) = events.pop_front() {
            for action in machine.handle(now(), event) {
                match action {
                    m::Action::Post(report) => {
                        let Some(token) = deps.credentials.current() else {
                            events.push_back(m::Event::Token {
                                present: false,
                                changed: false,
                            });
                            continue;
                        };
                        let current = owner_of(Some(&token.0));
                        if current.child_id != report.owner.child_id {
                            tracing::warn!(
                                seq = report.seq,
                                kind = report.report.kind(),
                                queued_for_child = ?report.owner.child_id,
                                queued_for_device = ?report.owner.device_id,
                                token_child = ?current.child_id,
                                "report queued for another child than the token's; dropped unsent"
                            );
                            events.push_back(m::Event::Answered {
                                seq: report.seq,
                                answer: Answer::OtherChild,
                            });
                            continue;
                        }
                        let res = tokio::select! {
                            r = post(&*deps.api, &token.0, &report.report) => r,
                            () = stopped(&mut stop) => {
                                events.push_back(m::Event::Stop);
                                continue;
                            }
                        };
                        let answer = answer(&report, res, &mut last_error);
                        events.push_back(m::Event::Answered {
                            seq: report.seq,
                            answer,
                        });
                    }
                    m::Action::Retry {
                        seq,
                        attempts,
                        delay,
                    } => {
                        tracing::warn!(seq, error = ?last_error.take(), attempts, delay_ms = delay.as_millis() as u64, "report not delivered; will retry");
                    }
                    m::Action::Finished { seq, outcome } => {
                        if outcome == Outcome::Sent {
                            tracing::info!(seq, "report delivered");
                        }
                        if let Err(e) = lock(&reports.store).remove(seq) {
                            tracing::error!(seq, error = %e, "could not persist the report queue");
                        }
                        reports.drained.notify_waiters();
                    }
                }
            }
        }
        if machine.is_stopped() {
            break;
        }
        let deadline = machine.next_deadline().map(|t| origin + t.0);
        tokio::select! {
            () = sleep_until_opt(deadline) => events.push_back(m::Event::Timer),
            () = reports.wake.notified() => {}
            r = tokens.changed() => {
                if r.is_err() {
                    stopped(&mut stop).await;
                }
            }
            () = stopped(&mut stop) => {}
        }
    }
}

/// Why a post could not even be made.
enum PostError {
    /// The token names no child (screen time needs one).
    NoChild,
    /// The HTTP call failed.
    Http(HttpError),
}

/// Posts one report with its wire body.
async fn post(api: &dyn Api, token: &str, report: &Report) -> Result<(), PostError> {
    match report {
        Report::ScreenTime { minutes_used } => {
            let child_id = child_id_of(token).ok_or(PostError::NoChild)?;
            let body = wire::rest::ScreenTimeReport {
                child_id,
                minutes_used: i64::from(*minutes_used),
            };
            let body = serde_json::to_value(&body).unwrap_or(Value::Null);
            api.screen_time(token, body).await.map_err(PostError::Http)
        }
        Report::Restricted(attempt) => {
            let body = serde_json::to_value(attempt).unwrap_or(Value::Null);
            api.restricted_attempt(token, body)
                .await
                .map_err(PostError::Http)
        }
    }
}

/// What the answer to a post means for the decision; logs the final ones.
fn answer(
    report: &PendingReport,
    res: Result<(), PostError>,
    last_error: &mut Option<HttpError>,
) -> Answer {
    let kind = report.report.kind();
    match res {
        Ok(()) => Answer::Ok,
        Err(PostError::NoChild) => {
            tracing::error!(
                seq = report.seq,
                kind,
                "the device token names no child; screen time waits for another token"
            );
            Answer::Unauthorized
        }
        Err(PostError::Http(HttpError::Status { status: 401, .. })) => Answer::Unauthorized,
        Err(PostError::Http(e)) if e.is_retryable() => {
            let retry_after = e.retry_after();
            *last_error = Some(e);
            Answer::Retryable { retry_after }
        }
        Err(PostError::Http(HttpError::Status { status, code, .. })) => {
            tracing::error!(seq = report.seq, kind, status, code = %code, "report refused by the relay; dropped (final)");
            Answer::Final { status }
        }
        Err(PostError::Http(e)) => {
            tracing::error!(seq = report.seq, kind, error = ?e, "report failed; dropped (final)");
            Answer::Final { status: 0 }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    fn attempt(url: &str) -> Report {
        Report::Restricted(wire::rest::RestrictedAttempt {
            url: Some(url.into()),
            metadata: serde_json::json!({}),
            ..Default::default()
        })
    }

    fn kid() -> Owner {
        Owner {
            child_id: Some("c1".into()),
            device_id: Some("d1".into()),
        }
    }

    #[test]
    fn owners_are_persisted_and_old_files_without_them_are_dropped() {
        let s = MemoryStorage::default();
        let mut q = ReportStore::load(Arc::new(s.clone())).unwrap();
        q.add(attempt("https://a"), kid()).unwrap();
        q.add(Report::ScreenTime { minutes_used: 3 }, Owner::default())
            .unwrap();
        let q2 = ReportStore::load(Arc::new(s.clone())).unwrap();
        assert_eq!(q2.pending()[0].owner, kid());
        assert_eq!(q2.pending()[1].owner, Owner::default());
        // A file of the previous version (no owners): whose reports they are is unknown.
        s.save(
            REPORTS_FILE,
            br#"{"version":1,"nextSeq":5,"reports":[{"kind":"screenTime","seq":4,"minutesUsed":9}]}"#,
        )
        .unwrap();
        let q3 = ReportStore::load(Arc::new(s)).unwrap();
        assert!(q3.pending().is_empty());
        assert_eq!(q3.next_seq, 5);
    }

    #[test]
    fn owner_comes_from_the_token_claims() {
        let token = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldmljZSJ9.eyJzdWIiOiJkMSIsImNpZCI6ImNoaWxkLTciLCJ0eXAiOiJkZXZpY2UifQ.c2ln";
        assert_eq!(
            owner_of(Some(token)),
            Owner {
                child_id: Some("child-7".into()),
                device_id: Some("d1".into())
            }
        );
        assert_eq!(owner_of(None), Owner::default());
    }

    #[test]
    fn queue_survives_reload_with_coalesced_screen_time() {
        let s = MemoryStorage::default();
        let mut q = ReportStore::load(Arc::new(s.clone())).unwrap();
        q.add(Report::ScreenTime { minutes_used: 10 }, kid())
            .unwrap();
        q.add(attempt("https://a"), kid()).unwrap();
        q.add(Report::ScreenTime { minutes_used: 42 }, kid())
            .unwrap();
        let q2 = ReportStore::load(Arc::new(s.clone())).unwrap();
        assert_eq!(q2.pending(), q.pending());
        let kinds: Vec<_> = q2.pending().iter().map(|r| r.report.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                attempt("https://a"),
                Report::ScreenTime { minutes_used: 42 }
            ]
        );
        // Numbers keep increasing after a restart, even once the queue drained.
        let mut q3 = ReportStore::load(Arc::new(s.clone())).unwrap();
        for seq in [1, 2] {
            q3.remove(seq).unwrap();
        }
        let q4 = ReportStore::load(Arc::new(s)).unwrap();
        assert!(q4.pending().is_empty());
        assert_eq!(q4.next_seq, 3);
    }

    #[test]
    fn failed_write_leaves_the_queue_unchanged() {
        let s = MemoryStorage::default();
        let mut q = ReportStore::load(Arc::new(s.clone())).unwrap();
        q.add(attempt("https://a"), kid()).unwrap();
        s.set_fail_saves(true);
        assert!(q
            .add(Report::ScreenTime { minutes_used: 5 }, kid())
            .is_err());
        assert_eq!(q.pending().len(), 1);
        assert_eq!(q.next_seq, 1);
    }

    #[test]
    fn corrupt_file_is_kept_aside() {
        let s = MemoryStorage::default();
        s.save(REPORTS_FILE, b"{nope").unwrap();
        let q = ReportStore::load(Arc::new(s.clone())).unwrap();
        assert!(q.pending().is_empty());
        assert!(s.get("agent-reports.json.corrupt").is_some());
    }

    #[test]
    fn child_id_comes_from_the_token_claims() {
        // {"alg":"HS256","kid":"device"} . {"sub":"d1","cid":"child-7","typ":"device"} . sig
        let token = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldmljZSJ9.eyJzdWIiOiJkMSIsImNpZCI6ImNoaWxkLTciLCJ0eXAiOiJkZXZpY2UifQ.c2ln";
        assert_eq!(child_id_of(token).as_deref(), Some("child-7"));
        assert_eq!(child_id_of("device-token-1"), None);
        assert_eq!(child_id_of("a.!!!.c"), None);
        assert_eq!(child_id_of("a.e30.c"), None, "no cid claim");
    }
}
