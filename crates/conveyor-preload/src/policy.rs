//! Which opens are managed: regular files whose canonical path (as the
//! kernel resolved it: symlinks, `..`, relative paths and dirfds included)
//! lies under `CONVEYOR_PATHS`, opened without `O_PATH`, `O_DIRECT`,
//! `O_SYNC` or `O_DSYNC`, and not handed to the kernel earlier in this
//! process (mapped, fdopen'ed, or opened with those flags elsewhere), in a
//! process that does not share writable memory with others through such a
//! file.

use crate::backend::RawBackend;
use crate::desc::Desc;
use crate::guard::Inside;
use crate::real;
use crate::state::Shim;
use conveyor_engine::{Backend, FileKey, Mode};
use libc::c_int;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Flags whose semantics buffering would break: left to the kernel.
const PASS_FLAGS: c_int = libc::O_PATH | libc::O_DIRECT | libc::O_DSYNC;

// Files handed to the kernel for good (mapped, fdopen'ed, opened O_DIRECT
// or O_DSYNC, O_APPEND changed): a buffered description and one the kernel
// serves directly could not keep each other's order, so none of their
// opens is managed again in this process (a program that maps every file
// it reads keeps one entry per file).
static PASSED: Mutex<Option<HashSet<FileKey>>> = Mutex::new(None);
static ANY_PASSED: AtomicBool = AtomicBool::new(false);

// Set once the process maps a selected file shared and writable (sqlite's
// WAL index, `-shm`): it then tells other processes about its writes
// through memory, at moments no hook sees (a store into the mapping), so
// nothing of it may be buffered or cached any more. Never cleared.
static PASS_ALL: AtomicBool = AtomicBool::new(false);

/// Nothing is managed in this process from now on.
pub fn pass_through_everything() {
    PASS_ALL.store(true, Ordering::Release);
}

/// File `key` passes through from now on.
pub fn pass_through(key: FileKey) {
    if let Ok(mut v) = PASSED.lock() {
        v.get_or_insert_with(HashSet::new).insert(key);
        ANY_PASSED.store(true, Ordering::Release);
    }
}

fn passed(key: FileKey) -> bool {
    ANY_PASSED.load(Ordering::Acquire)
        && PASSED
            .lock()
            .map_or(true, |v| v.as_ref().is_some_and(|v| v.contains(&key)))
}

/// Descriptors at or below this are the standard streams: glibc's stdio
/// and shell builtins write and read them through internal calls that no
/// hook sees, so a description there is exposed (`Desc::exposed`).
pub const LAST_STD_FD: c_int = 2;

/// The file a program just opened with flags that keep it from being
/// managed (`O_DIRECT`, `O_DSYNC`, `O_SYNC`), if it is a selected regular
/// file: it then passes through everywhere in this process.
pub fn passed_open(shim: &Shim, fd: c_int, flags: c_int) -> Option<FileKey> {
    if flags & (libc::O_DIRECT | libc::O_DSYNC) == 0 || flags & libc::O_PATH != 0 {
        return None;
    }
    let st = fstat(fd).filter(|st| is_regular(st.st_mode))?;
    crate::fskind::learn(st.st_dev);
    if !shim.selects(&fd_path(fd)?) {
        return None;
    }
    fd_key(fd, &st)
}

// One set of private descriptors per file, shared by all its managed
// descriptions: fewer descriptors and, on slow storage, fewer opens.
static BACKENDS: Mutex<Vec<(FileKey, Weak<RawBackend>)>> = Mutex::new(Vec::new());

/// A live read-write backend of file `key`, if one exists.
fn shared_backend(key: FileKey) -> Option<Arc<RawBackend>> {
    let v = BACKENDS.lock().ok()?;
    v.iter()
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, w)| w.upgrade())
        .find(|b| b.can_read() && b.can_write() && b.is_shareable() && !b.is_released())
}

/// Closes the private descriptors of the description `d` is closing, now,
/// if no other description of its file uses them (`d` is the last handle
/// of the file, and they are not kept for the program's locks). The check
/// and the release happen under the list's lock, so an open that picked
/// the same backend meanwhile either counts as a handle here or sees it
/// released (`manage` then opens a fresh one). The descriptors themselves
/// are closed after the lock is dropped: that close can take a whole
/// upload on a cloud filesystem.
pub fn release_if_last(d: &Desc, inside: &Inside) -> Result<(), conveyor_engine::Errno> {
    let h = d.handle(inside);
    if !h.is_last() || d.backend.is_retained() {
        return Ok(());
    }
    // Outside the lock: a prefetch can take a storage round trip.
    h.quiesce();
    {
        let Ok(mut v) = BACKENDS.lock() else {
            return Ok(());
        };
        if !h.is_last() || d.backend.is_retained() || d.backend.is_released() {
            return Ok(());
        }
        let me = Arc::as_ptr(&d.backend);
        v.retain(|(_, w)| w.as_ptr() != me && w.strong_count() > 0);
        d.backend.mark_released();
    }
    d.backend.release()
}

