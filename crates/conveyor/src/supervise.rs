//! `conveyor run --summary` / `--progress`: the command runs as a child the
//! launcher waits for (instead of replacing the launcher), so that it can
//! print the summary at the end and the status line meanwhile.
//!
//! The child's end is passed through exactly: its exit code, or, when a
//! signal ended it, the same signal raised on the launcher (after the
//! summary is printed), so a shell or make sees what it would have seen
//! without conveyor. Signals sent to the launcher's pid by another process
//! (`kill`, a job runner's SIGTERM) are forwarded to the child; those the
//! terminal sends (Ctrl-C, Ctrl-\) already reach the child, which is in the
//! same process group, and only keep the launcher alive to report.

use crate::{progress, run, summary};
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

/// A directory only this user can enter, removed with what is in it when
/// dropped: where the shim writes the reports `--summary` merges.
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    /// A fresh `conveyor-run-XXXXXX` (mode 0700) in the temp directory.
    pub fn new() -> std::io::Result<PrivateDir> {
        PrivateDir::named("conveyor-run")
    }

    /// A fresh `PREFIX-XXXXXX` (mode 0700) in the temp directory.
    pub fn named(prefix: &str) -> std::io::Result<PrivateDir> {
        let template = std::env::temp_dir().join(format!("{prefix}-XXXXXX"));
        let mut bytes = std::os::unix::ffi::OsStrExt::as_bytes(template.as_os_str()).to_vec();
        bytes.push(0);
        // SAFETY: mkdtemp rewrites the X's of a NUL-terminated buffer we own.
        let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if p.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        bytes.pop();
        Ok(PrivateDir(PathBuf::from(
            <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes),
        )))
    }

    /// A fresh one for what launcher option `option` collects, or the exit
    /// status after saying why none could be made.
    pub fn for_option(option: &str) -> Result<PrivateDir, ExitCode> {
        PrivateDir::new().map_err(|e| {
            eprintln!("conveyor: cannot create a directory for {option}: {e}");
            ExitCode::from(crate::EXIT_LAUNCH)
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Its path, and the directory no longer removed on drop (another
    /// process owns it from now on).
    pub fn keep(self) -> PathBuf {
        let me = std::mem::ManuallyDrop::new(self);
        me.0.clone()
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The child's pid, for the forwarding handler (0: none yet).
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Signals a user or a job runner sends to end or notify a program.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SI_USER, SI_QUEUE, SI_TKILL and the like are <= 0: another process
    // sent it to the launcher. The kernel's (a terminal's) are > 0 and went
    // to the child's process group too.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let from_process = info.is_null() || unsafe { (*info).si_code } <= 0;
    let child = CHILD.load(Ordering::Relaxed);
    if from_process && child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, sig) };
    }
}

fn install_forwarding() {
    for sig in FORWARDED {
        // SAFETY: installs a handler that only loads an atomic and calls
        // kill; the child got default actions at exec.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Ends the launcher the way the child ended: by the same signal.
fn die_by(sig: i32) -> ExitCode {
    // SAFETY: resets one signal to its default action, unblocks it and
    // raises it; a core dump of the launcher would only mislead, so none.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    // A signal whose default is to be ignored (SIGCHLD, SIGWINCH...) cannot
    // end the child, so this is not reached in practice; the shell's code.
    ExitCode::from((128 + sig).clamp(0, 255) as u8)
}

/// Starts `cmd`, shows the status line while it runs (`progress`), prints
/// the summary from the reports in `reports` when it ends, and passes its
/// exit status or signal through.
pub fn run(
    mut cmd: std::process::Command,
    prog: &OsStr,
    reports: Option<PrivateDir>,
    progress: bool,
    late: Option<PrivateDir>,
) -> ExitCode {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return run::cannot_run(prog, &e),
    };
    CHILD.store(child.id() as i32, Ordering::Relaxed);
    install_forwarding();
    let line = progress.then(|| progress::Line::start(child.id() as i32));
    let status = child.wait();
    if let Some(l) = line {
        l.finish();
    }
    if let Some(dir) = &reports {
        eprintln!("{}", summary::line(dir.path()));
    }
    drop(reports);
    let late = late.map_or(0, |d| late_errors(d.path()));
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            // Data was lost after a close had returned: a command that
            // says it succeeded did not.
            (Some(0), _) if late > 0 => ExitCode::from(crate::EXIT_LATE),
            (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
            (None, Some(sig)) => die_by(sig),
            (None, None) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("conveyor: lost track of {}: {e}", prog.to_string_lossy());
            ExitCode::from(crate::EXIT_LAUNCH)
        }
    }
}

/// Prints the errors the shim wrote to `dir` (relaxed close: they arrived
/// after the `close` that would have returned them); how many there were.
fn late_errors(dir: &Path) -> usize {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    lines.sort();
    if !lines.is_empty() {
        eprintln!(
            "conveyor: {} error(s) after close returned (--relaxed-close); this data may not be on storage:",
            lines.len()
        );
        for l in &lines {
            eprintln!("  {l}");
        }
    }
    lines.len()
}
