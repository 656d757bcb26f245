//! Diagnostics written with the real `write` to standard error, never
//! through the shim's own hooks, and rate-limited so a failing program
//! cannot be flooded.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, Ordering};

/// Lines written before the log goes quiet.
const MAX_LINES: u32 = 200;

static LEVEL: AtomicU8 = AtomicU8::new(2);
static LINES: AtomicU32 = AtomicU32::new(0);
// The shim's own copy of standard error, taken at start-up: programs such
// as coreutils close fd 2 in their exit handlers, before the shim's last
// words (the stats table) are written.
static OUT: AtomicI32 = AtomicI32::new(2);

/// Takes the shim's own copy of standard error (from the constructor).
pub fn init() {
    // At a high number, or not at all (then fd 2 itself is used).
    let fd = crate::backend::dup_high(2);
    if fd >= 0 {
        // A private descriptor: close_range/closefrom leave it alone.
        crate::backend::track(fd);
        OUT.store(fd, Ordering::Relaxed);
    }
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

/// Sets the level: 1 error, 2 warn, 3 info, 4 debug, 5 trace.
pub fn set_level(l: u8) {
    LEVEL.store(l, Ordering::Relaxed);
}

/// Parses a `CONVEYOR_LOG` value.
pub fn parse_level(s: &str) -> Option<u8> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => Some(0),
        "error" => Some(1),
        "warn" | "warning" => Some(2),
        "info" => Some(3),
        "debug" => Some(4),
        "trace" => Some(5),
        _ => None,
    }
}

fn emit(level: u8, tag: &str, msg: &str) {
    if level > LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let n = LINES.fetch_add(1, Ordering::Relaxed);
    if n > MAX_LINES {
        return;
    }
    let line = if n == MAX_LINES {
        "conveyor: warn: too many messages; further ones are suppressed\n".to_string()
    } else {
        format!("conveyor: {tag}: {msg}\n")
    };
    write_raw(line.as_bytes());
}

/// An error the user should see.
pub fn error(msg: &str) {
    emit(1, "error", msg);
}

/// A warning.
pub fn warn(msg: &str) {
    emit(2, "warn", msg);
}
