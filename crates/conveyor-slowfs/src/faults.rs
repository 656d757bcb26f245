//! Injected failures: `ENOSPC` once a number of bytes has been written,
//! `EIO` with a seeded probability, and short writes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// What to inject.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Writes fail with ENOSPC once this many bytes were written (a write
    /// crossing the limit is cut short at it).
    pub enospc_after: Option<u64>,
    /// Probability that a read or write fails with EIO.
    pub eio_prob: f64,
    /// Seed of the EIO draw.
    pub seed: u64,
    /// Writes store at most half of what they were given.
    pub short_writes: bool,
}

/// Fault state shared by all requests.
pub struct Faults {
    cfg: FaultConfig,
    written: AtomicU64,
    rng: Mutex<u64>,
}

impl Faults {
    /// From a configuration.
    pub fn new(cfg: FaultConfig) -> Faults {
        let seed = cfg.seed | 1;
        Faults {
            cfg,
            written: AtomicU64::new(0),
            rng: Mutex::new(seed),
        }
    }

    /// True if this request draws an EIO.
    pub fn eio(&self) -> bool {
        if self.cfg.eio_prob <= 0.0 {
            return false;
        }
        let Ok(mut x) = self.rng.lock() else {
            return false;
        };
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        ((*x >> 11) as f64 / (1u64 << 53) as f64) < self.cfg.eio_prob
    }

    /// How many of `len` bytes a write may store: `Err(ENOSPC)` when none.
    pub fn allow_write(&self, len: usize) -> Result<usize, i32> {
        let mut n = len;
        if self.cfg.short_writes && n > 1 {
            n = n.div_ceil(2);
        }
        if let Some(limit) = self.cfg.enospc_after {
            let before = self.written.fetch_add(n as u64, Relaxed);
            if before >= limit {
                self.written.fetch_sub(n as u64, Relaxed);
                return Err(libc::ENOSPC);
            }
            let room = (limit - before) as usize;
            if room < n {
                self.written.fetch_sub((n - room) as u64, Relaxed);
                n = room;
            }
        }
        Ok(n)
    }
}
