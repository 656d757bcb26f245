//! The open family: decide whether the new descriptor is managed.

use super::meta::{after_path_change, before_path_change};
use crate::backend::RawBackend;
use crate::desc::Desc;
use crate::guard::Inside;
use crate::identity::{attrs_of, fd_key, fd_path, fstat, is_regular};
use crate::settings::Mode;
use crate::state::Shim;
use crate::{counts, fdtable, guard, passthrough, policy, real, registry, state};
use conveyor_engine::FileKey;
use libc::{c_char, c_int};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What [`before`] hands to [`after`] across the real open.
pub struct Opening {
    // The file an `O_TRUNC` open truncates, its pending data written first.
    truncated: Option<FileKey>,
    // When the real open started: how long storage takes to answer an
    // open is the measured half of the fast-storage decision (`fskind`).
    started: Instant,
}

/// Before an open: an `O_TRUNC` open of a file with pending data here
/// waits for that data, so the truncation lands after it; the real open
/// is timed from here.
///
/// # Safety
/// `path` is a NUL-terminated string or null, as the caller's open needs.
pub unsafe fn before(dirfd: c_int, path: *const c_char, flags: c_int) -> Opening {
    // SAFETY: the caller's contract.
    let truncated = unsafe { truncating(dirfd, path, flags) };
    Opening {
        truncated,
        started: Instant::now(),
    }
}

