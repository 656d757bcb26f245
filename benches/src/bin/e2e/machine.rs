//! The machine and tool versions, recorded with the results.

use std::process::Command;

fn first_line(prog: &str, arg: &str) -> String {
    Command::new(prog)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "missing".into())
}

fn file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (name, value) pairs: CPU, cores, memory, kernel, load, tool versions.
pub fn describe(python: &str) -> Vec<(String, String)> {
    let cpu = file("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = file("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let tools = [
        ("dd", "--version"),
        ("fio", "--version"),
        ("tar", "--version"),
        ("sqlite3", "--version"),
        (python, "--version"),
        ("valgrind", "--version"),
        ("make", "--version"),
        ("cc", "--version"),
        ("git", "--version"),
    ]
    .iter()
    .map(|(p, a)| first_line(p, a))
    .collect::<Vec<_>>()
    .join("; ");
    vec![
        ("cpu".into(), format!("{cores} cores, {cpu}")),
        (
            "memory".into(),
            format!("{:.0} GiB", mem_kib as f64 / 1048576.0),
        ),
        (
            "kernel".into(),
            format!("Linux {}", file("/proc/sys/kernel/osrelease").trim()),
        ),
        (
            "load average at start".into(),
            file("/proc/loadavg").trim().to_string(),
        ),
        ("tools".into(), tools),
    ]
}

/// The load average now (recorded at the end: the machine may be shared).
pub fn load() -> String {
    file("/proc/loadavg").trim().to_string()
}
