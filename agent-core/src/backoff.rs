//! Capped full-jitter backoff.
//!
//! Attempt `n` (0-based) waits a uniformly random time in `[floor, min(cap, base·2ⁿ)]`.
//! The socket uses base 1 s, cap 60 s, floor 250 ms: the ceilings run 1, 2, 4, 8, 16, 32,
//! 60, 60, ... seconds, so a fleet of devices that lost the relay at the same moment spreads
//! its reconnects over the whole window instead of arriving in waves. Acks use the same
//! schedule (see `docs/agent.md`).

use std::time::Duration;

/// The parameters of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Schedule {
    pub base: Duration,
    pub cap: Duration,
    pub floor: Duration,
}

/// Reconnect schedule of the socket.
pub(crate) const SOCKET: Schedule = Schedule {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
    floor: Duration::from_millis(250),
};

/// Retry schedule of one ack in the outbox.
pub(crate) const ACK: Schedule = Schedule {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
    floor: Duration::from_millis(250),
};

impl Schedule {
    /// The upper bound of the wait before attempt `attempt` (0-based).
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .saturating_mul(factor)
            .min(self.cap)
            .max(self.floor)
    }

    /// A jittered wait before attempt `attempt`.
    pub(crate) fn delay(&self, attempt: u32, rng: &mut Rng) -> Duration {
        let hi = self.ceiling(attempt);
        let span = hi.saturating_sub(self.floor).as_millis() as u64;
        self.floor + Duration::from_millis(rng.below(span.saturating_add(1)))
    }
}

/// A running backoff: a schedule plus the number of failed attempts so far. Pure: the
/// jitter comes from the [`Rng`] it was given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Backoff {
    schedule: Schedule,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub(crate) fn new(schedule: Schedule, rng: Rng) -> Self {
        Self {
            schedule,
            attempt: 0,
            rng,
        }
    }

    /// The next wait; grows the attempt counter.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.schedule.delay(self.attempt, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Back to the first step (after a connection that held).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    #[cfg(test)]
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// A tiny xorshift64* generator: jitter needs spread, not cryptographic quality, and this
/// keeps a random-number crate out of the phone build. Seeded by the caller, so the state
/// machines that draw from it stay deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded from the process's hash randomness and the wall clock.
    pub(crate) fn from_entropy() -> Self {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Self::seeded(h.finish())
    }

    /// A generator with a fixed seed (tests, model checking).
    pub(crate) fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, n)` (`0` when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_then_cap() {
        let got: Vec<u64> = (0..9).map(|n| SOCKET.ceiling(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(SOCKET.ceiling(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn delays_stay_in_window_and_spread() {
        let mut rng = Rng::seeded(42);
        for attempt in 0..12 {
            let mut min = Duration::MAX;
            let mut max = Duration::ZERO;
            for _ in 0..500 {
                let d = SOCKET.delay(attempt, &mut rng);
                assert!(d >= SOCKET.floor && d <= SOCKET.ceiling(attempt), "{d:?}");
                min = min.min(d);
                max = max.max(d);
            }
            // Full jitter: the draws cover most of the window, not a point.
            let window = SOCKET.ceiling(attempt) - SOCKET.floor;
            assert!(
                max - min >= window * 8 / 10,
                "attempt {attempt}: {min:?}..{max:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_resets() {
        let mut b = Backoff::new(SOCKET, Rng::seeded(7));
        for _ in 0..7 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 7);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
