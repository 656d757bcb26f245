//! Counters and histograms, per file and per process, with snapshots that can
//! reset what they read (as libconveyor's stats do).
//!
//! Every field is an independent relaxed atomic: a snapshot taken while I/O
//! runs may mix values from slightly different instants, which is fine for a
//! report and keeps the hot path free of locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const SUB: usize = 4; // sub-buckets per power of two: percentiles within 25 %
const BUCKETS: usize = 64 * SUB;

/// A log-linear histogram of `u64` samples (nanoseconds or bytes).
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    max: AtomicU64,
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let log = 63 - v.leading_zeros() as usize;
    let frac = ((v >> (log - 2)) & 3) as usize;
    (log - 1) * SUB + frac
}

fn bucket_upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let log = i / SUB + 1;
    let frac = (i % SUB) as u64;
    let base = 1u128 << log;
    u64::try_from(base + (frac as u128 + 1) * (base >> 2) - 1).unwrap_or(u64::MAX)
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one sample.
    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.max.fetch_max(v, Relaxed);
    }

    fn take(&self, reset: bool) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| {
                if reset {
                    b.swap(0, Relaxed)
                } else {
                    b.load(Relaxed)
                }
            })
            .collect()
    }

    /// Summary of the samples; with `reset`, the histogram starts empty again.
    pub fn summary(&self, reset: bool) -> Summary {
        let counts = self.take(reset);
        let sum = if reset {
            self.sum.swap(0, Relaxed)
        } else {
            self.sum.load(Relaxed)
        };
        let max = if reset {
            self.max.swap(0, Relaxed)
        } else {
            self.max.load(Relaxed)
        };
        let count: u64 = counts.iter().sum();
        let pct = |p: f64| -> u64 {
            let want = ((count as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return bucket_upper(i).min(max);
                }
            }
            max
        };
        let (p50, p99) = if count == 0 {
            (0, 0)
        } else {
            (pct(0.50), pct(0.99))
        };
        let mean = sum.checked_div(count).unwrap_or(0);
        // Power-of-two rows: what a request-size table wants to show.
        let mut pow2 = Vec::new();
        for (i, c) in counts.iter().enumerate() {
            if *c > 0 {
                let lo = if i < SUB {
                    i as u64
                } else {
                    1u64 << (i / SUB + 1)
                };
                match pow2.last_mut() {
                    Some((l, n)) if *l == lo => *n += c,
                    _ => pow2.push((lo, *c)),
                }
            }
        }
        Summary {
            count,
            sum,
            mean,
            p50,
            p99,
            max,
            pow2,
        }
    }
}

/// What a histogram held when it was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Sum of samples.
    pub sum: u64,
    /// Mean sample.
    pub mean: u64,
    /// Median (upper bound of its bucket, at most `max`).
    pub p50: u64,
    /// 99th percentile (upper bound of its bucket, at most `max`).
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// `(lower bound, count)` per power of two that has samples.
    pub pow2: Vec<(u64, u64)>,
}

/// Event counters of one file or of the whole engine.
#[derive(Default)]
pub struct Counters {
    /// Bytes the application wrote.
    pub app_write_bytes: AtomicU64,
    /// Bytes the application read.
    pub app_read_bytes: AtomicU64,
    /// Bytes written to storage.
    pub storage_write_bytes: AtomicU64,
    /// Bytes read from storage.
    pub storage_read_bytes: AtomicU64,
    /// Times a writer waited for buffer space.
    pub buffer_full_waits: AtomicU64,
    /// Reads served entirely from read-ahead data.
    pub read_ahead_hits: AtomicU64,
    /// Reads that had to ask storage.
    pub read_ahead_misses: AtomicU64,
    /// Reads that saw pending (not yet stored) data.
    pub snoop_hits: AtomicU64,
    /// Background requests submitted to io_uring (the rest ran on the pool).
    pub ring_requests: AtomicU64,
    /// Failed storage requests.
    pub errors: AtomicU64,
    /// errno of the last failure.
    pub last_errno: AtomicU64,
    /// Acknowledged bytes discarded because an earlier write failed.
    pub lost_bytes: AtomicU64,
    /// Write-behind memory limit now (per file: its adaptive limit).
    pub buffer_limit: AtomicU64,
    /// Most write-behind memory held at once.
    pub buffer_peak: AtomicU64,
    /// Write requests allowed in flight now (AIMD).
    pub inflight_limit: AtomicU64,
    /// Sizes of storage write requests.
    pub write_sizes: Histogram,
    /// Sizes of storage read requests.
    pub read_sizes: Histogram,
    /// Nanoseconds the application spent in `write`.
    pub app_write_ns: Histogram,
    /// Nanoseconds the application spent in `read`.
    pub app_read_ns: Histogram,
    /// Nanoseconds per storage write request.
    pub storage_write_ns: Histogram,
    /// Nanoseconds per storage read request.
    pub storage_read_ns: Histogram,
}

