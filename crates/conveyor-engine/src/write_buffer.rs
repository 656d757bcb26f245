//! The write-behind buffer of one file: pending data in arrival order, its
//! extent index, and the batches the flusher cuts from it.
//!
//! Data lives in fixed-size segments (reused through [`Budget`]), each holding
//! one or more extents (file offset, length) in arrival order. Extents get
//! increasing sequence numbers; batches are runs of consecutive extents that
//! are adjacent in the file, so each batch is one vectored write. Ordering:
//! a batch that overlaps an in-flight one waits for it, and append batches
//! run alone, so overlapping data always reaches storage oldest first.
//!
//! With a journal, each segment is a journal slot and each extent has a
//! record there, kept in step: published once its bytes are in place,
//! grown as coalesced writes extend it, marked issued when a batch takes
//! it and done when the batch completes (or the extent is discarded), so
//! that the flusher can write what is not done if the process dies.

use crate::budget::{Budget, SegData};
use crate::config::SEGMENT;
use crate::index::{Entry, Index};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

#[derive(Clone, Copy)]
struct Extent {
    seq: u64,
    off: u64,
    pos: usize,
    len: usize,
    append: bool,
}

struct Segment {
    // Invariant: only the write path mutates `data` (through `Arc::get_mut`,
    // so never while a batch holds a clone), and only by appending or by
    // overwriting bytes of an extent that is not yet issued.
    data: Arc<SegData>,
    extents: Vec<Extent>,
    // Extents of this segment not yet completed (written or discarded).
    incomplete: usize,
}

/// A run of pending extents to be written as one storage request.
pub(crate) struct Batch {
    /// Sequence numbers of the extents in it.
    pub seqs: Range<u64>,
    /// File offset (for appends: where this process expects it to land).
    pub offset: u64,
    /// Total bytes.
    pub len: usize,
    /// Written with a real append rather than at `offset`.
    pub append: bool,
    /// The bytes, in order.
    pub parts: Vec<(Arc<SegData>, Range<usize>)>,
}

struct InFlight {
    seqs: Range<u64>,
    range: Range<u64>,
    append: bool,
    segs: Vec<(u64, usize)>,
}

/// Sequence numbers known complete: all below `below`, plus ranges above it.
#[derive(Default)]
struct Done {
    below: u64,
    above: BTreeMap<u64, u64>,
}

impl Done {
    fn add(&mut self, r: Range<u64>) {
        if r.is_empty() {
            return;
        }
        if r.start != self.below {
            self.above.insert(r.start, r.end);
            return;
        }
        self.below = r.end;
        while let Some(end) = self.above.remove(&self.below) {
            self.below = end;
        }
    }
}

/// Outcome of offering bytes to the buffer.
pub(crate) enum Put {
    /// This many bytes were taken (at least one).
    Took(usize),
    /// No room: the caller must wait for the flusher or write directly.
    Full,
}

/// Pending writes of one file.
pub(crate) struct WriteBuffer {
    segs: VecDeque<Segment>,
    // Id of `segs[0]`, or of the next segment when `segs` is empty.
    front: u64,
    index: Index,
    next_seq: u64,
    // Every extent with `seq < issued` has been handed to a batch.
    issued: u64,
    // (segment id, extent index) of extent `issued`, if it exists yet.
    cursor: (u64, usize),
    done: Done,
    inflight: Vec<InFlight>,
    held: usize,
    // The file's number in the journal.
    owner: u64,
    // Bytes of the extents not yet handed to a batch.
    unissued: usize,
    /// Adaptive memory limit of this file.
    pub limit: usize,
    /// Most memory held at once.
    pub peak: usize,
}

impl WriteBuffer {
    /// An empty buffer of `limit` bytes for the file numbered `owner` in
    /// the journal.
    pub fn new(limit: usize, owner: u64) -> WriteBuffer {
        WriteBuffer {
            segs: VecDeque::new(),
            front: 0,
            index: Index::default(),
            next_seq: 0,
            issued: 0,
            cursor: (0, 0),
            done: Done::default(),
            inflight: Vec::new(),
            held: 0,
            owner,
            unissued: 0,
            limit,
            peak: 0,
        }
    }

    /// The extent index (for snooping reads).
    /// Memory holding pending writes now (whole segments).
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Bytes of `len` at `pos` in segment `seg`.
    pub fn bytes(&self, seg: u64, pos: usize, len: usize) -> &[u8] {
        let s = &self.segs[(seg - self.front) as usize];
        &s.data[pos..pos + len]
    }

