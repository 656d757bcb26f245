//! Runs the managed part of a hook safely: at most once per thread at a time
//! (re-entry passes through), with `errno` preserved on success, every error
//! turned into `-1`/errno, and a panic turned into `EIO` without running the
//! real call again (that would repeat the I/O).

use crate::real::{errno, set_errno, Failure};
use conveyor_engine::Errno;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{compiler_fence, Ordering};

thread_local! {
    // Const-initialised and without a destructor: safe to touch at any
    // point of a thread's life, including its exit.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `managed` unless this thread is already inside the shim, in which
/// case it runs `pass` (the real call) instead.
pub fn run<R: Failure>(pass: impl FnOnce() -> R, managed: impl FnOnce() -> Result<R, Errno>) -> R {
    let entered = BUSY.try_with(|b| !b.replace(true)).unwrap_or(false);
    if !entered {
        return pass();
    }
    // A signal handler finds the flag set from here on (same thread: a
    // compiler fence orders it).
    compiler_fence(Ordering::SeqCst);
    let saved = errno();
    let out = catch_unwind(AssertUnwindSafe(managed));
    compiler_fence(Ordering::SeqCst);
    let _ = BUSY.try_with(|b| b.set(false));
    // The program's handlers of signals that arrived meanwhile (they wait
    // until the call is done, as for a disk write in the kernel), then a
    // fatal signal's flush.
    crate::ops::held::run_held();
    crate::ops::signals::deliver_pending();
    match out {
        Ok(Ok(v)) => {
            set_errno(saved);
            v
        }
        Ok(Err(Errno::HANDED_OVER)) => {
            // The description went back to the kernel while this call was
            // on its way: the real call does it.
            set_errno(saved);
            pass()
        }
        Ok(Err(e)) => {
            set_errno(e.0);
            R::failure()
        }
        Err(_) => {
            tracing::error!("internal error (panic) in a hook; the call fails with EIO");
            set_errno(libc::EIO);
            R::failure()
        }
    }
}

/// Blocks every signal glibc lets a thread block; returns the old mask.
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: plain C sets, filled by the calls before use.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

/// Puts back the mask `block_signals` returned.
pub fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask `block_signals` read.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// True while this thread runs shim code (its own I/O must pass through).
pub fn inside() -> bool {
    BUSY.try_with(|b| b.get()).unwrap_or(true)
}
