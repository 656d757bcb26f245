//! The small worker pool shared by every file of an engine. Threads start on
//! demand, up to a fixed number, so a program with 1,000 open files gets at
//! most `Config::workers` threads, and a program that never writes a managed
//! file gets none.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A unit of background work (one storage request and its bookkeeping).
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    jobs: VecDeque<Job>,
    // Threads waiting on `ready` that no submitter has claimed yet. A
    // submitter claims one (moving it from `idle` to `claimed`) before
    // notifying, so two quick submits never count on the same sleeper and a
    // second job gets a thread of its own instead of queueing behind the first.
    idle: usize,
    // Wake-ups promised to idle threads but not yet taken.
    claimed: usize,
    threads: usize,
    shutdown: bool,
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
    max: usize,
    // Run first in every new thread (the shim blocks the program's signals
    // there: its handlers must never run on a thread holding engine locks).
    start: fn(),
}

/// Shared worker pool; cloning shares the same threads.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

/// Starts one of the engine's threads (pool worker, deferral timer, ring
/// reaper): `start` runs first in it, always, so that (in the shim) no
/// engine thread ever runs a signal handler of the program's.
pub(crate) fn spawn(
    name: &str,
    stack: usize,
    start: fn(),
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack)
        .spawn(move || {
            start();
            f()
        })
        .map(drop)
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    pub fn new(max: usize, start: fn()) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    jobs: VecDeque::new(),
                    idle: 0,
                    claimed: 0,
                    threads: 0,
                    shutdown: false,
                }),
                ready: Condvar::new(),
                max: max.max(1),
                start,
            }),
        }
    }

    /// Queues `job`; starts a thread when none is idle and the cap allows.
    /// If no thread exists and none can be started, runs `job` here, so work
    /// is never stranded.
    pub fn submit(&self, job: Job) {
        let mut st = lock(&self.inner.state);
        st.jobs.push_back(job);
        if st.idle > 0 {
            st.idle -= 1;
            st.claimed += 1;
            self.inner.ready.notify_one();
            return;
        }
        if st.threads < self.inner.max {
            st.threads += 1;
            let inner = Arc::clone(&self.inner);
            let start = inner.start;
            if spawn("conveyor-io", 256 << 10, start, move || worker(inner)).is_ok() {
                return;
            }
            st.threads -= 1;
        }
        if st.threads == 0 {
            if let Some(job) = st.jobs.pop_back() {
                drop(st);
                job();
            }
        }
    }

    /// Lets the threads exit once the queue is empty.
    pub fn shutdown(&self) {
        lock(&self.inner.state).shutdown = true;
        self.inner.ready.notify_all();
    }
}

fn worker(inner: Arc<Inner>) {
    let mut st = lock(&inner.state);
    loop {
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            // A panicking job must not take the thread's bookkeeping with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            st = lock(&inner.state);
            continue;
        }
        if st.shutdown {
            st.threads -= 1;
            return;
        }
        st.idle += 1;
        st = inner.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        // A claimed wake-up was already taken off `idle` by its submitter;
        // a spurious one was not.
        if st.claimed > 0 {
            st.claimed -= 1;
        } else {
            st.idle -= 1;
        }
    }
}