fn remember_backend(key: FileKey, b: &Arc<RawBackend>) {
    if let Ok(mut v) = BACKENDS.lock() {
        v.retain(|(_, w)| w.strong_count() > 0);
        if !v
            .iter()
            .any(|(k, w)| *k == key && w.as_ptr() == Arc::as_ptr(b))
        {
            v.push((key, Arc::downgrade(b)));
        }
    }
}

/// The attributes of a stat result (any of the stat structs).
macro_rules! attrs_of {
    ($st:expr) => {
        conveyor_engine::Attrs {
            size: u64::try_from($st.st_size).unwrap_or(0),
            mtime_ns: i128::from($st.st_mtime) * 1_000_000_000 + i128::from($st.st_mtime_nsec),
            ctime_ns: i128::from($st.st_ctime) * 1_000_000_000 + i128::from($st.st_ctime_nsec),
        }
    };
}
pub(crate) use attrs_of;

/// True if `b` was released; asked under the list's lock, so that a
/// release deciding at the same moment has either counted the caller's new
/// handle or marked `b` released before this answers.
fn still_released(b: &RawBackend) -> bool {
    let _v = BACKENDS.lock();
    b.is_released()
}

/// `fstat` of a descriptor through the real function.
pub fn fstat(fd: c_int) -> Option<libc::stat64> {
    // SAFETY: `st` is a plain C struct the call fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writing.
    (unsafe { real::fstat64(fd, &mut st) } == 0).then_some(st)
}

