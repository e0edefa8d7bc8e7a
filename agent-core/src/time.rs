//! Time: the device's wall clock behind the [`Clock`] seam, the relay's clock as the agent
//! knows it ([`RelayClock`]), and a small RFC 3339 parser.
//!
//! Timers (backoff, liveness, ack retries, command timeouts) run on `tokio::time` so tests
//! drive them with `tokio::time::pause`; the state machines get that monotonic time as a
//! value (`machine::Time`). **Command expiry is judged by the relay's clock**, never the
//! device's: the relay says its time in `ready` (and with every HTTPS pull), and the agent
//! adds the monotonic time elapsed since. A child who moves the phone's clock changes
//! nothing. The wall clock only stamps ledger entries, for people reading them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of wall-clock time in Unix milliseconds.
pub(crate) trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
}

/// The system clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock the test sets by hand.
#[allow(dead_code)]
pub(crate) struct ManualClock(AtomicI64);

#[allow(dead_code)]
impl ManualClock {
    pub(crate) fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }
    pub(crate) fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The relay's clock: its time when last heard, and the monotonic instant it was heard at.
#[derive(Default)]
pub(crate) struct RelayClock {
    heard: std::sync::Mutex<Option<(tokio::time::Instant, i64)>>,
}

impl RelayClock {
    /// The relay said its time is `relay_ms` (Unix ms), just now.
    pub(crate) fn heard(&self, relay_ms: i64) {
        if let Ok(mut h) = self.heard.lock() {
            *h = Some((tokio::time::Instant::now(), relay_ms));
        }
    }

    /// The relay's time now, by the last time heard plus the monotonic time since; `None`
    /// before the relay said its time. It lags the relay by the one-way delay of the frame
    /// it came in (milliseconds).
    pub(crate) fn now_ms(&self) -> Option<i64> {
        let (at, ms) = (*self.heard.lock().ok()?)?;
        let elapsed = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
        Some(ms.saturating_add(elapsed))
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-25T19:30:00.000Z`, `...+02:00`) into Unix
/// milliseconds. Returns `None` for anything malformed or out of range.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 || !s.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let digits = &s[start..end.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
        i = end;
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_timestamps() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T19:30:00.000Z"),
            Some(1_795_635_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T20:30:00.000+01:00"),
            Some(1_795_635_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00.123456Z"),
            Some(951_782_400_123)
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2026-11-25",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-25T19:30:00",
            "2026-11-25T19:30:00.Z",
            "2026-11-25T19:30:00Zjunk",
            "2026-11-25T25:30:00Z",
            "२०२६-11-25T19:30:00Z",
            "+026-11-25T19:30:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
    }
}
