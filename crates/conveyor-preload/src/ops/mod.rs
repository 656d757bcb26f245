//! What each hooked call does with a managed descriptor: translate C
//! arguments into engine calls and results back into C conventions. The
//! hooks above only decide "managed or not" and call in here.

pub mod fd;
pub mod held;
pub mod io;
pub mod meta;
pub mod open;
pub mod process;
pub mod retire;
pub mod signals;
pub mod transfer;

use crate::desc::Desc;
use crate::{fdtable, real};
use conveyor_engine::{Errno, FileKey};

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
    let _ = exposed_before(fd, d);
    let pos = d.handle.position();
    set_kernel_offset(fd, pos);
    d.set_kernel_pos(pos);
}

fn set_kernel_offset(fd: libc::c_int, pos: u64) {
    let pos = i64::try_from(pos).unwrap_or(i64::MAX);
    // SAFETY: lseek on the program's descriptor; no memory involved.
    unsafe { real::lseek64(fd, pos, libc::SEEK_SET) };
}

/// Makes description `d` (under `fd`) safe for code without hooks: from
/// now on the kernel offset follows the engine's after every operation,
/// and what such code did at the kernel offset is taken over before the
/// next one (`exposed_before`).
fn expose(fd: libc::c_int, d: &Desc) -> Result<(), Errno> {
    if !d.exposed() {
        d.expose();
        exposed_after(fd, d);
    }
    Ok(())
}

/// Before an operation on an exposed description: if code without hooks
/// moved the kernel offset since the shim last set it, it read or wrote
/// there; its bytes are in the file. Pending data is written first (it
/// lies before, and must not land over theirs later), the engine adopts
/// the kernel offset and forgets what it cached.
fn exposed_before(fd: libc::c_int, d: &Desc) -> Result<(), Errno> {
    if !d.exposed() {
        return Ok(());
    }
    // SAFETY: lseek on the program's descriptor; no memory involved.
    let k = unsafe { real::lseek64(fd, 0, libc::SEEK_CUR) };
    if k >= 0 && k as u64 != d.kernel_pos() {
        d.handle.flush()?;
        d.handle.set_position(k as u64);
        d.set_kernel_pos(k as u64);
        d.handle.invalidate();
    }
    Ok(())
}

/// After an operation on an exposed description: the kernel offset is
/// where the engine has it, for whatever code without hooks runs next.
fn exposed_after(fd: libc::c_int, d: &Desc) {
    if d.exposed() {
        let pos = d.handle.position();
        set_kernel_offset(fd, pos);
        d.set_kernel_pos(pos);
    }
}

/// Runs `op` on managed description `d` under `fd`, keeping an exposed
/// description's kernel offset in step (see `exposed_before`).
fn on_desc<T>(
    fd: libc::c_int,
    d: &Desc,
    op: impl FnOnce() -> Result<T, Errno>,
) -> Result<T, Errno> {
    exposed_before(fd, d)?;
    let r = op();
    exposed_after(fd, d);
    r
}

/// Gives the description under `fd` back to the kernel: operations in
/// progress finish, pending data is written, the kernel offset is set, and
/// every later operation through any of its fds is the kernel's (even one
/// that already looked it up in the table). Returns a write error not yet
/// reported through it.
fn hand_over(fd: libc::c_int, d: &Desc) -> Result<(), Errno> {
    let r = exposed_before(fd, d).and(d.handle.hand_over(|pos| set_kernel_offset(fd, pos)));
    for (other, od) in fdtable::all() {
        if std::ptr::eq(&*od, d) {
            if let Some(x) = fdtable::remove(other) {
                retire::retire(other, x);
            }
        }
    }
    r
}

/// Hands the file behind `fd` back to the kernel for good (for `mmap`,
/// `fdopen`, `O_APPEND`/`O_DIRECT` changes): its data is written (an error
/// not yet reported through `fd` is returned), and every fd of it passes
/// through from now on. Other descriptions of the file go too: their
/// buffered writes and cached reads would not be ordered with what the
/// kernel now does directly (a mapping, stdio, appends).
fn demote(fd: libc::c_int) -> Result<(), Errno> {
    let Some(d) = fdtable::get(fd) else {
        return Ok(());
    };
    let res = d.handle.flush();
    demote_file(d.key);
    res
}

/// Every managed fd of every file handed to the kernel, and no later open
/// managed (`policy::pass_everything`).
fn demote_all() {
    crate::policy::pass_everything();
    let mut done: Vec<FileKey> = Vec::new();
    for (_, d) in fdtable::all() {
        if !done.contains(&d.key) {
            done.push(d.key);
            demote_file(d.key);
        }
    }
}

/// Every managed fd of file `key`: pending data written, kernel offset set,
/// passed through from now on, like later opens of it (`policy::pass_file`).
fn demote_file(key: FileKey) {
    crate::policy::pass_file(key);
    for (fd, d) in fdtable::all() {
        if d.key == key {
            let _ = hand_over(fd, &d);
        }
    }
}
