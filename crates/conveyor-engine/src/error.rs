//! The engine's error type: a plain errno, because every caller (the shim's
//! hooks above all) must hand the program exactly the errno it would see.

use std::fmt;

/// An `errno` value. The engine reports every failure this way so the shim
/// can return it to the program unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Result type of every engine and backend operation.
pub type Result<T> = std::result::Result<T, Errno>;

impl Errno {
    /// Bad file descriptor: the handle's access mode forbids the operation.
    pub const EBADF: Errno = Errno(libc::EBADF);
    /// Input/output error.
    pub const EIO: Errno = Errno(libc::EIO);
    /// Interrupted system call; the engine retries it.
    pub const EINTR: Errno = Errno(libc::EINTR);
    /// Invalid argument (negative offset, bad whence).
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    /// Operation not supported by this backend.
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    /// Not an errno: the handle was handed over (`Handle::hand_over`) and
    /// the caller must do the operation itself.
    pub const HANDED_OVER: Errno = Errno(-1);
    /// A value does not fit (offset overflow).
    pub const EOVERFLOW: Errno = Errno(libc::EOVERFLOW);

    /// The errno of an `io::Error`, `EIO` when it carries none.
    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({}: {})",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}
