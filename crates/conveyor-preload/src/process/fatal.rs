//! Fatal signals: a signal whose default action ends the process (SIGTERM,
//! SIGINT, SIGHUP, ...) first writes the pending data, then ends the
//! process with that same default action, so the status the parent sees
//! is unchanged. A program's own handlers work exactly as before.
//!
//! The handler only writes the signal number to a pipe (async-signal-safe)
//! and returns; a dedicated thread, started with the first managed file,
//! does the flush and then re-sends the signal, whose action `SA_RESETHAND`
//! has already put back to the default. So no lock or allocation ever
//! happens in signal context. Signals the program ignores are never
//! touched, and handlers of its own run through the trampoline of `held`;
//! `signal`/`sigaction` are hooked so that the program sees the actions it
//! installed (`SIG_DFL` where the shim's handler stands in for it).

use crate::guard::deferred as held;
use crate::{backend, real, state};
use libc::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Signals whose default action terminates the process (crash signals such
/// as SIGSEGV are left alone: after a crash nothing is trustworthy).
const FATAL: &[c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGPIPE,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGIO,
    libc::SIGPWR,
];

// Write end of the pipe to the flushing thread (-1: not started).
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
// Set by the first managed open of this process; cleared in a forked
// child, which needs a flushing thread of its own.
static STARTED: AtomicBool = AtomicBool::new(false);
// True where the shim's handler stands in for the program's SIG_DFL.
static OWNED: [AtomicBool; 65] = [const { AtomicBool::new(false) }; 65];

/// `sigaction` as the program calls it: a handler of its own runs through
/// the trampoline of `held` (held back while its thread is inside the
/// shim), the shim stands in for `SIG_DFL` of fatal signals, and the
/// program is shown the actions it installed.
///
/// # Safety
/// As for `sigaction(2)`.
pub unsafe fn program_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let was = held::recorded(sig);
    // SAFETY: `act` is null or points to a sigaction (the caller's contract).
    let new = unsafe { act.as_ref() };
    let r = match new {
        Some(a) if held::wraps(sig, a.sa_sigaction) => {
            let ours = held::wrap(sig, a);
            // SAFETY: `ours` is a valid action; `old` is the caller's.
            unsafe { real::sigaction(sig, &ours, old) }
        }
        // SAFETY: the caller's arguments.
        _ if managed(sig) => unsafe { sigaction(sig, act, old) },
        // SAFETY: the caller's arguments.
        _ => unsafe { real::sigaction(sig, act, old) },
    };
    if r == 0 {
        if new.is_some_and(|a| !held::wraps(sig, a.sa_sigaction)) {
            held::forget(sig);
        }
        // SAFETY: `old` is null or was just filled by the call.
        if let Some(o) = unsafe { old.as_mut() } {
            held::translate(o, was);
        }
    }
    r
}

/// `signal`, `bsd_signal`, `sysv_signal` (`flags` tell which) as the
/// program calls them.
///
/// # Safety
/// As for `signal(2)`.
pub unsafe fn program_signal(
    sig: c_int,
    handler: libc::sighandler_t,
    flags: c_int,
) -> libc::sighandler_t {
    // Glibc's semantics, through the program's sigaction.
    // SAFETY: the caller's arguments.
    unsafe { signal_via(sig, handler, flags, program_sigaction) }
}

/// True for a signal the shim may stand in for.
pub fn is_fatal(sig: c_int) -> bool {
    FATAL.contains(&sig)
}

fn slot(sig: c_int) -> Option<&'static AtomicBool> {
    OWNED.get(usize::try_from(sig).ok()?)
}

