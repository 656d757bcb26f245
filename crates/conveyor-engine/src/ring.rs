//! The io_uring executor, beside the worker pool (`Config::executor`).
//!
//! A background request (a write batch) is a [`Request`]: it owns its
//! buffers, builds its submission entry, and is told the result.
//! Prefetches stay on the pool (`file/read.rs` says why).
//! The thread that starts requests (often the program's own, in a `write`
//! that filled a request's worth) pushes their entries and submits them with
//! one `io_uring_enter` for all of them, and returns: no worker is woken
//! on its path. One reaper thread per engine waits for completions and runs
//! each request's completion, which may submit what comes next (the rest of
//! a short write, the file's next batch).
//!
//! The kernel ties a request it cannot finish at once to the thread that
//! submitted it: when that thread ends (a program's worker thread, a
//! Python `threading.Thread`), the requests it left waiting for one of its
//! io_uring workers are cancelled unstarted (`ECANCELED`). The reaper hands each of those to the pool,
//! which does it the blocking way, so no write is lost to a thread's end.
//!
//! The pool stays: a request the ring cannot take now (the queue is full)
//! runs there the blocking way ([`Request::run_blocking`]), as does every
//! file whose backend offers no descriptor for the ring, and every request
//! of an engine whose ring could not be set up (old kernel, seccomp,
//! `kernel.io_uring_disabled`).
//!
//! Not used, and why: registered buffers (`*_FIXED`) spare pinning pages
//! for direct I/O, but the requests here are buffered (the kernel copies
//! from our memory either way) and a batch is a vector of 64 KiB segments,
//! which no single registered buffer covers; fixed files would keep a file
//! open in the ring after the program and the shim closed it, which moves
//! the filesystem's last release (where s3fs and rclone commit a file)
//! past the program's `close`. SQPOLL would keep a kernel thread polling,
//! a core's worth of CPU on the machines conveyor serves.
//!
//! Fork: the ring's descriptor is close-on-exec, and a forked child never
//! uses its copy of the parent's engine (it builds one of its own, with a
//! ring of its own); the embedder closes the inherited descriptor in the
//! child ([`crate::Engine::ring_fd`]). The ring's memory stays mapped in a
//! forked child until it execs or exits (the ring is rebuilt on the moved
//! descriptor, and `io-uring` marks only rings it builds itself
//! `MADV_DONTFORK`): a few pages, never written there. The reaper thread runs the engine's
//! thread-start function first, so (in the shim) no signal of the
//! program's is delivered to it.

use crate::engine::Hooks;
use crate::pool::Pool;
use io_uring::{opcode, squeue, types, IoUring};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One background request for the ring.
pub(crate) trait Request: Send + 'static {
    /// The request's submission entry. Every pointer in it points into
    /// heap memory `self` owns, which stays where it is until `complete`
    /// or `run_blocking` consumes `self`.
    fn entry(&mut self) -> squeue::Entry;
    /// The kernel's answer: bytes transferred, or `-errno`.
    fn complete(self: Box<Self>, res: i32, ring: &Ring);
    /// Does the request with blocking calls instead (on a pool thread).
    fn run_blocking(self: Box<Self>);
}

type Boxed = Box<dyn Request>;

// `user_data` of the entry that wakes the reaper to stop (a request's is
// the address of its box, never zero).
const STOP: u64 = 0;

/// Most submission entries; the completion queue is twice this, and at
/// most `depth` (no more) requests are in flight, so no completion is ever
/// dropped or left in the kernel's overflow list.
const MAX_ENTRIES: usize = 256;

// Requests waiting for room in the ring, in the order they came.
struct Waiting {
    reqs: VecDeque<Boxed>,
}

struct Inner {
    uring: IoUring,
    // Serialises pushing entries and submitting them (the submission queue
    // has one producer at a time), and guards the backlog: a request
    // waits there only while the ring is at `depth`, and the reaper
    // pushes it as completions make room, oldest first.
    sq: Mutex<Waiting>,
    // Requests pushed and not yet reaped. Changed under `sq` when it
    // grows; the reaper lowers it on each completion.
    inflight: AtomicUsize,
    // Most requests in flight: the pool's thread count. More in flight
    // bought nothing on the slow filesystem and cost memory: 1,000 files
    // written at once with 256 in flight peaked 40 MiB higher, as the
    // batches in flight churned the allocator's arenas.
    depth: usize,
    pool: Pool,
    stopping: AtomicBool,
}

/// An io_uring with its reaper thread; clones share them.
#[derive(Clone)]
pub(crate) struct Ring {
    inner: Arc<Inner>,
}