    /// Sequence number the next extent will get; flushing waits until
    /// everything below it is complete.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// All extents below this are written or discarded.
    pub fn done_below(&self) -> u64 {
        self.done.below
    }

    /// Batches being written now.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Bytes pending and not yet handed to a batch.
    pub fn unissued(&self) -> usize {
        self.unissued
    }

    /// True when there is no pending data at all.
    pub fn is_idle(&self) -> bool {
        self.segs.is_empty()
    }

    /// Takes a prefix of `data` destined for `off` (an append when `append`).
    pub fn put(&mut self, off: u64, data: &[u8], append: bool, budget: &Budget) -> Put {
        if let Some(n) = self.put_in_place(off, data, append) {
            return Put::Took(n);
        }
        let room = match self.segs.back_mut() {
            Some(t) if t.data.has_record(t.extents.len()) => {
                Arc::get_mut(&mut t.data).map_or(0, |d| SEGMENT - d.len())
            }
            _ => 0,
        };
        if room == 0 {
            if self.held + SEGMENT > self.limit || !budget.try_reserve(SEGMENT) {
                return Put::Full;
            }
            self.segs.push_back(Segment {
                data: Arc::new(budget.segment(self.owner)),
                extents: Vec::new(),
                incomplete: 0,
            });
            self.held += SEGMENT;
            self.peak = self.peak.max(self.held);
        }
        let tail_id = self.front + self.segs.len() as u64 - 1;
        let seq = self.next_seq;
        let Some(tail) = self.segs.back_mut() else {
            return Put::Full;
        };
        let Some(buf) = Arc::get_mut(&mut tail.data) else {
            return Put::Full;
        };
        let pos = buf.len();
        let n = buf.push(data);
        buf.record(tail.extents.len(), seq, off, pos, n, append);
        tail.extents.push(Extent {
            seq,
            off,
            pos,
            len: n,
            append,
        });
        tail.incomplete += 1;
        self.next_seq += 1;
        self.unissued += n;
        self.index.paint(
            off,
            Entry {
                len: n as u64,
                seg: tail_id,
                pos,
                seq,
            },
        );
        Put::Took(n)
    }

    /// Extends or overwrites the newest extent when it is not yet issued and
    /// the bytes fit: repeated and sequential small writes coalesce here.
    fn put_in_place(&mut self, off: u64, data: &[u8], append: bool) -> Option<usize> {
        let tail_id = (self.front + self.segs.len() as u64).checked_sub(1)?;
        let issued = self.issued;
        let tail = self.segs.back_mut()?;
        let last = *tail.extents.last()?;
        let lend = last.off + last.len as u64;
        if last.seq < issued || last.append != append || off < last.off || off > lend {
            return None;
        }
        let rel = (off - last.off) as usize;
        let new_len = last.len.max(rel + data.len());
        if last.pos + last.len != tail.data.len() || last.pos + new_len > SEGMENT {
            return None;
        }
        let buf = Arc::get_mut(&mut tail.data)?;
        let overlap = data.len().min(last.len - rel);
        buf.overwrite(last.pos + rel, &data[..overlap]);
        buf.push(&data[overlap..]);
        tail.data.grow(tail.extents.len() - 1, new_len);
        if let Some(l) = tail.extents.last_mut() {
            l.len = new_len;
        }
        self.unissued += new_len - last.len;
        let entry = Entry {
            len: data.len() as u64,
            seg: tail_id,
            pos: last.pos + rel,
            seq: last.seq,
        };
        self.index.paint(off, entry);
        Some(data.len())
    }

    fn extent_at(&self, at: (u64, usize)) -> Option<Extent> {
        let i = at.0.checked_sub(self.front)? as usize;
        self.segs.get(i)?.extents.get(at.1).copied()
    }

    // The position after `at`, stepping into the next segment at the end of one.
    fn step(&self, at: (u64, usize)) -> (u64, usize) {
        let next = (at.0, at.1 + 1);
        let i = (at.0 - self.front) as usize;
        match self.segs.get(i) {
            Some(s) if next.1 >= s.extents.len() && i + 1 < self.segs.len() => (at.0 + 1, 0),
            _ => next,
        }
    }

    fn normalize_cursor(&mut self) {
        if self.cursor.0 < self.front {
            self.cursor = (self.front, 0);
        }
        while self.extent_at(self.cursor).is_none() {
            let i = (self.cursor.0 - self.front) as usize;
            if i + 1 < self.segs.len() {
                self.cursor = (self.cursor.0 + 1, 0);
            } else {
                break;
            }
        }
    }

