//! The engine: configuration, the shared worker pool and memory budget, and
//! the registry that gives every handle of one file the same file state.

use crate::backend::Backend;
use crate::budget::Budget;
pub use crate::budget::Journaling;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Executor};
use crate::file::{File, Shared};
use crate::handle::{Handle, Mode};
use crate::pool::Pool;
use crate::stats::{Counters, Snapshot};
use conveyor_journal::Journal;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Identity of a file: handles with the same key share pending data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device (`st_dev`).
    pub dev: u64,
    /// Inode (`st_ino`).
    pub ino: u64,
}

/// What `stat` says of a file that changes when its data does: another
/// process's write, truncation or rewrite shows in one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds.
    pub mtime_ns: i128,
    /// `st_ctime` in nanoseconds.
    pub ctime_ns: i128,
}

/// Statistics of one file.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// Name given at open.
    pub name: String,
    /// Whether a handle still has it open.
    pub open: bool,
    /// Counters.
    pub stats: Snapshot,
}

/// What the engine holds right now (for a live view; counters are in
/// [`Snapshot`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Files open in the engine.
    pub open_files: usize,
    /// Memory holding writes not yet on storage (whole 64 KiB segments).
    pub write_buffered: usize,
    /// Sum of the open files' adaptive write-buffer limits.
    pub write_limit: usize,
    /// Write-behind and read-ahead memory held, of `memory_cap`.
    pub memory_used: usize,
    /// The process-wide memory cap.
    pub memory_cap: usize,
}

/// How a handle's backend is offered to its file.
#[derive(Clone, Copy)]
enum Offer {
    /// Taken if it can do more than the current one.
    IfMore,
    /// Taken.
    Replace,
    /// Taken, and only if no handle of the file is open.
    Alone,
}

/// What the embedder does for the engine (the shim: for a preloaded
/// library's threads and descriptors).
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Run first in every thread the engine starts (to set up what a
    /// thread inherits, such as its signal mask).
    pub thread_start: fn(),
    /// Given a descriptor the engine opened for itself (the io_uring
    /// executor's ring), returns the number to use from now on, or -1 if
    /// it cannot be had (the descriptor passed in is then closed). The
    /// shim moves it to a high number the program never gets and keeps it
    /// out of the ranges the program closes.
    pub private_fd: fn(RawFd) -> RawFd,
    /// Told that a descriptor `private_fd` returned was closed (a ring
    /// whose setup failed after it): the shim stops protecting the number.
    pub forget_fd: fn(RawFd),
    /// Called after every buffered write of a file the journal (see
    /// [`Engine::with_journal`]) names, on the program's thread, off the
    /// file's lock, before the write returns: the embedder makes sure a
    /// flusher has the journal (the shim connects to one, and looks again
    /// about once a second, replacing one that went away). It must be
    /// cheap when nothing changed.
    pub watch: fn(),
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            thread_start: || {},
            private_fd: |fd| fd,
            forget_fd: |_| {},
            watch: || {},
        }
    }
}

/// Write-behind, read-ahead and snooping for any number of files.
pub struct Engine {
    shared: Arc<Shared>,
    files: Mutex<HashMap<FileKey, Weak<File>>>,
    next_handle: AtomicU64,
}

impl Engine {
    /// An engine with `cfg` (normalised). No thread starts until work does.
    pub fn new(cfg: Config) -> Engine {
        Engine::with_hooks(cfg, Hooks::default())
    }

    /// As `new`, with what the embedder does for the engine's threads and
    /// descriptors.
    pub fn with_hooks(cfg: Config, hooks: Hooks) -> Engine {
        Engine::build(cfg, hooks, Arc::new(SystemClock), None)
    }

    /// As `with_hooks`, with write-behind segments in the slots of a
    /// journal (crash-safe write-behind: see `conveyor_journal`), made
    /// at the first segment when `journal` says so; each file with data
    /// there is named in it, and `Hooks::watch` called.
    pub fn with_journal(cfg: Config, hooks: Hooks, journal: Journaling) -> Engine {
        Engine::build(cfg, hooks, Arc::new(SystemClock), Some(journal))
    }

