//! How old a file's oldest pending write is, so that a writer is held back
//! when storage falls more than the maximum age behind (what a crash or
//! `SIGKILL` can lose is then bounded in time as well as in bytes).
//!
//! Writes are grouped by arrival time: a group spans at most a quarter of
//! the maximum age and is remembered as (first sequence number after it,
//! time of its first write). A group's time is never later than that of
//! any byte in it, so ages are overestimated, never under: a writer may wait
//! up to a quarter of the maximum age early, never late. At most about five
//! groups are pending at once, since an older one makes writers wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The pending write groups of one file.
pub(crate) struct Ages {
    max: Duration,
    // Closed groups, oldest first: (sequence numbers below this, first write).
    closed: VecDeque<(u64, Instant)>,
    // First write of the group still taking writes.
    open: Option<Instant>,
}

impl Ages {
    pub fn new(max: Duration) -> Ages {
        Ages {
            max,
            closed: VecDeque::new(),
            open: None,
        }
    }

    /// Notes a write put at `now`; `next_seq` is the write buffer's next
    /// sequence number after it, so every byte put so far lies below.
    pub fn put(&mut self, now: Instant, next_seq: u64) {
        match self.open {
            None => self.open = Some(now),
            Some(first) if now.saturating_duration_since(first) >= self.max / 4 => {
                self.closed.push_back((next_seq, first));
                self.open = None;
            }
            Some(_) => {}
        }
    }

    /// The sequence number to drain below when, at `now`, some pending data
    /// is older than the maximum age; `done` is the write buffer's
    /// `done_below` and `next_seq` its next sequence number.
    pub fn overdue(&mut self, now: Instant, done: u64, next_seq: u64) -> Option<u64> {
        while self.closed.front().is_some_and(|&(below, _)| below <= done) {
            self.closed.pop_front();
        }
        if let Some(&(below, first)) = self.closed.front() {
            return (now.saturating_duration_since(first) >= self.max).then_some(below);
        }
        let first = self.open?;
        if done >= next_seq {
            // Everything of the open group is written: start afresh.
            self.open = None;
            return None;
        }
        if now.saturating_duration_since(first) >= self.max {
            // Draining below `next_seq` writes the whole group.
            self.open = None;
            return Some(next_seq);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn nothing_is_overdue_before_the_maximum_age() {
        let t = Instant::now();
        let mut a = Ages::new(Duration::from_millis(100));
        a.put(at(t, 0), 1);
        a.put(at(t, 10), 2);
        assert_eq!(a.overdue(at(t, 99), 0, 2), None);
        assert_eq!(a.overdue(at(t, 100), 0, 2), Some(2));
    }

    #[test]
    fn written_groups_are_forgotten() {
        let t = Instant::now();
        let mut a = Ages::new(Duration::from_millis(100));
        a.put(at(t, 0), 1);
        a.put(at(t, 30), 3); // closes the group of [0, 3)
        a.put(at(t, 40), 4); // opens a new one at 40 ms
        assert_eq!(a.overdue(at(t, 120), 3, 4), None);
        assert_eq!(a.overdue(at(t, 140), 3, 4), Some(4));
        assert_eq!(a.overdue(at(t, 141), 4, 4), None);
    }

    #[test]
    fn the_oldest_group_comes_first() {
        let t = Instant::now();
        let mut a = Ages::new(Duration::from_millis(100));
        a.put(at(t, 0), 1);
        a.put(at(t, 25), 2); // group [0, 2) from 0 ms
        a.put(at(t, 50), 3);
        a.put(at(t, 75), 4); // group [2, 4) from 50 ms
        assert_eq!(a.overdue(at(t, 100), 0, 4), Some(2));
        assert_eq!(a.overdue(at(t, 149), 2, 4), None);
        assert_eq!(a.overdue(at(t, 150), 2, 4), Some(4));
    }

    #[test]
    fn an_idle_file_has_no_age() {
        let t = Instant::now();
        let mut a = Ages::new(Duration::from_millis(100));
        a.put(at(t, 0), 1);
        assert_eq!(a.overdue(at(t, 10), 1, 1), None);
        a.put(at(t, 500), 2);
        assert_eq!(a.overdue(at(t, 550), 1, 2), None);
        assert_eq!(a.overdue(at(t, 600), 1, 2), Some(2));
    }
}
