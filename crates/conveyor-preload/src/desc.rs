//! A managed open file description: the engine handle that every fd
//! `dup`'ed from it shares, and what the shim needs to hand it back to the
//! kernel (its path, identity and private backend).

use crate::backend::RawBackend;
use crate::guard::Inside;
use conveyor_engine::{FileKey, Handle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A metadata change through the descriptor that relaxed close holds back
/// until the description's data is written (`ops::behind`).
#[derive(Clone, Copy)]
pub enum Meta {
    /// `futimens` (`futimes` converted; `UTIME_NOW` already read off the
    /// clock, so the time is the call's, not the later write's).
    Times([libc::timespec; 2]),
    /// `fchmod`.
    Mode(libc::mode_t),
    /// `fchown`.
    Owner(libc::uid_t, libc::gid_t),
}

impl Meta {
    /// What it does, for an error message.
    pub fn what(&self) -> &'static str {
        match self {
            Meta::Times(_) => "setting its times",
            Meta::Mode(_) => "setting its mode",
            Meta::Owner(..) => "setting its owner",
        }
    }
}

/// What relaxed close may do with a description, decided at its open.
#[derive(Clone, Copy, Default)]
pub struct Behind {
    /// Its close may return before its data is written.
    pub close: bool,
    /// It created its file (`O_CREAT|O_EXCL`), so metadata set through it
    /// may wait for its data too.
    pub meta: bool,
}

/// One managed open file description.
pub struct Desc {
    // The engine's view: offset, mode, buffered state. Reached only inside
    // the shim (`handle`).
    handle: Handle,
    /// The private descriptors the engine's I/O goes through.
    pub backend: Arc<RawBackend>,
    /// The file (inode) it is open on.
    pub key: FileKey,
    /// Set once the description is under descriptor 0, 1 or 2, where code
    /// without hooks (glibc's stdio, shell builtins) may read or write it
    /// at the kernel's offset at any moment. Never cleared.
    exposed: AtomicBool,
    /// For an exposed description: the kernel offset as the shim last left
    /// it. Anything else found there was moved by such code.
    kernel_pos: AtomicU64,
    /// What relaxed close may do with it.
    behind: Behind,
    /// Set once a lock was taken through it. Never cleared.
    locked: AtomicBool,
    /// Metadata held back until its data is written, in call order.
    meta: Mutex<Vec<Meta>>,
    /// True while `meta` is not empty (one load on every operation).
    has_meta: AtomicBool,
}

impl Desc {
    /// A description of `key`, exposed if it sits under a standard stream.
    pub fn new(handle: Handle, backend: Arc<RawBackend>, key: FileKey, exposed: bool) -> Desc {
        Desc {
            handle,
            backend,
            key,
            exposed: AtomicBool::new(exposed),
            kernel_pos: AtomicU64::new(0),
            behind: Behind::default(),
            locked: AtomicBool::new(false),
            meta: Mutex::new(Vec::new()),
            has_meta: AtomicBool::new(false),
        }
    }

    /// The same, with what relaxed close may do with it.
    pub fn with_behind(mut self, behind: Behind) -> Desc {
        self.behind = behind;
        self
    }

    /// Its close may return before its data is written.
    pub fn closes_behind(&self) -> bool {
        self.behind.close
    }

    /// Metadata set through it may wait for its data.
    pub fn defers_meta(&self) -> bool {
        self.behind.close && self.behind.meta
    }

    /// True once a lock was taken through it.
    pub fn locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// A lock was taken through it.
    pub fn set_locked(&self) {
        self.locked.store(true, Ordering::Relaxed);
    }

    /// True while metadata is held back on it.
    pub fn has_meta(&self) -> bool {
        self.has_meta.load(Ordering::Acquire)
    }

    /// Holds `m` back; true if it is the first one held.
    pub fn push_meta(&self, m: Meta) -> bool {
        let mut v = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        v.push(m);
        self.has_meta.store(true, Ordering::Release);
        v.len() == 1
    }

    /// What is held back, in call order (empty if another thread took it).
    pub fn take_meta(&self) -> Vec<Meta> {
        let mut v = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        self.has_meta.store(false, Ordering::Release);
        std::mem::take(&mut *v)
    }

    /// The engine's handle, for a thread inside the shim.
    pub fn handle(&self, _: &Inside) -> &Handle {
        &self.handle
    }

    /// True once code without hooks can reach the description.
    pub fn exposed(&self) -> bool {
        // Relaxed: set by the thread that moved the description onto a
        // standard stream, before that thread runs any code that uses it.
        self.exposed.load(Ordering::Relaxed)
    }

    /// Marks the description reachable by code without hooks.
    pub fn expose(&self) {
        self.exposed.store(true, Ordering::Relaxed);
    }

    /// The kernel offset the shim last set.
    pub fn kernel_pos(&self) -> u64 {
        self.kernel_pos.load(Ordering::Relaxed)
    }

    /// Records the kernel offset the shim just set.
    pub fn set_kernel_pos(&self, pos: u64) {
        self.kernel_pos.store(pos, Ordering::Relaxed);
    }
}
