//! How many write requests one file keeps in flight, and how many
//! background requests one filesystem does: additive increase while
//! latency stays near the best seen, multiplicative decrease when it climbs
//! (the storage is queueing) or a request fails, like TCP's congestion window
//! and AuraIO's io_uring depth control. Both executors follow the same
//! limits: they are decided where requests are cut and planned, before
//! either executor sees them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Latency above `SLOWDOWN` times the floor (plus `SLACK_NS`) counts as queueing.
const SLOWDOWN: u64 = 2;
const SLACK_NS: u64 = 100_000;

/// The adaptive in-flight limit of one file.
pub(crate) struct Aimd {
    limit: f64,
    max: f64,
    // Best recent latency; drifts up slowly so that it follows the storage.
    floor_ns: u64,
}

impl Aimd {
    pub fn new(max: usize) -> Aimd {
        Aimd::starting_at(1, max)
    }

    /// A limit that starts at `start` (a filesystem starts trusting that
    /// it serves requests concurrently, as read-ahead always assumed).
    pub fn starting_at(start: usize, max: usize) -> Aimd {
        let max = max.max(1) as f64;
        Aimd {
            limit: (start.max(1) as f64).min(max),
            max,
            floor_ns: 0,
        }
    }

    /// Requests allowed in flight now (at least one).
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// A request completed after `ns` nanoseconds.
    pub fn success(&mut self, ns: u64) {
        self.floor_ns = if self.floor_ns == 0 {
            ns
        } else {
            ns.min(self.floor_ns + self.floor_ns / 64 + 1)
        };
        if ns > SLOWDOWN * self.floor_ns + SLACK_NS {
            self.limit = (self.limit / 2.0).max(1.0);
        } else {
            self.limit = (self.limit + 1.0 / self.limit).min(self.max);
        }
    }

    /// A request failed.
    pub fn failure(&mut self) {
        self.limit = (self.limit / 2.0).max(1.0);
    }
}

/// The background requests of one filesystem (device) in flight, and
/// their AIMD limit. Every file may keep one request in flight whatever
/// the others do (so none waits on another's), and starts more only while
/// the filesystem's count is under its limit.
pub(crate) struct Depth {
    // Requests started and not finished, all files of the device together.
    inflight: AtomicUsize,
    aimd: Mutex<Aimd>,
}

impl Depth {
    pub fn new(max: usize) -> Depth {
        Depth {
            inflight: AtomicUsize::new(0),
            aimd: Mutex::new(Aimd::starting_at(max, max)),
        }
    }

    fn aimd(&self) -> std::sync::MutexGuard<'_, Aimd> {
        self.aimd.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many more requests the filesystem may start now.
    pub fn room(&self) -> usize {
        self.aimd()
            .limit()
            .saturating_sub(self.inflight.load(Ordering::Acquire))
    }

    /// The limit now.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.aimd().limit()
    }

    /// A request started.
    pub fn begin(&self) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
    }

    /// A request finished after `ns` nanoseconds (`None`: it failed).
    pub fn end(&self, ns: Option<u64>) {
        // Never below zero, even if a caller pairs wrongly.
        let _ = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        let mut a = self.aimd();
        match ns {
            Some(ns) => a.success(ns),
            None => a.failure(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_fast_and_halves_when_slow() {
        let mut a = Aimd::new(8);
        for _ in 0..100 {
            a.success(1_000_000);
        }
        assert_eq!(a.limit(), 8);
        a.success(10_000_000);
        assert_eq!(a.limit(), 4);
        a.failure();
        assert_eq!(a.limit(), 2);
        for _ in 0..10 {
            a.failure();
        }
        assert_eq!(a.limit(), 1);
    }

    #[test]
    fn a_filesystem_starts_trusting_and_shrinks_when_latency_climbs() {
        let d = Depth::new(16);
        assert_eq!(d.room(), 16);
        for _ in 0..4 {
            d.begin();
        }
        assert_eq!(d.room(), 12);
        d.end(Some(1_000_000));
        d.end(Some(1_000_000));
        assert_eq!(d.room(), 14);
        // Queueing: latency far above the best seen halves the limit.
        d.end(Some(50_000_000));
        assert_eq!(d.limit(), 8);
        assert_eq!(d.room(), 7);
        d.end(None);
        assert_eq!(d.limit(), 4);
        assert_eq!(d.room(), 4);
        // More ends than begins never wrap the count.
        d.end(Some(1_000_000));
        assert_eq!(d.room(), 4);
    }
}
