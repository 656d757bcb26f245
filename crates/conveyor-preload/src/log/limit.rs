//! Rate limit per call site: a burst of `BURST` lines, then one line per
//! second; what is held back is counted and reported in one line
//! ("suppressed K similar messages") before the site's next line or at
//! exit. A token bucket rather than a per-second window: a steady trickle
//! of 20 failures a second is still cut down.

use std::sync::{Mutex, MutexGuard, TryLockError};
use tracing::Metadata;

/// Lines a call site may write at once.
pub const BURST: u32 = 10;
/// Call sites tracked; later ones share the last slot.
const SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct Slot {
    site: &'static Metadata<'static>,
    bucket: Bucket,
}

/// One call site's token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    // Monotonic second of the last refill.
    at: u64,
    held: u64,
}

impl Bucket {
    fn new(now: u64) -> Bucket {
        Bucket {
            tokens: BURST,
            at: now,
            held: 0,
        }
    }

    /// An event at second `now`: a token if one is left (one more per
    /// second since the last refill, up to `BURST`), else counted as held.
    fn take(&mut self, now: u64) -> Verdict {
        let refill = now.saturating_sub(self.at);
        if refill > 0 {
            self.tokens = (self.tokens as u64 + refill).min(BURST as u64) as u32;
            self.at = now;
        }
        if self.tokens == 0 {
            self.held += 1;
            return Verdict::Drop;
        }
        self.tokens -= 1;
        Verdict::Emit {
            held: std::mem::take(&mut self.held),
        }
    }
}

static TABLE: Mutex<[Option<Slot>; SLOTS]> = Mutex::new([None; SLOTS]);

/// What to do with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it, after a line for the `held` messages suppressed before.
    Emit {
        /// Messages of this site suppressed since its last line.
        held: u64,
    },
    /// Suppress it (counted).
    Drop,
}

fn now_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is writable; clock_gettime is not hooked.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64
}

/// The table, or `None` if it stays locked (a child forked while another
/// thread held it): then nothing is limited rather than anything lost.
fn table() -> Option<MutexGuard<'static, [Option<Slot>; SLOTS]>> {
    (0..1000).find_map(|_| match TABLE.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => {
            std::thread::yield_now();
            None
        }
    })
}

/// Counts an event of `site` and says whether to write it.
pub fn check(site: &'static Metadata<'static>) -> Verdict {
    let Some(mut t) = table() else {
        return Verdict::Emit { held: 0 };
    };
    let now = now_secs();
    let same = |s: &Option<Slot>| s.is_some_and(|s| std::ptr::eq(s.site, site));
    let i = t
        .iter()
        .position(same)
        .or_else(|| t.iter().position(Option::is_none))
        .unwrap_or(SLOTS - 1);
    let slot = t[i].get_or_insert(Slot {
        site,
        bucket: Bucket::new(now),
    });
    slot.bucket.take(now)
}

/// Hands each call site's count of suppressed messages to `report` and
/// clears it (at exit).
pub fn drain(mut report: impl FnMut(&'static Metadata<'static>, u64)) {
    let held: Vec<(&'static Metadata<'static>, u64)> = match table() {
        Some(mut t) => t
            .iter_mut()
            .flatten()
            .filter(|s| s.bucket.held > 0)
            .map(|s| (s.site, std::mem::take(&mut s.bucket.held)))
            .collect(),
        None => return,
    };
    // Written after the table is unlocked: writing logs nothing, but keep
    // the lock short anyway.
    for (site, n) in held {
        report(site, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_a_second_with_the_held_count() {
        let mut b = Bucket::new(100);
        for _ in 0..BURST {
            assert_eq!(b.take(100), Verdict::Emit { held: 0 });
        }
        for _ in 0..25 {
            assert_eq!(b.take(100), Verdict::Drop);
        }
        // A second later: one token, and the 25 held back are reported.
        assert_eq!(b.take(101), Verdict::Emit { held: 25 });
        assert_eq!(b.take(101), Verdict::Drop);
        // A quiet spell refills the burst, no more.
        assert_eq!(b.take(200), Verdict::Emit { held: 1 });
        for _ in 1..BURST {
            assert_eq!(b.take(200), Verdict::Emit { held: 0 });
        }
        assert_eq!(b.take(200), Verdict::Drop);
    }
}