    /// Cuts the next batch, if the ordering rules allow one now. A first
    /// batch starts at once, however small; more run in parallel (up to
    /// `limit`) only when they are full-sized or a backlog waits behind them.
    pub fn next_batch(&mut self, io_size: usize, limit: usize) -> Option<Batch> {
        self.normalize_cursor();
        let first = self.extent_at(self.cursor)?;
        let mut at = self.cursor;
        let (mut len, mut count) = (0usize, 0u64);
        let mut end = first.off;
        while let Some(e) = self.extent_at(at) {
            if e.append != first.append || e.off != end || (len > 0 && len + e.len > io_size) {
                break;
            }
            len += e.len;
            end += e.len as u64;
            count += 1;
            at = self.step(at);
        }
        let more = self.extent_at(at).is_some();
        if !self.inflight.is_empty() {
            let blocked = first.append
                || self.inflight.len() >= limit
                || self
                    .inflight
                    .iter()
                    .any(|f| f.append || (f.range.start < end && first.off < f.range.end))
                || (len < io_size && !more);
            if blocked {
                return None;
            }
        }
        let mut parts: Vec<(Arc<SegData>, Range<usize>)> = Vec::new();
        let mut segs: Vec<(u64, usize)> = Vec::new();
        let mut at = self.cursor;
        for _ in 0..count {
            let seg = &self.segs[(at.0 - self.front) as usize];
            let e = seg.extents[at.1];
            seg.data.issued(at.1);
            match parts.last_mut() {
                Some((d, r)) if Arc::ptr_eq(d, &seg.data) && r.end == e.pos => r.end += e.len,
                _ => parts.push((Arc::clone(&seg.data), e.pos..e.pos + e.len)),
            }
            match segs.last_mut() {
                Some((id, n)) if *id == at.0 => *n += 1,
                _ => segs.push((at.0, 1)),
            }
            at = self.step(at);
        }
        self.cursor = at;
        let seqs = self.issued..self.issued + count;
        self.issued += count;
        self.unissued -= len;
        let range = first.off..end;
        self.inflight.push(InFlight {
            seqs: seqs.clone(),
            range,
            append: first.append,
            segs,
        });
        Some(Batch {
            seqs,
            offset: first.off,
            len,
            append: first.append,
            parts,
        })
    }

    /// Retires the batch numbered `seqs` (written, or failed). Returns its
    /// file range. The caller has dropped the batch's data references.
    pub fn complete(&mut self, seqs: Range<u64>, budget: &Budget) -> Range<u64> {
        let Some(i) = self.inflight.iter().position(|f| f.seqs == seqs) else {
            return 0..0;
        };
        let f = self.inflight.swap_remove(i);
        self.index
            .remove_seqs(f.range.start, f.range.end, f.seqs.clone());
        for (id, n) in &f.segs {
            if let Some(s) = self.segs.get_mut((id - self.front) as usize) {
                s.incomplete -= n;
                for (i, e) in s.extents.iter().enumerate() {
                    if f.seqs.contains(&e.seq) {
                        s.data.done(i);
                    }
                }
            }
        }
        self.done.add(f.seqs);
        self.retire(budget);
        f.range
    }

    /// After a failed write: drops every extent not yet issued (they must
    /// not reach storage as if the failure had not happened). Returns the
    /// bytes dropped.
    pub fn discard_unissued(&mut self, budget: &Budget) -> u64 {
        self.normalize_cursor();
        let mut lost = 0u64;
        let mut at = self.cursor;
        while let Some(e) = self.extent_at(at) {
            lost += e.len as u64;
            let s = &mut self.segs[(at.0 - self.front) as usize];
            s.incomplete -= 1;
            s.data.done(at.1);
            at = self.step(at);
        }
        self.cursor = at;
        self.index.remove_from_seq(self.issued);
        self.done.add(self.issued..self.next_seq);
        self.issued = self.next_seq;
        self.unissued = 0;
        self.retire(budget);
        lost
    }

    fn retire(&mut self, budget: &Budget) {
        while self.segs.front().is_some_and(|s| s.incomplete == 0) {
            let Some(s) = self.segs.pop_front() else {
                break;
            };
            self.front += 1;
            self.held -= SEGMENT;
            match Arc::try_unwrap(s.data) {
                Ok(buf) => budget.recycle(buf),
                // Not reached (a batch's references are dropped before it
                // completes); the memory goes when the last one does.
                Err(_) => budget.release(SEGMENT),
            }
        }
        if self.cursor.0 < self.front {
            self.cursor = (self.front, 0);
        }
    }
}
