//! Wall-clock time, injectable so expiry can be tested at its exact boundary.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of UTC wall-clock time.
///
/// Expiry is always judged against this clock, on every cache hit, never against the
/// cache's own timers. Implemented for closures:
///
/// ```
/// use chrono::{DateTime, Utc};
/// use tower_customer_session::Clock;
///
/// let fixed = || DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
/// assert_eq!(fixed.now().timestamp(), 1_700_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in microseconds since the Unix epoch, which is all an expiry check
    /// needs. Override it when there is a cheaper way than building a calendar date.
    fn now_micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync + 'static,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// The system clock (`Utc::now()`); the default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn now_micros(&self) -> i64 {
        // Skips chrono's calendar conversion: this runs on every authenticated request.
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use chrono::TimeDelta;
/// use tower_customer_session::{Clock, ManualClock};
///
/// let clock = ManualClock::new(chrono::Utc::now());
/// let before = clock.now();
/// clock.advance(TimeDelta::hours(1));
/// assert_eq!(clock.now() - before, TimeDelta::hours(1));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start` (microsecond precision).
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// Move the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        self.micros.store(at.timestamp_micros(), Ordering::SeqCst);
    }

    /// Move the clock forward (or back, with a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let by = by.num_microseconds().expect("delta fits in microseconds");
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.now_micros())
            .expect("manual clock within chrono's range")
    }

    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_micros_agree_with_now() {
        let before = Utc::now().timestamp_micros();
        let micros = SystemClock.now_micros();
        let after = Utc::now().timestamp_micros();
        assert!(before <= micros && micros <= after);
    }
}
