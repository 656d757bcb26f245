//! `fork` and `vfork`: the barrier, then every lock of the shim held
//! across the call, so that the child (which has only the forking thread)
//! finds them free and whole. The child forgets the descriptions it
//! inherited (they pass through there) and starts an engine of its own.
//!
//! The locks, in the order every other path nests them (taken in this
//! order here, so no fork can deadlock with a thread taking them):
//!
//! 0. `crash`'s connection to the flusher (connecting tracks the new
//!    descriptor, lock 3);
//! 1. `ops::retire`'s list of retired private descriptors;
//! 2. `registry`'s shared-backend list, then `passthrough`'s files;
//! 3. `backend`'s list of private descriptors;
//! 4. `counts`' test counters;
//! 5. `ops::behind`'s queue of closes in flight (empty after the barrier).
//!
//! Engine locks are not among them: the child never uses the parent's
//! engine (`state::fork_child` gives it a new one, and closes the parent's
//! io_uring descriptor there).

use super::{barrier, Reach};
use crate::{fdtable, state};

/// The shim's own locks, held across `fork`: a thread that holds one at
/// the fork does not exist in the child, which would wait for it forever.
/// Taken in the order every other path nests them.
pub struct ForkHold {
    _flusher: std::sync::MutexGuard<'static, ()>,
    _retired: std::sync::MutexGuard<'static, Vec<crate::ops::retire::Retired>>,
    backends: crate::registry::ForkHold,
    passed: crate::passthrough::ForkHold,
    private: std::sync::MutexGuard<'static, Vec<libc::c_int>>,
    counts: std::sync::MutexGuard<'static, Vec<(&'static str, u64)>>,
    behind: crate::ops::behind::ForkHold,
}

/// `fork` (and `vfork`, which runs as `fork`: a vfork child shares the
/// parent's memory, and a hook running in it must not change the parent's
/// state), with the barrier and the shim's locks around it.
///
/// # Safety
/// As for `fork(2)`: the caller is the program's own call of it.
pub unsafe fn fork_as(name: &'static str) -> libc::pid_t {
    let hold = before_fork(name);
    // SAFETY: no arguments; the caller's contract.
    let pid = unsafe { crate::real::fork() };
    if pid == 0 {
        in_child(hold);
    } else {
        in_parent(hold);
    }
    pid
}

/// Before `fork`: the barrier, then the shim's locks.
fn before_fork(name: &'static str) -> ForkHold {
    barrier(name, Reach::All);
    ForkHold {
        _flusher: crate::crash::hold_for_fork(),
        _retired: crate::ops::retire::hold_for_fork(),
        backends: crate::registry::hold_for_fork(),
        passed: crate::passthrough::hold_for_fork(),
        private: crate::backend::hold_for_fork(),
        counts: crate::counts::hold_for_fork(),
        behind: crate::ops::behind::hold_for_fork(),
    }
}

/// In the parent after `fork` (or when it failed).
fn in_parent(hold: ForkHold) {
    drop(hold);
}

/// In the child of `fork`: the descriptions it inherited pass through (the
/// parent's engine and threads keep them), and files it opens from now on
/// are managed by a fresh engine with workers of its own.
fn in_child(mut hold: ForkHold) {
    // First: what follows may drop the parent's files here, whose drops
    // must not reach the parent's journal or connection.
    crate::crash::in_child(&mut hold.private);
    super::fatal::in_child();
    let inherited: Vec<_> = fdtable::all().iter().map(|(_, d)| d.key).collect();
    fdtable::forget_all();
    hold.counts.clear();
    let ForkHold {
        backends,
        passed,
        behind,
        mut private,
        ..
    } = hold;
    behind.in_child();
    backends.in_child();
    passed.in_child(&inherited);
    if let Some(ring) = state::parent_ring() {
        private.retain(|fd| *fd != ring);
        // SAFETY: the shim's own descriptor, which nothing in the child uses.
        unsafe { crate::real::close(ring) };
    }
    // The new state tracks descriptors of its own (its journal's).
    drop(private);
    state::fork_child();
}
