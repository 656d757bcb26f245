//! The stats report written at exit when `CONVEYOR_STATS` is set: a
//! versioned JSON document (to a file; `%p` is the pid) or a short table
//! (`stderr`). Files are created with `O_NOFOLLOW`, `O_CLOEXEC` and mode
//! 0600, through the real libc functions.

use crate::json::Obj;
use crate::{log, real};
use conveyor_engine::{Engine, Snapshot};
use std::fmt::Write;

/// Schema identifier of the JSON document.
pub const SCHEMA: &str = "conveyor-stats/1";

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The counters of one stats object (totals or a file row), into `o`.
pub fn stats_fields(o: &mut Obj<'_>, s: &Snapshot) {
    let reads = s.read_ahead_hits + s.read_ahead_misses;
    o.int("app_write_bytes", s.app_write_bytes)
        .int("app_read_bytes", s.app_read_bytes)
        .int("storage_write_bytes", s.storage_write_bytes)
        .int("storage_read_bytes", s.storage_read_bytes)
        .int("storage_write_requests", s.write_sizes.count)
        .int("storage_read_requests", s.read_sizes.count)
        .int("avg_write_request_bytes", s.write_sizes.mean)
        .int("avg_read_request_bytes", s.read_sizes.mean)
        .int("app_write_calls", s.app_write_ns.count)
        .int("app_read_calls", s.app_read_ns.count)
        .int("app_wait_ns", s.app_write_ns.sum + s.app_read_ns.sum)
        .int("app_write_p50_ns", s.app_write_ns.p50)
        .int("app_write_p99_ns", s.app_write_ns.p99)
        .int("storage_write_p50_ns", s.storage_write_ns.p50)
        .int("storage_write_p99_ns", s.storage_write_ns.p99)
        .int("read_ahead_hits", s.read_ahead_hits)
        .int("read_ahead_misses", s.read_ahead_misses)
        .float("read_ahead_hit_rate", ratio(s.read_ahead_hits, reads), 4)
        .int("snoop_hits", s.snoop_hits)
        .int("buffer_full_waits", s.buffer_full_waits)
        .int("ring_requests", s.ring_requests);
    errors_fields(o, s);
}

/// The failure counters, which the live file shows too.
pub fn errors_fields(o: &mut Obj<'_>, s: &Snapshot) {
    o.int("errors", s.errors)
        .int("last_errno", s.last_errno)
        .int("lost_bytes", s.lost_bytes);
}

/// The command line of this process, arguments joined by spaces.
pub fn command() -> String {
    std::fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The JSON document.
pub fn json(engine: &Engine, pid: i32) -> String {
    let mut out = String::new();
    let mut doc = Obj::new(&mut out);
    doc.str("schema", SCHEMA)
        .int("pid", pid)
        .str("command", &command())
        // Errors that arrived after the close that would have returned
        // them (relaxed close): no call of the program saw them.
        .int("late_errors", crate::ops::behind::late_errors())
        .raw("totals", |out| {
            let mut o = Obj::new(out);
            stats_fields(&mut o, &engine.totals(false));
            o.end();
        })
        .raw("files", |out| {
            out.push('[');
            for (i, f) in engine.file_reports(false).iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let mut o = Obj::new(out);
                o.str("path", &f.name).bool("open", f.open);
                stats_fields(&mut o, &f.stats);
                o.end();
            }
            out.push(']');
        });
    doc.end();
    out.push('\n');
    out
}

/// The short human table.
pub fn table(engine: &Engine, pid: i32) -> String {
    let t = engine.totals(false);
    let mut s = format!("conveyor: stats of pid {pid}\n");
    let _ = writeln!(
        s,
        "  program wrote {} B in {} calls, read {} B in {} calls; waited {:.3} s in them",
        t.app_write_bytes,
        t.app_write_ns.count,
        t.app_read_bytes,
        t.app_read_ns.count,
        (t.app_write_ns.sum + t.app_read_ns.sum) as f64 / 1e9
    );
    let _ = writeln!(
        s,
        "  storage: {} write requests (avg {} B), {} read requests (avg {} B)",
        t.write_sizes.count, t.write_sizes.mean, t.read_sizes.count, t.read_sizes.mean
    );
    let reads = t.read_ahead_hits + t.read_ahead_misses;
    let _ = writeln!(
        s,
        "  read-ahead hit rate {:.1} %, snoop hits {}, buffer-full waits {}, errors {} (last errno {}), lost {} B",
        100.0 * ratio(t.read_ahead_hits, reads),
        t.snoop_hits,
        t.buffer_full_waits,
        t.errors,
        t.last_errno,
        t.lost_bytes
    );
    for f in engine.file_reports(false) {
        let _ = writeln!(
            s,
            "  {}: wrote {} B -> {} requests, read {} B <- {} requests",
            f.name,
            f.stats.app_write_bytes,
            f.stats.write_sizes.count,
            f.stats.app_read_bytes,
            f.stats.read_sizes.count
        );
    }
    s
}

/// Writes the report where `CONVEYOR_STATS` says, the first time only.
pub fn write_once(engine: &Engine) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !DONE.swap(true, std::sync::atomic::Ordering::Relaxed) {
        write(engine);
    }
}

/// Writes the report where `CONVEYOR_STATS` says.
fn write(engine: &Engine) {
    let Some(dest) = std::env::var("CONVEYOR_STATS")
        .ok()
        .filter(|d| !d.is_empty())
    else {
        return;
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if dest == "stderr" || dest == "-" {
        log::write_raw(table(engine, pid).as_bytes());
        return;
    }
    let path = dest.replace("%p", &pid.to_string());
    let Ok(c) = std::ffi::CString::new(path.clone()) else {
        return;
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated; the real open bypasses the hooks.
    let fd = unsafe { real::open(c.as_ptr(), flags, 0o600) };
    if fd < 0 {
        tracing::warn!(
            "CONVEYOR_STATS: cannot write {path}: {}",
            std::io::Error::from_raw_os_error(real::errno())
        );
        return;
    }
    log::write_fd(fd, json(engine, pid).as_bytes());
    // SAFETY: closes our own descriptor.
    unsafe { real::close(fd) };
}
