//! `conveyor flusher`: the process that writes what a program acknowledged
//! when the program dies before it could (crash-safe write-behind,
//! `CONVEYOR_CRASH_SAFE=on`).
//!
//! The shim keeps its write-behind segments in a shared-memory journal
//! (`conveyor_journal`) and, when it first holds data, connects to the
//! flusher's socket and hands the journal over. The flusher then only
//! waits: while the program lives, the program writes its data itself,
//! exactly as without a flusher. When the connection ends (the program
//! exited, exec'd or died, and with it every request it had in flight),
//! the flusher reads the journal: a program that ended normally left
//! nothing pending; one that was killed left the writes it acknowledged
//! and had not written, which the flusher writes, oldest first, to each
//! file it can still find as the same file (path, device and inode), and
//! reports on stderr.
//!
//! Security: the socket's directory must be the caller's and closed to
//! others; a connection from another user is refused (`SO_PEERCRED`); the
//! journal must have the layout this version writes.

use conveyor_engine::journal::{replay, wire, FileName, Journal, Pending, Target};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When the flusher ends.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Once the first connections are over and none is left.
    Idle,
    /// Once process `pid` is gone (the command `conveyor run` started) and
    /// no connection is left.
    Gone(i32),
    /// Once no connection was open for this long (a user's own flusher,
    /// which the shim starts for programs run with a bare `LD_PRELOAD`).
    Quiet(Duration),
}

/// Runs the flusher on `socket` until `until`; with `detach`, returns as
/// soon as the socket listens and goes on in a new session in the
/// background (output to `log`, else nowhere).
pub fn flusher(socket: &Path, until: Until, detach: bool, log: Option<&Path>) -> ExitCode {
    // The shim starts it with every signal blocked (none of the program's
    // handlers may run in the child before the exec).
    // SAFETY: a zeroed set, emptied, then installed as this thread's mask.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    let listener = match listen(socket) {
        Ok(Some(l)) => l,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conveyor flusher: {e}");
            return ExitCode::from(crate::EXIT_SKIPPED);
        }
    };
    if detach {
        // SAFETY: no other thread exists yet; the child goes on alone.
        match unsafe { libc::fork() } {
            -1 => {
                eprintln!("conveyor flusher: fork: {}", io::Error::last_os_error());
                return ExitCode::from(crate::EXIT_SKIPPED);
            }
            0 => {
                if let Err(e) = settle(log) {
                    eprintln!("conveyor flusher: {e}");
                }
            }
            // The parent: the socket listens (the child has it), so the
            // command may connect as soon as this returns.
            _ => return ExitCode::SUCCESS,
        }
    }
    serve(listener, socket, until);
    ExitCode::SUCCESS
}

/// A new session (no signal of the command's terminal reaches it), `/` as
/// working directory (no mount kept busy), standard input and output on
/// `/dev/null`, and messages to `log` (else to the stderr it was given).
fn settle(log: Option<&Path>) -> io::Result<()> {
    // SAFETY: no arguments; makes this process a session leader.
    unsafe { libc::setsid() };
    std::env::set_current_dir("/")?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let err = match log {
        Some(p) => File::options()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)?,
        None => match std::io::stderr().as_fd().try_clone_to_owned() {
            Ok(fd) => File::from(fd),
            Err(_) => null.try_clone()?,
        },
    };
    for (fd, from) in [(0, &null), (1, &null), (2, &err)] {
        // SAFETY: duplicates our own descriptors onto the standard ones.
        if unsafe { libc::dup2(from.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Binds `socket`, or `None` when a flusher already listens there. A
/// socket left by a flusher that is gone is replaced.
fn listen(socket: &Path) -> Result<Option<UnixListener>, String> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: no arguments.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not safe for the flusher's socket: it must be yours and not writable by others (chmod 700)",
            dir.display()
        ));
    }
    match UnixStream::connect(socket) {
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            // A socket nobody listens on: left by a flusher that was killed.
            let _ = std::fs::remove_file(socket);
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    Ok(Some(l))
}

/// Connections now, and when the last one ended.
#[derive(Default)]
struct Load {
    active: AtomicUsize,
    // Milliseconds from the start when the last connection ended.
    quiet_since: AtomicU64,
}

