//! `conveyor`: runs a program with conveyor's shim preloaded.
//!
//! ```text
//! conveyor run [--path DIR]... [--stats FILE|-] [--log LEVEL] [--log-file FILE] [--] CMD ARGS...
//! conveyor doctor [--path DIR]... PATH...
//! conveyor report [--json] FILE...
//! conveyor top [--once] [--json] [--dir DIR]
//! ```
//!
//! Prepends `libconveyor_preload.so` to any existing `LD_PRELOAD`, sets
//! `CONVEYOR_PATHS` (and `CONVEYOR_STATS`, `CONVEYOR_LOG`), and `exec`s the command, so its
//! exit status or signal is the launcher's. `doctor` says whether paths
//! would be accelerated and why; `report` merges the stats reports of a
//! process tree; `top` shows the processes using the shim now. The launcher
//! never links the shim.
//!
//! Exit statuses shared by the subcommands: 0 success, 1 something the
//! command was asked to look at could not be used (a skipped report, an
//! unusable shim), 2 bad arguments; `run` adds 125 and 127.

mod doctor;
mod embedded;
mod find;
mod live_doc;
mod owned;
mod report;
mod run;
mod stats_doc;
mod top;
mod units;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when some input was skipped (named on stderr).
pub const EXIT_SKIPPED: u8 = 1;
/// Exit status when the launcher itself fails (bad arguments are clap's 2).
pub const EXIT_LAUNCH: u8 = 125;
/// Exit status when the command cannot be run (not found, not executable).
pub const EXIT_NOT_RUN: u8 = 127;

#[derive(Parser)]
#[command(
    name = "conveyor",
    version,
    about = "Makes unmodified programs fast on slow storage"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run CMD with write-behind and read-ahead on files under the given paths.
    #[command(
        after_help = "Example:\n  conveyor run --path /mnt/data -- dd if=/dev/zero of=/mnt/data/x bs=4k count=4096\n\n\
Exit status: the command's own (or 128+N if a signal N ended it, as shown by the shell);\n\
125 if conveyor could not start it (shim not found); 127 if the command was not found."
    )]
    Run {
        /// Directory whose regular files are accelerated (repeatable; relative paths are made absolute).
        #[arg(long = "path", value_name = "DIR", required = true)]
        paths: Vec<PathBuf>,
        /// Write a stats report at exit: a JSON file (`%p` = pid), or `-` for a table on stderr.
        #[arg(long, value_name = "FILE|-")]
        stats: Option<String>,
        /// Log level of the shim: error, warn, info, debug or trace.
        #[arg(long, value_name = "LEVEL", value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
        log: Option<String>,
        /// Write the shim's log to FILE instead of stderr (`%p` = pid; created 0600, never through a symlink).
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<std::ffi::OsString>,
    },
    /// Say whether each PATH would be accelerated, and why; check the shim loads.
    #[command(
        after_help = "Example:\n  CONVEYOR_PATHS=/mnt/data conveyor doctor /mnt/data/results.csv /etc/hosts\n\n\
Uses CONVEYOR_PATHS from the environment unless --path is given.\n\
Exit status: 0 when the shim can be found and loaded, 1 when it cannot, 2 for bad arguments."
    )]
    Doctor {
        /// Directory to consider selected instead of CONVEYOR_PATHS (repeatable).
        #[arg(long = "path", value_name = "DIR")]
        paths: Vec<PathBuf>,
        /// Files or directories to check.
        #[arg(value_name = "PATH")]
        targets: Vec<PathBuf>,
    },
    /// Merge stats reports (CONVEYOR_STATS files) of one or more processes into one table.
    #[command(
        after_help = "Example:\n  conveyor run --stats /tmp/r/report-%p.json --path /mnt/data -- make -j4\n  conveyor report /tmp/r/report-*.json\n\n\
Rows of the same path in several processes are summed (PROCS counts them).\n\
Only your own regular files are read (symbolic links are not followed).\n\
Exit status: 0 when every file was merged, 1 when some were skipped (each is named on stderr), 2 for bad arguments."
    )]
    Report {
        /// Print one JSON document (schema conveyor-report/1) instead of the table.
        #[arg(long)]
        json: bool,
        /// Reports written by the shim (schema conveyor-stats/1).
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the processes running under the shim now: throughput, buffer, storage latency, errors.
    #[command(
        after_help = "Example:\n  conveyor top            # refreshed every second until Ctrl-C\n  conveyor top --once --json\n\n\
Reads the live files the shim refreshes about once a second in /dev/shm/conveyor-$UID\n\
(or CONVEYOR_LIVE_DIR); files of processes that are gone are removed.\n\
Rates and latencies (W LAT, R LAT: mean storage request time) cover the last second; AGE is\n\
the time since the process last refreshed its file (it stops while no managed file is open).\n\
Exit status: 0; 1 when the directory is not safe to read (not yours, or writable by others)\n\
or, with --once, when a file was skipped; 2 for bad arguments."
    )]
    Top {
        /// Print one snapshot and exit.
        #[arg(long)]
        once: bool,
        /// Print the live documents (schema conveyor-live/1) as a JSON array instead of the table.
        #[arg(long)]
        json: bool,
        /// Directory of live files (default: CONVEYOR_LIVE_DIR, else /dev/shm/conveyor-$UID).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Output piped into `head` ends the command quietly, as it ends other
    // command-line tools, instead of a panic on a failed print.
    // SAFETY: restores the default action of one signal before any thread
    // exists; the exec'd command inherits the default too.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            paths,
            stats,
            log,
            log_file,
            command,
        } => run::run(
            &paths,
            run::Shim {
                stats: stats.as_deref(),
                log: log.as_deref(),
                log_file: log_file.as_deref(),
            },
            &command,
        ),
        Cmd::Doctor { paths, targets } => doctor::doctor(&paths, &targets),
        Cmd::Report { json, files } => report::report(&files, json),
        Cmd::Top { once, json, dir } => top::top(dir.as_deref(), once, json),
    }
}
