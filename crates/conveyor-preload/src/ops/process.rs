//! Barriers before another program can see the files (`fork`, `exec*`,
//! `posix_spawn*`, `system`, `popen`) and at exit: pending data is written,
//! kernel offsets set, cached data dropped. A forked child that keeps
//! running gets an engine of its own for the files it opens; what it
//! inherited passes through there.

use super::sync_kernel_offset;
use crate::desc::Desc;
use crate::{counts, fdtable, guard, real, state};
use std::sync::Arc;

/// True if `fd` survives an exec (no `FD_CLOEXEC`).
fn inherited(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD takes no argument; no memory involved.
    let flags = unsafe { real::fcntl(fd, libc::F_GETFD, 0) };
    flags >= 0 && flags & libc::FD_CLOEXEC == 0
}

/// Makes the files as another program would find them without the shim.
pub fn barrier(name: &'static str) {
    let Some(shim) = state::get() else { return };
    if guard::inside() {
        return;
    }
    counts::hit(name);
    let _ = guard::run(
        || 0,
        || {
            shim.engine.flush_all();
            let all = fdtable::all();
            for (fd, d) in &all {
                sync_kernel_offset(*fd, d);
            }
            // A description the other program inherits (an fd without
            // FD_CLOEXEC) is shared with it: it passes through from now on
            // here too, or the engine's offset would go stale as the other
            // program moves the kernel's.
            let shared: Vec<&Arc<Desc>> = all
                .iter()
                .filter(|(fd, _)| inherited(*fd))
                .map(|(_, d)| d)
                .collect();
            for (fd, d) in &all {
                if shared.iter().any(|s| Arc::ptr_eq(s, d)) {
                    // Writers on other threads may be inside the engine on
                    // this description right now: the hand-over waits for
                    // them and sends every later call to the kernel.
                    let _ = super::hand_over(*fd, d);
                }
            }
            shim.engine.drop_caches();
            Ok(0)
        },
    );
}

/// Before an exec: the barrier, and the test counters written out (the
/// process image, with them, is about to be replaced).
pub fn before_exec(name: &'static str) {
    barrier(name);
    // The new image may manage nothing: `top` must not show a stale file.
    crate::live::stop();
    crate::counts::write_out();
}

/// The shim's own locks, held across `fork`: a thread that holds one at
/// the fork does not exist in the child, which would wait for it forever.
/// Taken in the order every other path nests them.
pub struct ForkHold {
    _retired: std::sync::MutexGuard<'static, Vec<super::retire::Retired>>,
    policy: crate::policy::ForkHold,
    _private: std::sync::MutexGuard<'static, Vec<libc::c_int>>,
    counts: std::sync::MutexGuard<'static, Vec<(&'static str, u64)>>,
}

/// Before `fork`: the barrier, then the shim's locks.
pub fn before_fork(name: &'static str) -> ForkHold {
    barrier(name);
    ForkHold {
        _retired: super::retire::hold_for_fork(),
        policy: crate::policy::hold_for_fork(),
        _private: crate::backend::hold_for_fork(),
        counts: crate::counts::hold_for_fork(),
    }
}

/// In the parent after `fork` (or when it failed).
pub fn in_parent(hold: ForkHold) {
    drop(hold);
}

/// In the child of `fork`: the descriptions it inherited pass through (the
/// parent's engine and threads keep them), and files it opens from now on
/// are managed by a fresh engine with workers of its own.
pub fn in_child(mut hold: ForkHold) {
    super::signals::in_child();
    let inherited: Vec<_> = fdtable::all().iter().map(|(_, d)| d.key).collect();
    fdtable::forget_all();
    hold.counts.clear();
    let ForkHold { policy, .. } = hold;
    policy.in_child(&inherited);
    state::fork_child();
}

/// At exit: everything pending is written. `last` marks the last chance
/// (the library destructor, which runs after every atexit handler, or
/// `_exit`): the stats report is written then, once.
pub fn at_exit(last: bool) {
    if let Some(shim) = state::get() {
        // SAFETY: getpid has no preconditions.
        if state::owner() == unsafe { libc::getpid() } {
            crate::live::stop();
            let _ = guard::run(
                || 0,
                || {
                    shim.engine.flush_all();
                    // A forked child that managed nothing (one about to
                    // exec, say) leaves the report to its parent.
                    let quiet =
                        state::in_forked_child() && shim.engine.file_reports(false).is_empty();
                    if last && !quiet {
                        crate::report::write_once(&shim.engine);
                        crate::log::flush_suppressed();
                    }
                    Ok(0)
                },
            );
        }
    }
    crate::counts::write_out();
}
