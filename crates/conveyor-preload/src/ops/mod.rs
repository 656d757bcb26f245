//! What each hooked call does with a managed descriptor: translate C
//! arguments into engine calls and results back into C conventions. The
//! hooks above only decide "managed or not" and call in here.

pub mod behind;
pub mod fd;
pub mod io;
pub mod meta;
pub mod open;
pub mod retire;
pub mod stream;
pub mod transfer;

use crate::desc::Desc;
use crate::guard::{self, Inside};
use crate::real::Failure;
use crate::{counts, fdtable, real};
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

/// The managed path of a hook on descriptor `fd`, the one way ops reach
/// the engine for a descriptor: when the shim manages `fd`, counts the call
/// as `name` and runs `op` with its description inside the shim (an
/// exposed description's kernel offset kept in step around it); otherwise,
/// or when the thread is already inside the shim, `pass` (the real call).
fn on_fd<R: Failure>(
    name: &'static str,
    fd: libc::c_int,
    pass: impl FnOnce() -> R,
    op: impl FnOnce(&Desc, &Inside) -> Result<R, Errno>,
) -> R {
    let Some(d) = fdtable::get(fd) else {
        return pass();
    };
    counts::hit(name);
    guard::run(pass, |inside| {
        behind::before_op(&d, inside);
        exposed_before(fd, &d, inside)?;
        let r = crate::backend::lend(fd, || op(&d, inside));
        exposed_after(fd, &d, inside);
        r
    })
}

/// As [`on_fd`] for a call whose managed part only prepares the real one
/// (a flush before a lock is released, say): `op` runs inside the shim if
/// `fd` is managed, and the real call follows either way. An error of `op`
/// is returned instead of making the call.
fn before_fd<R: Failure>(
    name: &'static str,
    fd: libc::c_int,
    call: impl FnOnce() -> R,
    op: impl FnOnce(&Desc, &Inside) -> Result<(), Errno>,
) -> R {
    if let Some(d) = fdtable::get(fd) {
        counts::hit(name);
        let prepare = |inside: &Inside| {
            behind::before_op(&d, inside);
            op(&d, inside)
        };
        if let Err(e) = guard::settle(|inside| crate::backend::lend(fd, || prepare(inside))) {
            real::set_errno(e.0);
            return R::failure();
        }
    }
    call()
}

/// Puts the kernel's offset of `fd` where the engine has it, so the kernel
/// (or another process) can take over the descriptor.
pub(crate) fn sync_kernel_offset(fd: libc::c_int, d: &Desc, inside: &Inside) {
    let _ = exposed_before(fd, d, inside);
    let pos = d.handle(inside).position();
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
///
/// An appending description cannot be kept exact this way (code without
/// hooks appends at the real end of file, before appends the shim still
/// holds), so its file passes through instead.
fn expose(fd: libc::c_int, d: &Desc, inside: &Inside) {
    if d.handle(inside).mode().append {
        let _ = pass_through_file_of(fd, inside);
    } else if !d.exposed() {
        d.expose();
        exposed_after(fd, d, inside);
    }
}

/// Before an operation on an exposed description: if code without hooks
/// moved the kernel offset since the shim last set it, it read or wrote
/// there; its bytes are in the file. Pending data is written first (it
/// lies before, and must not land over theirs later), the engine adopts
/// the kernel offset and forgets what it cached.
fn exposed_before(fd: libc::c_int, d: &Desc, inside: &Inside) -> Result<(), Errno> {
    if !d.exposed() {
        return Ok(());
    }
    // SAFETY: lseek on the program's descriptor; no memory involved.
    let k = unsafe { real::lseek64(fd, 0, libc::SEEK_CUR) };
    if k >= 0 && k as u64 != d.kernel_pos() {
        let h = d.handle(inside);
        h.flush()?;
        h.set_position(k as u64);
        d.set_kernel_pos(k as u64);
        h.invalidate();
    }
    Ok(())
}

/// After an operation on an exposed description: the kernel offset is
/// where the engine has it, for whatever code without hooks runs next.
fn exposed_after(fd: libc::c_int, d: &Desc, inside: &Inside) {
    if d.exposed() {
        let pos = d.handle(inside).position();
        set_kernel_offset(fd, pos);
        d.set_kernel_pos(pos);
    }
}

/// Hands the description under `fd` to the kernel: operations in progress
/// finish, pending data is written, the kernel offset is set, and every
/// later operation through any of its fds is the kernel's (even one that
/// already looked it up in the table). Returns a write error not yet
/// reported through it.
pub(crate) fn hand_over(fd: libc::c_int, d: &Desc, inside: &Inside) -> Result<(), Errno> {
    behind::apply_meta(d, inside);
    let moved = exposed_before(fd, d, inside);
    let r = d.handle(inside).hand_over(|pos| set_kernel_offset(fd, pos));
    // Prefetches already queued would still reach for the program's
    // descriptor, which it may close and reuse for another file once the
    // kernel has the description (git maps a pack it was reading, closes
    // it, and opens the next file under the same number).
    d.handle(inside).quiesce();
    for (other, od) in fdtable::all() {
        if std::ptr::eq(&*od, d) {
            if let Some(x) = fdtable::remove(other) {
                retire::retire(other, x);
            }
        }
    }
    moved.and(r)
}

/// The file behind `fd` passes through for good (for `mmap`, `fdopen`,
/// `O_APPEND`/`O_DIRECT` changes, a standard stream): its data is written
/// (an error not yet reported through `fd` is returned), and every fd of it
/// passes through from now on. Other descriptions of the file go too:
/// their buffered writes and cached reads would not be ordered with what
/// the kernel now does directly (a mapping, stdio, appends).
fn pass_through_file_of(fd: libc::c_int, inside: &Inside) -> Result<(), Errno> {
    let Some(d) = fdtable::get(fd) else {
        return Ok(());
    };
    let res = d.handle(inside).flush();
    pass_through_file(d.key, inside);
    res
}

/// Every file of the process passes through, and no later open is
/// managed (`passthrough::pass_through_everything`).
pub(crate) fn pass_through_process(inside: &Inside) {
    crate::passthrough::pass_through_everything();
    let mut done: Vec<FileKey> = Vec::new();
    for (_, d) in fdtable::all() {
        if !done.contains(&d.key) {
            done.push(d.key);
            pass_through_file(d.key, inside);
        }
    }
}

/// File `key` passes through: every managed fd of it handed to the
/// kernel, and later opens of it not managed (`passthrough::pass_through`).
fn pass_through_file(key: FileKey, inside: &Inside) {
    crate::passthrough::pass_through(key);
    for (fd, d) in fdtable::all() {
        if d.key == key {
            let _ = hand_over(fd, &d, inside);
        }
    }
}