/// Accepts programs (each served on a thread of its own) until `until`
/// holds with none connected. One thread accepts and decides to end, so no
/// connection can be accepted behind the decision: the socket goes first
/// (no program connects to a flusher about to end), then what was queued
/// before it went is served.
fn serve(listener: UnixListener, socket: &Path, until: Until) {
    raise_open_files();
    // The socket as bound: removed at the end only if it is still this one
    // (a flusher that replaced this one's may own the path by then).
    let bound = std::fs::symlink_metadata(socket)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let load = Arc::new(Load::default());
    let start = Instant::now();
    let mut served = 0u64;
    let mut closing = false;
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, if closing { 0 } else { 50 }) };
        if ready > 0 {
            match listener.accept() {
                Ok((conn, _)) => {
                    served += 1;
                    load.active.fetch_add(1, Ordering::AcqRel);
                    let l = Arc::clone(&load);
                    let spawned = std::thread::Builder::new().spawn(move || {
                        client(conn);
                        l.quiet_since
                            .store(start.elapsed().as_millis() as u64, Ordering::Release);
                        l.active.fetch_sub(1, Ordering::AcqRel);
                    });
                    if spawned.is_err() {
                        // No thread to be had: this connection waits for
                        // one (its program is not harmed while it lives).
                        load.active.fetch_sub(1, Ordering::AcqRel);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                // Out of descriptors, most likely: wait for some to close.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            continue;
        }
        if closing {
            if load.active.load(Ordering::Acquire) == 0 {
                std::process::exit(0);
            }
            closing = false;
            continue;
        }
        let over = match until {
            Until::Idle => served > 0,
            Until::Gone(pid) => gone(pid),
            Until::Quiet(d) => {
                let since = Duration::from_millis(load.quiet_since.load(Ordering::Acquire));
                start.elapsed().saturating_sub(since) >= d
            }
        };
        if over && load.active.load(Ordering::Acquire) == 0 {
            let now = std::fs::symlink_metadata(socket)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            if now.is_some() && now == bound {
                let _ = std::fs::remove_file(socket);
                if let Some(dir) = socket.parent() {
                    if dir
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("conveyor-flusher-"))
                    {
                        // Left when it holds the user's flusher's log.
                        let _ = std::fs::remove_dir(dir);
                    }
                }
            }
            // One more look for what was queued before the socket went.
            closing = true;
        }
    }
}

/// Whether process `pid` has ended: gone, or a zombie its parent has not
/// reaped yet (a caller reading the command's output until the end waits
/// for this flusher, which holds its stderr, before it reaps).
fn gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // The state follows the command name, which ends with the last ')'.
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Every program connected holds a descriptor here until it ends: the
/// soft limit is raised to the hard one.
fn raise_open_files() {
    // SAFETY: a plain C struct the calls read and fill.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Waits until process `pid` (whose pidfd is `pidfd`) has ended.
fn wait_for_death(pidfd: Option<&std::os::fd::OwnedFd>) {
    let Some(fd) = pidfd else { return };
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a pidfd is readable once its process
        // has ended.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 || (r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            return;
        }
    }
}

/// A pidfd of `pid` (Linux 5.3 and later), to tell its death from a closed
/// connection.
fn pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: no memory involved.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a new descriptor only we own.
    (fd >= 0).then(|| unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
    })
}