impl Ring {
    /// Sets up a ring of `workers` requests in flight at most, moves its
    /// descriptor with `hooks.private_fd` (the shim puts it at a high
    /// number the program never gets, and keeps it out of the ranges the
    /// program closes), and starts the reaper, which runs
    /// `hooks.thread_start` first. The error says why io_uring cannot be
    /// used.
    pub fn new(pool: Pool, workers: usize, hooks: Hooks) -> std::io::Result<Ring> {
        let depth = workers.clamp(1, MAX_ENTRIES);
        let first = IoUring::new(depth.next_power_of_two() as u32)?;
        let params = first.params().clone();
        // SAFETY: duplicates a descriptor the ring owns; no memory involved
        // (a raw system call: no preloaded `fcntl` is reached from here).
        let dup =
            unsafe { libc::syscall(libc::SYS_fcntl, first.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) }
                as RawFd;
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = (hooks.private_fd)(dup);
        if fd < 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        }
        // SAFETY: `fd` is ours alone and refers to the ring `first` set up,
        // whose parameters these are.
        let uring = match unsafe { IoUring::from_fd(fd, params) } {
            Ok(u) => u,
            Err(e) => {
                // SAFETY: our own descriptor, not handed to anything.
                unsafe { libc::syscall(libc::SYS_close, fd) };
                (hooks.forget_fd)(fd);
                return Err(e);
            }
        };
        drop(first);
        let inner = Arc::new(Inner {
            uring,
            sq: Mutex::new(Waiting {
                reqs: VecDeque::new(),
            }),
            inflight: AtomicUsize::new(0),
            depth,
            pool,
            stopping: AtomicBool::new(false),
        });
        let reaper = Arc::clone(&inner);
        let spawned =
            crate::pool::spawn("conveyor-ring", 256 << 10, hooks.thread_start, move || {
                reap(reaper)
            });
        if let Err(e) = spawned {
            // The last reference: the ring and its descriptor go.
            drop(inner);
            (hooks.forget_fd)(fd);
            return Err(e);
        }
        Ok(Ring { inner })
    }

    /// The ring's descriptor.
    pub fn fd(&self) -> RawFd {
        self.inner.uring.as_raw_fd()
    }

    /// Submits `reqs` with one system call. While the ring is at its depth
    /// they wait, in order, for room. Once the ring is stopping they run
    /// on the pool.
    pub fn submit(&self, reqs: Vec<Boxed>) {
        if reqs.is_empty() {
            return;
        }
        let inner = &*self.inner;
        let mut waiting = inner.sq.lock().unwrap_or_else(|p| p.into_inner());
        // Read under `sq`, where `stop` sets it: nothing is left waiting
        // after the reaper is gone.
        if inner.stopping.load(Ordering::Acquire) {
            drop(waiting);
            self.refuse(reqs);
            return;
        }
        waiting.reqs.extend(reqs);
        self.push_waiting(&mut waiting);
    }

    fn refuse(&self, reqs: impl IntoIterator<Item = Boxed>) {
        for r in reqs {
            self.inner.pool.submit(Box::new(move || r.run_blocking()));
        }
    }

    /// Pushes the waiting requests that fit, oldest first, and submits
    /// them with one system call.
    fn push_waiting(&self, waiting: &mut Waiting) {
        let inner = &*self.inner;
        // SAFETY: the submission queue is only touched under `sq`, which
        // the caller holds (`waiting` is its guard's contents).
        let mut sq = unsafe { inner.uring.submission_shared() };
        let mut pushed = 0;
        while inner.inflight.load(Ordering::Acquire) + pushed < inner.depth && !sq.is_full() {
            let Some(mut r) = waiting.reqs.pop_front() else {
                break;
            };
            let e = r.entry();
            let ptr = Box::into_raw(Box::new(r));
            // SAFETY: the entry's pointers stay valid until its completion
            // (`Request::entry`); the box is reclaimed by the reaper from
            // `user_data`, once. The queue has room (checked above).
            let _ = unsafe { sq.push(&e.user_data(ptr as u64)) };
            pushed += 1;
        }
        inner.inflight.fetch_add(pushed, Ordering::AcqRel);
        sq.sync();
        let unsubmitted = !sq.is_empty();
        drop(sq);
        if unsubmitted {
            submit_all(inner);
        }
    }

    /// Lets the reaper exit once every request in flight has completed.
    pub fn stop(&self) {
        let inner = &*self.inner;
        let mut waiting = inner.sq.lock().unwrap_or_else(|p| p.into_inner());
        if inner.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let left = std::mem::take(&mut waiting.reqs);
        // SAFETY: under `sq`, as in `push_waiting`; a no-op entry has no
        // pointers.
        let mut sq = unsafe { inner.uring.submission_shared() };
        // SAFETY: as above.
        let _ = unsafe { sq.push(&opcode::Nop::new().build().user_data(STOP)) };
        sq.sync();
        drop(sq);
        let _ = inner.uring.submit();
        drop(waiting);
        // Outside `sq`: a pool with no thread runs a job in the caller.
        self.refuse(left);
    }
}

