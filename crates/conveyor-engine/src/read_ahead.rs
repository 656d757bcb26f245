//! Read-ahead: per reader (handle), detects sequential access and keeps a
//! growing window of prefetched chunks ahead of it.
//!
//! Validity: a chunk holds what storage returned; pending writes are overlaid
//! on it when read. When a write reaches storage, chunks overlapping it are
//! dropped, and chunks still loading are marked stale and dropped on arrival
//! (the generation check of libconveyor, per chunk). End of file is never
//! cached: bytes past a short chunk are always asked of storage again.
//! Nothing is kept longer than the maximum age: another process may have
//! changed the file without any barrier this process could see.

use crate::budget::Reservation;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

enum State {
    Loading { stale: bool },
    // The bytes are `mem.buf[..valid]`.
    Ready { mem: Reservation, valid: usize },
}

struct Chunk {
    id: u64,
    off: u64,
    len: usize,
    // When the request for it was issued: its bytes are at least this old
    // (the request may have been answered any time after).
    issued: Instant,
    state: State,
}

impl Chunk {
    fn overlaps(&self, r: &Range<u64>) -> bool {
        self.off < r.end && r.start < self.off + self.len as u64
    }
}

struct Stream {
    handle: u64,
    next_off: u64,
    window: usize,
    sequential: bool,
    chunks: VecDeque<Chunk>,
    // Storage ended here when last seen; no prefetch past it.
    eof: Option<u64>,
    // When the handle last read.
    last_read: Option<Instant>,
}

/// A prefetch to start: read `len` bytes at `off` for chunk `id` of `handle`.
pub(crate) struct Prefetch {
    pub handle: u64,
    pub id: u64,
    pub off: u64,
    pub len: usize,
    pub mem: Reservation,
}

/// What the cache has at an offset.
pub(crate) enum Lookup<'a> {
    /// Stored bytes starting at the offset.
    Ready(&'a [u8]),
    /// A chunk covering the offset is on its way.
    Loading,
    /// Ask storage.
    Miss,
    /// The end of a chunk storage returned short (end of file when it was
    /// read): a read that got bytes before it ends here.
    End,
}

/// All read-ahead streams of one file.
#[derive(Default)]
pub(crate) struct ReadAhead {
    streams: Vec<Stream>,
    next_id: u64,
}

/// Window sizes and request size.
pub(crate) struct Sizes {
    pub initial: usize,
    pub max: usize,
    pub io: usize,
}

impl ReadAhead {
    fn stream(&mut self, handle: u64, initial: usize) -> &mut Stream {
        let i = match self.streams.iter().position(|s| s.handle == handle) {
            Some(i) => i,
            None => {
                self.streams.push(Stream {
                    handle,
                    next_off: 0,
                    window: initial,
                    sequential: false,
                    chunks: VecDeque::new(),
                    eof: None,
                    last_read: None,
                });
                self.streams.len() - 1
            }
        };
        &mut self.streams[i]
    }

    /// Notes a read of `len` bytes at `off`; returns true if the handle reads
    /// sequentially (and so should prefetch). A read outside the window
    /// drops the handle's chunks and resets its window.
    pub fn observe(&mut self, handle: u64, off: u64, len: usize, sz: &Sizes) -> bool {
        let s = self.stream(handle, sz.initial);
        let in_window = s.chunks.front().is_some_and(|c| c.off <= off)
            && s.chunks.back().is_some_and(|c| off <= c.off + c.len as u64);
        s.sequential = off == s.next_off || in_window;
        if !s.sequential {
            s.chunks.clear();
            s.window = sz.initial;
        }
        s.next_off = off + len as u64;
        s.sequential
    }

