//! read, write and their positioned and vectored forms, lseek, and the
//! formatted writes of `dprintf`.

use super::{offset, on_fd, slice, slice_mut};
use crate::real;
use conveyor_engine::Errno;
use libc::{c_int, c_void, iovec, off64_t, size_t, ssize_t};
use std::io::SeekFrom;

/// `read` and `__read_chk` (`off` `None`: at the file offset, which
/// advances), and the `pread` family (`off` given) on a managed fd.
///
/// # Safety
/// As for `pread(2)`.
pub unsafe fn read(
    name: &'static str,
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    off: Option<off64_t>,
) -> ssize_t {
    let pass = || match off {
        // SAFETY: the caller's arguments, unchanged.
        Some(o) => unsafe { real::pread64(fd, buf, n, o) },
        // SAFETY: as above.
        None => unsafe { real::read(fd, buf, n) },
    };
    on_fd(name, fd, pass, |d, i| {
        // SAFETY: `buf` is writable for `n` bytes (the caller's contract).
        let buf = unsafe { slice_mut(buf, n) };
        let h = d.handle(i);
        match off {
            Some(o) => h.pread(buf, offset(o)?),
            None => h.read(buf),
        }
        .map(|k| k as ssize_t)
    })
}

/// `write` (`off` `None`: at the file offset, or the end when appending)
/// and the `pwrite` family (`off` given) on a managed fd.
///
/// # Safety
/// As for `pwrite(2)`.
pub unsafe fn write(
    name: &'static str,
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    off: Option<off64_t>,
) -> ssize_t {
    let pass = || match off {
        // SAFETY: the caller's arguments, unchanged.
        Some(o) => unsafe { real::pwrite64(fd, buf, n, o) },
        // SAFETY: as above.
        None => unsafe { real::write(fd, buf, n) },
    };
    on_fd(name, fd, pass, |d, i| {
        // SAFETY: `buf` is readable for `n` bytes.
        let buf = unsafe { slice(buf, n) };
        let h = d.handle(i);
        match off {
            Some(o) => h.pwrite(buf, offset(o)?),
            None => h.write(buf),
        }
        .map(|k| k as ssize_t)
    })
}

/// The iovec array as a slice.
///
/// # Safety
/// `iov` must point to `cnt` iovecs.
unsafe fn iovs<'a>(iov: *const iovec, cnt: c_int) -> Result<&'a [iovec], Errno> {
    if !(0..=libc::UIO_MAXIOV).contains(&cnt) {
        return Err(Errno::EINVAL);
    }
    if cnt == 0 || iov.is_null() {
        return Ok(&[]);
    }
    // SAFETY: guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts(iov, cnt as usize) })
}

