//! The report queue's decisions: which report (screen time, restricted attempt) to post
//! next, when to retry one, when to give up, when to wait for a new token.
//!
//! The machine mirrors the persisted report queue (`reports.rs`, same order, same rules
//! through [`enqueue`]) and adds what is not persisted: when each report may be tried next,
//! and whether the relay refused the token. Reports are posted one at a time, in queue
//! order, skipping those that wait.
//!
//! | answer | decision |
//! |---|---|
//! | 2xx | done: [`Action::Finished`] `Sent` |
//! | network error, 5xx, 408, 429 | keep: retry after the report backoff (by its attempt count), at least `Retry-After` (capped at 1 h) |
//! | 401, or no child id in the token | keep: post nothing until the token changes |
//! | not posted: the token names another child than the report's [`Owner`] | drop: [`Action::Finished`] `Discarded` |
//! | any other status | give up: [`Action::Finished`] `Rejected { status }` |
//!
//! Queue rules ([`enqueue`]): screen time is a latest value, so a new screen-time report
//! replaces the unsent one (at most one is ever pending); restricted attempts are events,
//! each kept, at most [`MAX_RESTRICTED`] pending (the oldest is dropped beyond that).

use std::collections::BTreeMap;
use std::time::Duration;

use super::Time;
use crate::backoff::{Rng, ACK};

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
    /// Failed attempts in this process (not persisted: a restart tries at once).
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
    /// Make every waiting report due now (the relay is reachable, the network is back).
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
    /// The report failed and is kept; `delay` is the wait before the next try.
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
    /// When each waiting report may be tried next (absent = now).
    retry_at: BTreeMap<u64, Time>,
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
            retry_at: BTreeMap::new(),
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

    /// When to deliver [`Event::Timer`]: the earliest retry, while nothing is in flight
    /// and the token is usable.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        if self.idle() {
            return None;
        }
        self.queue
            .iter()
            .filter_map(|r| self.retry_at.get(&r.seq).copied())
            .min()
    }

    /// Handles one event at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Queued(report) => {
                for gone in enqueue(&mut self.queue, report) {
                    self.retry_at.remove(&gone.seq);
                }
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
                    self.retry_at.clear();
                }
            }
            Event::RetryNow => self.retry_at.clear(),
            Event::Clear => {
                // An answer to a post in flight finds nothing and only frees the line.
                self.queue.clear();
                self.retry_at.clear();
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
            Answer::Retryable { retry_after } => {
                let r = &mut self.queue[pos];
                let mut delay = ACK.delay(r.attempts, &mut self.rng);
                if let Some(ra) = retry_after {
                    delay = delay.max(ra.min(MAX_RETRY_AFTER));
                }
                r.attempts = r.attempts.saturating_add(1);
                self.retry_at.insert(seq, now + delay);
                out.push(Action::Retry {
                    seq,
                    attempts: r.attempts,
                    delay,
                });
                return;
            }
        };
        self.queue.remove(pos);
        self.retry_at.remove(&seq);
        out.push(Action::Finished { seq, outcome });
    }

    /// Posts the first report that may be tried now, if none is in flight.
    fn post_next(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.idle() {
            return;
        }
        let due = self
            .queue
            .iter()
            .find(|r| self.retry_at.get(&r.seq).is_none_or(|t| *t <= now));
        if let Some(r) = due {
            self.in_flight = Some(r.seq);
            out.push(Action::Post(r.clone()));
        }
    }
}
