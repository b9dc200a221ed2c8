//! Time, injectable so tests can move it instead of sleeping.

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current UTC time, truncated to microseconds (what PostgreSQL keeps).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// Truncates to whole microseconds so values survive a database round trip unchanged.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_micros(Utc::now())
    }
}

/// The real clock shifted by an adjustable offset (tests use it to jump past hold expiry).
#[derive(Clone, Debug, Default)]
pub struct OffsetClock {
    offset_micros: Arc<AtomicI64>,
}

impl OffsetClock {
    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let micros = d.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let off = Duration::microseconds(self.offset_micros.load(Ordering::SeqCst));
        to_micros(Utc::now() + off)
    }
}