    /// The journal, if the engine keeps one.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.shared.budget.journal()
    }

    /// As `new`, with the age rules (`Config::max_age`) reading `clock`
    /// instead of the real clock: tests move time by hand.
    pub fn with_clock(cfg: Config, clock: Arc<dyn Clock>) -> Engine {
        Engine::build(cfg, Hooks::default(), clock, None)
    }

    fn build(
        cfg: Config,
        hooks: Hooks,
        clock: Arc<dyn Clock>,
        journal: Option<Journaling>,
    ) -> Engine {
        let cfg = cfg.normalized();
        let totals = Arc::new(Counters::default());
        totals
            .buffer_limit
            .store(cfg.max_memory as u64, Ordering::Relaxed);
        let shared = Shared {
            pool: Pool::new(cfg.workers, hooks.thread_start),
            ring: std::sync::OnceLock::new(),
            hooks,
            depths: Mutex::new(HashMap::new()),
            budget: Arc::new(Budget::new(cfg.max_memory, journal)),
            next_file: AtomicU64::new(1),
            totals,
            closed: Mutex::new(VecDeque::new()),
            deferrals: Arc::new(crate::defer::Deferrals::new(hooks.thread_start)),
            clock,
            cfg,
        };
        Engine {
            shared: Arc::new(shared),
            files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// The executor that runs background requests: `Executor::Uring` only
    /// once a ring is set up (it is, at the first background request, when
    /// the configuration asks for it and the kernel allows it).
    pub fn executor(&self) -> Executor {
        match self.shared.ring.get() {
            Some(Some(_)) => Executor::Uring,
            _ => Executor::Pool,
        }
    }

    /// The io_uring executor's descriptor, if a ring is set up: a forked
    /// child closes its copy (it never uses its parent's engine).
    pub fn ring_fd(&self) -> Option<RawFd> {
        self.shared.ring.get()?.as_ref().map(|r| r.fd())
    }

    fn files(&self) -> MutexGuard<'_, HashMap<FileKey, Weak<File>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a handle on the file `key`. The first handle's `backend` serves
    /// the file while any handle is open, unless a later writing handle
    /// brings one when the first could only read. The backend must be able
    /// to do what every handle asks of it (the shim gives it a private
    /// read-write descriptor where the file allows).
    pub fn open(&self, key: FileKey, name: &str, backend: Arc<dyn Backend>, mode: Mode) -> Handle {
        self.open_as(key, name, backend, mode, Offer::IfMore)
            .unwrap_or_else(|| unreachable!("an offer that may improve is never refused"))
    }

    /// As [`Engine::open`], but only if no handle of the file is open:
    /// `backend` then serves the file alone, and may be one that must not
    /// outlive this handle (a duplicate of one program descriptor). `None`
    /// if the file is open already.
    pub fn open_alone(
        &self,
        key: FileKey,
        name: &str,
        backend: Arc<dyn Backend>,
        mode: Mode,
    ) -> Option<Handle> {
        self.open_as(key, name, backend, mode, Offer::Alone)
    }

    /// As [`Engine::open`], and `backend` serves the file from now on
    /// whatever served it before (which may belong to another handle that
    /// will close first).
    pub fn open_replacing(
        &self,
        key: FileKey,
        name: &str,
        backend: Arc<dyn Backend>,
        mode: Mode,
    ) -> Handle {
        self.open_as(key, name, backend, mode, Offer::Replace)
            .unwrap_or_else(|| unreachable!("a replacing offer is never refused"))
    }

    fn open_as(
        &self,
        key: FileKey,
        name: &str,
        backend: Arc<dyn Backend>,
        mode: Mode,
        offer: Offer,
    ) -> Option<Handle> {
        let mut files = self.files();
        let file = match files.get(&key).and_then(Weak::upgrade) {
            Some(f) => {
                match offer {
                    Offer::IfMore => f.offer_backend(backend),
                    Offer::Replace => f.set_backend(backend),
                    Offer::Alone if f.handles.load(Ordering::Relaxed) > 0 => return None,
                    Offer::Alone => f.set_backend(backend),
                }
                f
            }
            None => {
                if files.len() >= 64 && files.len().is_power_of_two() {
                    files.retain(|_, w| w.strong_count() > 0);
                }
                let depth = self.shared.depth(key.dev);
                let f = Arc::new(File::new(
                    Arc::clone(&self.shared),
                    key,
                    name,
                    backend,
                    depth,
                ));
                files.insert(key, Arc::downgrade(&f));
                f
            }
        };
        // The handle is counted before the registry lock is dropped, so a
        // later `open_alone` of the file sees it.
        let h = Handle::new(file, self.next_handle.fetch_add(1, Ordering::Relaxed), mode);
        drop(files);
        Some(h)
    }

    fn find(&self, key: FileKey) -> Option<Arc<File>> {
        self.files().get(&key).and_then(Weak::upgrade)
    }

    /// End of the pending data of file `key`, if it is open here (for
    /// `stat` by path, which has no handle).
    pub fn pending_end(&self, key: FileKey) -> Option<u64> {
        self.find(key).map(|f| f.pending_end())
    }

    /// Waits until the pending data of file `key` is on storage (before a
    /// truncate or an `O_TRUNC` open by path).
    pub fn flush_file(&self, key: FileKey) {
        if let Some(f) = self.find(key) {
            f.flush();
        }
    }

    /// Drops the read-ahead data of file `key`.
    pub fn drop_cache_of(&self, key: FileKey) {
        if let Some(f) = self.find(key) {
            f.drop_cache();
        }
    }

    /// File `key` was changed outside the engine: drops its cached data and
    /// what the engine knew of its size.
    pub fn invalidate_file(&self, key: FileKey) {
        if let Some(f) = self.find(key) {
            f.invalidate();
        }
    }

    /// The program saw file `key`'s attributes (a stat by path): see
    /// [`Handle::observe`].
    pub fn observe(&self, key: FileKey, a: Attrs) {
        if let Some(f) = self.find(key) {
            f.observe(a);
        }
    }

    /// True when some file has data not yet on storage.
    pub fn has_pending(&self) -> bool {
        let files: Vec<Arc<File>> = self.files().values().filter_map(Weak::upgrade).collect();
        files.iter().any(|f| f.has_pending())
    }

    /// True when some file is open in the engine.
    pub fn has_files(&self) -> bool {
        self.files().values().any(|w| w.strong_count() > 0)
    }

    fn live(&self) -> Vec<Arc<File>> {
        self.files().values().filter_map(Weak::upgrade).collect()
    }

    /// Waits until every file's pending data is on storage (exit, `sync`).
    pub fn flush_all(&self) {
        for f in self.live() {
            f.flush();
        }
    }

    /// Drops the read-ahead data of every file (a barrier: another program
    /// may change files).
    pub fn drop_caches(&self) {
        for f in self.live() {
            f.drop_cache();
        }
    }

    /// Process totals.
    pub fn totals(&self, reset: bool) -> Snapshot {
        self.shared.totals.snapshot(reset)
    }

    /// Per-file rows: open files, then recently closed ones.
    pub fn file_reports(&self, reset: bool) -> Vec<FileReport> {
        self.reports_with(reset, || {})
    }

    // `between` runs after the open rows are taken, before the closed ones
    // (tests put a worker's last reference going there).
    fn reports_with(&self, reset: bool, between: impl FnOnce()) -> Vec<FileReport> {
        // Held until the closed rows are read: a file whose last other
        // reference (a worker finishing its batch) goes meanwhile would
        // otherwise be dropped by this list, join the closed rows, and be
        // reported twice (`conveyor report` then counted two processes).
        let live = self.live();
        let mut out: Vec<FileReport> = live
            .iter()
            .map(|f| FileReport {
                name: f.name.clone(),
                open: true,
                stats: f.rec.file.snapshot(reset),
            })
            .collect();
        between();
        if let Ok(closed) = self.shared.closed.lock() {
            out.extend(closed.iter().map(|(n, c)| FileReport {
                name: n.clone(),
                open: false,
                stats: c.snapshot(reset),
            }));
        }
        drop(live);
        out
    }

    /// What the engine holds now: open files, buffered writes, memory.
    pub fn gauges(&self) -> Gauges {
        let mut g = Gauges {
            memory_used: self.memory_used(),
            memory_cap: self.memory_cap(),
            ..Gauges::default()
        };
        for f in self.live() {
            if f.handles.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let (held, limit) = f.buffered();
            g.open_files += 1;
            g.write_buffered += held;
            g.write_limit += limit;
        }
        g
    }

    /// Write-behind and read-ahead memory held now.
    pub fn memory_used(&self) -> usize {
        self.shared.budget.used()
    }

    /// The process-wide memory cap.
    pub fn memory_cap(&self) -> usize {
        self.shared.budget.cap()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.pool.shutdown();
        if let Some(Some(ring)) = self.shared.ring.get() {
            ring.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{MemBackend, MockConfig};
    use std::time::Duration;

    /// A file whose last reference goes while the report is being made
    /// (a worker retiring its batch just after the program's close) is
    /// listed once: it was listed open and then closed as well, and
    /// `conveyor report` counted two processes for it.
    #[test]
    fn a_file_closing_during_a_report_is_listed_once() {
        let engine = Engine::new(Config::default());
        let storage = Arc::new(MemBackend::new(MockConfig::default()));
        let h = engine.open(FileKey { dev: 1, ino: 1 }, "f", storage, Mode::READ_WRITE);
        // A whole request: written on this thread, so no worker of the
        // pool holds the file now.
        h.write(&vec![7u8; 1 << 20]).unwrap();
        // A worker's reference, outliving the handle.
        let worker = engine.live();
        h.close().unwrap();
        let rows = engine.reports_with(false, || drop(worker));
        let n = rows.iter().filter(|r| r.name == "f").count();
        assert_eq!(n, 1, "listed {n} times");
    }

    #[test]
    fn gauges_show_open_files_and_buffered_writes() {
        let engine = Engine::new(Config::default());
        assert_eq!(engine.gauges().open_files, 0);
        let storage = Arc::new(MemBackend::new(MockConfig {
            write_latency: Duration::from_millis(200),
            ..MockConfig::default()
        }));
        let h = engine.open(FileKey { dev: 1, ino: 2 }, "g", storage, Mode::READ_WRITE);
        // The first batch goes out at once; what follows waits behind it.
        for _ in 0..64 {
            h.write(&[7u8; 4096]).unwrap();
        }
        let g = engine.gauges();
        assert_eq!(g.open_files, 1);
        assert!(
            g.write_buffered > 0 && g.write_limit >= g.write_buffered,
            "{g:?}"
        );
        assert!(
            g.memory_used >= g.write_buffered && g.memory_cap > 0,
            "{g:?}"
        );
        h.close().unwrap();
        let g = engine.gauges();
        assert_eq!((g.open_files, g.write_buffered), (0, 0), "{g:?}");
    }
}
