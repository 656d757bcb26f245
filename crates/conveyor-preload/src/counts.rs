//! Test support: with `CONVEYOR_TEST_COUNTS=FILE` set, counts which hooks
//! handled a managed descriptor and writes `name count` lines to FILE
//! (`%p`: pid) at exit, so tests can prove every hooked name is reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

static ON: AtomicBool = AtomicBool::new(false);
static HITS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

/// Turns counting on if the variable is set.
pub fn init() {
    ON.store(
        std::env::var_os("CONVEYOR_TEST_COUNTS").is_some(),
        Ordering::Relaxed,
    );
}

/// The counts, locked across `fork`; in the child they start from zero
/// (the parent reports its own).
pub fn hold_for_fork() -> MutexGuard<'static, Vec<(&'static str, u64)>> {
    HITS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts one managed call of hook `name`.
pub fn hit(name: &'static str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    // A signal handler's call can arrive while this thread holds the lock
    // (counting runs before the hook enters the guard, so the handler is
    // not held back): that one is skipped.
    if IN_HIT.with(|b| b.replace(true)) {
        return;
    }
    if let Ok(mut h) = HITS.lock() {
        match h.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => h.push((name, 1)),
        }
    }
    IN_HIT.with(|b| b.set(false));
}

thread_local! {
    // Const-initialised and without a destructor, like the guard's.
    static IN_HIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Appends the counts so far to the file and starts again from zero (at
/// exit, and before an exec replaces the process image).
pub fn write_out() {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let Some(path) = std::env::var("CONVEYOR_TEST_COUNTS").ok() else {
        return;
    };
    // SAFETY: getpid has no preconditions.
    let path = path.replace("%p", &unsafe { libc::getpid() }.to_string());
    let mut text = String::new();
    if let Ok(mut h) = HITS.lock() {
        for (n, c) in h.drain(..) {
            text.push_str(&format!("{n} {c}\n"));
        }
    }
    if text.is_empty() {
        return;
    }
    let Ok(cpath) = std::ffi::CString::new(path) else {
        return;
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    // SAFETY: `cpath` is NUL-terminated; the real open bypasses the hooks.
    let fd = unsafe { crate::real::open(cpath.as_ptr(), flags, 0o600) };
    if fd >= 0 {
        crate::log::write_fd(fd, text.as_bytes());
        // SAFETY: closes our own descriptor.
        unsafe { crate::real::close(fd) };
    }
}
