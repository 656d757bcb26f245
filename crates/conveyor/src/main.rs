//! `conveyor`: runs a program with conveyor's shim preloaded.
//!
//! ```text
//! conveyor run [--path DIR]... [--stats FILE|-] [--summary] [--progress] [--log LEVEL] [--log-file FILE] [--] CMD ARGS...
//! conveyor doctor [--path DIR]... PATH...
//! conveyor report [--json] FILE...
//! conveyor top [--once] [--json] [--dir DIR]
//! conveyor generate [--man DIR] [--completions DIR]
//! conveyor flusher --socket PATH [--detach] [--watch PID | --idle SECS] [--log FILE]
//! ```
//!
//! Prepends `libconveyor_preload.so` to any existing `LD_PRELOAD`, sets
//! `CONVEYOR_PATHS` (and `CONVEYOR_STATS`, `CONVEYOR_LOG`), checks every
//! `CONVEYOR_*` setting, and `exec`s the command, so its exit status or
//! signal is the launcher's; with `--summary` or `--progress` it starts the
//! command as a child instead and passes its status through. `doctor` says
//! whether paths would be accelerated and why; `report` merges the stats
//! reports of a process tree; `top` shows the processes using the shim now;
//! `generate` writes man pages and shell completions; `flusher` writes
//! what crashed programs acknowledged (crash-safe write-behind). The
//! launcher never links the shim.
//!
//! Exit statuses shared by the subcommands: 0 success, 1 something the
//! command was asked to look at could not be used (a skipped report, an
//! unusable shim, a bad setting), 2 bad arguments; `run` adds 125, 126 and
//! 127.

mod cli;
mod doctor;
mod embedded;
mod find;
mod flusher;
mod generate;
mod live_doc;
mod owned;
mod progress;
mod report;
mod run;
mod settings;
mod stats_doc;
mod summary;
mod supervise;
mod top;
mod units;

use clap::Parser;
use cli::{Cli, Cmd};
use std::process::ExitCode;

/// Exit status when some input was skipped (named on stderr).
pub const EXIT_SKIPPED: u8 = 1;
/// Exit status of `conveyor run --relaxed-close` when the command exited 0
/// but data failed to reach storage after a close had returned.
pub const EXIT_LATE: u8 = 1;
/// Exit status for bad arguments or settings (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the launcher itself fails (the shim not found).
pub const EXIT_LAUNCH: u8 = 125;
/// Exit status when the command was found but cannot be run (the shell's).
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit status when the command was not found (the shell's).
pub const EXIT_NOT_FOUND: u8 = 127;

fn main() -> ExitCode {
    // Output piped into `head` ends the command quietly, as it ends other
    // command-line tools, instead of a panic on a failed print.
    // SAFETY: restores the default action of one signal before any thread
    // exists; the exec'd command inherits the default too.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => cli::usage_error(e),
    };
    match cli.cmd {
        Cmd::Run(args) => run::run(args),
        Cmd::Doctor { paths, targets } => doctor::doctor(&paths, &targets),
        Cmd::Report { json, files } => report::report(&files, json),
        Cmd::Top { once, json, dir } => top::top(dir.as_deref(), once, json),
        Cmd::Flusher {
            socket,
            detach,
            watch,
            idle,
            log,
        } => {
            let until = match (watch, idle) {
                (Some(pid), _) => flusher::Until::Gone(pid),
                (None, Some(s)) => flusher::Until::Quiet(std::time::Duration::from_secs(s)),
                (None, None) => flusher::Until::Idle,
            };
            flusher::flusher(&socket, until, detach, log.as_deref())
        }
        Cmd::Generate { man, completions } => {
            generate::generate(man.as_deref(), completions.as_deref())
        }
    }
}
