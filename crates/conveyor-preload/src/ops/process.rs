//! Barriers before another program can see the files (`fork`, `exec*`,
//! `posix_spawn*`, `system`, `popen`) and at exit: pending data is written,
//! kernel offsets set, cached data dropped. A forked child starts with
//! everything passed through: its copy of the engine has no threads.

use super::sync_kernel_offset;
use crate::{counts, fdtable, guard, state};

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
            for (fd, d) in fdtable::all() {
                sync_kernel_offset(fd, &d);
            }
            shim.engine.drop_caches();
            Ok(0)
        },
    );
}

/// In the child of `fork`: stop managing anything.
pub fn in_child() {
    state::deactivate();
    fdtable::forget_all();
    crate::counts::disable();
}

/// At exit: everything pending is written.
pub fn at_exit() {
    if let Some(shim) = state::get() {
        // SAFETY: getpid has no preconditions.
        if state::owner() == unsafe { libc::getpid() } {
            let _ = guard::run(
                || 0,
                || {
                    shim.engine.flush_all();
                    Ok(0)
                },
            );
        }
    }
    crate::counts::write_out();
}
