//! The outbox task: drives [`machine::outbox`](crate::machine::outbox) — feeds it the acks
//! the executor queued, the token's presence and the relay's answers, and does what it
//! decides (post over HTTP, count an attempt, drop an answered ack and tell the host).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::api::{Api, HttpError};
use crate::backoff::Rng;
use crate::commands::SharedLedger;
use crate::ledger::PendingAck;
use crate::machine::outbox::{self as m, Answer};
use crate::machine::Time;
use crate::platform::{guard, Platform};
use crate::token::Credentials;
use crate::{lock, stopped};

/// The outbox's inputs from other threads, and its "drained" signal.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Acks queued since the task last looked, in ledger order.
    inbox: Mutex<Vec<PendingAck>>,
    /// Every waiting ack should be tried now.
    retry_now: AtomicBool,
    /// Something above changed.
    wake: Notify,
    /// An ack left the outbox.
    pub drained: Notify,
}

impl Outbox {
    /// Queues an ack the ledger just put in its outbox. Call it under the ledger's lock.
    pub(crate) fn queue(&self, ack: PendingAck) {
        lock(&self.inbox).push(ack);
        self.wake.notify_one();
    }

    /// Makes every queued ack due now (the relay is reachable, the network is back).
    pub(crate) fn retry_now(&self) {
        self.retry_now.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Wakes the task to look again.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Takes the acks queued since the last look (tests without the task).
    #[cfg(test)]
    pub(crate) fn take_queued(&self) -> Vec<PendingAck> {
        std::mem::take(&mut *lock(&self.inbox))
    }
}

/// What the task needs besides its [`Outbox`].
pub(crate) struct Deps {
    pub ledger: SharedLedger,
    pub api: Arc<dyn Api>,
    pub credentials: Arc<Credentials>,
    pub platform: Arc<dyn Platform>,
}

/// Runs the outbox until `stop` (acks left stay in the ledger for the next start).
pub(crate) async fn run(outbox: Arc<Outbox>, deps: Deps, mut stop: watch::Receiver<bool>) {
    let origin = Instant::now();
    let now = || Time(origin.elapsed());
    let mut tokens = deps.credentials.subscribe();
    let mut machine = m::Outbox::new(tokens.borrow_and_update().is_some(), Rng::from_entropy());
    let mut events = VecDeque::new();
    // The error of the last post, for the log line of its retry.
    let mut last_error: Option<HttpError> = None;
    loop {
        if *stop.borrow() {
            events.push_back(m::Event::Stop);
        }
        let queued: Vec<PendingAck> = std::mem::take(&mut *lock(&outbox.inbox));
        events.extend(queued.into_iter().map(m::Event::Queued));
        if outbox.retry_now.swap(false, Ordering::SeqCst) {
            events.push_back(m::Event::RetryNow);
        }
        events.push_back(m::Event::Token(tokens.borrow_and_update().is_some()));
        while let Some(event) = events.pop_front() {
            for action in machine.handle(now(), event) {
                match action {
                    m::Action::Post(ack) => {
                        let Some(token) = deps.credentials.current() else {
                            events.push_back(m::Event::Token(false));
                            continue;
                        };
                        let res = tokio::select! {
                            r = deps.api.ack(&token.0, &ack.id, ack.status, ack.error.as_deref()) => r,
                            () = stopped(&mut stop) => {
                                events.push_back(m::Event::Stop);
                                continue;
                            }
                        };
                        let mut answer = answer(&ack, res, &mut last_error);
                        if answer == Answer::Unauthorized
                            && deps.credentials.current().map(|t| t.0) != Some(token.0.clone())
                        {
                            // Refused with a token that has been replaced meanwhile (a
                            // rotation): try again at once with the new one.
                            answer = Answer::Retryable { retry_after: None };
                        }
                        events.push_back(m::Event::Answered { id: ack.id, answer });
                    }
                    m::Action::Retry {
                        id,
                        attempts,
                        delay,
                    } => {
                        lock(&deps.ledger).count_attempt(&id);
                        tracing::warn!(id = %id, error = ?last_error.take(), attempts, delay_ms = delay.as_millis() as u64, "ack not delivered; will retry");
                    }
                    m::Action::Finished { ack, result } => {
                        if let Err(e) = lock(&deps.ledger).remove_ack(&ack.id) {
                            tracing::error!(id = %ack.id, error = %e, "could not persist the outbox");
                        }
                        outbox.drained.notify_waiters();
                        let platform = deps.platform.clone();
                        guard("ack_finished", move || {
                            platform.ack_finished(ack.id, ack.status, result)
                        });
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
            () = outbox.wake.notified() => {}
            r = tokens.changed() => {
                if r.is_err() {
                    // The credentials are gone: only `stop` matters now.
                    stopped(&mut stop).await;
                }
                events.push_back(m::Event::TokenChanged);
            }
            () = stopped(&mut stop) => {}
        }
    }
}

/// What the answer to a post means for the decision; logs the final ones.
/// The outbox machine's reading of a post's result.
pub(crate) fn answer(
    ack: &PendingAck,
    res: Result<(), HttpError>,
    last_error: &mut Option<HttpError>,
) -> Answer {
    match res {
        Ok(()) => Answer::Ok,
        Err(e) if e.is_retryable() => {
            let retry_after = e.retry_after();
            *last_error = Some(e);
            Answer::Retryable { retry_after }
        }
        Err(HttpError::Status { status: 401, .. }) => Answer::Unauthorized,
        Err(HttpError::Status { status, code, .. }) => {
            tracing::warn!(id = %ack.id, status, code = %code, "ack refused by the relay; dropped (final)");
            Answer::Final { status }
        }
        Err(e) => {
            tracing::warn!(id = %ack.id, error = ?e, "ack failed; dropped (final)");
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
