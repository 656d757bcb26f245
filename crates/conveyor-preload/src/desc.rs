//! A managed open file description: the engine handle that every fd
//! `dup`'ed from it shares, and what the shim needs to hand it back to the
//! kernel (its path, identity and private backend).

use crate::backend::RawBackend;
use crate::guard::Inside;
use conveyor_engine::{FileKey, Handle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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
        }
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
