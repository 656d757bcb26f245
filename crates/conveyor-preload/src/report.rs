//! The stats report written at exit when `CONVEYOR_STATS` is set: a
//! versioned JSON document (to a file; `%p` is the pid) or a short table
//! (`stderr`). Files are created with `O_NOFOLLOW`, `O_CLOEXEC` and mode
//! 0600, through the real libc functions.

use crate::{log, real};
use conveyor_engine::{Engine, Snapshot};
use std::fmt::Write;

/// Schema identifier of the JSON document.
pub const SCHEMA: &str = "conveyor-stats/1";

/// Appends `s` as a JSON string.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One stats object (totals or a file row).
fn json_stats(out: &mut String, s: &Snapshot) {
    let reads = s.read_ahead_hits + s.read_ahead_misses;
    let _ = write!(
        out,
        "\"app_write_bytes\":{},\"app_read_bytes\":{},\"storage_write_bytes\":{},\"storage_read_bytes\":{},\
\"storage_write_requests\":{},\"storage_read_requests\":{},\"avg_write_request_bytes\":{},\"avg_read_request_bytes\":{},\
\"app_write_calls\":{},\"app_read_calls\":{},\"app_wait_ns\":{},\"app_write_p50_ns\":{},\"app_write_p99_ns\":{},\
\"storage_write_p50_ns\":{},\"storage_write_p99_ns\":{},\"read_ahead_hits\":{},\"read_ahead_misses\":{},\
\"read_ahead_hit_rate\":{:.4},\"snoop_hits\":{},\"buffer_full_waits\":{},\"errors\":{},\"last_errno\":{},\"lost_bytes\":{}",
        s.app_write_bytes,
        s.app_read_bytes,
        s.storage_write_bytes,
        s.storage_read_bytes,
        s.write_sizes.count,
        s.read_sizes.count,
        s.write_sizes.mean,
        s.read_sizes.mean,
        s.app_write_ns.count,
        s.app_read_ns.count,
        s.app_write_ns.sum + s.app_read_ns.sum,
        s.app_write_ns.p50,
        s.app_write_ns.p99,
        s.storage_write_ns.p50,
        s.storage_write_ns.p99,
        s.read_ahead_hits,
        s.read_ahead_misses,
        ratio(s.read_ahead_hits, reads),
        s.snoop_hits,
        s.buffer_full_waits,
        s.errors,
        s.last_errno,
        s.lost_bytes,
    );
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
    out.push_str("{\"schema\":");
    json_str(&mut out, SCHEMA);
    let _ = write!(out, ",\"pid\":{pid},\"command\":");
    json_str(&mut out, &command());
    out.push_str(",\"totals\":{");
    json_stats(&mut out, &engine.totals(false));
    out.push_str("},\"files\":[");
    for (i, f) in engine.file_reports(false).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"path\":");
        json_str(&mut out, &f.name);
        let _ = write!(out, ",\"open\":{},", f.open);
        json_stats(&mut out, &f.stats);
        out.push('}');
    }
    out.push_str("]}\n");
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

#[cfg(test)]
mod tests {
    use super::json_str;

    fn j(s: &str) -> String {
        let mut out = String::new();
        json_str(&mut out, s);
        out
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        assert_eq!(j("plain"), r#""plain""#);
        assert_eq!(j(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(j(r"C:\dir"), r#""C:\\dir""#);
        assert_eq!(j("a\nb\tc\u{1}"), r#""a\u000ab\u0009c\u0001""#);
        assert_eq!(j("größe ✓"), "\"größe ✓\"");
    }
}
