//! What a benchmark run measured: every run's time and filesystem
//! requests, and the medians and ratios derived from them.

use crate::cases::{Case, Sizes};
use crate::run::Variant;
use crate::target::Mode;
use crate::target::Requests;
use conveyor_bench::unmanaged::Unmanaged;

/// One timed run of one program.
pub struct RunRecord {
    /// Workload.
    pub case: Case,
    /// Plain, conveyor or eatmydata.
    pub variant: Variant,
    /// Repetition (0-based).
    pub rep: usize,
    /// Seconds until the program exited; None if it failed.
    pub secs: Option<f64>,
    /// What reached the filesystem (slowfs only).
    pub requests: Option<Requests>,
    /// Why the run failed.
    pub error: Option<String>,
}

/// All runs on one storage target.
pub struct TargetResult {
    /// Page, direct or tmpfs.
    pub mode: Mode,
    /// Milliseconds per request.
    pub latency_ms: f64,
    /// Human label.
    pub label: String,
    /// Repetitions made.
    pub reps: usize,
    /// Every run, in the order made.
    pub runs: Vec<RunRecord>,
    /// Cases asked for that do not run here, and why.
    pub skipped: Vec<(Case, &'static str)>,
}

/// The whole benchmark.
pub struct Results {
    /// The command line.
    pub command: String,
    /// (name, value) pairs describing machine and tools.
    pub machine: Vec<(String, String)>,
    /// Workload sizes.
    pub sizes: Sizes,
    /// CPU-bound processes that ran beside the benchmark (`--busy`).
    pub busy: usize,
    /// Per target.
    pub targets: Vec<TargetResult>,
    /// The cost added to an unmanaged descriptor.
    pub unmanaged: Option<Unmanaged>,
    /// Wall-clock seconds of the whole benchmark so far.
    pub elapsed_secs: f64,
}

pub use conveyor_bench::median;

impl TargetResult {
    /// Median seconds of `case` run as `v`.
    pub fn median(&self, case: Case, v: Variant) -> Option<f64> {
        median(
            self.runs
                .iter()
                .filter(|r| r.case == case && r.variant == v)
                .filter_map(|r| r.secs)
                .collect(),
        )
    }

    /// plain / `v`: how many times faster `v` is than the plain run.
    pub fn speedup(&self, case: Case, v: Variant) -> Option<f64> {
        Some(self.median(case, Variant::Plain)? / self.median(case, v)?)
    }

    /// Median request counts of `case` as `v` (field by field).
    pub fn requests(&self, case: Case, v: Variant) -> Option<Requests> {
        let rs: Vec<&Requests> = self
            .runs
            .iter()
            .filter(|r| r.case == case && r.variant == v)
            .filter_map(|r| r.requests.as_ref())
            .collect();
        let m = |f: fn(&Requests) -> u64| {
            median(rs.iter().map(|r| f(r) as f64).collect()).map(|x| x.round() as u64)
        };
        Some(Requests {
            total: m(|r| r.total)?,
            writes: m(|r| r.writes)?,
            write_bytes: m(|r| r.write_bytes)?,
            reads: m(|r| r.reads)?,
            read_bytes: m(|r| r.read_bytes)?,
            fsyncs: m(|r| r.fsyncs)?,
        })
    }

    /// Cases that ran here, in table order.
    pub fn cases(&self) -> Vec<Case> {
        Case::ALL
            .into_iter()
            .filter(|c| self.runs.iter().any(|r| r.case == *c))
            .collect()
    }
}

impl Results {
    /// The target of `mode` at `latency_ms`.
    pub fn target(&self, mode: Mode, latency_ms: f64) -> Option<&TargetResult> {
        self.targets
            .iter()
            .find(|t| t.mode == mode && t.latency_ms == latency_ms)
    }

    /// Latencies measured in `mode`, ascending.
    pub fn latencies(&self, mode: Mode) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .targets
            .iter()
            .filter(|t| t.mode == mode)
            .map(|t| t.latency_ms)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Runs that failed.
    pub fn failures(&self) -> Vec<String> {
        self.targets
            .iter()
            .flat_map(|t| {
                t.runs
                    .iter()
                    .filter_map(move |r| r.error.as_ref().map(|e| format!("{}: {e}", t.label)))
            })
            .collect()
    }
}
