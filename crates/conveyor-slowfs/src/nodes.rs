//! Node ids: the numbers the kernel knows the filesystem's files by.
//!
//! A file's id is its backing inode number when that number is free, so
//! `stat` through the mount shows the backing number. But the backing
//! filesystem gives a deleted file's number to a later new file, and a file
//! deleted in the backing directory behind the mount's back is still held
//! by the kernel under its id, with its cached attributes, pages and (for a
//! directory) entries: a new file given the same id would share them (a
//! `make` saw objects holding another unit's code, and "Makefile: No such
//! file or directory"). So an id stands for one backing file, told apart by
//! its [`Ident`], for as long as the kernel may hold it: from the first
//! reply that hands it to the kernel (lookup, create, mknod, mkdir, symlink,
//! link) until the kernel has forgotten every such reply. A file whose own
//! number is held for another file gets a fresh id.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The root directory's id, fixed by the FUSE protocol.
pub const ROOT: u64 = 1;

/// Where fresh ids start: far above the inode numbers filesystems hand
/// out, so that a fresh id seldom stands in the way of a file's own number.
const FRESH: u64 = 1 << 63;

/// What tells one backing file from another over time. The inode number
/// alone does not (it is reused once its file is deleted); the birth time
/// tells the file that reuses a number from the deleted one, if it was born
/// in a later tick of the kernel's coarse clock (a few milliseconds). ext4,
/// XFS, Btrfs and tmpfs keep birth times; for the rest, and for numbers
/// reused within a tick, see [`Nodes::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    dev: u64,
    ino: u64,
    born: Option<SystemTime>,
}

impl Ident {
    /// The identity of the file `m` describes.
    pub fn of(m: &Metadata) -> Ident {
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            born: m.created().ok(),
        }
    }
}

struct Node {
    /// The last path the file was seen under.
    path: PathBuf,
    ident: Ident,
    /// Replies that handed the id to the kernel, less those it forgot.
    lookups: u64,
}

/// The ids the kernel may hold, and the backing files they stand for.
pub struct Nodes {
    root: PathBuf,
    by_id: HashMap<u64, Node>,
    by_ident: HashMap<Ident, u64>,
    next_fresh: u64,
}

impl Nodes {
    /// Only the root, the backing directory `root`.
    pub fn new(root: PathBuf) -> Nodes {
        Nodes {
            root,
            by_id: HashMap::new(),
            by_ident: HashMap::new(),
            next_fresh: FRESH,
        }
    }

    /// The path of node `id` and the file it stands for: `None` for the
    /// root, which is the backing directory whatever that holds.
    pub fn get(&self, id: u64) -> Option<(PathBuf, Option<Ident>)> {
        if id == ROOT {
            return Some((self.root.clone(), None));
        }
        self.by_id.get(&id).map(|n| (n.path.clone(), Some(n.ident)))
    }

    /// The id of file `ident`, found at `path`, for a reply that hands it to
    /// the kernel: counted as one lookup the kernel will forget. `at(p)`
    /// tells whether file `ident` is at path `p` now.
    pub fn lookup(&mut self, path: &Path, ident: Ident, at: impl FnOnce(&Path) -> bool) -> u64 {
        if let Some(&id) = self.by_ident.get(&ident) {
            if let Some(node) = self.by_id.get_mut(&id) {
                // Same identity: the node stands for this file if it was
                // last seen here, or if the file is still where it was last
                // seen (a hard link). Otherwise the node's file left that
                // path (deleted or renamed behind the mount's back) and this
                // may be a new file that got its number within the same
                // clock tick, or where there are no birth times: a fresh
                // node is safe either way (a file renamed behind the mount's
                // back merely gets a second one). Only a number reused at
                // the same path within a tick (or, without birth times, at
                // all) passes for the old file.
                if node.path == path || at(&node.path) {
                    node.path = path.to_path_buf();
                    node.lookups += 1;
                    return id;
                }
            }
        }
        let id = if ident.ino != ROOT && !self.by_id.contains_key(&ident.ino) {
            ident.ino
        } else {
            self.fresh()
        };
        self.by_id.insert(
            id,
            Node {
                path: path.to_path_buf(),
                ident,
                lookups: 1,
            },
        );
        self.by_ident.insert(ident, id);
        id
    }

