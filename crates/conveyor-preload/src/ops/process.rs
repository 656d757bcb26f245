//! Barriers before another program can see the files (`fork`, `exec*`,
//! `posix_spawn*`, `system`, `popen`) and at exit: pending data is written,
//! kernel offsets set, cached data dropped. A forked child starts with
//! everything passed through: its copy of the engine has no threads.

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

/// In the child of `fork`: stop managing anything.
pub fn in_child() {
    super::signals::in_child();
    state::deactivate();
    fdtable::forget_all();
    crate::counts::disable();
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
                    if last {
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
