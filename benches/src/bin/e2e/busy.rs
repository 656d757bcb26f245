//! `--busy N`: CPU-bound processes running beside the whole benchmark, so
//! the shim's threads compete for the cores with other work, as on a
//! shared machine. Each is this executable spinning in user space (no
//! system calls, so it loads the cores and nothing else). They are killed
//! and reaped when the benchmark ends, fails (`stop` from the exit path)
//! or is interrupted (a handler of SIGINT, SIGTERM and SIGHUP); should the
//! benchmark die otherwise, the kernel kills them with it (parent-death
//! signal).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

/// The argument that makes this executable a spinner.
const SPIN: &str = "--spin";

/// More would not tell a 2-core machine anything new; the slots are fixed
/// so the signal handler can read them without allocating or locking.
const MAX: usize = 64;

static PIDS: [AtomicI32; MAX] = [const { AtomicI32::new(0) }; MAX];

/// Runs as a spinner, and never returns, when started as one
/// (`e2e --spin PARENT`); returns false otherwise.
pub fn child_if_asked() -> bool {
    let argv: Vec<String> = std::env::args().skip(1).take(2).collect();
    if argv.first().map(String::as_str) != Some(SPIN) {
        return false;
    }
    let parent: i32 = argv.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: prctl with PR_SET_PDEATHSIG takes the signal as its only
    // argument and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The parent may have died before the death signal was armed.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        std::process::exit(0);
    }
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Kills and reaps the spinners still running; safe to call more than once
/// and from a signal handler (atomics, kill and waitpid only).
pub fn stop() {
    for slot in &PIDS {
        let pid = slot.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill and waitpid take plain integers and a null
            // status pointer; pid is a child this process started and has
            // not reaped (the slot held it until the swap above).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    stop();
    // SA_RESETHAND has restored the default action: the signal now ends
    // the process as it would have without this handler.
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(sig) };
}

/// The running spinners; dropping it stops them.
pub struct Busy {
    /// How many run.
    pub count: usize,
}

impl Drop for Busy {
    fn drop(&mut self) {
        stop();
    }
}

/// Starts `n` spinners, copies of `me`.
pub fn start(me: &Path, n: usize) -> Result<Busy, String> {
    if n > MAX {
        return Err(format!("--busy: at most {MAX} processes"));
    }
    if n == 0 {
        return Ok(Busy { count: 0 });
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid value (empty mask, no
        // flags); the handler only calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_NODEFER;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let busy = Busy { count: n };
    for slot in PIDS.iter().take(n) {
        let child = Command::new(me)
            .arg(SPIN)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a busy process: {e}"))?;
        slot.store(child.id() as i32, Ordering::SeqCst);
    }
    Ok(busy)
}
