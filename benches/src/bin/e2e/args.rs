//! Command line of the end-to-end benchmark.

use crate::cases::{Case, Sizes};
use crate::target::Mode;
use std::path::PathBuf;

/// Parsed options.
pub struct Args {
    /// Repetitions per case at latencies below 2 ms (and on tmpfs).
    pub reps: usize,
    /// Repetitions per case at 2 ms and above, where one plain run of the
    /// 4 KiB cases takes a minute or more.
    pub slow_reps: usize,
    /// Per-request latencies of conveyor-slowfs, in milliseconds.
    pub latencies: Vec<f64>,
    /// Storage modes to run.
    pub modes: Vec<Mode>,
    /// Cases to run (each mode runs those of them that apply to it).
    pub cases: Vec<Case>,
    /// Sizes of the workloads.
    pub sizes: Sizes,
    /// Where results.json, results.md and speedup.svg go.
    pub out: PathBuf,
    /// Scratch space on local disk (tarball, scripts, mounts).
    pub work: Option<PathBuf>,
    /// Skip the unmanaged-descriptor measurement.
    pub no_unmanaged: bool,
    /// CPU-bound processes to run beside the whole benchmark.
    pub busy: usize,
    /// `--executors`: every case also runs with `CONVEYOR_EXECUTOR=uring`.
    pub executors: bool,
    /// `--crash-safe`: every case also runs with `CONVEYOR_CRASH_SAFE=off`,
    /// to compare crash-safe write-behind (the default) with in-process
    /// buffers.
    pub crash_safe: bool,
    /// `--always`: conveyor runs with `CONVEYOR_MODE=always` (managing
    /// tmpfs and the local disk too).
    pub always: bool,
    /// The command line, for the results.
    pub command: String,
}

const USAGE: &str = "usage: e2e [--quick] [--reps N] [--slow-reps N] [--latencies 0,0.2,1,5] \
[--modes page,direct,tmpfs,disk,sshfs,rclone-off,rclone-writes,s3fs] [--cases NAME,...] [--out DIR] [--work DIR] \
[--no-unmanaged] [--busy [N]] [--executors] [--crash-safe] [--always]";

fn die(msg: &str) -> ! {
    eprintln!("e2e: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn list<T>(v: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let r: Vec<T> = v
        .split(',')
        .map(|s| f(s.trim()).unwrap_or_else(|| die(&format!("bad {what}: {s:?}"))))
        .collect();
    if r.is_empty() {
        die(&format!("empty {what} list"));
    }
    r
}

/// The workspace root (the benchmark runs from a build of this tree).
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Parses `std::env::args()`.
pub fn parse() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let quick = argv.iter().any(|a| a == "--quick");
    let mut a = Args {
        reps: if quick { 2 } else { 3 },
        slow_reps: 1,
        latencies: if quick {
            vec![1.0]
        } else {
            vec![0.0, 0.2, 1.0, 5.0]
        },
        modes: vec![Mode::Page, Mode::Direct, Mode::Tmpfs],
        cases: Case::ALL.to_vec(),
        sizes: if quick { Sizes::quick() } else { Sizes::full() },
        out: root().join(if quick {
            "target/e2e-quick"
        } else {
            "benches/results"
        }),
        work: None,
        no_unmanaged: false,
        busy: 0,
        executors: false,
        crash_safe: false,
        always: false,
        command: std::iter::once("e2e".to_string())
            .chain(argv.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut it = argv.into_iter().peekable();
    while let Some(f) = it.next() {
        if f == "--busy" {
            // A bare --busy means both cores of the project's machine.
            a.busy = match it.peek().and_then(|n| n.parse().ok()) {
                Some(n) => {
                    it.next();
                    n
                }
                None => 2,
            };
            continue;
        }
        let mut val = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{f} needs a value")))
        };
        match f.as_str() {
            "--quick" => {}
            "--no-unmanaged" => a.no_unmanaged = true,
            "--executors" => a.executors = true,
            "--crash-safe" => a.crash_safe = true,
            "--always" => a.always = true,
            "--reps" => a.reps = val().parse().unwrap_or_else(|_| die("--reps: a count")),
            "--slow-reps" => {
                a.slow_reps = val()
                    .parse()
                    .unwrap_or_else(|_| die("--slow-reps: a count"))
            }
            "--latencies" => {
                a.latencies = list(&val(), "latency", |s| {
                    s.parse::<f64>().ok().filter(|x| *x >= 0.0 && x.is_finite())
                })
            }
            "--modes" => a.modes = list(&val(), "mode", Mode::parse),
            "--cases" => a.cases = list(&val(), "case", Case::parse),
            "--out" => a.out = PathBuf::from(val()),
            "--work" => a.work = Some(PathBuf::from(val())),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => die(&format!("unknown argument {f}")),
        }
    }
    if a.reps == 0 || a.slow_reps == 0 {
        die("repetitions must be at least 1");
    }
    a.modes.sort();
    a.modes.dedup();
    a
}
