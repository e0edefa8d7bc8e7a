//! The report queue's decisions: which report (screen time, restricted attempt) to post
//! next, when to retry one, when to give up, when to wait for a new token.
//!
//! The machine mirrors the persisted report queue (`reports.rs`, same order, same rules
//! through [`enqueue`]) and adds what is not persisted: when each report may be tried next,
//! and whether the relay refused the token. Reports are posted one at a time, in queue
//! order.
//!
//! Backoff is **queue-wide**: after a retryable answer the whole queue waits (by the count
//! of consecutive retryable answers, at least `Retry-After`), so a failing relay sees one
//! request per wait from a device, not one per queued report — the reports share the
//! per-device rate limit with command acks. [`Event::RetryNow`] (the socket connected, the
//! network is back) ends the backoff wait, but never a `Retry-After` the relay asked for.
//!
//! | answer | decision |
//! |---|---|
//! | 2xx | done: [`Action::Finished`] `Sent` |
//! | network error, 5xx, 408, 429 | keep; the whole queue waits: backoff by consecutive failures, at least `Retry-After` (capped at 1 h) |
//! | 401, or no child id in the token | keep: post nothing until the token changes |
//! | not posted: the token names another child than the report's [`Owner`] | drop: [`Action::Finished`] `Discarded` |
//! | any other status | give up: [`Action::Finished`] `Rejected { status }` |
//!
//! Queue rules ([`enqueue`]): screen time is a latest value, so a new screen-time report
//! replaces the unsent one (at most one is ever pending); restricted attempts are events,
//! each kept, at most [`MAX_RESTRICTED`] pending (the oldest is dropped beyond that).

use std::time::Duration;

use super::outbox::MAX_RETRY_AFTER;
use super::Time;
use crate::backoff::{Rng, ACK};

/// Most restricted-attempt reports kept unsent; beyond it the oldest is dropped.
pub(crate) const MAX_RESTRICTED: usize = 300;

/// What is reported.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Report {
    /// Minutes the child used today (a latest value).
    ScreenTime {
        /// 0–1440.
        minutes_used: u32,
    },
    /// A restricted-content attempt, as the relay's body (already validated).
    Restricted(wire::rest::RestrictedAttempt),
}

impl Report {
    /// A short name for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Report::ScreenTime { .. } => "screenTime",
            Report::Restricted(_) => "restrictedAttempt",
        }
    }
}

/// Whose report it is: the claims of the device token current when it was queued
/// (`cid`, `sub`; `None` when there was no token or it has no such claim). A report is
/// only ever posted with a token naming the same child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The child (`cid` claim).
    pub child_id: Option<String>,
    /// The device (`sub` claim), for logs.
    pub device_id: Option<String>,
}

/// A report waiting for the relay's answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PendingReport {
    /// Its number in the queue (unique, increasing, persisted).
    pub seq: u64,
    /// Whose it is (persisted).
    pub owner: Owner,
    /// What it reports.
    pub report: Report,
    /// Failed attempts in this process (not persisted: a restart tries at once), for logs.
    pub attempts: u32,
}

/// Puts `report` at the end of `queue` under the queue rules; returns the reports it
/// displaced (an unsent screen-time report it replaces, restricted attempts over the
/// bound). The persisted queue and the machine both apply it, in the same order.
pub(crate) fn enqueue(queue: &mut Vec<PendingReport>, report: PendingReport) -> Vec<PendingReport> {
    let mut displaced = Vec::new();
    if matches!(report.report, Report::ScreenTime { .. }) {
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(queue)
            .into_iter()
            .partition(|r| matches!(r.report, Report::ScreenTime { .. }));
        *queue = keep;
        displaced.extend(old);
    }
    queue.push(report);
    let restricted = |q: &Vec<PendingReport>| {
        q.iter()
            .filter(|r| matches!(r.report, Report::Restricted(_)))
            .count()
    };
    while restricted(queue) > MAX_RESTRICTED {
        if let Some(pos) = queue
            .iter()
            .position(|r| matches!(r.report, Report::Restricted(_)))
        {
            displaced.push(queue.remove(pos));
        }
    }
    displaced
}

/// How the relay answered a post, as far as the decision goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Answer {
    /// 2xx.
    Ok,
    /// Worth retrying (network error, 5xx, 408, 429), with the relay's `Retry-After`.
    Retryable {
        /// What the relay asked for, if anything.
        retry_after: Option<Duration>,
    },
    /// 401, or the token names no child: wait for a new token.
    Unauthorized,
    /// A final refusal with this status (0 when there was no status).
    Final {
        /// The HTTP status.
        status: u16,
    },
    /// Not posted: the current token names another child than the report's owner.
    OtherChild,
}

/// How a report ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The relay took it.
    Sent,
    /// The relay refused it for good.
    Rejected {
        /// The HTTP status (0 when there was none).
        status: u16,
    },
    /// Never posted: it belongs to another child than the current token's.
    Discarded,
}

