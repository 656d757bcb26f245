//! `conveyor run --summary`: one line for the whole process tree, from the
//! stats reports its processes wrote into the launcher's private directory,
//! merged as `conveyor report` merges them.

use crate::{report, units};
use std::path::{Path, PathBuf};

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The summary line of the reports in `dir`.
pub fn line(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let m = report::merge(&files);
    let skipped = if m.skipped.is_empty() {
        String::new()
    } else {
        format!(
            " ({} unreadable: {})",
            plural(m.skipped.len() as u64, "report", "reports"),
            m.skipped
                .iter()
                .map(|s| s.problem.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    if m.files.is_empty() {
        return format!(
            "conveyor: no file under the selected paths was managed ({} reported){skipped}",
            plural(m.processes() as u64, "process", "processes")
        );
    }
    let t = &m.totals;
    let mut s = format!(
        "conveyor: {}, {} written in {} (avg {}), {} read in {}, waited {}, {}",
        plural(m.files.len() as u64, "file", "files"),
        units::bytes(t.storage_write_bytes),
        plural(t.storage_write_requests, "request", "requests"),
        units::bytes(t.avg_write_request_bytes),
        units::bytes(t.storage_read_bytes),
        plural(t.storage_read_requests, "request", "requests"),
        units::nanos(t.app_wait_ns),
        plural(t.errors, "error", "errors"),
    );
    if t.errors > 0 {
        s.push_str(&format!(
            " (last errno {}, {} lost)",
            t.last_errno,
            units::bytes(t.lost_bytes)
        ));
    }
    s.push_str(&skipped);
    s
}
