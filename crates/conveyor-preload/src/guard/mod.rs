//! Runs the managed part of a hook safely: at most once per thread at a time
//! (re-entry passes through), with `errno` preserved on success, every error
//! turned into `-1`/errno, and a panic turned into `EIO` without running the
//! real call again (that would repeat the I/O).
//!
//! Being inside the shim is a value: [`run`] hands the managed part an
//! [`Inside`], and the engine can be reached only with one
//! (`Desc::handle`, `Shim::engine`). So no path can take an engine lock
//! while the thread is outside the guard, where a signal handler that
//! writes would run at once and deadlock on the same lock: such code does
//! not compile.

pub mod deferred;

use crate::real::{errno, set_errno, Failure};
use conveyor_engine::Errno;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{compiler_fence, Ordering};

/// Proof that the current thread is inside the shim: its re-entry flag is
/// set, so signals for the program's handlers are held back and hooks it
/// reaches pass through. Only [`run`] and [`quietly`] make one, for the
/// duration of a closure; it cannot leave the thread.
pub struct Inside {
    _not_send: PhantomData<*const ()>,
}

thread_local! {
    // Const-initialised and without a destructor: safe to touch at any
    // point of a thread's life, including its exit.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// What running a closure inside the shim came to.
enum Entered<T> {
    /// The thread was already inside: nothing ran.
    Busy,
    /// The closure's value.
    Done(T),
    /// The closure panicked (logged).
    Panicked,
}

/// Runs `f` with the thread marked inside the shim, unless it already is;
/// `errno` is the caller's again afterwards, and signals held back
/// meanwhile are delivered as the thread leaves.
fn enter<T>(f: impl FnOnce(&Inside) -> T) -> Entered<T> {
    let entered = BUSY.try_with(|b| !b.replace(true)).unwrap_or(false);
    if !entered {
        return Entered::Busy;
    }
    // A signal handler finds the flag set from here on (same thread: a
    // compiler fence orders it).
    compiler_fence(Ordering::SeqCst);
    let saved = errno();
    let inside = Inside {
        _not_send: PhantomData,
    };
    let out = catch_unwind(AssertUnwindSafe(|| f(&inside)));
    compiler_fence(Ordering::SeqCst);
    let _ = BUSY.try_with(|b| b.set(false));
    // The program's handlers of signals that arrived meanwhile (they wait
    // until the call is done, as for a disk write in the kernel), then a
    // fatal signal's flush.
    deferred::leave();
    set_errno(saved);
    match out {
        Ok(v) => Entered::Done(v),
        Err(_) => {
            tracing::error!("internal error (panic) in a hook; the call fails with EIO");
            Entered::Panicked
        }
    }
}

/// Runs `managed` unless this thread is already inside the shim, in which
/// case it runs `pass` (the real call) instead.
pub fn run<R: Failure>(
    pass: impl FnOnce() -> R,
    managed: impl FnOnce(&Inside) -> Result<R, Errno>,
) -> R {
    match enter(managed) {
        Entered::Busy => pass(),
        Entered::Done(Ok(v)) => v,
        // The description went back to the kernel while this call was on
        // its way: the real call does it.
        Entered::Done(Err(Errno::HANDED_OVER)) => pass(),
        Entered::Done(Err(e)) => {
            set_errno(e.0);
            R::failure()
        }
        // Never the real call again: that would repeat the I/O.
        Entered::Panicked => {
            set_errno(libc::EIO);
            R::failure()
        }
    }
}

/// Runs `f` inside the shim and returns its value; `None` when the thread
/// is already inside (the outer call is doing the shim's work) or `f`
/// panicked. `errno` stays the caller's.
pub fn within<T>(f: impl FnOnce(&Inside) -> T) -> Option<T> {
    match enter(f) {
        Entered::Done(v) => Some(v),
        Entered::Busy | Entered::Panicked => None,
    }
}

/// Runs `f` inside the shim for its side effects (a flush, a hand-over);
/// nothing when the thread is already inside.
pub fn quietly(f: impl FnOnce(&Inside)) {
    let _ = within(f);
}

/// Runs `f` inside the shim and returns its error, if any (`Ok` when the
/// thread is already inside); `errno` stays the caller's.
pub fn settle(f: impl FnOnce(&Inside) -> Result<(), Errno>) -> Result<(), Errno> {
    match enter(f) {
        Entered::Done(r) => r,
        Entered::Busy => Ok(()),
        Entered::Panicked => Err(Errno::EIO),
    }
}

/// Starts a thread of the shim: signals meant for the program are blocked
/// in it before `f` runs, so the program's handlers (and the shim's
/// fatal-signal handler) only ever run on the program's threads, never on
/// one that holds engine locks.
pub fn spawn_thread(
    name: &str,
    stack: usize,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack)
        .spawn(move || {
            thread_start();
            f()
        })
}

/// Run first in every thread of the shim, including the engine's workers
/// (`conveyor_engine::Hooks::thread_start`): see [`spawn_thread`].
pub fn thread_start() {
    block_signals();
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