/// `readv`, `preadv`, `preadv2` (`off == -1`: at the offset) on a managed fd.
///
/// # Safety
/// As for `preadv2(2)`.
pub unsafe fn readv(
    name: &'static str,
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: Option<off64_t>,
) -> ssize_t {
    let pass = || match off {
        // SAFETY: the caller's arguments, unchanged.
        Some(o) => unsafe { real::preadv64(fd, iov, cnt, o) },
        // SAFETY: as above.
        None => unsafe { real::readv(fd, iov, cnt) },
    };
    on_fd(name, fd, pass, |d, i| {
        let h = d.handle(i);
        // SAFETY: `iov` points to `cnt` iovecs.
        let v = unsafe { iovs(iov, cnt) }?;
        let mut total = 0usize;
        let start = off.map(offset).transpose()?;
        for e in v {
            // SAFETY: each iovec describes a writable buffer.
            let buf = unsafe { slice_mut(e.iov_base, e.iov_len) };
            let r = match start {
                Some(s) => h.pread(buf, s + total as u64),
                None => h.read(buf),
            };
            match r {
                Ok(k) => {
                    total += k;
                    if k < e.iov_len {
                        break;
                    }
                }
                Err(_) if total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total as ssize_t)
    })
}

/// `writev`, `pwritev`, `pwritev2` on a managed fd. The pieces are joined
/// first so the write is one operation on the offset, as the kernel's is.
///
/// # Safety
/// As for `pwritev2(2)`.
pub unsafe fn writev(
    name: &'static str,
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: Option<off64_t>,
    flags: c_int,
) -> ssize_t {
    let pass = || match (off, flags) {
        // SAFETY: the caller's arguments, unchanged.
        (Some(o), 0) => unsafe { real::pwritev64(fd, iov, cnt, o) },
        // SAFETY: as above.
        (None, 0) => unsafe { real::writev(fd, iov, cnt) },
        // SAFETY: as above.
        (o, f) => unsafe { real::pwritev64v2(fd, iov, cnt, o.unwrap_or(-1), f) },
    };
    if flags & libc::RWF_APPEND != 0 {
        // An append the description was not opened for: the kernel does it,
        // after the pending data, and the engine forgets what it changes.
        return on_fd(name, fd, pass, |d, i| {
            let h = d.handle(i);
            h.flush()?;
            let r = pass();
            if r < 0 {
                return Err(Errno(real::errno()));
            }
            if off.is_none() {
                // At the offset (-1), the kernel moved its offset past the
                // data: the description's offset is now that one.
                // SAFETY: lseek on the program's descriptor; no memory involved.
                let pos = unsafe { real::lseek64(fd, 0, libc::SEEK_CUR) };
                if pos >= 0 {
                    h.set_position(pos as u64);
                }
            }
            h.invalidate();
            Ok(r)
        });
    }
    on_fd(name, fd, pass, |d, i| {
        let h = d.handle(i);
        // SAFETY: `iov` points to `cnt` iovecs.
        let v = unsafe { iovs(iov, cnt) }?;
        let joined: Vec<u8>;
        let data: &[u8] = if v.len() == 1 {
            // SAFETY: the iovec describes a readable buffer.
            unsafe { slice(v[0].iov_base, v[0].iov_len) }
        } else {
            let mut j = Vec::with_capacity(v.iter().map(|e| e.iov_len).sum());
            for e in v {
                // SAFETY: as above.
                j.extend_from_slice(unsafe { slice(e.iov_base, e.iov_len) });
            }
            joined = j;
            &joined
        };
        let n = match off {
            Some(o) => h.pwrite(data, offset(o)?)?,
            None => h.write(data)?,
        };
        if flags & (libc::RWF_DSYNC | libc::RWF_SYNC) != 0 {
            h.sync(flags & libc::RWF_SYNC == 0)?;
        }
        Ok(n as ssize_t)
    })
}

/// `lseek` on a managed fd.
///
/// # Safety
/// As for `lseek(2)`.
pub unsafe fn lseek(name: &'static str, fd: c_int, off: off64_t, whence: c_int) -> off64_t {
    // SAFETY: the caller's arguments, unchanged.
    let pass = || unsafe { real::lseek64(fd, off, whence) };
    on_fd(name, fd, pass, |d, i| {
        let h = d.handle(i);
        let to = match whence {
            libc::SEEK_SET => SeekFrom::Start(offset(off)?),
            libc::SEEK_CUR => SeekFrom::Current(off),
            libc::SEEK_END => {
                // What storage says now: another process may have cut or
                // rewritten the file (a follower seeking to the end).
                if let Some(st) = crate::identity::fstat(d.backend.fd()) {
                    h.observe(crate::identity::attrs_of!(st));
                }
                SeekFrom::End(off)
            }
            libc::SEEK_DATA | libc::SEEK_HOLE => {
                // Answered by storage, after the pending data is there.
                h.flush()?;
                // SAFETY: lseek on our private descriptor.
                let r = unsafe { real::lseek64(d.backend.fd(), off, whence) };
                if r < 0 {
                    return Err(Errno(real::errno()));
                }
                h.set_position(r as u64);
                return Ok(r);
            }
            _ => return Err(Errno::EINVAL),
        };
        h.seek(to).map(|p| p as off64_t)
    })
}

/// Writes `n` bytes of formatted `text` (from `vasprintf`, freed here) to
/// managed `fd`, all of them as `dprintf` does; returns `n` or -1.
///
/// # Safety
/// `text` is null or a `malloc`ed buffer of at least `n` bytes.
pub unsafe fn write_all_formatted(
    name: &'static str,
    fd: c_int,
    text: *mut libc::c_char,
    n: c_int,
) -> c_int {
    if n < 0 || text.is_null() {
        return -1;
    }
    let mut done = 0usize;
    let mut r = n;
    while done < n as usize {
        // SAFETY: `text` holds `n` bytes.
        let k = unsafe { write(name, fd, text.add(done).cast(), n as usize - done, None) };
        if k < 0 {
            if real::errno() == libc::EINTR {
                continue;
            }
            r = -1;
            break;
        }
        done += k as usize;
    }
    // SAFETY: `text` came from glibc's allocator.
    unsafe { libc::free(text.cast()) };
    r
}
