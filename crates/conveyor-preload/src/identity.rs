//! Stat helpers and file identity: the real `fstat`, a descriptor's path
//! as the kernel has it, and the key that names a file in the engine
//! (device and inode, or device and path where a filesystem makes inode
//! numbers up: see `fskind`).

use crate::real;
use crate::state::Shim;
use conveyor_engine::FileKey;
use libc::c_int;

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
pub fn fd_path(fd: c_int) -> Option<Vec<u8>> {
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

/// True if `fd` is a regular file under `CONVEYOR_PATHS`.
pub fn selected(shim: &Shim, fd: c_int) -> bool {
    fstat(fd).is_some_and(|st| is_regular(st.st_mode))
        && fd_path(fd).is_some_and(|p| shim.selects(&p))
}
