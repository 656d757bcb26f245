//! What each hooked call does with a managed descriptor: translate C
//! arguments into engine calls and results back into C conventions. The
//! hooks above only decide "managed or not" and call in here.

pub mod fd;
pub mod io;
pub mod meta;
pub mod open;
pub mod process;
pub mod transfer;

use crate::desc::Desc;
use crate::{fdtable, real};
use conveyor_engine::Errno;
use std::sync::Arc;

/// A C buffer as a slice (empty for a zero length, whatever the pointer).
///
/// # Safety
/// `p` must be valid for `n` bytes of reads for the call's duration.
unsafe fn slice<'a>(p: *const libc::c_void, n: usize) -> &'a [u8] {
    if n == 0 || p.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(p.cast(), n) }
    }
}

/// A C buffer as a mutable slice.
///
/// # Safety
/// `p` must be valid for `n` bytes of writes for the call's duration.
unsafe fn slice_mut<'a>(p: *mut libc::c_void, n: usize) -> &'a mut [u8] {
    if n == 0 || p.is_null() {
        &mut []
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(p.cast(), n) }
    }
}

/// A C `off_t` as an engine offset (`EINVAL` if negative).
fn offset(o: i64) -> Result<u64, Errno> {
    u64::try_from(o).map_err(|_| Errno::EINVAL)
}

/// Puts the kernel's offset of `fd` where the engine has it, so the kernel
/// (or another process) can take over the descriptor.
fn sync_kernel_offset(fd: libc::c_int, d: &Desc) {
    let pos = i64::try_from(d.handle.position()).unwrap_or(i64::MAX);
    // SAFETY: lseek on the program's descriptor; no memory involved.
    unsafe { real::lseek64(fd, pos, libc::SEEK_SET) };
}

/// Hands the description behind `fd` back to the kernel for good: its data
/// is written, the kernel offset set, and every fd sharing it passes
/// through from now on (for `mmap`, `fdopen`, `O_APPEND`/`O_DIRECT` changes).
fn demote(fd: libc::c_int) -> Result<(), Errno> {
    let Some(d) = fdtable::get(fd) else {
        return Ok(());
    };
    let res = d.handle.flush();
    sync_kernel_offset(fd, &d);
    for (other, od) in fdtable::all() {
        if Arc::ptr_eq(&od, &d) {
            fdtable::remove(other);
        }
    }
    res
}
