//! The extent index: for every byte range that has pending (not yet stored)
//! data, where the newest copy of it lives in the write-behind buffer.
//!
//! Entries never overlap: a new write paints over older entries (last writer
//! wins), so a read overlays at most one copy of each byte.

use std::collections::BTreeMap;

/// Where the newest pending copy of a byte range lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Length of the range.
    pub len: u64,
    /// Segment id holding the bytes.
    pub seg: u64,
    /// Byte position of the range's first byte within that segment.
    pub pos: usize,
    /// Sequence number of the extent the bytes belong to.
    pub seq: u64,
}

/// Non-overlapping map from file offset to [`Entry`].
#[derive(Default)]
pub(crate) struct Index {
    map: BTreeMap<u64, Entry>,
}

impl Index {
    /// Records `e` for `[off, off + e.len)`, trimming what it covers.
    pub fn paint(&mut self, off: u64, e: Entry) {
        let end = off + e.len;
        // An entry starting before `off` may reach into the new range.
        if let Some((&k, &p)) = self.map.range(..off).next_back() {
            let pend = k + p.len;
            if pend > off {
                self.map.insert(k, Entry { len: off - k, ..p });
                if pend > end {
                    self.map.insert(
                        end,
                        Entry {
                            len: pend - end,
                            pos: p.pos + (end - k) as usize,
                            ..p
                        },
                    );
                }
            }
        }
        let inside: Vec<u64> = self.map.range(off..end).map(|(k, _)| *k).collect();
        for k in inside {
            if let Some(p) = self.map.remove(&k) {
                let pend = k + p.len;
                if pend > end {
                    self.map.insert(
                        end,
                        Entry {
                            len: pend - end,
                            pos: p.pos + (end - k) as usize,
                            ..p
                        },
                    );
                }
            }
        }
        // Sequential writes into one extent keep a single entry.
        if let Some((&k, p)) = self.map.range_mut(..off).next_back() {
            if k + p.len == off
                && p.seg == e.seg
                && p.seq == e.seq
                && p.pos + p.len as usize == e.pos
            {
                p.len += e.len;
                return;
            }
        }
        self.map.insert(off, e);
    }

    /// Entries overlapping `[start, end)`, clipped to it, in offset order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, Entry)> + '_ {
        let first = self
            .map
            .range(..start)
            .next_back()
            .filter(|(k, p)| *k + p.len > start);
        first
            .into_iter()
            .chain(self.map.range(start..end))
            .map(move |(&k, &p)| {
                let s = k.max(start);
                let e = (k + p.len).min(end);
                (
                    s,
                    Entry {
                        len: e - s,
                        pos: p.pos + (s - k) as usize,
                        ..p
                    },
                )
            })
    }

    /// Removes the entries inside `[start, end)` whose extents have a
    /// sequence number in `seqs` (they have reached storage or failed).
    pub fn remove_seqs(&mut self, start: u64, end: u64, seqs: std::ops::Range<u64>) {
        let gone: Vec<u64> = self
            .map
            .range(start..end)
            .filter(|(_, p)| seqs.contains(&p.seq))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.map.remove(&k);
        }
    }

    /// Removes every entry of an extent numbered `seq` or later.
    pub fn remove_from_seq(&mut self, seq: u64) {
        self.map.retain(|_, p| p.seq < seq);
    }

    /// End of the last pending byte (0 when nothing is pending).
    pub fn end(&self) -> u64 {
        self.map.last_key_value().map_or(0, |(k, p)| k + p.len)
    }

    /// True when nothing is pending.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(len: u64, seg: u64, pos: usize, seq: u64) -> Entry {
        Entry { len, seg, pos, seq }
    }

    #[test]
    fn paint_splits_and_merges() {
        let mut ix = Index::default();
        ix.paint(0, e(100, 0, 0, 1));
        ix.paint(40, e(10, 1, 0, 2));
        let v: Vec<_> = ix.overlapping(0, 200).collect();
        assert_eq!(
            v,
            vec![
                (0, e(40, 0, 0, 1)),
                (40, e(10, 1, 0, 2)),
                (50, e(50, 0, 50, 1))
            ]
        );
        ix.paint(50, e(5, 1, 10, 2));
        assert_eq!(
            ix.overlapping(40, 55).collect::<Vec<_>>(),
            vec![(40, e(15, 1, 0, 2))]
        );
        ix.paint(0, e(200, 2, 0, 3));
        assert_eq!(
            ix.overlapping(0, 1000).collect::<Vec<_>>(),
            vec![(0, e(200, 2, 0, 3))]
        );
        assert_eq!(ix.end(), 200);
        ix.remove_seqs(0, 200, 3..4);
        assert!(ix.is_empty());
    }

    #[test]
    fn overlapping_clips() {
        let mut ix = Index::default();
        ix.paint(10, e(10, 0, 5, 1));
        assert_eq!(
            ix.overlapping(15, 17).collect::<Vec<_>>(),
            vec![(15, e(2, 0, 10, 1))]
        );
        assert_eq!(ix.overlapping(0, 10).count(), 0);
        assert_eq!(ix.overlapping(20, 30).count(), 0);
    }
}