/// A read-out of [`Counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes the application wrote.
    pub app_write_bytes: u64,
    /// Bytes the application read.
    pub app_read_bytes: u64,
    /// Bytes written to storage.
    pub storage_write_bytes: u64,
    /// Bytes read from storage.
    pub storage_read_bytes: u64,
    /// Times a writer waited for buffer space.
    pub buffer_full_waits: u64,
    /// Reads served entirely from read-ahead data.
    pub read_ahead_hits: u64,
    /// Reads that asked storage.
    pub read_ahead_misses: u64,
    /// Reads that saw pending data.
    pub snoop_hits: u64,
    /// Background requests submitted to io_uring.
    pub ring_requests: u64,
    /// Failed storage requests.
    pub errors: u64,
    /// errno of the last failure (0: none).
    pub last_errno: u64,
    /// Acknowledged bytes discarded after a failure.
    pub lost_bytes: u64,
    /// Write-behind memory limit.
    pub buffer_limit: u64,
    /// Most write-behind memory held at once.
    pub buffer_peak: u64,
    /// Write requests allowed in flight (AIMD).
    pub inflight_limit: u64,
    /// Storage write request sizes.
    pub write_sizes: Summary,
    /// Storage read request sizes.
    pub read_sizes: Summary,
    /// Application `write` latency (ns).
    pub app_write_ns: Summary,
    /// Application `read` latency (ns).
    pub app_read_ns: Summary,
    /// Storage write latency (ns).
    pub storage_write_ns: Summary,
    /// Storage read latency (ns).
    pub storage_read_ns: Summary,
}

impl Counters {
    /// Reads every counter; with `reset`, the cumulative ones restart at zero
    /// (gauges such as limits keep their value).
    pub fn snapshot(&self, reset: bool) -> Snapshot {
        let get = |a: &AtomicU64| {
            if reset {
                a.swap(0, Relaxed)
            } else {
                a.load(Relaxed)
            }
        };
        Snapshot {
            app_write_bytes: get(&self.app_write_bytes),
            app_read_bytes: get(&self.app_read_bytes),
            storage_write_bytes: get(&self.storage_write_bytes),
            storage_read_bytes: get(&self.storage_read_bytes),
            buffer_full_waits: get(&self.buffer_full_waits),
            read_ahead_hits: get(&self.read_ahead_hits),
            read_ahead_misses: get(&self.read_ahead_misses),
            snoop_hits: get(&self.snoop_hits),
            ring_requests: get(&self.ring_requests),
            errors: get(&self.errors),
            last_errno: self.last_errno.load(Relaxed),
            lost_bytes: get(&self.lost_bytes),
            buffer_limit: self.buffer_limit.load(Relaxed),
            buffer_peak: self.buffer_peak.load(Relaxed),
            inflight_limit: self.inflight_limit.load(Relaxed),
            write_sizes: self.write_sizes.summary(reset),
            read_sizes: self.read_sizes.summary(reset),
            app_write_ns: self.app_write_ns.summary(reset),
            app_read_ns: self.app_read_ns.summary(reset),
            storage_write_ns: self.storage_write_ns.summary(reset),
            storage_read_ns: self.storage_read_ns.summary(reset),
        }
    }
}

/// A file's counters and the engine's totals, updated together.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub file: Arc<Counters>,
    pub total: Arc<Counters>,
}

impl Recorder {
    pub fn add(&self, pick: impl Fn(&Counters) -> &AtomicU64, n: u64) {
        pick(&self.file).fetch_add(n, Relaxed);
        pick(&self.total).fetch_add(n, Relaxed);
    }

    pub fn sample(&self, pick: impl Fn(&Counters) -> &Histogram, v: u64) {
        pick(&self.file).record(v);
        pick(&self.total).record(v);
    }

    pub fn error(&self, errno: i32) {
        self.add(|c| &c.errors, 1);
        self.file.last_errno.store(errno as u64, Relaxed);
        self.total.last_errno.store(errno as u64, Relaxed);
    }
}

/// Nanoseconds in `d`, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket() {
        let h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let s = h.summary(false);
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, 1_000_000);
        assert!(s.p50 >= 500_000 && s.p50 <= 640_000, "{}", s.p50);
        assert!(s.p99 >= 990_000 && s.p99 <= 1_000_000, "{}", s.p99);
        assert_eq!(s.mean, 500_500);
    }

    #[test]
    fn reset_on_read_empties() {
        let h = Histogram::default();
        h.record(4096);
        assert_eq!(h.summary(true).pow2, vec![(4096, 1)]);
        assert_eq!(h.summary(false).count, 0);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for v in (0..40)
            .map(|s| 1u64 << s)
            .chain([3, 5, 7, 1000, 123456789, u64::MAX])
        {
            let b = bucket_of(v);
            assert!(bucket_upper(b) >= v, "{v}");
            if v > 0 {
                assert!(b >= last || v < 8);
            }
            last = b;
        }
    }
}
