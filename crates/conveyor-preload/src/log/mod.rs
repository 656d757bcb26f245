//! The shim's log: `tracing` events (the shim's own and the engine's) at
//! or above `CONVEYOR_LOG` (default `warn`), one line each, written with
//! the real `write` on the shim's own descriptor (its copy of stderr, or
//! the `CONVEYOR_LOG_FILE` file), never through its own hooks, and
//! rate-limited per call site so a failing program cannot flood it.

mod limit;
mod subscriber;

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};

// 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace.
static LEVEL: AtomicU8 = AtomicU8::new(2);
// The shim's own copy of standard error, taken at start-up: programs such
// as coreutils close fd 2 in their exit handlers, before the shim's last
// words (the stats table) are written.
static OUT: AtomicI32 = AtomicI32::new(2);
// CONVEYOR_LOG_FILE (`%p` = pid), its descriptor and the pid it is for.
static FILE_TEMPLATE: OnceLock<String> = OnceLock::new();
static FILE_FD: AtomicI32 = AtomicI32::new(-1);
static FILE_PID: AtomicI32 = AtomicI32::new(0);
static OPENING: Mutex<()> = Mutex::new(());

/// Reads `CONVEYOR_LOG` and `CONVEYOR_LOG_FILE` and installs the
/// subscriber (from the constructor, before anything is logged). A bad
/// level leaves the default and is returned as the message to report.
pub fn configure() -> Result<(), String> {
    let mut bad = Ok(());
    if let Ok(l) = std::env::var("CONVEYOR_LOG") {
        match conveyor_engine::parse_log_level(&l) {
            Ok(l) => LEVEL.store(l, Ordering::Relaxed),
            Err(e) => bad = Err(format!("CONVEYOR_LOG={e}")),
        }
    }
    if let Some(f) = std::env::var("CONVEYOR_LOG_FILE")
        .ok()
        .filter(|f| !f.is_empty())
    {
        let _ = FILE_TEMPLATE.set(f);
    }
    // Global only: a scoped dispatcher would make tracing keep per-thread
    // state with a destructor, which crashes threads at exit.
    let _ = tracing::subscriber::set_global_default(subscriber::Shim);
    bad
}

/// Takes the shim's own copy of standard error (from the constructor,
/// when the shim is active).
pub fn init() {
    // At a high number, or not at all (then fd 2 itself is used).
    let fd = crate::backend::dup_high(2);
    if fd >= 0 {
        // A private descriptor: close_range/closefrom leave it alone.
        crate::backend::track(fd);
        OUT.store(fd, Ordering::Relaxed);
    }
}

/// The level in force (0 off .. 5 trace).
fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// Writes `bytes` to the shim's standard error.
pub fn write_raw(bytes: &[u8]) {
    write_fd(OUT.load(Ordering::Relaxed), bytes);
}

/// Writes all of `bytes` to `fd` with the real `write` (never the hooks),
/// giving up on an error.
pub fn write_fd(fd: i32, mut rest: &[u8]) {
    while !rest.is_empty() {
        // SAFETY: writes bytes of a live buffer through the real write.
        let r = unsafe { crate::real::write(fd, rest.as_ptr().cast(), rest.len()) };
        if r <= 0 {
            break;
        }
        rest = &rest[r as usize..];
    }
}

fn pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Where a log line goes: the log file of this process, or stderr.
fn destination() -> (i32, bool) {
    let Some(template) = FILE_TEMPLATE.get() else {
        return (OUT.load(Ordering::Relaxed), false);
    };
    let me = pid();
    let fd = FILE_FD.load(Ordering::Acquire);
    if fd >= 0 && (FILE_PID.load(Ordering::Acquire) == me || !template.contains("%p")) {
        // A forked child keeps appending to a shared file: O_APPEND keeps
        // lines whole.
        return (fd, true);
    }
    // One thread opens; others wait briefly. A child forked while the lock
    // was held never gets it: it logs to stderr.
    let guard = (0..1000).find_map(|_| match OPENING.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => {
            std::thread::yield_now();
            None
        }
    });
    let Some(_guard) = guard else {
        return (OUT.load(Ordering::Relaxed), false);
    };
    if FILE_PID.load(Ordering::Acquire) == me {
        let fd = FILE_FD.load(Ordering::Acquire);
        return if fd >= 0 {
            (fd, true)
        } else {
            (OUT.load(Ordering::Relaxed), false)
        };
    }
    let path = template.replace("%p", &me.to_string());
    let opened = open_log(&path);
    FILE_FD.store(opened.unwrap_or(-1), Ordering::Release);
    FILE_PID.store(me, Ordering::Release);
    match opened {
        Ok(fd) => (fd, true),
        Err(errno) => {
            let mut line = subscriber::Line::new();
            let _ = std::fmt::Write::write_fmt(
                &mut line,
                format_args!(
                    "conveyor: error: CONVEYOR_LOG_FILE: cannot open {path}: {}; logging to stderr\n",
                    std::io::Error::from_raw_os_error(errno)
                ),
            );
            write_raw(line.bytes());
            (OUT.load(Ordering::Relaxed), false)
        }
    }
}

/// Opens the log file where the user said, never through a symbolic link,
/// private to the user, at a high descriptor number; the errno if not.
fn open_log(path: &str) -> Result<i32, i32> {
    let c = std::ffi::CString::new(path).map_err(|_| libc::EINVAL)?;
    let flags =
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated; the real open bypasses the hooks.
    let fd = unsafe { crate::real::open(c.as_ptr(), flags, 0o600) };
    if fd < 0 {
        return Err(crate::real::errno());
    }
    // No high number free: the log goes to stderr rather than take one of
    // the program's numbers.
    let high = crate::backend::place_high(fd);
    if high < 0 {
        return Err(libc::EMFILE);
    }
    Ok(crate::backend::track(high))
}

/// At exit: says how many messages each rate-limited call site held back
/// since its last line.
pub fn flush_suppressed() {
    limit::drain(subscriber::suppressed_line);
}