    fn fresh(&mut self) -> u64 {
        // Skip ids held by files whose own number they are.
        while self.by_id.contains_key(&self.next_fresh) {
            self.next_fresh += 1;
        }
        let id = self.next_fresh;
        self.next_fresh += 1;
        id
    }

    /// The number a directory listing shows for file `ident`: its node's id,
    /// or the id a lookup would most likely give it. A listing hands the
    /// kernel no node (the kernel looks each name up before using it), so
    /// none is made: files only listed cost no memory.
    pub fn listed(&self, ident: &Ident) -> u64 {
        match self.by_ident.get(ident) {
            Some(&id) => id,
            None if ident.ino == ROOT => FRESH,
            None => ident.ino,
        }
    }

    /// The kernel forgot `n` lookups of node `id`. Once it holds none, the
    /// id may stand for another file, and the node's memory goes.
    pub fn forget(&mut self, id: u64, n: u64) {
        let Some(node) = self.by_id.get_mut(&id) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let ident = node.ident;
            self.by_id.remove(&id);
            if self.by_ident.get(&ident) == Some(&id) {
                self.by_ident.remove(&ident);
            }
        }
    }

    /// `from` was renamed to `to`: the nodes at it and under it follow. A
    /// node of a file that `to` replaced keeps its path, where its file no
    /// longer is (the caller's identity check then finds it stale).
    pub fn renamed(&mut self, from: &Path, to: &Path) {
        for node in self.by_id.values_mut() {
            if let Ok(rest) = node.path.strip_prefix(from) {
                node.path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    /// How many nodes the kernel may hold (the root aside).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn file(ino: u64, born: u64) -> Ident {
        Ident {
            dev: 7,
            ino,
            born: Some(UNIX_EPOCH + Duration::from_secs(born)),
        }
    }

    fn nodes() -> Nodes {
        Nodes::new(PathBuf::from("/b"))
    }

    /// `at` for a file no longer where its node was last seen.
    fn gone(_: &Path) -> bool {
        false
    }

    /// `at` for a file still there.
    fn there(_: &Path) -> bool {
        true
    }

    fn look(n: &mut Nodes, path: &str, ident: Ident) -> u64 {
        n.lookup(Path::new(path), ident, gone)
    }

    #[test]
    fn a_file_keeps_its_inode_number_as_its_id() {
        let mut n = nodes();
        assert_eq!(look(&mut n, "/b/a", file(42, 1)), 42);
        assert_eq!(look(&mut n, "/b/a", file(42, 1)), 42);
        assert_eq!(n.listed(&file(42, 1)), 42);
        assert_eq!(n.get(42), Some((PathBuf::from("/b/a"), Some(file(42, 1)))));
        assert_eq!(n.get(ROOT), Some((PathBuf::from("/b"), None)));
        // A hard link, the first name still there: the same node, at the
        // last path seen.
        assert_eq!(n.lookup(Path::new("/b/link"), file(42, 1), there), 42);
        assert_eq!(n.get(42).unwrap().0, PathBuf::from("/b/link"));
    }

    #[test]
    fn a_reused_inode_number_gets_a_fresh_id_while_the_old_is_held() {
        let mut n = nodes();
        assert_eq!(look(&mut n, "/b/old", file(42, 1)), 42);
        // "old" deleted behind the mount's back, 42 given to a new file.
        let new = look(&mut n, "/b/new", file(42, 2));
        assert_ne!(new, 42);
        assert_eq!(look(&mut n, "/b/new", file(42, 2)), new);
        assert_eq!(n.listed(&file(42, 2)), new);
        // Each id still stands for its own file.
        assert_eq!(
            n.get(42),
            Some((PathBuf::from("/b/old"), Some(file(42, 1))))
        );
        assert_eq!(
            n.get(new),
            Some((PathBuf::from("/b/new"), Some(file(42, 2))))
        );
        // The kernel forgets the old node: the new file keeps its id.
        n.forget(42, 1);
        assert_eq!(n.get(42), None);
        assert_eq!(look(&mut n, "/b/new", file(42, 2)), new);
        // And a third file with number 42 may now have it.
        assert_eq!(look(&mut n, "/b/third", file(42, 3)), 42);
    }

    #[test]
    fn a_number_reused_at_the_same_path_is_told_by_its_birth_time() {
        let mut n = nodes();
        assert_eq!(look(&mut n, "/b/unit.o", file(42, 1)), 42);
        let new = n.lookup(Path::new("/b/unit.o"), file(42, 2), there);
        assert_ne!(new, 42);
    }

    #[test]
    fn a_number_reused_within_a_clock_tick_is_told_by_the_old_path() {
        let mut n = nodes();
        assert_eq!(look(&mut n, "/b/old", file(42, 1)), 42);
        // Same birth time: only that "old" is gone tells the files apart.
        let new = look(&mut n, "/b/new", file(42, 1));
        assert_ne!(new, 42);
        assert_eq!(look(&mut n, "/b/new", file(42, 1)), new);
        // The kernel forgets the new node first: the old keeps its id.
        n.forget(new, 2);
        assert_eq!(n.get(new), None);
        assert!(n.get(42).is_some());
    }

    #[test]
    fn without_birth_times_the_path_tells_files_apart() {
        let mut n = nodes();
        let bare = |ino| Ident {
            dev: 7,
            ino,
            born: None,
        };
        assert_eq!(look(&mut n, "/b/old", bare(42)), 42);
        assert_eq!(look(&mut n, "/b/old", bare(42)), 42);
        let new = look(&mut n, "/b/new", bare(42));
        assert_ne!(new, 42);
        assert_eq!(look(&mut n, "/b/new", bare(42)), new);
        // Renamed through the mount: still the same node.
        n.renamed(Path::new("/b/new"), Path::new("/b/moved"));
        assert_eq!(look(&mut n, "/b/moved", bare(42)), new);
        // A hard link of it: the same node too.
        assert_eq!(n.lookup(Path::new("/b/link"), bare(42), there), new);
    }

    #[test]
    fn an_id_is_freed_only_when_every_lookup_is_forgotten() {
        let mut n = nodes();
        for _ in 0..3 {
            assert_eq!(look(&mut n, "/b/a", file(42, 1)), 42);
        }
        n.forget(42, 2);
        assert!(n.get(42).is_some());
        assert_ne!(look(&mut n, "/b/new", file(42, 2)), 42);
        n.forget(42, 2);
        assert!(n.get(42).is_none());
        // Forgetting what is gone, or the root, changes nothing.
        n.forget(42, 1);
        n.forget(ROOT, 1);
        assert_eq!(n.get(ROOT), Some((PathBuf::from("/b"), None)));
    }

    #[test]
    fn forgotten_nodes_take_no_memory() {
        let mut n = nodes();
        for round in 0..100 {
            let ids: Vec<u64> = (0..50)
                .map(|i| look(&mut n, &format!("/b/f{i}"), file(100 + i, round)))
                .collect();
            for id in ids {
                n.forget(id, 1);
            }
        }
        assert_eq!(n.len(), 0);
        assert!(n.by_ident.is_empty());
    }

    #[test]
    fn fresh_ids_avoid_the_root_and_held_ids() {
        let mut n = nodes();
        let one = look(&mut n, "/b/proc", file(ROOT, 1));
        assert_ne!(one, ROOT);
        assert_eq!(n.listed(&file(ROOT, 5)), FRESH);
        // A file whose own number is a fresh id already given out.
        let other = look(&mut n, "/b/x", file(one, 1));
        assert!(other != one && other != ROOT);
        // Another device's file with a held number.
        let mut dev = file(42, 1);
        assert_eq!(look(&mut n, "/b/a", dev), 42);
        dev.dev = 8;
        assert_ne!(look(&mut n, "/b/mnt/a", dev), 42);
    }

    #[test]
    fn renames_carry_the_nodes_under_them() {
        let mut n = nodes();
        let d = look(&mut n, "/b/d", file(10, 1));
        let f = look(&mut n, "/b/d/f", file(11, 1));
        let dx = look(&mut n, "/b/dx", file(12, 1));
        n.renamed(Path::new("/b/d"), Path::new("/b/e"));
        assert_eq!(n.get(d).unwrap().0, PathBuf::from("/b/e"));
        assert_eq!(n.get(f).unwrap().0, PathBuf::from("/b/e/f"));
        assert_eq!(look(&mut n, "/b/e/f", file(11, 1)), f);
        // A sibling whose name merely starts the same stays.
        assert_eq!(n.get(dx).unwrap().0, PathBuf::from("/b/dx"));
    }
}
