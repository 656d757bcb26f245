//! Relaxed close (`CONVEYOR_CLOSE=relaxed`, as NFS's `nocto`): `close`
//! returns once a file's data is queued, and closer threads write it, set
//! the metadata the program set through the descriptor, and close the
//! shim's duplicate, overlapped with the program's next files.
//!
//! What the program keeps: within the process every read, size, time and
//! mode is as without the shim (an operation on a file waits for that
//! file's close in flight; a stat of it waits too). What it gives up:
//! other programs are sure to see the data only after the process's next
//! barrier (exit, exec, spawn, `fsync` or `sync`, a lock), and an error
//! that arrives after `close` returned can no longer be returned: it is
//! logged, counted in the report, written to `CONVEYOR_LATE_ERRORS` (which
//! `conveyor run --relaxed-close` turns into a failing exit status).
//!
//! Metadata through the descriptor (`futimens`, `futimes`, `fchmod`, and
//! `fchown` by root) of a file the description created (`O_CREAT|O_EXCL`:
//! the process owns it, so the call cannot be refused for permission) is
//! held back on the description, to be set after its data: GNU tar sets
//! times, owner and mode on every file right before closing it, and
//! without this the first of them would wait for the data. Any other
//! operation on the description sets it first.
//!
//! Only a file's last description closes behind, never one under
//! descriptor 0-2 or on which a lock was taken (closing the shim's
//! duplicate later would release a lock at another moment than the
//! program's close), and never on filesystems that commit a file at each
//! close (s3fs, rclone: `fskind`).

use crate::desc::{Desc, Meta};
use crate::guard::{self, Inside};
use crate::{fdtable, real, state};
use conveyor_engine::{Errno, FileKey};
use libc::c_int;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Closes in flight at most; a further close waits for one to finish, so
/// memory, the shim's descriptors and what a crash can lose stay bounded.
const MAX_BEHIND: usize = 32;

/// Closer threads: each close waits on storage a few round trips (data,
/// metadata, the duplicate's close), so a few run side by side while the
/// program goes on.
const CLOSERS: usize = 4;

/// The closes in flight.
pub struct Queue {
    /// Descriptions waiting for a closer.
    jobs: VecDeque<Arc<Desc>>,
    /// The file of every close queued or running (one entry each).
    keys: Vec<FileKey>,
    /// Files whose close finished behind since the program last looked at
    /// them by path (the newest `FINISHED_KEPT`): a stat made before the
    /// close finished must be made again (`stat_path`).
    finished: VecDeque<FileKey>,
    /// Closer threads started by process `owner` (a forked child has none).
    threads: usize,
    owner: i32,
}

/// Finished closes remembered for `claims`.
const FINISHED_KEPT: usize = 64;

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    keys: Vec::new(),
    finished: VecDeque::new(),
    threads: 0,
    owner: 0,
});
// Signalled when a job is queued (closers wait on it).
static WORK: Condvar = Condvar::new();
// Signalled when a close finishes (waiters for room or for a file).
static DONE: Condvar = Condvar::new();

// Closes in flight plus descriptions holding metadata back. Zero: no
// operation has anything to wait for (one load on the managed paths).
// Raised under the queue's lock or the description's metadata lock before
// the thing it counts exists, lowered after it is gone.
static PENDING: AtomicUsize = AtomicUsize::new(0);

// Errors that reached no call of the program.
static LATE_ERRORS: AtomicU64 = AtomicU64::new(0);

fn queue(_: &Inside) -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Errors that arrived after the `close` that would have returned them
/// (for the report).
pub fn late_errors() -> u64 {
    LATE_ERRORS.load(Ordering::Relaxed)
}

/// True while some close is in flight or some metadata is held back.
pub fn any() -> bool {
    PENDING.load(Ordering::Acquire) > 0
}

/// Whether relaxed close is on in this process.
fn relaxed() -> bool {
    state::get().is_some_and(|s| s.close == crate::settings::Close::Relaxed)
}

