//! The real libc functions, resolved with `dlsym(RTLD_NEXT)` in the library
//! constructor (and on first use, for hooks that run before it). A symbol
//! that cannot be found makes its wrapper fail with `ENOSYS` instead of
//! aborting the program.
//!
//! Variadic C functions (`open`, `openat`, `fcntl`) are declared with their
//! optional argument as a fixed one: on the x86_64 and aarch64 Linux ABIs a
//! variadic integer or pointer argument travels exactly like a fixed one.

use libc::{
    c_char, c_int, c_uint, c_ulong, c_void, iovec, mode_t, off64_t, off_t, pid_t, size_t, ssize_t,
    FILE,
};
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("conveyor's shim supports Linux on x86_64 and aarch64 (glibc)");

/// Slot value for a symbol that was looked up and not found.
const MISSING: usize = usize::MAX;

/// What a failed call returns (the errno is set separately).
pub trait Failure {
    /// The failure value of this return type.
    fn failure() -> Self;
}
impl Failure for c_int {
    fn failure() -> c_int {
        -1
    }
}
impl Failure for isize {
    fn failure() -> isize {
        -1
    }
}
impl Failure for i64 {
    fn failure() -> i64 {
        -1
    }
}
impl Failure for () {
    fn failure() {}
}
impl<T> Failure for *mut T {
    fn failure() -> *mut T {
        std::ptr::null_mut()
    }
}

/// Sets the calling thread's errno.
pub fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e }
}

/// The calling thread's errno.
pub fn errno() -> c_int {
    // SAFETY: as in `set_errno`.
    unsafe { *libc::__errno_location() }
}

fn resolve(slot: &AtomicUsize, name: &'static [u8]) -> usize {
    let p = slot.load(Ordering::Acquire);
    if p != 0 {
        return p;
    }
    // SAFETY: `name` is a NUL-terminated literal; dlsym and dlvsym only read it.
    let mut f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if f.is_null() {
        // Symbols kept only for old binaries (`__fxstat`, ...) have no
        // default version, so plain dlsym does not see them.
        // SAFETY: as above; the version string is a NUL-terminated literal.
        f = unsafe {
            libc::dlvsym(
                libc::RTLD_NEXT,
                name.as_ptr().cast(),
                c"GLIBC_2.2.5".as_ptr(),
            )
        };
    }
    let v = if f.is_null() { MISSING } else { f as usize };
    slot.store(v, Ordering::Release);
    v
}

macro_rules! reals {
    ($( $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty ; )*) => {
        #[allow(non_upper_case_globals)]
        mod slots {
            use std::sync::atomic::AtomicUsize;
            $( pub static $name: AtomicUsize = AtomicUsize::new(0); )*
        }
        $(
            /// The real function of this name.
            ///
            /// # Safety
            /// The caller passes what the C function requires.
            #[allow(clippy::missing_safety_doc, non_snake_case)]
            pub unsafe fn $name($($a: $t),*) -> $r {
                let p = resolve(&slots::$name, concat!(stringify!($name), "\0").as_bytes());
                if p == MISSING {
                    set_errno(libc::ENOSYS);
                    return <$r as Failure>::failure();
                }
                // SAFETY: `p` is the address dlsym gave for this symbol, whose C
                // type is the one spelled here.
                let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(p) };
                // SAFETY: the caller's obligations are the C function's.
                unsafe { f($($a),*) }
            }
        )*
        /// Resolves every symbol now (from the constructor), so that no
        /// lookup happens later inside a signal handler or a vfork child.
        pub fn resolve_all() {
            $( resolve(&slots::$name, concat!(stringify!($name), "\0").as_bytes()); )*
        }
    };
}