/// What happened, as the driver saw it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// A report was put in the persisted queue (at load, or by the host).
    Queued(PendingReport),
    /// The token, as the driver sees it: whether there is one, and whether it changed
    /// since the last look (a new token ends a wait after 401).
    Token {
        /// A token is stored.
        present: bool,
        /// It is not the one the last look saw.
        changed: bool,
    },
    /// End the queue's backoff wait (the relay is reachable, the network is back); a
    /// `Retry-After` still holds. The driver sends it once per connect.
    RetryNow,
    /// The token was cleared: every queued report is forgotten (the persisted queue was
    /// emptied by the driver).
    Clear,
    /// The post asked for by [`Action::Post`] got this answer.
    Answered {
        /// The report's number.
        seq: u64,
        /// The answer.
        answer: Answer,
    },
    /// [`Reports::next_deadline`] passed.
    Timer,
    /// `stop` was called: post nothing more (the reports stay queued for the next start).
    Stop,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// Post this report, then report [`Event::Answered`].
    Post(PendingReport),
    /// The report failed and is kept; `delay` is the whole queue's wait before the next
    /// post.
    Retry {
        /// The report's number.
        seq: u64,
        /// Failed attempts so far.
        attempts: u32,
        /// The wait before the next try.
        delay: Duration,
    },
    /// The relay answered for good: drop the report from the persisted queue.
    Finished {
        /// The report's number.
        seq: u64,
        /// How it ended.
        outcome: Outcome,
    },
}

/// The report queue's state machine.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reports {
    queue: Vec<PendingReport>,
    /// Retryable answers in a row (reset by any other answer from the relay).
    failures: u32,
    /// Nothing is posted before this (the queue's backoff).
    wait_until: Option<Time>,
    /// The relay's `Retry-After`: [`Event::RetryNow`] does not end the wait before it.
    not_before: Option<Time>,
    /// The report being posted.
    in_flight: Option<u64>,
    has_token: bool,
    /// The relay refused the token (or it names no child): wait for another.
    held: bool,
    stopped: bool,
    rng: Rng,
}

impl Reports {
    /// An empty queue drawing its jitter from `rng`.
    pub(crate) fn new(has_token: bool, rng: Rng) -> Self {
        Self {
            queue: Vec::new(),
            failures: 0,
            wait_until: None,
            not_before: None,
            in_flight: None,
            has_token,
            held: false,
            stopped: false,
            rng,
        }
    }

    /// Reports queued (including one in flight).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether [`Event::Stop`] was handled.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn idle(&self) -> bool {
        self.stopped || !self.has_token || self.held || self.in_flight.is_some()
    }

    /// When to deliver [`Event::Timer`]: the end of the queue's wait, while reports are
    /// queued, nothing is in flight and the token is usable.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        if self.idle() || self.queue.is_empty() {
            return None;
        }
        self.wait_until
    }

    /// Ends the backoff wait, keeping a `Retry-After` the relay asked for.
    fn end_wait(&mut self, now: Time) {
        self.wait_until = self.not_before.filter(|t| *t > now);
    }

    /// Handles one event at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Queued(report) => {
                enqueue(&mut self.queue, report);
            }
            Event::Token { present, changed } => {
                self.has_token = present;
                if !present {
                    // Nothing can be in flight without a token: the driver abandons a
                    // post it could not make.
                    self.in_flight = None;
                }
                if changed && self.held {
                    tracing::info!("new token; reports resume");
                    self.held = false;
                    self.end_wait(now);
                }
            }
            Event::RetryNow => self.end_wait(now),
            Event::Clear => {
                // An answer to a post in flight finds nothing and only frees the line.
                self.queue.clear();
            }
            Event::Answered { seq, answer } => self.answered(now, seq, answer, &mut out),
            Event::Timer => {}
            Event::Stop => {
                self.stopped = true;
                self.in_flight = None;
            }
        }
        self.post_next(now, &mut out);
        out
    }

    fn answered(&mut self, now: Time, seq: u64, answer: Answer, out: &mut Vec<Action>) {
        if self.in_flight == Some(seq) {
            self.in_flight = None;
        }
        // What the relay's answer says about the relay, whichever report it was for.
        match &answer {
            Answer::Retryable { retry_after } => {
                let mut delay = ACK.delay(self.failures, &mut self.rng);
                self.failures = self.failures.saturating_add(1);
                self.not_before = retry_after.map(|ra| now + ra.min(MAX_RETRY_AFTER));
                if let Some(ra) = retry_after {
                    delay = delay.max((*ra).min(MAX_RETRY_AFTER));
                }
                self.wait_until = Some(now + delay);
                if let Some(r) = self.queue.iter_mut().find(|r| r.seq == seq) {
                    r.attempts = r.attempts.saturating_add(1);
                    out.push(Action::Retry {
                        seq,
                        attempts: r.attempts,
                        delay,
                    });
                }
                return;
            }
            Answer::Ok | Answer::Final { .. } => {
                self.failures = 0;
                self.wait_until = None;
                self.not_before = None;
            }
            Answer::Unauthorized | Answer::OtherChild => {}
        }
        // Gone already: replaced by a newer screen-time value while in flight.
        let Some(pos) = self.queue.iter().position(|r| r.seq == seq) else {
            return;
        };
        let outcome = match answer {
            Answer::Ok => Outcome::Sent,
            Answer::Final { status } => Outcome::Rejected { status },
            Answer::OtherChild => Outcome::Discarded,
            Answer::Unauthorized => {
                tracing::warn!(
                    seq,
                    "report refused with this token; waiting for a new token"
                );
                self.held = true;
                return;
            }
            Answer::Retryable { .. } => return, // handled above
        };
        self.queue.remove(pos);
        out.push(Action::Finished { seq, outcome });
    }

    /// Posts the first report, if none is in flight and the queue's wait is over.
    fn post_next(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.idle() || self.wait_until.is_some_and(|t| t > now) {
            return;
        }
        if let Some(r) = self.queue.first() {
            self.wait_until = None;
            self.in_flight = Some(r.seq);
            out.push(Action::Post(r.clone()));
        }
    }
}