/// The identity of a stat result.
pub fn key_of(st: &libc::stat64) -> FileKey {
    FileKey {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

/// The identity of the file open as `fd` (stat result `st`): its device
/// and inode, or on a filesystem that makes inode numbers up, its device
/// and the path the kernel has for it (see `fskind`).
pub fn fd_key(fd: c_int, st: &libc::stat64) -> Option<FileKey> {
    if !crate::fskind::known(st.st_dev).unstable_ino {
        return Some(key_of(st));
    }
    Some(FileKey {
        dev: st.st_dev,
        ino: crate::fskind::path_id(&fd_path(fd)?),
    })
}

/// The identity of the file a stat by path (`dirfd`, `path`) found with
/// device `dev` and inode `ino`; `None` if it cannot be told (the path
/// went away in between).
///
/// # Safety
/// `path` is NUL-terminated, as for the stat call it came from.
pub unsafe fn path_key(
    dirfd: c_int,
    path: *const libc::c_char,
    dev: u64,
    ino: u64,
) -> Option<FileKey> {
    if !crate::fskind::known(dev).unstable_ino {
        return Some(FileKey { dev, ino });
    }
    // The path as the kernel resolves it: an O_PATH descriptor, which no
    // filesystem sees opened or flushed.
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    let fd = unsafe { real::openat(dirfd, path, libc::O_PATH | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    let p = fd_path(fd);
    // SAFETY: our own descriptor.
    unsafe { real::close(fd) };
    Some(FileKey {
        dev,
        ino: crate::fskind::path_id(&p?),
    })
}

/// True for a regular file.
pub fn is_regular(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFREG
}

/// The path the kernel has for `fd`.
fn fd_path(fd: c_int) -> Option<Vec<u8>> {
    let link = format!("/proc/self/fd/{fd}\0");
    let mut buf = vec![0u8; 4096];
    // SAFETY: `link` is NUL-terminated and `buf` is writable for its length.
    let n = unsafe { libc::readlink(link.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The policy's lists, locked across `fork` so that the child finds them
/// free and whole (a thread that held one at the fork does not exist there).
pub struct ForkHold {
    backends: MutexGuard<'static, Vec<(FileKey, Weak<RawBackend>)>>,
    passed: MutexGuard<'static, Option<HashSet<FileKey>>>,
}

/// Locks the lists before `fork` (in the order every other path takes them).
pub fn hold_for_fork() -> ForkHold {
    ForkHold {
        backends: BACKENDS.lock().unwrap_or_else(|e| e.into_inner()),
        passed: PASSED.lock().unwrap_or_else(|e| e.into_inner()),
    }
}

impl ForkHold {
    /// In the child: the parent's private descriptors are not shared with
    /// the child's engine, and every file it inherited a managed
    /// description of passes through (the kernel serves those descriptions
    /// there, and a buffered one beside them could not keep their order).
    pub fn in_child(mut self, inherited: &[FileKey]) {
        self.backends.clear();
        if !inherited.is_empty() {
            self.passed
                .get_or_insert_with(HashSet::new)
                .extend(inherited.iter().copied());
            ANY_PASSED.store(true, Ordering::Release);
        }
    }
}

/// True if `fd` is a regular file under `CONVEYOR_PATHS`.
pub fn selected(shim: &Shim, fd: c_int) -> bool {
    fstat(fd).is_some_and(|st| is_regular(st.st_mode))
        && fd_path(fd).is_some_and(|p| shim.selects(&p))
}

/// True if the canonical `path` lies under one of `prefixes` (absolute,
/// normalised, no trailing slash; `/` selects everything).
pub fn under(prefixes: &[Vec<u8>], path: &[u8]) -> bool {
    prefixes.iter().any(|p| {
        path.starts_with(p)
            && (path.len() == p.len() || path[p.len()] == b'/' || p.as_slice() == b"/")
    })
}

/// What the admission rules say of an open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Managed.
    Manage,
    /// Opened with a flag buffering would break (`O_PATH`, `O_DIRECT`,
    /// `O_SYNC`, `O_DSYNC`): the kernel serves it.
    Flags,
    /// Not a regular file.
    NotRegular,
    /// Not under a selected path.
    NotSelected,
}

/// The admission decision for an open with `flags` of a file of type
/// `mode` whose canonical path is `path`, under the selected `prefixes`.
/// Pure: what a process has passed through, and what a filesystem allows,
/// are decided by the caller.
pub fn admit(flags: c_int, mode: u32, path: &[u8], prefixes: &[Vec<u8>]) -> Admit {
    if flags & PASS_FLAGS != 0 {
        Admit::Flags
    } else if !is_regular(mode) {
        Admit::NotRegular
    } else if !under(prefixes, path) {
        Admit::NotSelected
    } else {
        Admit::Manage
    }
}

/// The managed description for a descriptor the program just opened with
/// `flags`, or `None` if it is not to be managed.
pub fn manage(shim: &Shim, fd: c_int, flags: c_int, inside: &Inside) -> Option<Arc<Desc>> {
    // The same rules as `admit`, cheapest first: no system call for a
    // flag, no path lookup for a pipe or socket.
    if flags & PASS_FLAGS != 0 || PASS_ALL.load(Ordering::Acquire) {
        return None;
    }
    let st = fstat(fd)?;
    if !is_regular(st.st_mode) {
        return None;
    }
    let path = fd_path(fd)?;
    if admit(flags, st.st_mode, &path, &shim.paths) != Admit::Manage {
        return None;
    }
    let kind = crate::fskind::learn(st.st_dev);
    if kind.pass_through {
        return None;
    }
    let single = kind.single_handle;
    let key = fd_key(fd, &st)?;
    if passed(key) {
        return None;
    }
    let mut backend = shared_backend(key)
        .map_or_else(|| RawBackend::open(fd, flags, single).map(Arc::new), Some)?;
    remember_backend(key, &backend);
    let acc = flags & libc::O_ACCMODE;
    let mode = Mode {
        read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
        write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
        append: flags & libc::O_APPEND != 0,
    };
    let name = String::from_utf8_lossy(&path);
    if mode.append && !backend.ensure_appender() {
        // No descriptor to append through: the kernel keeps this one.
        return None;
    }
    tracing::info!("managing {name} (fd {fd})");
    let engine = shim.engine(inside);
    let mut handle = engine.open(key, &name, backend.clone(), mode);
    if still_released(&backend) {
        // The last description of the file closed it meanwhile.
        drop(handle);
        backend = Arc::new(RawBackend::open(fd, flags, single)?);
        remember_backend(key, &backend);
        if mode.append && !backend.ensure_appender() {
            return None;
        }
        handle = engine.open(key, &name, backend.clone(), mode);
    }
    // What the file looks like now: a later stat that differs in a way
    // this process's writes do not explain means another process changed it.
    handle.observe(attrs_of!(st));
    Some(Arc::new(Desc::new(handle, backend, key, fd <= LAST_STD_FD)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_path_is_under_a_prefix_only_at_a_component_boundary() {
        let p = prefixes(&["/mnt/data", "/srv/x"]);
        assert!(under(&p, b"/mnt/data"));
        assert!(under(&p, b"/mnt/data/a/b"));
        assert!(under(&p, b"/srv/x/f"));
        assert!(!under(&p, b"/mnt/database"));
        assert!(!under(&p, b"/mnt"));
        assert!(!under(&p, b"/srv/xy/f"));
        assert!(under(&prefixes(&["/"]), b"/anything/at/all"));
        assert!(!under(&[], b"/mnt/data/f"));
    }

    #[test]
    fn admission_follows_flags_type_and_path() {
        let p = prefixes(&["/mnt/data"]);
        let file = libc::S_IFREG | 0o644;
        let f = b"/mnt/data/f";
        assert_eq!(admit(libc::O_RDWR, file, f, &p), Admit::Manage);
        assert_eq!(
            admit(libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, file, f, &p),
            Admit::Manage
        );
        for flag in [libc::O_DIRECT, libc::O_DSYNC, libc::O_SYNC, libc::O_PATH] {
            assert_eq!(
                admit(libc::O_RDWR | flag, file, f, &p),
                Admit::Flags,
                "{flag:#x}"
            );
        }
        for kind in [
            libc::S_IFDIR,
            libc::S_IFIFO,
            libc::S_IFSOCK,
            libc::S_IFCHR,
            libc::S_IFLNK,
        ] {
            assert_eq!(
                admit(libc::O_RDONLY, kind | 0o644, f, &p),
                Admit::NotRegular
            );
        }
        assert_eq!(
            admit(libc::O_RDONLY, file, b"/etc/hosts", &p),
            Admit::NotSelected
        );
    }
}
