//! conveyor's `LD_PRELOAD` shim (`libconveyor_preload.so`): regular files a
//! program opens under `CONVEYOR_PATHS` go through the conveyor engine
//! (write-behind, read-ahead, snooping); every other descriptor goes
//! straight to libc.
//!
//! Layers, top to bottom: `hooks` (the exported glibc names: managed or not,
//! then the real call or `ops`), `fdtable` (fd -> description, lock-free
//! for unmanaged fds), `policy` (which opens are managed), `ops` (C
//! conventions <-> engine calls), the engine, and `backend` (the real libc
//! calls on private descriptors). `real` resolves the real functions,
//! `guard` keeps hooks re-entrancy- and panic-safe, `log` writes with the
//! real `write`.

mod backend;
mod counts;
mod desc;
mod fdtable;
mod fskind;
mod guard;
mod hooks;
mod live;
mod log;
mod ops;
mod policy;
mod real;
mod report;
mod state;

extern "C" fn on_exit() {
    ops::process::at_exit(false);
}

/// Library constructor: resolve every real symbol, read the environment,
/// and register the exit flush early (before the program's own atexit
/// handlers, so it runs after them).
extern "C" fn init() {
    // The program starts with the errno it would have without the shim.
    let saved = real::errno();
    real::resolve_all();
    counts::init();
    state::init();
    if state::get().is_some() {
        log::init();
        ops::signals::install();
    }
    // SAFETY: registers a function with no preconditions.
    unsafe { libc::atexit(on_exit) };
    real::set_errno(saved);
}

/// Library destructor: a last flush (e.g. after `dlclose` or when exit
/// handlers were skipped).
extern "C" fn fini() {
    ops::process::at_exit(true);
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = fini;
