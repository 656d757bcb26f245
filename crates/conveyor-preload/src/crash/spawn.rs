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
//! system calls) forks once more and exits at once; it never execs, so it
//! stays a clone the program's `wait(-1)` does not see, and no `SIGCHLD`
//! comes of it (an exec would make it an ordinary child again). The
//! grandchild, whose parent is gone, execs `conveyor flusher --detach`,
//! which binds the socket and goes on in a session of its own; the caller
//! then waits for the socket to listen.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// How long the user's own flusher stays without programs.
const IDLE_SECS: &str = "30";

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
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("conveyor")));
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
}

extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` the parent passed, alive until this
    // clone exits (CLONE_VFORK suspends the parent); only system calls
    // follow. The raw fork gives the grandchild a copy of this memory, in
    // which it goes on alone.
    unsafe {
        let c = &*(arg as *const Child);
        let pid = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_long,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if pid == 0 {
            let null = libc::syscall(libc::SYS_open, c.null.as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for fd in 0..3 {
                    libc::syscall(libc::SYS_dup2, null, fd);
                }
            }
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            libc::syscall(
                libc::SYS_execve,
                c.argv[0],
                c.argv.as_ptr(),
                c.envp.as_ptr(),
            );
            libc::syscall(libc::SYS_exit, 127);
        }
        libc::syscall(libc::SYS_exit, if pid > 0 { 0 } else { 1 });
    }
    1
}

/// Runs `argv` as described above; returns its exit status.
fn run(argv: &[CString]) -> io::Result<i32> {
    let ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp = [std::ptr::null()];
    let null = CString::new("/dev/null").map_err(|_| io::Error::other("NUL"))?;
    let args = Child {
        argv: &ptrs,
        envp: &envp,
        null: &null,
    };
    let mut stack = vec![0u8; 64 << 10];
    // SAFETY: the stack grows down from its (16-aligned) end.
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) }.map_addr(|a| a & !15);
    // SAFETY: zeroed sets, filled or restored by the calls.
    let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = unsafe { std::mem::zeroed() };
    // SAFETY: `all` and `old` are valid sets.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `child` runs on `stack` (alive: the parent is suspended until
    // the exec) with `args`; no exit signal, so no SIGCHLD and no
    // `wait(-1)` reports it.
    let pid = unsafe {
        libc::clone(
            child,
            top.cast(),
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
