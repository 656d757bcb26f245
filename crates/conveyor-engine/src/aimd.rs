//! How many write requests one file keeps in flight: additive increase while
//! latency stays near the best seen, multiplicative decrease when it climbs
//! (the storage is queueing) or a request fails, like TCP's congestion window
//! and AuraIO's io_uring depth control.

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
        Aimd {
            limit: 1.0,
            max: max.max(1) as f64,
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
}
