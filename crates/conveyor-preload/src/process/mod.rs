//! Barriers before another program can see the files (`fork`, `exec*`,
//! `posix_spawn*`, `system`, `popen`) and at exit: pending data is written,
//! kernel offsets set, cached data dropped. A forked child that keeps
//! running gets an engine of its own for the files it opens; what it
//! inherited passes through there.

pub mod fatal;
pub mod fork;

use crate::desc::Desc;
use crate::ops::{hand_over, sync_kernel_offset};
use crate::{counts, fdtable, guard, real, state};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// True if `fd` survives an exec (no `FD_CLOEXEC`).
fn inherited(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD takes no argument; no memory involved.
    let flags = unsafe { real::fcntl(fd, libc::F_GETFD, 0) };
    flags >= 0 && flags & libc::FD_CLOEXEC == 0
}

/// Which managed descriptions the other program can reach, and so must be
/// served by the kernel from the barrier on (in this process too: the
/// description, and its offset, are shared with the other program).
#[derive(Clone, Copy)]
pub enum Reach {
    /// A new program in place of this one, or a child that only execs
    /// (`system`, `popen`): the descriptors without `FD_CLOEXEC`.
    Inherited,
    /// `posix_spawn`: those, and the descriptors its file actions `dup2`
    /// (which clears `FD_CLOEXEC` on the copy).
    Spawn,
    /// A forked child: all of them. Until it execs it can use or `dup2`
    /// any descriptor (Python's `subprocess` with `stdout=f` does), and it
    /// runs beside this process, so no description can stay buffered here.
    All,
}

/// Makes the files as another program would find them without the shim.
pub fn barrier(name: &'static str, reach: Reach) {
    let Some(shim) = state::get() else { return };
    if guard::inside() {
        return;
    }
    counts::hit(name);
    guard::quietly(|i| {
        // Files closed behind (relaxed close) are written and closed too.
        crate::ops::behind::settle_all(i);
        let engine = shim.engine(i);
        engine.flush_all();
        let all = fdtable::all();
        let reached = |fd: libc::c_int| match reach {
            Reach::All => true,
            Reach::Inherited => inherited(fd),
            Reach::Spawn => inherited(fd) || spawn_dup2_source(fd),
        };
        let shared: Vec<&Arc<Desc>> = all
            .iter()
            .filter(|(fd, _)| reached(*fd))
            .map(|(_, d)| d)
            .collect();
        for (fd, d) in &all {
            if shared.iter().any(|s| Arc::ptr_eq(s, d)) {
                // Writers on other threads may be inside the engine on
                // this description right now: the hand-over waits for
                // them, sets the kernel offset and sends every later call
                // to the kernel.
                let _ = hand_over(*fd, d, i);
            } else {
                sync_kernel_offset(*fd, d, i);
            }
        }
        engine.drop_caches();
    });
}

// Descriptors some `posix_spawn_file_actions_adddup2` named as a source,
// one bit each (a spawn may `dup2` them in the child); `DUP2_HIGH` for one
// past the bitmap. Never cleared: a stale bit costs only buffering.
const DUP2_WORDS: usize = 64;
static DUP2_SOURCES: [AtomicU64; DUP2_WORDS] = [const { AtomicU64::new(0) }; DUP2_WORDS];
static DUP2_HIGH: AtomicBool = AtomicBool::new(false);

/// A spawn file action will `dup2` descriptor `fd` in the child.
pub fn note_spawn_dup2(fd: libc::c_int) {
    match usize::try_from(fd) {
        Ok(i) if i < DUP2_WORDS * 64 => {
            DUP2_SOURCES[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
        _ => DUP2_HIGH.store(true, Ordering::Relaxed),
    }
}

fn spawn_dup2_source(fd: libc::c_int) -> bool {
    match usize::try_from(fd) {
        Ok(i) if i < DUP2_WORDS * 64 => {
            DUP2_SOURCES[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
        }
        _ => DUP2_HIGH.load(Ordering::Relaxed),
    }
}

/// Before an exec: the barrier, and the test counters written out (the
/// process image, with them, is about to be replaced).
pub fn before_exec(name: &'static str) {
    barrier(name, Reach::Inherited);
    // The new image may manage nothing: `top` must not show a stale file.
    crate::live::stop();
    crate::counts::write_out();
}

/// Before a child program starts beside this process (`posix_spawn*`,
/// `system`): the barrier; this process goes on, and stays in `top`.
pub fn before_spawn(name: &'static str, reach: Reach) {
    barrier(name, reach);
    crate::counts::write_out();
}

/// At exit: everything pending is written. `last` marks the last chance
/// (the library destructor, which runs after every atexit handler, or
/// `_exit`): the stats report is written then, once.
pub fn at_exit(last: bool) {
    if let Some(shim) = state::get() {
        // SAFETY: getpid has no preconditions.
        if state::owner() == unsafe { libc::getpid() } {
            crate::live::stop();
            guard::quietly(|i| {
                crate::ops::behind::settle_all(i);
                let engine = shim.engine(i);
                engine.flush_all();
                // A forked child that managed nothing (one about to exec,
                // say) leaves the report to its parent.
                let quiet = state::in_forked_child() && engine.file_reports(false).is_empty();
                if last && !quiet {
                    crate::report::write_once(engine);
                    crate::log::flush_suppressed();
                }
                if last {
                    // glibc flushes the program's streams after every exit
                    // handler, this one included: what they write from
                    // here on goes straight to the kernel, after the data
                    // written just now.
                    crate::ops::pass_through_process(i);
                }
            });
        }
    }
    crate::counts::write_out();
}
