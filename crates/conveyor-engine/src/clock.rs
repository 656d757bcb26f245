//! Where the engine's notion of "now" comes from, for the rules that depend
//! on how old data is (the maximum age of pending writes and of read-ahead
//! windows). Latency statistics always use the real clock; only these
//! rules read a [`Clock`], so tests can drive them with
//! [`crate::mock::ManualClock`] instead of waiting for real time to pass.

use std::time::Instant;

/// A source of the current time for the age rules.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Instant;
}

/// The real monotonic clock ([`Instant::now`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
