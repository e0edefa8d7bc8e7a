//! The outbox's decisions: which ack to post next, when to retry one, when to give up.
//!
//! The machine mirrors the ledger's persisted outbox (same order, same bound, an ack for
//! the same id replacing the older one) and adds what is not persisted: when each ack may
//! be tried next. Acks are posted one at a time, in outbox order, skipping those that wait.
//!
//! | answer | decision |
//! |---|---|
//! | 2xx | done: [`Action::Finished`] `Confirmed` |
//! | network error, 5xx, 408, 429 | keep: retry after the ack backoff (by the ack's attempt count), at least `Retry-After` (capped at 1 h) |
//! | 401 | keep: post nothing until the token changes ([`Event::TokenChanged`]); an ack is never lost to an expired or rotated token |
//! | any other status | give up: [`Action::Finished`] `Rejected { status }` |

use std::collections::BTreeMap;
use std::time::Duration;

use super::Time;
use crate::backoff::{Rng, ACK};
use crate::ledger::PendingAck;
use crate::platform::AckResult;

/// Longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
    /// 401 with the token that is still the current one: wait for another.
    Unauthorized,
    /// A final refusal with this status (0 when there was no status).
    Final {
        /// The HTTP status.
        status: u16,
    },
}

/// What happened, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// An ack was put in the ledger's outbox (at load, or when a command finished).
    Queued(PendingAck),
    /// Whether the agent has a token to post with. `false` also abandons a post asked
    /// for but not made.
    Token(bool),
    /// Make every waiting ack due now (the relay is reachable, the network is back).
    RetryNow,
    /// The device token changed (refreshed, rotated, re-paired): ends a wait after 401.
    TokenChanged,
    /// The post asked for by [`Action::Post`] got this answer.
    Answered {
        /// The ack's command id.
        id: String,
        /// The answer.
        answer: Answer,
    },
    /// [`Outbox::next_deadline`] passed.
    Timer,
    /// `stop` was called: post nothing more (the acks stay queued for the next start).
    Stop,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Post this ack, then report [`Event::Answered`].
    Post(PendingAck),
    /// The ack failed and is kept: count the attempt in the ledger. `attempts` is the new
    /// count, `delay` the wait before the next try.
    Retry {
        /// The ack's command id.
        id: String,
        /// Failed attempts so far.
        attempts: u32,
        /// The wait before the next try.
        delay: Duration,
    },
    /// The relay answered for good: drop the ack from the ledger and tell the host.
    Finished {
        /// The ack that was posted.
        ack: PendingAck,
        /// How the relay answered.
        result: AckResult,
    },
}

/// The outbox state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outbox {
    queue: Vec<PendingAck>,
    /// When each waiting ack may be tried next (absent = now).
    retry_at: BTreeMap<String, Time>,
    /// The ack being posted.
    in_flight: Option<String>,
    has_token: bool,
    /// A post was refused with 401 using the current token: wait for another.
    auth_blocked: bool,
    stopped: bool,
    rng: Rng,
}

impl Outbox {
    /// An empty outbox drawing its jitter from `rng`.
    pub(crate) fn new(has_token: bool, rng: Rng) -> Self {
        Self {
            queue: Vec::new(),
            retry_at: BTreeMap::new(),
            in_flight: None,
            has_token,
            auth_blocked: false,
            stopped: false,
            rng,
        }
    }

    /// Acks queued (including one in flight).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// What the model checker tells states apart by: the queue (ids and statuses), the ack
    /// in flight and the 401 wait. Left out: when each ack may be retried, attempt counts
    /// and the jitter's generator, which only set delays (the model abstracts time away).
    #[cfg(feature = "sim")]
    pub(crate) fn sim_key(
        &self,
    ) -> (
        Vec<(String, crate::command::AckStatus)>,
        Option<String>,
        bool,
    ) {
        (
            self.queue
                .iter()
                .map(|a| (a.id.clone(), a.status))
                .collect(),
            self.in_flight.clone(),
            self.auth_blocked,
        )
    }

    /// Whether [`Event::Stop`] was handled.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// When to deliver [`Event::Timer`]: the earliest retry, while nothing is in flight.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        if self.stopped || !self.has_token || self.auth_blocked || self.in_flight.is_some() {
            return None;
        }
        self.queue
            .iter()
            .filter_map(|a| self.retry_at.get(&a.id).copied())
            .min()
    }

    /// Handles one event at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Queued(ack) => self.push(ack),
            Event::Token(has) => {
                self.has_token = has;
                if !has {
                    // Nothing can be in flight without a token: the driver abandons a
                    // post it could not make.
                    self.in_flight = None;
                }
            }
            Event::RetryNow => self.retry_at.clear(),
            Event::TokenChanged => {
                self.auth_blocked = false;
                self.retry_at.clear();
            }
            Event::Answered { id, answer } => self.answered(now, id, answer, &mut out),
            Event::Timer => {}
            Event::Stop => {
                self.stopped = true;
                self.in_flight = None;
            }
        }
        self.post_next(now, &mut out);
        out
    }

    fn push(&mut self, ack: PendingAck) {
        self.retry_at.remove(&ack.id);
        self.queue.retain(|a| a.id != ack.id);
        // No count cap: an ack leaves only when the relay answered it (see the ledger).
        self.queue.push(ack);
    }

    fn answered(&mut self, now: Time, id: String, answer: Answer, out: &mut Vec<Action>) {
        if self.in_flight.as_deref() == Some(id.as_str()) {
            self.in_flight = None;
        }
        let Some(pos) = self.queue.iter().position(|a| a.id == id) else {
            return;
        };
        let result = match answer {
            Answer::Ok => {
                tracing::info!(id = %id, status = self.queue[pos].status.as_str(), "ack confirmed");
                AckResult::Confirmed
            }
            Answer::Retryable { retry_after } => {
                let ack = &mut self.queue[pos];
                let mut delay = ACK.delay(ack.attempts, &mut self.rng);
                if let Some(ra) = retry_after {
                    delay = delay.max(ra.min(MAX_RETRY_AFTER));
                }
                ack.attempts = ack.attempts.saturating_add(1);
                self.retry_at.insert(id.clone(), now + delay);
                out.push(Action::Retry {
                    id,
                    attempts: ack.attempts,
                    delay,
                });
                return;
            }
            Answer::Unauthorized => {
                tracing::warn!(id = %id, "ack refused with 401; kept until the token changes");
                self.auth_blocked = true;
                return;
            }
            Answer::Final { status } => AckResult::Rejected { status },
        };
        let ack = self.queue.remove(pos);
        self.retry_at.remove(&ack.id);
        out.push(Action::Finished { ack, result });
    }

    /// Posts the first ack that may be tried now, if none is in flight.
    fn post_next(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.stopped || !self.has_token || self.auth_blocked || self.in_flight.is_some() {
            return;
        }
        let due = self
            .queue
            .iter()
            .find(|a| self.retry_at.get(&a.id).is_none_or(|t| *t <= now));
        if let Some(ack) = due {
            self.in_flight = Some(ack.id.clone());
            out.push(Action::Post(ack.clone()));
        }
    }
}