/// `futimens`/`futimes`/`fchmod`/`fchown` on `fd`: held back on the
/// description when it may be (see the module doc); true if it was, and
/// the call is done as far as the program can tell.
pub fn defer_meta(name: &'static str, fd: c_int, m: Meta) -> bool {
    let Some(d) = fdtable::get(fd) else {
        return false;
    };
    if !relaxed() || !d.defers_meta() || d.exposed() {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if matches!(m, Meta::Owner(..)) && unsafe { libc::geteuid() } != 0 {
        return false;
    }
    guard::within(|_| {
        crate::counts::hit(name);
        if d.push_meta(m) {
            PENDING.fetch_add(1, Ordering::AcqRel);
        }
    })
    .is_some()
}

/// Sets the metadata held back on `d`, after its data (storage's error,
/// if any, is a late one: the call that made it returned 0 long ago). A
/// write error stays for the description's next write, sync or close.
pub fn apply_meta(d: &Desc, inside: &Inside) {
    if !d.has_meta() {
        return;
    }
    let Some(shim) = state::get() else { return };
    shim.engine(inside).flush_file(d.key);
    let ops = d.take_meta();
    if ops.is_empty() {
        return;
    }
    let fd = d.backend.fd();
    for m in ops {
        // SAFETY: `fd` is the program's descriptor in its own call on it,
        // or the shim's duplicate of it; the times are an array of two.
        let r = unsafe {
            match m {
                Meta::Times(t) => real::futimens(fd, t.as_ptr()),
                Meta::Mode(mode) => real::fchmod(fd, mode),
                Meta::Owner(u, g) => real::fchown(fd, u, g),
            }
        };
        let e = real::errno();
        if r < 0 && e == libc::ENOENT {
            // The program removed the file since (some FUSE filesystems
            // refuse metadata of an unlinked open file): no name shows
            // the times or mode any more, so nothing is lost.
            tracing::debug!(
                "{}: {} after its unlink: skipped",
                d.handle(inside).name(),
                m.what()
            );
        } else if r < 0 {
            late(d.handle(inside).name(), m.what(), Errno(e));
        }
    }
    PENDING.fetch_sub(1, Ordering::AcqRel);
}

/// Before an operation on `d`: its held-back metadata is set, and a close
/// of its file still in flight finishes.
pub fn before_op(d: &Desc, inside: &Inside) {
    if !any() {
        return;
    }
    apply_meta(d, inside);
    wait_for(d.key, inside);
}

/// Before a stat or a metadata change of file `key` by path: its closes in
/// flight finish and metadata held back on its open descriptions is set.
pub fn settle_file(key: FileKey, inside: &Inside) {
    if !any() {
        return;
    }
    wait_for(key, inside);
    for (_, d) in fdtable::all() {
        if d.key == key {
            apply_meta(&d, inside);
        }
    }
}

/// At a barrier (exit, exec, spawn, `fsync`, `sync`, a lock): every close
/// in flight finishes and all metadata held back is set.
pub fn settle_all(inside: &Inside) {
    if !any() {
        return;
    }
    drop(wait_while(queue(inside), |q| !q.keys.is_empty()));
    for (_, d) in fdtable::all() {
        apply_meta(&d, inside);
    }
}

fn wait_for(key: FileKey, inside: &Inside) {
    drop(wait_while(queue(inside), |q| q.keys.contains(&key)));
}

/// Waits on `DONE` (a close finished) while `busy` holds.
fn wait_while(
    q: MutexGuard<'static, Queue>,
    busy: impl FnMut(&mut Queue) -> bool,
) -> MutexGuard<'static, Queue> {
    DONE.wait_while(q, busy).unwrap_or_else(|e| e.into_inner())
}

/// `close` of managed `fd` (already out of the table) in relaxed mode:
/// when `d` may close behind, it is queued for a closer (after waiting for
/// room) and `Ok` is the real close's result; otherwise `d` comes back for
/// the ordinary close.
pub fn close(fd: c_int, d: Arc<Desc>) -> Result<c_int, Arc<Desc>> {
    if !relaxed() || !d.closes_behind() || d.exposed() || d.locked() {
        return Err(d);
    }
    let mut d = Some(d);
    let queued = guard::within(|i| {
        let Some(desc) = d.as_ref() else { return false };
        let h = desc.handle(i);
        let idle = h.pending_end() == 0 && !desc.has_meta();
        if idle || !h.is_last() || Arc::strong_count(desc) != 1 {
            return false;
        }
        // The closer needs a descriptor the program cannot close: a
        // duplicate of its own (no request to the filesystem).
        if desc.backend.take() < 0 {
            return false;
        }
        let mut q = wait_while(queue(i), |q| q.keys.len() >= MAX_BEHIND);
        if !start_closers(&mut q) {
            // No thread to finish it: the ordinary close does, now.
            return false;
        }
        let Some(desc) = d.take() else { return false };
        crate::counts::hit("close_behind");
        PENDING.fetch_add(1, Ordering::AcqRel);
        q.keys.push(desc.key);
        q.jobs.push_back(desc);
        WORK.notify_one();
        true
    });
    match (queued, d) {
        (Some(true), _) => {
            // SAFETY: closing the program's own descriptor, as it asked.
            Ok(unsafe { real::close(fd) })
        }
        (_, Some(d)) => Err(d),
        // Queued, though the closure did not say so (it cannot panic
        // after the hand-off): the close is the closer's.
        // SAFETY: as above.
        (_, None) => Ok(unsafe { real::close(fd) }),
    }
}

/// Starts closer threads up to `CLOSERS` in this process (one per close
/// queued, up to that); false when none runs.
fn start_closers(q: &mut Queue) -> bool {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if q.owner != me {
        q.owner = me;
        q.threads = 0;
    }
    while q.threads < CLOSERS.min(q.keys.len() + 1) {
        if guard::spawn_thread("conveyor-close", 256 * 1024, closer).is_err() {
            break;
        }
        q.threads += 1;
    }
    q.threads > 0
}

