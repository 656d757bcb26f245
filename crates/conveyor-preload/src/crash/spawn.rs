//! Starting the user's own flusher from inside a program, without the
//! program seeing it: no child it can `wait` for (the clone sends no
//! `SIGCHLD` and `wait(-1)` does not report it), no signal handler of its
//! run in between (all blocked around the clone), none of its descriptors
//! kept (the child closes them before the exec: a pipe the program's
//! reader waits on must not stay open in a flusher), nothing of its
//! environment passed on. The clone shares memory until the exec, as
//! `posix_spawn` does, and runs only system calls.
//!
//! The clone (sharing memory, as `posix_spawn`'s does, and running only
//! system calls) starts a grandchild the same way and exits once that one
//! has exec'd; it never execs itself, so it stays a clone the program's
//! `wait(-1)` does not see, and no `SIGCHLD` comes of it (an exec would
//! make it an ordinary child again). The grandchild, whose parent is gone,
//! execs `conveyor flusher --detach`, which binds the socket and goes on
//! in a session of its own; the caller then waits for the socket to
//! listen. Nothing of the program's memory is copied.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// How long the user's own flusher stays without programs.
const IDLE_SECS: &str = "120";

/// Starts the user's own flusher on `socket` (its directory made, 0700);
/// returns a connection to it.
pub fn flusher(socket: &Path) -> io::Result<std::os::fd::OwnedFd> {
    let dir = socket
        .parent()
        .ok_or_else(|| io::Error::other("no directory"))?;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let bin = binary().ok_or_else(|| {
        io::Error::other("`conveyor` (the flusher) is neither next to the shim nor in PATH")
    })?;
    let c = |b: &[u8]| CString::new(b).map_err(|_| io::Error::other("a NUL in a path"));
    let argv = [
        c(bin.as_os_str().as_bytes())?,
        c(b"flusher")?,
        c(b"--socket")?,
        c(socket.as_os_str().as_bytes())?,
        c(b"--detach")?,
        c(b"--idle")?,
        c(IDLE_SECS.as_bytes())?,
        c(b"--log")?,
        c(dir.join("log").as_os_str().as_bytes())?,
    ];
    if run(&argv)? != 0 {
        return Err(io::Error::other("cannot start the flusher: fork failed"));
    }
    // It listens once `conveyor flusher` is up: a fraction of a
    // millisecond to a few on a busy machine; give up after 5 s.
    let t = std::time::Instant::now();
    loop {
        match crate::crash::wire::connect(socket) {
            Ok(c) => return Ok(c),
            Err(_) if t.elapsed() < std::time::Duration::from_secs(5) => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "{} flusher did not start listening ({e}; see {})",
                    bin.display(),
                    dir.join("log").display()
                )))
            }
        }
    }
}

/// `conveyor` next to the shim (`target/release`, an install's `lib`
/// beside `bin`), else in `PATH`.
fn binary() -> Option<PathBuf> {
    // SAFETY: a plain C struct dladdr fills.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: asks which object holds this function; `info` is writable.
    let found = unsafe { libc::dladdr(binary as *const libc::c_void, &mut info) } != 0;
    let mut candidates = Vec::new();
    if found && !info.dli_fname.is_null() {
        // SAFETY: dladdr's file name is a NUL-terminated string it owns.
        let so = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
        let so = Path::new(std::ffi::OsStr::from_bytes(so.to_bytes()));
        if let Some(dir) = so.parent() {
            candidates.push(dir.join("conveyor"));
            candidates.push(dir.join("../bin/conveyor"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        // Only absolute entries: a relative one would run whatever
        // `conveyor` the program's working directory holds.
        candidates.extend(
            std::env::split_paths(&path)
                .filter(|d| d.is_absolute())
                .map(|d| d.join("conveyor")),
        );
    }
    candidates.into_iter().find(|p| {
        let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a NUL-terminated path.
        unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
    })
}

struct Child<'a> {
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    null: &'a CString,
    // Descriptors to close past 2 where `close_range` is missing (before
    // Linux 5.9): the soft `RLIMIT_NOFILE`, read before the clone.
    max_fd: u32,
    // The grandchild's stack.
    stack: *mut libc::c_void,
}

/// The grandchild: the standard descriptors on /dev/null, every other
/// descriptor closed, then the flusher.
extern "C" fn grandchild(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Child`, alive until the exec (every
    // clone in between is a vfork); only system calls follow.
    unsafe {
        let c = &*(arg as *const Child);
        let null = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c.null.as_ptr(),
            libc::O_RDWR,
        );
        if null >= 0 {
            for fd in 0..3 {
                libc::syscall(libc::SYS_dup3, null, fd, 0);
            }
        }
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..c.max_fd {
                libc::syscall(libc::SYS_close, fd);
            }
        }
        libc::syscall(
            libc::SYS_execve,
            c.argv[0],
            c.argv.as_ptr(),
            c.envp.as_ptr(),
        );
        libc::syscall(libc::SYS_exit, 127);
    }
    127
}

/// The clone: starts the grandchild (sharing memory until its exec, so
/// nothing of the program's memory is copied) and exits.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Child`, alive while this clone runs
    // (CLONE_VFORK suspends the parent); the grandchild's stack is the
    // parent's too; only system calls follow.
    unsafe {
        let c = &*(arg as *const Child);
        let pid = libc::clone(
            grandchild,
            c.stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        );
        libc::syscall(libc::SYS_exit, if pid > 0 { 0 } else { 1 });
    }
    1
}

/// Runs `argv` as described above; returns the clone's exit status (0:
/// the grandchild was started).
fn run(argv: &[CString]) -> io::Result<i32> {
    let ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp = [std::ptr::null()];
    let null = CString::new("/dev/null").map_err(|_| io::Error::other("NUL"))?;
    // SAFETY: a plain C struct getrlimit fills.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is writable.
    let max_fd = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(65536) as u32
    } else {
        1024
    };
    let mut stacks = vec![0u8; 128 << 10];
    let (first, second) = stacks.split_at_mut(64 << 10);
    // The stacks grow down from their (16-aligned) ends.
    let top = |s: &mut [u8]| s.as_mut_ptr_range().end.map_addr(|a| a & !15);
    let args = Child {
        argv: &ptrs,
        envp: &envp,
        null: &null,
        max_fd,
        stack: top(second).cast(),
    };
    let first_top = top(first);
    // SAFETY: zeroed sets, filled or restored by the calls.
    let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = unsafe { std::mem::zeroed() };
    // SAFETY: `all` and `old` are valid sets.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `child` runs on `first` (alive: the parent is suspended until
    // the clone exits) with `args`; no exit signal, so no SIGCHLD and no
    // `wait(-1)` reports it.
    let pid = unsafe {
        libc::clone(
            child,
            first_top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK,
            &args as *const Child as *mut libc::c_void,
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(err);
    }
    let mut st = 0;
    loop {
        // SAFETY: waits for our own clone; `st` is writable.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::__WCLONE) };
        if r == pid {
            break;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128
    })
}
