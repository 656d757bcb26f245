//! The command line: subcommands, options and their `--help`, in one place
//! so that `conveyor generate` renders the man pages and completions from
//! the same definitions the parser uses.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// The durability trade-off, in one line, for `--help` and the man pages
/// (a macro, so `concat!` can put it into the help texts).
macro_rules! durability {
    () => {
        "Durability: data is on storage once the program's close, fsync or exit returns; \
a write acknowledged by conveyor survives the death of the process (a flusher writes it); \
with --no-crash-safe a crash or SIGKILL loses at most the last CONVEYOR_MAX_AGE (5 s) of writes, \
CONVEYOR_WRITE_BUFFER (16 MiB) per file."
    };
}

/// `conveyor`'s arguments.
#[derive(Parser)]
#[command(
    name = "conveyor",
    version,
    about = "Makes unmodified programs fast on slow storage",
    long_about = "Makes unmodified programs fast on slow storage (network, FUSE and cloud-backed \
filesystems): small writes are buffered and written in large requests in the background, small \
sequential reads are served from large prefetched chunks, through an LD_PRELOAD shim.",
    after_help = concat!(
        "Example:\n  conveyor run --path /mnt/data --summary -- dd if=/dev/zero of=/mnt/data/x bs=4k count=4096\n\n",
        durability!(),
        "\n\nSee `conveyor COMMAND --help`, and docs/reference.md in the source tree."
    ),
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `conveyor run`'s arguments.
#[derive(Args)]
#[command(after_help = RUN_AFTER_HELP)]
pub struct RunArgs {
    /// Directory whose regular files are accelerated (repeatable; relative paths are made
    /// absolute). Replaces CONVEYOR_PATHS; without --path, CONVEYOR_PATHS is used.
    #[arg(long = "path", value_name = "DIR")]
    pub paths: Vec<PathBuf>,
    /// Write a stats report at exit: a JSON file (`%p` = pid; its directory must exist), or `-`
    /// for a table on stderr.
    #[arg(long, value_name = "FILE|-")]
    pub stats: Option<String>,
    /// At the end, print one line on stderr for the whole process tree: files, bytes and
    /// requests written and read, time waited, errors.
    #[arg(long, conflicts_with = "stats")]
    pub summary: bool,
    /// While the command runs, keep a status line on stderr (files open, throughput, buffered,
    /// errors), refreshed every second; only when stderr is a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Which selected files are accelerated: auto (default) leaves files on fast local storage
    /// (tmpfs, ext4, xfs, btrfs...) to the kernel; always accelerates them too; off loads the shim
    /// doing nothing (replaces CONVEYOR_MODE).
    #[arg(long, value_name = "MODE", value_parser = ["auto", "always", "off"])]
    pub mode: Option<String>,
    /// Let `close` return once the data is queued (CONVEYOR_CLOSE=relaxed, like NFS's nocto): the
    /// data reaches storage in the background while the command goes on, and other programs see it
    /// for sure only after the process's next exit, exec, fsync or lock. An error that arrives after
    /// close returned is printed at the end and makes the exit status non-zero.
    #[arg(long)]
    pub relaxed_close: bool,
    /// Keep pending writes in each process (CONVEYOR_CRASH_SAFE=off): a process killed (SIGKILL, a
    /// crash, the OOM killer) loses what it had not written. By default they live in shared memory
    /// and a flusher started for the command's process tree writes them. Replaces
    /// CONVEYOR_CRASH_SAFE.
    #[arg(long)]
    pub no_crash_safe: bool,
    /// Where background requests run: pool (default: worker threads) or uring (write batches on
    /// io_uring; prefetches, and everything where the kernel refuses io_uring, on the pool).
    /// Replaces CONVEYOR_EXECUTOR.
    #[arg(long, value_name = "EXECUTOR", value_parser = ["pool", "uring"])]
    pub executor: Option<String>,
    /// Log level of the shim (default warn; replaces CONVEYOR_LOG).
    #[arg(long, value_name = "LEVEL", value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
    pub log: Option<String>,
    /// Write the shim's log to FILE instead of stderr (`%p` = pid; created 0600, never through a
    /// symlink; its directory must exist).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// The command and its arguments (after `--`, or from the first word that is not an option).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

const RUN_AFTER_HELP: &str = concat!(
    "Example:\n  conveyor run --path /mnt/data --summary -- dd if=/dev/zero of=/mnt/data/x bs=4k count=4096\n\n\
Every CONVEYOR_* setting in the environment is checked first: a bad one stops the run (exit 2).\n",
    durability!(),
    "\nExit status: the command's own (a signal that ends it ends conveyor too); 2 for bad arguments or \
settings; 125 if the shim was not found; 126 if the command cannot be run (not executable, a \
directory); 127 if it was not found."
);

/// The subcommands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Run CMD with write-behind and read-ahead on files under the given paths.
    Run(RunArgs),
    /// Say whether each PATH would be accelerated, and why; show the settings; check the shim loads.
    #[command(
        after_help = "Example:\n  CONVEYOR_PATHS=/mnt/data conveyor doctor /mnt/data/results.csv /etc/hosts\n\n\
Uses CONVEYOR_PATHS from the environment unless --path is given; shows every CONVEYOR_* setting \
in effect, with its default.\n\
Exit status: 0 when the shim can be found and loaded and every setting is valid; 1 when the \
shim cannot be used or a setting is bad; 2 for bad arguments."
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
        after_help = "Example:\n  mkdir -p /tmp/r\n  conveyor run --stats /tmp/r/report-%p.json --path /mnt/data -- make -j4\n  conveyor report /tmp/r/report-*.json\n\n\
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
    /// Write what crashed programs acknowledged and had not written (crash-safe write-behind).
    #[command(
        after_help = "Example:\n  mkdir -m 700 /tmp/cf && conveyor flusher --socket /tmp/cf/s --detach\n  \
CONVEYOR_FLUSHER=/tmp/cf/s LD_PRELOAD=.../libconveyor_preload.so CONVEYOR_PATHS=/mnt/data app\n\n\
`conveyor run` starts one for the command's process tree, and the shim the user's own for\n\
programs run with LD_PRELOAD; start one yourself to choose where it listens (CONVEYOR_FLUSHER).\n\
The socket's directory must be yours and closed to others.\n\
Exit status: 0 when it served until done (or another flusher listens there already); 1 when\n\
the socket cannot be used; 2 for bad arguments."
    )]
    Flusher {
        /// The Unix socket to listen on (CONVEYOR_FLUSHER of the programs it serves).
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// Return once the socket listens, and go on in the background (a new session).
        #[arg(long)]
        detach: bool,
        /// End when process PID is gone and no program is connected (default: when the first
        /// programs are done and none is connected).
        #[arg(long, value_name = "PID", conflicts_with = "idle")]
        watch: Option<i32>,
        /// End once no program was connected for SECS seconds.
        #[arg(long, value_name = "SECS")]
        idle: Option<u64>,
        /// With --detach, append messages to FILE (default: the stderr it was started with).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// Write man pages and shell completions (bash, zsh, fish) generated from these definitions.
    #[command(
        after_help = "Example:\n  conveyor generate --man /usr/local/share/man/man1 --completions ./completions\n\n\
Writes conveyor.1 and conveyor-SUBCOMMAND.1 to the --man directory; conveyor.bash, _conveyor\n\
(zsh) and conveyor.fish to the --completions directory. The directories must exist.\n\
Exit status: 0 when everything was written, 1 when something could not be, 2 for bad arguments."
    )]
    Generate {
        /// Directory for the man pages (section 1).
        #[arg(long, value_name = "DIR", required_unless_present = "completions")]
        man: Option<PathBuf>,
        /// Directory for the completion scripts.
        #[arg(long, value_name = "DIR")]
        completions: Option<PathBuf>,
    },
}