reals! {
    open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int;
    open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int;
    openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int;
    openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int;
    __open_2(path: *const c_char, flags: c_int) -> c_int;
    __open64_2(path: *const c_char, flags: c_int) -> c_int;
    __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    creat(path: *const c_char, mode: mode_t) -> c_int;
    creat64(path: *const c_char, mode: mode_t) -> c_int;
    read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t;
    __read_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t) -> ssize_t;
    pread(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t;
    pread64(fd: c_int, buf: *mut c_void, n: size_t, off: off64_t) -> ssize_t;
    __pread_chk(fd: c_int, buf: *mut c_void, n: size_t, off: off_t, buflen: size_t) -> ssize_t;
    __pread64_chk(fd: c_int, buf: *mut c_void, n: size_t, off: off64_t, buflen: size_t) -> ssize_t;
    readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t;
    preadv(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t;
    preadv64(fd: c_int, iov: *const iovec, cnt: c_int, off: off64_t) -> ssize_t;
    preadv2(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t, flags: c_int) -> ssize_t;
    preadv64v2(fd: c_int, iov: *const iovec, cnt: c_int, off: off64_t, flags: c_int) -> ssize_t;
    write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t;
    pwrite(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t;
    pwrite64(fd: c_int, buf: *const c_void, n: size_t, off: off64_t) -> ssize_t;
    writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t;
    pwritev(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t;
    pwritev64(fd: c_int, iov: *const iovec, cnt: c_int, off: off64_t) -> ssize_t;
    pwritev2(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t, flags: c_int) -> ssize_t;
    pwritev64v2(fd: c_int, iov: *const iovec, cnt: c_int, off: off64_t, flags: c_int) -> ssize_t;
    lseek(fd: c_int, off: off_t, whence: c_int) -> off_t;
    lseek64(fd: c_int, off: off64_t, whence: c_int) -> off64_t;
    close(fd: c_int) -> c_int;
    close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    closefrom(low: c_int) -> ();
    fsync(fd: c_int) -> c_int;
    fdatasync(fd: c_int) -> c_int;
    sync_file_range(fd: c_int, off: off64_t, n: off64_t, flags: c_uint) -> c_int;
    syncfs(fd: c_int) -> c_int;
    sync() -> ();
    fstat(fd: c_int, buf: *mut libc::stat) -> c_int;
    fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int;
    __fxstat(ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int;
    __fxstat64(ver: c_int, fd: c_int, buf: *mut libc::stat64) -> c_int;
    fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int;
    fstatat64(dirfd: c_int, path: *const c_char, buf: *mut libc::stat64, flags: c_int) -> c_int;
    statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut libc::statx) -> c_int;
    stat(path: *const c_char, buf: *mut libc::stat) -> c_int;
    stat64(path: *const c_char, buf: *mut libc::stat64) -> c_int;
    lstat(path: *const c_char, buf: *mut libc::stat) -> c_int;
    lstat64(path: *const c_char, buf: *mut libc::stat64) -> c_int;
    __xstat(ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int;
    __xstat64(ver: c_int, path: *const c_char, buf: *mut libc::stat64) -> c_int;
    __lxstat(ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int;
    __lxstat64(ver: c_int, path: *const c_char, buf: *mut libc::stat64) -> c_int;
    ftruncate(fd: c_int, len: off_t) -> c_int;
    ftruncate64(fd: c_int, len: off64_t) -> c_int;
    truncate(path: *const c_char, len: off_t) -> c_int;
    truncate64(path: *const c_char, len: off64_t) -> c_int;
    fallocate(fd: c_int, mode: c_int, off: off_t, len: off_t) -> c_int;
    fallocate64(fd: c_int, mode: c_int, off: off64_t, len: off64_t) -> c_int;
    posix_fallocate(fd: c_int, off: off_t, len: off_t) -> c_int;
    posix_fallocate64(fd: c_int, off: off64_t, len: off64_t) -> c_int;
    dup(fd: c_int) -> c_int;
    dup2(old: c_int, new: c_int) -> c_int;
    dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    flock(fd: c_int, op: c_int) -> c_int;
    lockf(fd: c_int, cmd: c_int, len: off_t) -> c_int;
    lockf64(fd: c_int, cmd: c_int, len: off64_t) -> c_int;
    copy_file_range(fd_in: c_int, off_in: *mut off64_t, fd_out: c_int, off_out: *mut off64_t, len: size_t, flags: c_uint) -> ssize_t;
    sendfile(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t;
    sendfile64(out: c_int, inp: c_int, off: *mut off64_t, n: size_t) -> ssize_t;
    splice(fd_in: c_int, off_in: *mut off64_t, fd_out: c_int, off_out: *mut off64_t, len: size_t, flags: c_uint) -> ssize_t;
    mmap(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void;
    mmap64(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off64_t) -> *mut c_void;
    fdopen(fd: c_int, mode: *const c_char) -> *mut FILE;
    mkstemp(template: *mut c_char) -> c_int;
    mkstemp64(template: *mut c_char) -> c_int;
    mkostemp(template: *mut c_char, flags: c_int) -> c_int;
    mkostemp64(template: *mut c_char, flags: c_int) -> c_int;
    mkstemps(template: *mut c_char, suffix: c_int) -> c_int;
    mkstemps64(template: *mut c_char, suffix: c_int) -> c_int;
    mkostemps(template: *mut c_char, suffix: c_int, flags: c_int) -> c_int;
    mkostemps64(template: *mut c_char, suffix: c_int, flags: c_int) -> c_int;
    futimens(fd: c_int, times: *const libc::timespec) -> c_int;
    futimes(fd: c_int, tv: *const libc::timeval) -> c_int;
    fchmod(fd: c_int, mode: mode_t) -> c_int;
    fchown(fd: c_int, uid: libc::uid_t, gid: libc::gid_t) -> c_int;
    fsetxattr(fd: c_int, name: *const c_char, value: *const c_void, size: size_t, flags: c_int) -> c_int;
    utimes(path: *const c_char, tv: *const libc::timeval) -> c_int;
    lutimes(path: *const c_char, tv: *const libc::timeval) -> c_int;
    utime(path: *const c_char, times: *const libc::utimbuf) -> c_int;
    chmod(path: *const c_char, mode: mode_t) -> c_int;
    chown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int;
    lchown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int;
    setxattr(path: *const c_char, name: *const c_char, value: *const c_void, size: size_t, flags: c_int) -> c_int;
    lsetxattr(path: *const c_char, name: *const c_char, value: *const c_void, size: size_t, flags: c_int) -> c_int;
    utimensat(dirfd: c_int, path: *const c_char, times: *const libc::timespec, flags: c_int) -> c_int;
    fchmodat(dirfd: c_int, path: *const c_char, mode: mode_t, flags: c_int) -> c_int;
    fchownat(dirfd: c_int, path: *const c_char, uid: libc::uid_t, gid: libc::gid_t, flags: c_int) -> c_int;
    futimesat(dirfd: c_int, path: *const c_char, tv: *const libc::timeval) -> c_int;
    fopen(path: *const c_char, mode: *const c_char) -> *mut FILE;
    fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE;
    freopen(path: *const c_char, mode: *const c_char, stream: *mut FILE) -> *mut FILE;
    freopen64(path: *const c_char, mode: *const c_char, stream: *mut FILE) -> *mut FILE;
    vdprintf(fd: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int;
    __vdprintf_chk(fd: c_int, flag: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int;
    vasprintf(out: *mut *mut c_char, fmt: *const c_char, ap: *mut c_void) -> c_int;
    __vasprintf_chk(out: *mut *mut c_char, flag: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int;
    sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t;
    sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, n: c_uint, flags: c_int) -> c_int;
    fork() -> pid_t;
    execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    execv(path: *const c_char, argv: *const *const c_char) -> c_int;
    execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    posix_spawn(pid: *mut pid_t, path: *const c_char, fa: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
    posix_spawnp(pid: *mut pid_t, file: *const c_char, fa: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
    system(cmd: *const c_char) -> c_int;
    posix_spawn_file_actions_adddup2(fa: *mut libc::posix_spawn_file_actions_t, fd: c_int, newfd: c_int) -> c_int;
    popen(cmd: *const c_char, mode: *const c_char) -> *mut FILE;
    sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
    _exit(status: c_int) -> ();
    _Exit(status: c_int) -> ();
}
