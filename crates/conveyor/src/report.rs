//! `conveyor report FILE...`: merges the `conveyor-stats/1` reports of a
//! process tree (e.g. `CONVEYOR_STATS=/tmp/r/report-%p.json`) into one
//! table, or one `conveyor-report/1` JSON document with `--json`.
//!
//! Rows of the same path in several processes are summed into one row that
//! counts the processes. Files that are not the caller's own, not regular,
//! symbolic links, or not valid reports are skipped with a message.

use crate::stats_doc::{self, Report, Stats};
use crate::{owned, units, EXIT_SKIPPED};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Schema identifier of the merged JSON document.
pub const SCHEMA: &str = "conveyor-report/1";

#[derive(Serialize)]
struct Input {
    file: String,
    pid: i64,
    command: String,
}

/// A report that could not be merged, and why.
#[derive(Serialize)]
pub struct Skipped {
    /// The file as given.
    pub file: String,
    /// What is wrong with it.
    pub problem: String,
}

/// One path's merged counters.
#[derive(Serialize)]
pub struct Row {
    /// The file.
    pub path: String,
    /// How many processes used it.
    pub processes: u64,
    open: bool,
    #[serde(flatten)]
    stats: Stats,
}

/// The reports of a process tree, merged.
#[derive(Serialize)]
pub struct Merged {
    schema: &'static str,
    inputs: Vec<Input>,
    /// Files that could not be merged.
    pub skipped: Vec<Skipped>,
    /// Sums over every process.
    pub totals: Stats,
    /// One row per path.
    pub files: Vec<Row>,
}

impl Merged {
    /// How many reports were merged.
    pub fn processes(&self) -> usize {
        self.inputs.len()
    }
}

/// Merges the reports in `files`; the ones that cannot be read are listed
/// in `skipped`.
pub fn merge(files: &[PathBuf]) -> Merged {
    let mut m = Merged {
        schema: SCHEMA,
        inputs: Vec::new(),
        skipped: Vec::new(),
        totals: Stats::default(),
        files: Vec::new(),
    };
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for f in files {
        let name = f.display().to_string();
        let parsed: Result<Report, String> = owned::read(f).and_then(|t| stats_doc::parse(&t));
        let r = match parsed {
            Ok(r) => r,
            Err(problem) => {
                m.skipped.push(Skipped {
                    file: name,
                    problem,
                });
                continue;
            }
        };
        m.totals.add(&r.totals);
        for row in r.files {
            let e = rows.entry(row.path.clone()).or_insert_with(|| Row {
                path: row.path.clone(),
                processes: 0,
                open: false,
                stats: Stats::default(),
            });
            e.processes += 1;
            e.open |= row.open;
            e.stats.add(&row.stats);
        }
        m.inputs.push(Input {
            file: name,
            pid: r.pid,
            command: r.command,
        });
    }
    m.files = rows.into_values().collect();
    m
}

fn table(m: &Merged) -> String {
    use std::fmt::Write;
    let pids: Vec<String> = m.inputs.iter().map(|i| i.pid.to_string()).collect();
    let mut s = format!(
        "{} process{} (pid {}), {} file{}\n",
        m.inputs.len(),
        if m.inputs.len() == 1 { "" } else { "es" },
        pids.join(", "),
        m.files.len(),
        if m.files.len() == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        s,
        "{:>5} {:>10} {:>10} {:>7} {:>9} {:>10} {:>10} {:>7} {:>6}  PATH",
        "PROCS",
        "APP WRITE",
        "STORED",
        "W REQS",
        "AVG W",
        "APP READ",
        "FETCHED",
        "R REQS",
        "ERRORS"
    );
    let line = |s: &mut String, procs: u64, st: &Stats, path: &str| {
        let _ = writeln!(
            s,
            "{:>5} {:>10} {:>10} {:>7} {:>9} {:>10} {:>10} {:>7} {:>6}  {path}",
            procs,
            units::bytes(st.app_write_bytes),
            units::bytes(st.storage_write_bytes),
            st.storage_write_requests,
            units::bytes(st.avg_write_request_bytes),
            units::bytes(st.app_read_bytes),
            units::bytes(st.storage_read_bytes),
            st.storage_read_requests,
            st.errors,
        );
    };
    line(&mut s, m.inputs.len() as u64, &m.totals, "(all files)");
    for r in &m.files {
        line(&mut s, r.processes, &r.stats, &r.path);
    }
    let t = &m.totals;
    let _ = writeln!(
        s,
        "programs waited {} in managed reads and writes; read-ahead hit rate {:.1} %; \
buffer-full waits {}; snoop hits {}; lost {}{}{}",
        units::nanos(t.app_wait_ns),
        100.0 * t.read_ahead_hit_rate,
        t.buffer_full_waits,
        t.snoop_hits,
        units::bytes(t.lost_bytes),
        if t.last_errno != 0 {
            format!("; last errno {}", t.last_errno)
        } else {
            String::new()
        },
        if t.ring_requests != 0 {
            format!("; {} requests on io_uring", t.ring_requests)
        } else {
            String::new()
        }
    );
    s
}

/// Merges `files` and prints the table (or JSON). Exit 0 when every file
/// was merged, 1 when any was skipped (each is named on stderr).
pub fn report(files: &[PathBuf], json: bool) -> ExitCode {
    let m = merge(files);
    for s in &m.skipped {
        eprintln!("conveyor report: {}: skipped: {}", s.file, s.problem);
    }
    if json {
        match serde_json::to_string_pretty(&m) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("conveyor report: cannot write JSON: {e}");
                return ExitCode::from(EXIT_SKIPPED);
            }
        }
    } else if m.inputs.is_empty() {
        eprintln!("conveyor report: no report could be read");
    } else {
        print!("{}", table(&m));
    }
    if m.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SKIPPED)
    }
}
