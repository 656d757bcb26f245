//! The program's own signal handlers run through a trampoline, so that a
//! signal arriving while its thread is inside the shim is held back and
//! its handler runs as the thread leaves the shim, the way the kernel
//! holds a signal back until a disk write finishes. A handler that does
//! I/O on a managed descriptor could otherwise run in the middle of the
//! engine: waiting for a lock its own thread holds, or bypassing the
//! engine and writing out of order. Holding back costs nothing on the
//! hooks' path: a thread-local flag is set by the trampoline and read
//! when the thread leaves the shim (no system call, unlike blocking
//! signals for every call).
//!
//! Synchronous signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS)
//! concern the instruction that raised them and are never wrapped.

use crate::{guard, real};
use libc::{c_int, c_void, siginfo_t};
use std::cell::Cell;
use std::sync::atomic::{compiler_fence, AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

// What the process layer runs as a thread leaves the shim after the held
// handlers: the delivery of a fatal signal that arrived inside (its flush
// needs locks the thread may have held). Registered once, at start-up, so
// the guard never names the layer above it.
static ON_LEAVE: OnceLock<fn()> = OnceLock::new();

/// Registers `f` to run each time a thread leaves the shim.
pub fn on_leave(f: fn()) {
    let _ = ON_LEAVE.set(f);
}

/// Everything deferred while the thread was inside: the program's held
/// handlers, then the registered action.
pub fn leave() {
    run_held();
    if let Some(f) = ON_LEAVE.get() {
        f();
    }
}

const SLOTS: usize = 65;
/// Signals whose handlers run at once, whatever the thread is doing.
const IMMEDIATE: &[c_int] = &[
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
];

// The program's handler (0: none) and its `sa_flags`, per signal. Written
// by `sigaction` before the trampoline is installed for that signal, read
// by the trampoline; a handler is plain data, so relaxed order is enough
// beyond the release/acquire pair that publishes it.
static HANDLER: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static FLAGS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// Signals of different numbers held back at once with their details;
/// beyond that a handler gets only the signal number in its siginfo.
const KEPT: usize = 4;

// SAFETY: an all-zero siginfo_t is a valid value of the C struct.
const NO_INFO: [siginfo_t; KEPT] = unsafe { std::mem::zeroed() };

thread_local! {
    // Signals held back on this thread, bit `n - 1` for signal n. Written only by
    // the trampoline while the thread is inside the shim, read only by
    // `run_held` after it left (so the two never interleave).
    static HELD: Cell<u64> = const { Cell::new(0) };
    // Their siginfo, for SA_SIGINFO handlers.
    static INFO: Cell<[siginfo_t; KEPT]> = const { Cell::new(NO_INFO) };
}

/// The bit of `sig` (1 to 64) in `HELD`.
fn bit(sig: c_int) -> Option<u64> {
    index(sig).map(|i| 1u64 << (i - 1))
}

fn index(sig: c_int) -> Option<usize> {
    usize::try_from(sig).ok().filter(|&i| i > 0 && i < SLOTS)
}

/// True if the program's handler for `sig` is to run through the
/// trampoline.
pub fn wraps(sig: c_int, handler: libc::sighandler_t) -> bool {
    handler != libc::SIG_DFL
        && handler != libc::SIG_IGN
        && !is_trampoline(handler)
        && !IMMEDIATE.contains(&sig)
        && index(sig).is_some()
}

/// True if `handler` is the trampoline.
pub fn is_trampoline(handler: libc::sighandler_t) -> bool {
    handler == trampoline as *const () as libc::sighandler_t
}

/// The action to install for the program's `act` (which `wraps`): the
/// trampoline with the program's mask and flags, its handler recorded.
pub fn wrap(sig: c_int, act: &libc::sigaction) -> libc::sigaction {
    if let Some(i) = index(sig) {
        FLAGS[i].store(act.sa_flags, Ordering::Relaxed);
        HANDLER[i].store(act.sa_sigaction, Ordering::Release);
    }
    let mut ours = *act;
    ours.sa_sigaction = trampoline as *const () as libc::sighandler_t;
    ours.sa_flags |= libc::SA_SIGINFO;
    ours
}

/// The program's handler and flags for `sig`, as it installed them.
pub fn recorded(sig: c_int) -> Option<(libc::sighandler_t, c_int)> {
    let i = index(sig)?;
    let h = HANDLER[i].load(Ordering::Acquire);
    (h != 0).then(|| (h, FLAGS[i].load(Ordering::Relaxed)))
}

/// Forgets the program's handler for `sig` (it installed another kind of
/// action, which is now in place).
pub fn forget(sig: c_int) {
    if let Some(i) = index(sig) {
        HANDLER[i].store(0, Ordering::Release);
    }
}

/// Shows the program its own action where the trampoline stands.
pub fn translate(old: &mut libc::sigaction, was: Option<(libc::sighandler_t, c_int)>) {
    if is_trampoline(old.sa_sigaction) {
        if let Some((h, f)) = was {
            old.sa_sigaction = h;
            old.sa_flags = f;
        }
    }
}

extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, uctx: *mut c_void) {
    if guard::inside() {
        hold(sig, info);
    } else {
        call(sig, info, uctx);
    }
}