/// One program: its greeting, then the wait for its end, then what it
/// left.
fn client(mut conn: UnixStream) {
    // SAFETY: no arguments.
    let me = unsafe { libc::geteuid() };
    let pid = match wire::peer(conn.as_fd()) {
        Ok((pid, uid)) if uid == me => pid,
        Ok((_, uid)) => {
            eprintln!("conveyor flusher: refused a connection from uid {uid}");
            return;
        }
        Err(e) => {
            eprintln!("conveyor flusher: {e}");
            return;
        }
    };
    let greeting = match wire::receive(conn.as_fd()) {
        Ok(g) => g,
        // A program that only looked whether a flusher listens (the shim,
        // after starting one) sent nothing.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
        Err(e) => {
            eprintln!("conveyor flusher: a connection without a journal: {e}");
            return;
        }
    };
    let journal = match Journal::open(greeting.journal) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("conveyor flusher: process {}: {e}", greeting.pid);
            return;
        }
    };
    // Taken now, while the process is surely alive (it just connected).
    let death = pidfd(pid);
    // Nothing more comes; the end of the connection is the end of every
    // copy of the program's socket: at its exit, exec or death, or when it
    // closed the descriptor by its number, which is why the process's end
    // is waited for too (the journal is written only once nothing of the
    // process can write any more).
    let mut sink = [0u8; 64];
    loop {
        match conn.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(conn);
    wait_for_death(death.as_ref());
    let pending = journal.pending();
    if pending.is_empty() {
        return;
    }
    let names = journal.files();
    // Each file's ctime as the process's end is seen, before any is
    // written: a change after this is another program's.
    let seen: HashMap<u64, (i64, i64)> = names
        .iter()
        .filter_map(|(id, n)| {
            let m = std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&n.path)).ok()?;
            Some((*id, (m.ctime(), m.ctime_nsec())))
        })
        .collect();
    let mut by_file: HashMap<u64, Vec<Pending>> = HashMap::new();
    for p in pending {
        by_file.entry(p.file).or_default().push(p);
    }
    for (id, records) in by_file {
        let bytes: usize = records.iter().map(|r| r.data.len()).sum();
        let res = match names.get(&id) {
            Some(name) => write_file(name, &records, seen.get(&id).copied()),
            None => Err("the journal does not name the file".to_string()),
        };
        let path = names.get(&id).map_or("?".into(), |n| {
            String::from_utf8_lossy(&n.path).into_owned()
        });
        let mut err = io::stderr().lock();
        let _ = match res {
            Ok(n) => writeln!(
                err,
                "conveyor flusher: process {} ended with {bytes} bytes of {path} not yet written; wrote {n}",
                greeting.pid
            ),
            Err(e) => writeln!(
                err,
                "conveyor flusher: process {} ended with {bytes} bytes of {path} not yet written; they are lost: {e}",
                greeting.pid
            ),
        };
    }
}

/// Writes one file's records, if `name` still names the same file.
fn write_file(
    name: &FileName,
    records: &[Pending],
    seen: Option<(i64, i64)>,
) -> Result<u64, String> {
    let path = Path::new(std::ffi::OsStr::from_bytes(&name.path));
    let open = |append: bool| -> Result<File, String> {
        let f = File::options()
            .write(true)
            .append(append)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| e.to_string())?;
        let m = f.metadata().map_err(|e| e.to_string())?;
        // Where inode numbers are made up (rclone), the shim names a file
        // by its device and path: the path is the identity there.
        let same = m.dev() == name.dev && (m.ino() == name.ino || paths_are_identity(m.dev()));
        // Changed since the process ended: a program started after it (a
        // rerun truncating the same file) owns the file now, and the dead
        // process's data must not land over its own. (Compared with the
        // file's own ctime when the end was seen, not with a clock: a
        // remote server's may run ahead.)
        if !append && seen.is_some_and(|c| c != (m.ctime(), m.ctime_nsec())) {
            return Err(
                "the file changed after the process ended (another program writes it now)".into(),
            );
        }
        if !same {
            return Err("the path now names another file (renamed or replaced)".into());
        }
        Ok(f)
    };
    let file = open(false)?;
    // For appends in flight: their bytes where they were expected.
    let reader = File::open(path).ok();
    let mut t = FileTarget {
        file,
        reader,
        appender: None,
        open: &open,
    };
    replay(records, &mut t).map_err(|e| e.to_string())
}

/// Whether the filesystem of device `dev` makes inode numbers up, so
/// that the shim keys its files by path (`conveyor_fskind`).
fn paths_are_identity(dev: u64) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    conveyor_fskind::mount_of(&info, dev)
        .is_some_and(|m| conveyor_fskind::of_type(&m.fstype).unstable_ino)
}

struct FileTarget<'a> {
    file: File,
    reader: Option<File>,
    appender: Option<File>,
    open: &'a dyn Fn(bool) -> Result<File, String>,
}

impl Target for FileTarget<'_> {
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, off)
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.appender.is_none() {
            self.appender = Some((self.open)(true).map_err(io::Error::other)?);
        }
        match &mut self.appender {
            Some(f) => f.write_all(data),
            None => Ok(()),
        }
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        match &self.reader {
            Some(r) => r.read_at(buf, off),
            // A file the flusher may not read: nothing is taken as landed.
            None => Ok(0),
        }
    }
}