// Read end of the pipe on which the flushing thread says it is done.
static DONE_R: AtomicI32 = AtomicI32::new(-1);
// A fatal signal that arrived while its thread was inside the shim (maybe
// holding a lock the flush needs): delivered when the thread leaves it.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Hands `sig` to the flushing thread, waits until the data is written,
/// and re-raises it (pending until the handler returns, when its default
/// action ends the process). Async-signal-safe: write, read and raise only.
fn deliver(sig: c_int) {
    let w = PIPE_W.load(Ordering::Acquire);
    let done = DONE_R.load(Ordering::Acquire);
    let b = sig as u8;
    // SAFETY: async-signal-safe calls on our own pipes and live bytes.
    unsafe {
        if w >= 0 && done >= 0 && real::write(w, (&b as *const u8).cast(), 1) == 1 {
            let mut ack = 0u8;
            while real::read(done, (&mut ack as *mut u8).cast(), 1) < 0
                && real::errno() == libc::EINTR
            {}
        }
        // SA_RESETHAND restored the default action: this ends the process
        // once the handler returns (or at once, from outside a handler).
        libc::raise(sig);
    }
}

extern "C" fn on_signal(sig: c_int) {
    let saved = real::errno();
    if crate::guard::inside() {
        // This thread may hold a lock the flush needs: finish the shim call
        // first (see `deliver_pending`).
        PENDING.store(sig, Ordering::Release);
    } else {
        deliver(sig);
    }
    real::set_errno(saved);
}

/// In a forked child: the flushing thread stayed in the parent, so a fatal
/// signal here takes its default action at once until the child's first
/// managed open starts a thread of its own. Without this the handler would
/// wait forever for a thread that does not exist.
pub fn in_child() {
    PIPE_W.store(-1, Ordering::Release);
    DONE_R.store(-1, Ordering::Release);
    PENDING.store(0, Ordering::Release);
    STARTED.store(false, Ordering::Release);
}

/// Called when a thread leaves the shim: delivers a deferred fatal signal.
pub fn deliver_pending() {
    if PENDING.load(Ordering::Relaxed) != 0 {
        let sig = PENDING.swap(0, Ordering::AcqRel);
        if sig != 0 {
            deliver(sig);
        }
    }
}

/// The action the shim installs in place of `SIG_DFL`.
pub fn our_action() -> libc::sigaction {
    // SAFETY: a plain C struct; every field is set below or zero is valid.
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = on_signal as *const () as libc::sighandler_t;
    a.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
    a
}

/// True if `handler` is the shim's own.
pub fn is_ours(handler: libc::sighandler_t) -> bool {
    handler == on_signal as *const () as libc::sighandler_t
}

/// Records whether the shim stands in for `sig` now.
pub fn set_owned(sig: c_int, owned: bool) {
    if let Some(s) = slot(sig) {
        s.store(owned, Ordering::Release);
    }
}

/// From the constructor: stand in for every fatal signal still at SIG_DFL.
pub fn install() {
    crate::guard::deferred::on_leave(deliver_pending);
    // Handlers installed before the shim loaded (another constructor) go
    // through the trampoline too.
    for sig in 1..libc::SIGRTMIN() {
        // SAFETY: a plain C struct the call fills.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: queries only; `cur` is writable.
        if unsafe { real::sigaction(sig, std::ptr::null(), &mut cur) } == 0
            && held::wraps(sig, cur.sa_sigaction)
        {
            let ours = held::wrap(sig, &cur);
            // SAFETY: the same action through the trampoline.
            if unsafe { real::sigaction(sig, &ours, std::ptr::null_mut()) } != 0 {
                held::forget(sig);
            }
        }
    }
    for &sig in FATAL {
        // SAFETY: a plain C struct the call fills.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: queries only; `cur` is writable.
        if unsafe { real::sigaction(sig, std::ptr::null(), &mut cur) } != 0 {
            continue;
        }
        if cur.sa_sigaction == libc::SIG_DFL {
            let ours = our_action();
            // SAFETY: installs a handler that only writes to a pipe.
            if unsafe { real::sigaction(sig, &ours, std::ptr::null_mut()) } == 0 {
                set_owned(sig, true);
            }
        }
    }
}

/// Starts the flushing thread (with the first managed file).
pub fn ensure_thread() {
    if STARTED.load(Ordering::Acquire) || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    start_thread();
}