/// Keeps `sig` for `run_held` (signal context: only this thread's cells).
fn hold(sig: c_int, info: *const siginfo_t) {
    let Some(bit) = bit(sig) else { return };
    let _ = HELD.try_with(|h| h.set(h.get() | bit));
    let _ = INFO.try_with(|cell| {
        let mut kept = cell.get();
        let free = kept
            .iter()
            .position(|k| k.si_signo == sig || k.si_signo == 0);
        if let (Some(i), false) = (free, info.is_null()) {
            // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
            kept[i] = unsafe { *info };
            kept[i].si_signo = sig;
            cell.set(kept);
        }
    });
}

/// Calls the program's handler for `sig` as it asked to be called.
fn call(sig: c_int, info: *mut siginfo_t, uctx: *mut c_void) {
    let Some((h, flags)) = recorded(sig) else {
        return;
    };
    if h == libc::SIG_IGN || h == libc::SIG_DFL {
        return;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed `h` as an SA_SIGINFO handler.
        let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, uctx);
    } else {
        // SAFETY: the program installed `h` as a plain handler.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// Runs the handlers of signals held back while this thread was inside
/// the shim (called right after it left), each with the signal mask its
/// action asks for, as the kernel would have run it.
pub fn run_held() {
    compiler_fence(Ordering::SeqCst);
    if HELD.try_with(Cell::get).unwrap_or(0) == 0 {
        return;
    }
    // A signal now finds the thread outside the shim and runs directly,
    // but must not interleave with taking the held ones.
    let old = guard::block_signals();
    let bits = HELD.try_with(|h| h.replace(0)).unwrap_or(0);
    // SAFETY: an all-zero siginfo_t is a valid value.
    let kept = INFO
        .try_with(|c| c.replace(unsafe { std::mem::zeroed() }))
        .unwrap_or_else(|_| unsafe { std::mem::zeroed() });
    let saved = real::errno();
    for sig in (1..SLOTS as c_int).filter(|&s| bit(s).is_some_and(|b| bits & b != 0)) {
        let mut info = kept
            .iter()
            .find(|k| k.si_signo == sig)
            .copied()
            // SAFETY: an all-zero siginfo_t is a valid value.
            .unwrap_or_else(|| unsafe { std::mem::zeroed() });
        info.si_signo = sig;
        // SAFETY: an all-zero ucontext_t is a valid value; handlers that
        // look at the interrupted context get an empty one.
        let mut uctx: libc::ucontext_t = unsafe { std::mem::zeroed() };
        // The action's mask, plus the signal itself unless SA_NODEFER.
        let mut mask = old;
        // SAFETY: plain C structs the calls fill or read.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            if real::sigaction(sig, std::ptr::null(), &mut cur) == 0 {
                for s in 1..65 {
                    if libc::sigismember(&cur.sa_mask, s) == 1 {
                        libc::sigaddset(&mut mask, s);
                    }
                }
                if cur.sa_flags & libc::SA_NODEFER == 0 {
                    libc::sigaddset(&mut mask, sig);
                }
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        }
        call(sig, &mut info, (&mut uctx as *mut libc::ucontext_t).cast());
    }
    real::set_errno(saved);
    guard::restore_signals(&old);
}