    /// The read noted by `observe` ended early, at `end` (end of file).
    pub fn ended_at(&mut self, handle: u64, end: u64) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.handle == handle) {
            s.next_off = end;
        }
    }

    /// Drops the handle's chunks when `off` lies outside its window (a seek).
    pub fn seek(&mut self, handle: u64, off: u64, sz: &Sizes) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.handle == handle) {
            let inside = s.chunks.front().is_some_and(|c| c.off <= off)
                && s.chunks.back().is_some_and(|c| off <= c.off + c.len as u64);
            if !inside {
                s.chunks.clear();
                s.window = sz.initial;
            }
        }
    }

    /// Chunks to start at `now` so that `[off, off + len + window)` is
    /// covered, none at or past `known_end` (where the file ends as far as
    /// the process knows: bytes past it are asked of storage when read).
    /// `reserve` is asked for the memory of each; prefetch stops when it
    /// fails.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        handle: u64,
        off: u64,
        len: usize,
        sz: &Sizes,
        now: Instant,
        known_end: Option<u64>,
        mut reserve: impl FnMut(usize) -> Option<Reservation>,
    ) -> Vec<Prefetch> {
        let mut id = self.next_id;
        let s = self.stream(handle, sz.initial);
        // Chunks wholly behind the reader are consumed: each one grows the window.
        while s
            .chunks
            .front()
            .is_some_and(|c| c.off + (c.len as u64) <= off)
        {
            s.chunks.pop_front();
            s.window = (s.window * 2).min(sz.max);
        }
        let mut out = Vec::new();
        let want_end = off + (len + s.window) as u64;
        let mut next = s
            .chunks
            .back()
            .map_or(off, |c| c.off + c.len as u64)
            .max(off);
        let end = match (s.eof, known_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        while next < want_end && end.is_none_or(|e| next < e) {
            let clen = s.window.min(sz.io);
            let Some(mem) = reserve(clen) else { break };
            s.chunks.push_back(Chunk {
                id,
                off: next,
                len: clen,
                issued: now,
                state: State::Loading { stale: false },
            });
            out.push(Prefetch {
                handle,
                id,
                off: next,
                len: clen,
                mem,
            });
            id += 1;
            next += clen as u64;
        }
        self.next_id = id;
        out
    }

    /// A read by `handle` at `now`: drops the handle's chunks when one of
    /// them was asked of storage `max_age` or more before (loaded or still
    /// loading: a late answer is as old as its request), or when the
    /// handle comes back after a pause of `pause` or more (a follower such
    /// as `tail -f`, or a reader that waited while another program changed
    /// the file). All of them, so that prefetching starts again at the
    /// reader rather than leaving a gap it would read in small requests.
    pub fn expire(
        &mut self,
        handle: u64,
        now: Instant,
        max_age: Duration,
        pause: Duration,
        sz: &Sizes,
    ) {
        let s = self.stream(handle, sz.initial);
        let paused = s
            .last_read
            .is_some_and(|l| now.saturating_duration_since(l) >= pause);
        let old = |c: &Chunk| now.saturating_duration_since(c.issued) >= max_age;
        if paused || s.chunks.iter().any(old) {
            s.chunks.clear();
        }
        s.last_read = Some(now);
    }

    /// What the handle's cache holds at `off`.
    pub fn lookup(&self, handle: u64, off: u64) -> Lookup<'_> {
        let Some(s) = self.streams.iter().find(|s| s.handle == handle) else {
            return Lookup::Miss;
        };
        for c in &s.chunks {
            if c.off > off || off >= c.off + c.len as u64 {
                continue;
            }
            return match &c.state {
                State::Loading { stale: false } => Lookup::Loading,
                State::Loading { stale: true } => Lookup::Miss,
                State::Ready { mem, valid, .. } => {
                    let rel = (off - c.off) as usize;
                    if rel < *valid {
                        Lookup::Ready(&mem.buf[rel..*valid])
                    } else if rel == *valid && *valid < c.len {
                        Lookup::End
                    } else {
                        Lookup::Miss
                    }
                }
            };
        }
        Lookup::Miss
    }

    /// A prefetch finished with `valid` bytes in `p.mem.buf` (short at end
    /// of file), or failed (`None`).
    pub fn land(&mut self, p: Prefetch, valid: Option<usize>) {
        let Some(s) = self.streams.iter_mut().find(|s| s.handle == p.handle) else {
            return;
        };
        let Some(i) = s.chunks.iter().position(|c| c.id == p.id) else {
            return;
        };
        let keep = matches!(s.chunks[i].state, State::Loading { stale: false });
        match valid {
            Some(n) if keep => {
                if n < p.len {
                    s.eof = Some(p.off + n as u64);
                }
                s.chunks[i].state = State::Ready {
                    mem: p.mem,
                    valid: n,
                };
            }
            _ => {
                s.chunks.remove(i);
            }
        }
    }

    /// Storage changed in `r` (a write landed): drop what overlaps it.
    pub fn invalidate(&mut self, r: &Range<u64>) {
        for s in &mut self.streams {
            s.chunks.retain_mut(|c| {
                if !c.overlaps(r) {
                    return true;
                }
                match &mut c.state {
                    State::Loading { stale } => {
                        *stale = true;
                        true
                    }
                    State::Ready { .. } => false,
                }
            });
            if s.eof.is_some_and(|e| e < r.end) {
                s.eof = None;
            }
        }
    }

    /// Storage changed everywhere (truncate, allocate, a barrier).
    pub fn invalidate_all(&mut self) {
        self.invalidate(&(0..u64::MAX));
    }

    /// Storage has data up to `end` (a direct read saw it): prefetch may
    /// pass an end of file seen earlier.
    pub fn saw_data_until(&mut self, handle: u64, end: u64) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.handle == handle) {
            if s.eof.is_some_and(|e| e < end) {
                s.eof = None;
            }
        }
    }

    /// Forgets a closed handle.
    pub fn close(&mut self, handle: u64) {
        self.streams.retain(|s| s.handle != handle);
    }
}
