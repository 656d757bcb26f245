//! `conveyor run --progress`: one status line on a terminal's stderr while
//! the command runs, from the live files its processes keep for `conveyor
//! top` (refreshed about once a second), cleared when the command ends.

use crate::live_doc::{self, Live};
use crate::{owned, top, units};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The status line's thread.
pub struct Line {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<bool>>,
}

/// The parent of `pid`, from `/proc`.
fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// True if `pid` is `root` or one of its descendants.
fn descends(mut pid: i32, root: i32) -> bool {
    for _ in 0..128 {
        if pid == root {
            return true;
        }
        match ppid(pid) {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// The live records of the command's process tree.
fn records(root: i32) -> Vec<Live> {
    let dir = top::default_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let pid: i32 = name.to_str()?.strip_suffix(".live")?.parse().ok()?;
            descends(pid, root).then(|| e.path())
        })
        .filter_map(|p| owned::read(&p).ok())
        .filter_map(|t| live_doc::parse(&t).ok())
        .collect()
}

/// The status line for `live`, `elapsed` into the run.
fn text(live: &[Live], elapsed: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // A record not refreshed lately belongs to a process with no file open:
    // its rates are history, not now.
    let fresh = |l: &&Live| now.saturating_sub(l.refreshed_unix_ms) < 2_500;
    let open: u64 = live.iter().map(|l| l.open_files).sum();
    let written: f64 = live
        .iter()
        .filter(fresh)
        .map(|l| l.app_write_bytes_per_s)
        .sum();
    let read: f64 = live
        .iter()
        .filter(fresh)
        .map(|l| l.app_read_bytes_per_s)
        .sum();
    let buffered: u64 = live.iter().map(|l| l.write_buffered_bytes).sum();
    let errors: u64 = live.iter().map(|l| l.errors).sum();
    // What is zero is left out, so that the usual line fits 80 columns.
    let mut parts = vec![if open == 1 {
        "1 file open".to_string()
    } else {
        format!("{open} files open")
    }];
    if written > 0.0 {
        parts.push(format!("{} written", units::rate(written)));
    }
    if read > 0.0 {
        parts.push(format!("{} read", units::rate(read)));
    }
    if buffered > 0 {
        parts.push(format!("{} buffered", units::bytes(buffered)));
    }
    parts.push(format!(
        "{errors} error{}",
        if errors == 1 { "" } else { "s" }
    ));
    format!("conveyor {}s: {}", elapsed.as_secs(), parts.join(", "))
}

/// Columns of the terminal on stderr (80 if it cannot be told).
fn columns() -> usize {
    // SAFETY: TIOCGWINSZ fills a zeroed winsize.
    unsafe {
        let mut w: libc::winsize = std::mem::zeroed();
        if libc::ioctl(2, libc::TIOCGWINSZ, &mut w) == 0 && w.ws_col > 0 {
            w.ws_col as usize
        } else {
            80
        }
    }
}

impl Line {
    /// Starts refreshing the line for the process tree of `root` (the
    /// command's pid) once a second.
    pub fn start(root: i32) -> Line {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("conveyor-progress".into())
            .spawn(move || {
                let start = Instant::now();
                let mut drawn = false;
                let mut next = start + Duration::from_secs(1);
                while !flag.load(Ordering::Relaxed) {
                    if Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    next += Duration::from_secs(1);
                    let mut t = text(&records(root), start.elapsed());
                    // A line that wraps could not be cleared with \r.
                    let width = columns().saturating_sub(1).max(20);
                    if t.chars().count() > width {
                        t = t.chars().take(width).collect();
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[K{t}");
                    let _ = err.flush();
                    drawn = true;
                }
                drawn
            })
            .ok();
        Line { stop, thread }
    }

    /// Stops refreshing and clears the line.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(Ok(true)) = self.thread.take().map(JoinHandle::join) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
