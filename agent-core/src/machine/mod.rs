//! The agent's protocol decisions as synchronous state machines, without I/O.
//!
//! Two machines, each driven by one tokio task that does the I/O:
//!
//! - [`link::Link`] keeps the socket: connect and ready timeouts, first-frame auth,
//!   heartbeat negotiation, the lazily re-armed liveness deadline, reconnect with capped
//!   full-jitter backoff, 4401/4403 handling (driven by `connection.rs`);
//! - [`outbox::Outbox`] posts acks one at a time, retries the retryable answers with the
//!   ack backoff and `Retry-After`, and gives up on the final ones (driven by `outbox.rs`).
//!
//! Both have the same shape: `handle(now, event) -> Vec<Action>` and `next_deadline()`.
//! Time is a [`Time`] passed in by the caller; nothing here reads a clock, touches a file
//! or a socket, spawns a task or draws entropy (the jitter comes from a seeded
//! [`Rng`](crate::backoff::Rng) given at construction). The only side effect is `tracing`
//! log lines. This is what lets the machines be unit-tested without a runtime and driven
//! by a model checker.

use std::ops::Add;
use std::time::Duration;

pub(crate) mod link;
pub(crate) mod outbox;
pub(crate) mod reports;

#[cfg(test)]
mod tests;

/// A point on a monotonic clock: the time elapsed since an origin the driver chose (the
/// drivers use the moment the agent started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Time(pub Duration);

impl Time {
    /// The origin.
    #[cfg(test)]
    pub(crate) const ZERO: Time = Time(Duration::ZERO);

    /// `ms` milliseconds after the origin.
    #[cfg(test)]
    pub(crate) const fn ms(ms: u64) -> Time {
        Time(Duration::from_millis(ms))
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub(crate) fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }
}
