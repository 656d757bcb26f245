//! Diagnostics written with the real `write` to standard error, never
//! through the shim's own hooks, and rate-limited so a failing program
//! cannot be flooded.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// Lines written before the log goes quiet.
const MAX_LINES: u32 = 200;

static LEVEL: AtomicU8 = AtomicU8::new(2);
static LINES: AtomicU32 = AtomicU32::new(0);

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
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes bytes of a live buffer to fd 2 through the real write.
        let r = unsafe { crate::real::write(2, rest.as_ptr().cast(), rest.len()) };
        if r <= 0 {
            break;
        }
        rest = &rest[r as usize..];
    }
}

/// An error the user should see.
pub fn error(msg: &str) {
    emit(1, "error", msg);
}

/// A warning.
pub fn warn(msg: &str) {
    emit(2, "warn", msg);
}