/// Before a path is truncated (`flags` has `O_TRUNC`): the file, if this
/// process has pending data for it, which is written first.
///
/// # Safety
/// `path` is a NUL-terminated string or null.
pub unsafe fn truncating(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<FileKey> {
    if flags & libc::O_TRUNC == 0 || path.is_null() {
        return None;
    }
    let shim = state::get()?;
    if !guard::within(|i| shim.engine(i).has_files()).unwrap_or(false) {
        return None;
    }
    // SAFETY: `st` is a plain C struct the call fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    let ok = unsafe { real::fstatat64(dirfd, path, &mut st, 0) } == 0;
    // SAFETY: as above.
    unsafe { before_path_change(dirfd, path, ok.then_some(st)) }
}

/// After an open returned `fd`: forget whatever stale entry had that
/// number, and manage the new descriptor if policy says so.
pub fn after(name: &'static str, fd: c_int, flags: c_int, opening: Opening) -> c_int {
    let took = opening.started.elapsed();
    if fd < 0 {
        return fd;
    }
    fdtable::remove(fd);
    after_path_change(opening.truncated);
    let Some(shim) = state::get() else { return fd };
    if guard::inside() {
        return fd;
    }
    guard::quietly(|i| {
        if let Some(d) = manage(shim, fd, flags, took, i) {
            counts::hit(name);
            fdtable::insert(fd, d);
            // From now on a fatal signal has data to write first, and
            // `conveyor top` can see this process.
            crate::process::fatal::ensure_thread();
            crate::live::ensure_started();
        } else if let Some(key) = passed_open(shim, fd, flags) {
            // Served by the kernel directly: so is every other
            // descriptor of the file (flushed first).
            super::pass_through_file(key, i);
        }
        super::retire::reap(i);
    });
    fd
}

/// The file a program just opened with flags that keep it from being
/// managed (`O_DIRECT`, `O_DSYNC`, `O_SYNC`, or `O_APPEND` onto a standard
/// stream, where stdio would append beside the shim: see `ops::expose`),
/// if it is a selected regular file: it then passes through everywhere in
/// this process. So does a file opened for reading where only write-only
/// descriptions are managed (rclone with its write cache: `fskind`).
fn passed_open(shim: &Shim, fd: c_int, flags: c_int) -> Option<FileKey> {
    let appending_std = fd <= policy::LAST_STD_FD && flags & libc::O_APPEND != 0;
    let forced = flags & (libc::O_DIRECT | libc::O_DSYNC) != 0 || appending_std;
    // Checked only in a process that met such a filesystem: until then an
    // unmanaged open costs no extra system call.
    let reads = flags & libc::O_ACCMODE != libc::O_WRONLY && crate::fskind::any_readers_pass();
    if !forced && !reads || flags & libc::O_PATH != 0 {
        return None;
    }
    let st = fstat(fd).filter(|st| is_regular(st.st_mode))?;
    let kind = crate::fskind::learn(st.st_dev, None).kind;
    if !forced && !kind.readers_pass {
        return None;
    }
    if !shim.selects(&fd_path(fd)?) {
        return None;
    }
    fd_key(fd, &st)
}

/// The managed description for a descriptor the program just opened with
/// `flags`, or `None` if it is not to be managed.
fn manage(
    shim: &Shim,
    fd: c_int,
    flags: c_int,
    took: Duration,
    inside: &Inside,
) -> Option<Arc<Desc>> {
    // The same rules as `admit`, cheapest first: no system call for a
    // flag, no path lookup for a pipe or socket.
    if flags & policy::PASS_FLAGS != 0 || passthrough::everything() {
        return None;
    }
    if fd <= policy::LAST_STD_FD && flags & libc::O_APPEND != 0 {
        return None;
    }
    let st = fstat(fd)?;
    if !is_regular(st.st_mode) {
        return None;
    }
    if shim.mode == Mode::Auto && crate::fskind::known_fast(st.st_dev) {
        // Decided already for this device: no path lookup either.
        return None;
    }
    let path = fd_path(fd)?;
    if policy::admit(flags, st.st_mode, &path, &shim.paths) != policy::Admit::Manage {
        return None;
    }
    let dev = crate::fskind::learn(st.st_dev, Some(took));
    let kind = dev.kind;
    if kind.pass_through || kind.readers_pass && flags & libc::O_ACCMODE != libc::O_WRONLY {
        return None;
    }
    if dev.fast && shim.mode == Mode::Auto {
        // The kernel serves this storage at memory speed: the shim stays
        // out of the way (and, the decision being made once per device
        // before any file of it is managed, no file of it is managed).
        if dev.undecided {
            // Should the device be found slow later, this file stays with
            // the kernel: its descriptors must agree on who serves it.
            if let Some(key) = fd_key(fd, &st) {
                passthrough::pass_through(key);
            }
        }
        return None;
    }
    let single = kind.single_handle;
    // Relaxed close: not where a close commits the file (s3fs, rclone),
    // nor on a standard stream.
    let behind = crate::desc::Behind {
        close: shim.close == crate::settings::Close::Relaxed && !single && fd > policy::LAST_STD_FD,
        meta: flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL,
    };
    let key = fd_key(fd, &st)?;
    if passthrough::passed(key) {
        return None;
    }
    let acc = flags & libc::O_ACCMODE;
    let mode = conveyor_engine::Mode {
        read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
        write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
        append: flags & libc::O_APPEND != 0,
    };
    let name = String::from_utf8_lossy(&path);
    let engine = shim.engine(inside);
    // The file's only description: the program's own descriptor (a
    // duplicate of it once a worker needs one) costs the filesystem no
    // open, no release and no flush (on s3fs, no upload more).
    // Descriptors 0-2 are reachable by code no hook sees (glibc's `daemon`
    // replaces them with its own `dup2`): a duplicate keeps their
    // description, and its pending data, whatever happens to the number.
    let own = if fd <= policy::LAST_STD_FD {
        RawBackend::dup_of(fd, flags)
    } else {
        RawBackend::lent(fd, flags, &st)
    };
    if let Some(own) = own.map(Arc::new) {
        if let Some(handle) = engine.open_alone(key, &name, own.clone(), mode) {
            tracing::info!("managing {name} (fd {fd})");
            handle.observe(attrs_of!(st));
            return Some(Arc::new(
                Desc::new(handle, own, key, fd <= policy::LAST_STD_FD).with_behind(behind),
            ));
        }
    }
    let Some(mut backend) = registry::shared_backend(key)
        .map_or_else(|| RawBackend::open(fd, flags, single).map(Arc::new), Some)
    else {
        // No descriptor to work through (none free at a high number): the
        // kernel serves this one, so the file passes through, its pending
        // data written first, rather than be read stale here.
        if engine.pending_end(key).is_some() {
            super::pass_through_file(key, inside);
        }
        return None;
    };
    registry::remember_backend(key, &backend);
    if mode.append && !backend.ensure_appender() {
        // No descriptor to append through: the kernel keeps this one.
        return None;
    }
    tracing::info!("managing {name} (fd {fd})");
    // Another description is open: its backend may be a duplicate of its
    // own descriptor, which closes with it, so a shared one takes over (a
    // duplicate, where no reopen could be had, only adds what it can do).
    let open = |b: Arc<RawBackend>| {
        if single || !b.is_shareable() {
            engine.open(key, &name, b, mode)
        } else {
            engine.open_replacing(key, &name, b, mode)
        }
    };
    let mut handle = open(backend.clone());
    if registry::still_released(&backend) {
        // The last description of the file closed it meanwhile.
        drop(handle);
        backend = Arc::new(RawBackend::open(fd, flags, single)?);
        registry::remember_backend(key, &backend);
        if mode.append && !backend.ensure_appender() {
            return None;
        }
        handle = open(backend.clone());
    }
    // What the file looks like now: a later stat that differs in a way
    // this process's writes do not explain means another process changed it.
    handle.observe(attrs_of!(st));
    Some(Arc::new(
        Desc::new(handle, backend, key, fd <= policy::LAST_STD_FD).with_behind(behind),
    ))
}