/// A closer: finishes queued closes, one at a time, forever (shim threads
/// have every signal blocked; they end with the process).
fn closer() {
    guard::quietly(|i| loop {
        let d = {
            let mut q = queue(i);
            loop {
                if let Some(d) = q.jobs.pop_front() {
                    break d;
                }
                q = WORK.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let key = d.key;
        finish(d, i);
        remove_key(&mut queue(i), key);
    });
}

fn remove_key(q: &mut Queue, key: FileKey) {
    if let Some(k) = q.keys.iter().position(|k| *k == key) {
        q.keys.swap_remove(k);
        // Under the same lock as the removal: from the queueing of a close
        // until a stat looked again, the file is in `keys` or `finished`.
        if !q.finished.contains(&key) {
            if q.finished.len() >= FINISHED_KEPT {
                q.finished.pop_front();
            }
            q.finished.push_back(key);
        }
        PENDING.fetch_sub(1, Ordering::AcqRel);
    }
    DONE.notify_all();
}

/// For a stat by path of file `key`, made before this call: true if a
/// close of the file behind may have changed what it saw (one is in
/// flight, or one finished since the file was last looked at this way):
/// the caller waits (`settle_file`) and stats again. A finished close is
/// claimed once. Without it a stat made while the closer was setting the
/// times returned the times from before, when the closer's last reference
/// to the file went before the stat's check asked the engine.
pub fn claims(key: FileKey, inside: &Inside) -> bool {
    if !relaxed() {
        return false;
    }
    let mut q = queue(inside);
    if q.keys.contains(&key) {
        return true;
    }
    match q.finished.iter().position(|k| *k == key) {
        Some(at) => {
            q.finished.remove(at);
            true
        }
        None => false,
    }
}

/// What the program's `close` would have done: the data written, the
/// metadata set, the shim's duplicate closed; errors are late ones.
fn finish(d: Arc<Desc>, inside: &Inside) {
    let h = d.handle(inside);
    if let Err(e) = h.flush() {
        late(h.name(), "writing its data", e);
    }
    apply_meta(&d, inside);
    if let Err(e) = crate::registry::release_if_last(&d, inside) {
        late(h.name(), "closing it", e);
    }
}

/// An error no call of the program can return any more: logged, counted,
/// and written to `CONVEYOR_LATE_ERRORS` for `conveyor run`.
fn late(name: &str, what: &str, e: Errno) {
    LATE_ERRORS.fetch_add(1, Ordering::Relaxed);
    let msg = std::io::Error::from_raw_os_error(e.0);
    tracing::error!("{name}: {what} failed after close returned: {msg}");
    if let Some(t) = crate::settings::var("CONVEYOR_LATE_ERRORS").filter(|t| !t.is_empty()) {
        // SAFETY: getpid has no preconditions.
        let path = t.replace("%p", &unsafe { libc::getpid() }.to_string());
        // Opened inside the shim: the open passes straight to libc.
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            use std::io::Write;
            let _ = writeln!(f, "{name}: {what}: {msg}");
        }
    }
}

/// The queue, locked across `fork` (the child finds it free, and empty:
/// the closes in flight are the parent's, and so are its closers).
pub struct ForkHold(MutexGuard<'static, Queue>);

/// Locks the queue for `fork` (after the barrier emptied it).
pub fn hold_for_fork() -> ForkHold {
    ForkHold(QUEUE.lock().unwrap_or_else(|e| e.into_inner()))
}

impl ForkHold {
    /// In the child: no close in flight, no closer thread.
    pub fn in_child(mut self) {
        self.0.finished.clear();
        self.0.jobs.clear();
        self.0.keys.clear();
        self.0.threads = 0;
        PENDING.store(0, Ordering::Release);
    }
}

/// The clock's time now, as `UTIME_NOW` would set it.
fn now() -> libc::timespec {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: fills the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    t
}

/// `futimens`'s times as held back: `UTIME_NOW` (or a null pointer) read
/// off the clock now; `None` for a time the kernel would refuse.
///
/// # Safety
/// `times` is null or points to two structs.
pub unsafe fn times_of(times: *const libc::timespec) -> Option<Meta> {
    let mut t = if times.is_null() {
        [now(), now()]
    } else {
        // SAFETY: two structs, by the caller's contract.
        unsafe { [*times, *times.add(1)] }
    };
    for x in &mut t {
        match x.tv_nsec {
            libc::UTIME_NOW => *x = now(),
            libc::UTIME_OMIT => {}
            0..=999_999_999 => {}
            _ => return None,
        }
    }
    Some(Meta::Times(t))
}

/// `futimes`'s times as `futimens` ones (a null pointer: now).
///
/// # Safety
/// `tv` is null or points to two structs.
pub unsafe fn times_of_timeval(tv: *const libc::timeval) -> Option<Meta> {
    if tv.is_null() {
        return Some(Meta::Times([now(), now()]));
    }
    // SAFETY: two structs, by the caller's contract.
    let v = unsafe { [*tv, *tv.add(1)] };
    let mut t = [now(), now()];
    for (x, v) in t.iter_mut().zip(v) {
        if !(0..1_000_000).contains(&v.tv_usec) {
            return None;
        }
        x.tv_sec = v.tv_sec;
        x.tv_nsec = v.tv_usec * 1000;
    }
    Some(Meta::Times(t))
}