/// Reports a command line clap rejected and exits: `--help` and
/// `--version` as clap prints them (exit 0), anything else as a usage error
/// (exit 2). An unknown option is named with the closest known one, since
/// a typo before the command must never be taken for the command.
pub fn usage_error(e: clap::Error) -> ! {
    if e.kind() == ErrorKind::UnknownArgument {
        let bad = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        let suggested = match e.get(ContextKind::SuggestedArg) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => v.first().cloned(),
            _ => None,
        };
        if let Some(bad) = bad {
            let hint = match &suggested {
                Some(s) => format!("; did you mean '{s}'?"),
                None => String::new(),
            };
            let usage = e
                .render()
                .to_string()
                .lines()
                .skip_while(|l| !l.starts_with("Usage:"))
                .collect::<Vec<_>>()
                .join("\n");
            if bad.starts_with('-') {
                eprintln!("conveyor: unknown option '{bad}'{hint}");
            } else {
                eprintln!("conveyor: unexpected argument '{bad}'{hint}");
            }
            if suggested.is_none() && bad.starts_with('-') {
                eprintln!(
                    "conveyor: (a command whose name starts with '-' goes after `--`: conveyor run --path DIR -- CMD)"
                );
            }
            if !usage.is_empty() {
                eprintln!("\n{usage}");
            }
            std::process::exit(i32::from(crate::EXIT_USAGE));
        }
    }
    e.exit()
}

/// The whole command definition (for `generate` and tests of it).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    #[test]
    fn definitions_are_consistent() {
        super::command().debug_assert();
        assert!(super::RUN_AFTER_HELP.contains("SIGKILL"));
    }
}
