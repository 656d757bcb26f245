//! `conveyor`: runs a program with conveyor's shim preloaded.
//!
//! ```text
//! conveyor run [--path DIR]... [--stats FILE|-] [--log LEVEL] [--] CMD ARGS...
//! conveyor doctor [--path DIR]... PATH...
//! ```
//!
//! Prepends `libconveyor_preload.so` to any existing `LD_PRELOAD`, sets
//! `CONVEYOR_PATHS` (and `CONVEYOR_STATS`, `CONVEYOR_LOG`), and `exec`s the command, so its
//! exit status or signal is the launcher's. `doctor` says whether paths
//! would be accelerated and why. The launcher never links the shim.

mod doctor;
mod find;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            paths,
            stats,
            log,
            command,
        } => run::run(&paths, stats.as_deref(), log.as_deref(), &command),
        Cmd::Doctor { paths, targets } => doctor::doctor(&paths, &targets),
    }
}