/// Submits what the queue holds. Entries pushed cannot be taken back, so a
/// refusal (the kernel short of memory: `EAGAIN`, `ENOMEM`) is retried
/// until it passes, as the program's own write would wait in the kernel;
/// the reaper, waiting with a timeout while requests are in flight, also
/// submits what is left.
fn submit_all(inner: &Inner) {
    let mut warned = false;
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        match inner.uring.submit() {
            Ok(_) => return,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                if !warned {
                    tracing::warn!("io_uring refused a submission ({e}); retrying");
                    warned = true;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// How long the reaper waits for a completion while requests are in
/// flight before it looks again (and submits anything left in the queue).
const RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

fn reap(inner: Arc<Inner>) {
    let ring = Ring {
        inner: Arc::clone(&inner),
    };
    let mut stop = false;
    let mut warned = false;
    loop {
        if stop && inner.inflight.load(Ordering::Acquire) == 0 {
            return;
        }
        let waited = if inner.inflight.load(Ordering::Acquire) > 0 {
            let ts = types::Timespec::from(RECHECK);
            let args = types::SubmitArgs::new().timespec(&ts);
            match inner.uring.submitter().submit_with_args(1, &args) {
                // A kernel without timed waits (before 5.11).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => inner.uring.submit_and_wait(1),
                r => r,
            }
        } else {
            inner.uring.submit_and_wait(1)
        };
        if let Err(e) = waited {
            let transient = matches!(
                e.raw_os_error(),
                Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ETIME)
            );
            if !transient {
                if !warned {
                    tracing::warn!("io_uring wait failed: {e}; requests in flight may stall");
                    warned = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        // SAFETY: only this thread reads the completion queue.
        let done: Vec<(u64, i32)> = unsafe { inner.uring.completion_shared() }
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (data, res) in done {
            if data == STOP {
                stop = true;
                continue;
            }
            inner.inflight.fetch_sub(1, Ordering::AcqRel);
            // SAFETY: `data` is the address `push` leaked for this entry,
            // and each entry completes once.
            let r = *unsafe { Box::from_raw(data as *mut Boxed) };
            if res == -libc::ECANCELED {
                // Nothing here cancels a request (no links, no
                // cancel entries): the kernel did, because the thread that
                // submitted it ended before the request ran (its io_uring
                // workers end with it). Programs end threads all the time;
                // the request was not done at all, so it is done now, on
                // the pool, by a thread that lasts.
                ring.refuse([r]);
                continue;
            }
            // A panicking completion must not take the reaper with it.
            let _ =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.complete(res, &ring)));
        }
        // Completions made room: what waited for it goes now.
        let mut waiting = inner.sq.lock().unwrap_or_else(|p| p.into_inner());
        if !waiting.reqs.is_empty() {
            ring.push_waiting(&mut waiting);
        }
    }
}

/// Whether this process may set up a ring (old kernels, seccomp and
/// `kernel.io_uring_disabled` refuse it): a ring of two entries is set up
/// and closed again.
pub fn io_uring_available() -> bool {
    IoUring::new(2).is_ok()
}

/// The vector of a vectored request: pointers into buffers the request
/// owns (`Request::entry`).
#[derive(Default)]
pub(crate) struct IoVecs(Vec<libc::iovec>);

// SAFETY: the pointers are into heap buffers owned by the same request,
// which moves between threads whole; nothing reads them but the kernel
// while the request is in flight.
unsafe impl Send for IoVecs {}

impl IoVecs {
    /// A vector over `parts` (at most `UIO_MAXIOV` of them; a request
    /// writes what it covers and continues).
    pub fn new(parts: &[&[u8]]) -> IoVecs {
        IoVecs(
            parts
                .iter()
                .take(libc::UIO_MAXIOV as usize)
                .map(|p| libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                })
                .collect(),
        )
    }

    /// The vector's address and length, for an entry.
    pub fn raw(&self) -> (*const libc::iovec, u32) {
        (self.0.as_ptr(), self.0.len() as u32)
    }
}

/// Where an append through `fd` ended: its description's offset, read
/// right after the append (a file's appends run one at a time).
pub(crate) fn position(fd: RawFd) -> Option<u64> {
    // SAFETY: no memory involved; a raw system call, so no preloaded
    // `lseek` is reached from the engine.
    let r = unsafe { libc::syscall(libc::SYS_lseek, fd, 0 as libc::off_t, libc::SEEK_CUR) };
    u64::try_from(r).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A no-op, or a timeout of `wait`, that reports its end on a channel.
    struct Probe {
        id: usize,
        wait: Option<Box<types::Timespec>>,
        done: mpsc::Sender<(usize, bool)>,
    }

    impl Request for Probe {
        fn entry(&mut self) -> squeue::Entry {
            match &self.wait {
                Some(ts) => opcode::Timeout::new(&**ts).build(),
                None => opcode::Nop::new().build(),
            }
        }
        fn complete(self: Box<Self>, _res: i32, _ring: &Ring) {
            let _ = self.done.send((self.id, true));
        }
        fn run_blocking(self: Box<Self>) {
            let _ = self.done.send((self.id, false));
        }
    }

    fn probe(id: usize, wait: Option<Duration>, done: &mpsc::Sender<(usize, bool)>) -> Boxed {
        Box::new(Probe {
            id,
            wait: wait.map(|w| Box::new(types::Timespec::from(w))),
            done: done.clone(),
        })
    }

    /// Requests submitted while the ring is at its depth wait and go in
    /// order as room comes, all of them on the ring: a group larger than
    /// the queue once went to the pool and stranded everything queued
    /// behind it.
    #[test]
    fn waiting_requests_all_go_when_room_comes() {
        let ring = match Ring::new(Pool::new(2, || {}), 2, Hooks::default()) {
            Ok(r) => r,
            // The kernel refuses io_uring here: nothing of the ring to test.
            Err(e) => return eprintln!("io_uring unavailable: {e}"),
        };
        let (tx, rx) = mpsc::channel();
        // One slow request in flight, then a group of five and one more.
        ring.submit(vec![probe(0, Some(Duration::from_millis(300)), &tx)]);
        ring.submit((1..6).map(|i| probe(i, None, &tx)).collect());
        ring.submit(vec![probe(6, None, &tx)]);
        let mut seen = Vec::new();
        for _ in 0..7 {
            let (id, on_ring) = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("requests stranded; completed: {seen:?}"));
            assert!(on_ring, "request {id} ran on the pool");
            seen.push(id);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        ring.stop();
    }

    /// A read of 8 bytes from a pipe, forced to the submitting thread's
    /// io_uring workers (where a FUSE write goes too); reports the ring's
    /// result, or `None` when it ran on the pool.
    struct PipeRead {
        id: usize,
        fd: RawFd,
        buf: Box<[u8; 8]>,
        done: mpsc::Sender<(usize, Option<i32>)>,
    }

    impl Request for PipeRead {
        fn entry(&mut self) -> squeue::Entry {
            opcode::Read::new(types::Fd(self.fd), self.buf.as_mut_ptr(), 8)
                .build()
                .flags(squeue::Flags::ASYNC)
        }
        fn complete(self: Box<Self>, res: i32, _ring: &Ring) {
            let _ = self.done.send((self.id, Some(res)));
        }
        fn run_blocking(self: Box<Self>) {
            let _ = self.done.send((self.id, None));
        }
    }

    /// A thread submits two reads and ends: the kernel cancels the one
    /// waiting for a worker. Each is done again on the pool; no completion sees `ECANCELED` (a
    /// write batch once failed with it, and its data was lost).
    #[test]
    fn requests_left_by_a_thread_that_ended_are_done_on_the_pool() {
        let ring = match Ring::new(Pool::new(2, || {}), 4, Hooks::default()) {
            Ok(r) => r,
            Err(e) => return eprintln!("io_uring unavailable: {e}"),
        };
        // One worker per thread, so the second read waits unstarted.
        if let Err(e) = ring
            .inner
            .uring
            .submitter()
            .register_iowq_max_workers(&mut [1, 1])
        {
            return eprintln!("no io_uring worker limits on this kernel: {e}");
        }
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let reads = (0..2).map(|id| -> Boxed {
                    Box::new(PipeRead {
                        id,
                        fd: fds[0],
                        buf: Box::new([0; 8]),
                        done: tx.clone(),
                    })
                });
                ring.submit(reads.collect());
            });
        });
        // The thread has ended. A read the kernel did not end waits for
        // data: there is enough for both.
        // SAFETY: writes 16 bytes from a live buffer to our own pipe.
        let wrote = unsafe { libc::write(fds[1], [7u8; 16].as_ptr().cast(), 16) };
        assert_eq!(wrote, 16);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (id, res) = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("a read never ended; ended: {seen:?}"));
            seen.push((id, res));
        }
        assert!(
            !seen.contains(&(0, Some(-libc::ECANCELED)))
                && !seen.contains(&(1, Some(-libc::ECANCELED))),
            "a cancelled request was completed as failed: {seen:?}"
        );
        ring.stop();
        for fd in fds {
            // SAFETY: our own descriptors, closed once.
            unsafe { libc::close(fd) };
        }
    }
}