/// Opens the pipes (at high numbers) and spawns the flushing thread.
fn start_thread() {
    let (mut req, mut done) = ([0 as c_int; 2], [0 as c_int; 2]);
    // SAFETY: each array holds two ints for the call to fill.
    if unsafe { libc::pipe2(req.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // SAFETY: as above.
    if unsafe { libc::pipe2(done.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // High numbers, as every private descriptor: the program's next
    // descriptors are numbered as without the shim.
    for fd in req.iter_mut().chain(done.iter_mut()) {
        *fd = backend::track(backend::place_high(*fd));
    }
    if req.iter().chain(done.iter()).any(|fd| *fd < 0) {
        // No high numbers free: signals keep their plain default action.
        for fd in req.iter().chain(done.iter()).filter(|fd| **fd >= 0) {
            backend::untrack(*fd);
            // SAFETY: closes our own descriptor.
            unsafe { real::close(*fd) };
        }
        return;
    }
    let (r, ack) = (req[0], done[1]);
    let spawned = crate::guard::spawn_thread("conveyor-signal", 128 << 10, move || flusher(r, ack));
    if spawned.is_ok() {
        DONE_R.store(done[0], Ordering::Release);
        PIPE_W.store(req[1], Ordering::Release);
    }
}

fn flusher(r: c_int, ack: c_int) {
    let mut b = 0u8;
    loop {
        // SAFETY: reads one byte into `b` from our own pipe.
        let n = unsafe { real::read(r, (&mut b as *mut u8).cast(), 1) };
        if n == 1 {
            super::at_exit(true);
            // SAFETY: writes one live byte to our own pipe.
            unsafe { real::write(ack, (&b as *const u8).cast(), 1) };
        } else if n == 0 || real::errno() != libc::EINTR {
            return;
        }
    }
}

/// True when the shim is active and may stand in for `sig`.
pub fn managed(sig: c_int) -> bool {
    is_fatal(sig) && state::get().is_some()
}

/// `sigaction` for a signal the shim may stand in for: a program asking for
/// `SIG_DFL` gets the shim's handler (which ends the process the same way,
/// after writing pending data), and sees `SIG_DFL` when it asks back.
///
/// # Safety
/// As for `sigaction(2)`.
unsafe fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    // SAFETY: `act` is null or points to a sigaction (the caller's contract).
    let wants_default = !act.is_null() && unsafe { (*act).sa_sigaction } == libc::SIG_DFL;
    let ours = our_action();
    let act = if wants_default {
        &ours as *const libc::sigaction
    } else {
        act
    };
    // SAFETY: the caller's (or our) arguments.
    let r = unsafe { real::sigaction(sig, act, old) };
    if r == 0 {
        if !act.is_null() {
            set_owned(sig, wants_default);
        }
        // SAFETY: `old` is null or was just filled by the call.
        if let Some(o) = unsafe { old.as_mut() } {
            if is_ours(o.sa_sigaction) {
                o.sa_sigaction = libc::SIG_DFL;
                o.sa_flags = 0;
                // SAFETY: a valid sigset_t inside `o`.
                unsafe { libc::sigemptyset(&mut o.sa_mask) };
            }
        }
    }
    r
}

type SigactionFn = unsafe fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;

/// `signal` built on `set` (the shim's `sigaction` or the real one): the
/// action glibc's `signal` installs, and the previous handler back.
///
/// # Safety
/// As for `signal(2)`.
unsafe fn signal_via(
    sig: c_int,
    handler: libc::sighandler_t,
    flags: c_int,
    set: SigactionFn,
) -> libc::sighandler_t {
    // SAFETY: plain C structs; every field is set or zero is valid.
    let (mut act, mut old): (libc::sigaction, libc::sigaction) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: valid sigset_t fields.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        if flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut act.sa_mask, sig);
        }
    }
    // SAFETY: both structs are valid for the call.
    if unsafe { set(sig, &act, &mut old) } < 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}
