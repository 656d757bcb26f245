//! A bound on how long data may wait for the program's own thread.
//!
//! Where background I/O would cost storage a request the program's own
//! calls do not (`Backend::defers_background`), a file's pending data
//! smaller than one request waits for the program's next flush, close,
//! sync or metadata change, which writes it on the program's thread. A
//! program that stops there (a writer that `flush()`es a flag and waits
//! for a reader, a log writer between bursts, a file another process is
//! about to copy) must not leave it there: after `Config::defer_limit` a
//! timer thread starts the file's background write, as for any other file.
//! One thread per engine, started with the first deferral; it ends with
//! the engine.

use crate::file::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The files whose data waits, each with when it stops waiting.
pub(crate) struct Deferrals {
    state: Mutex<State>,
    cv: Condvar,
    // Run first in the timer thread (the shim blocks signals there).
    start: fn(),
}

struct State {
    due: Vec<(Instant, Weak<File>)>,
    running: bool,
}

impl Deferrals {
    pub fn new(start: fn()) -> Deferrals {
        Deferrals {
            state: Mutex::new(State {
                due: Vec::new(),
                running: false,
            }),
            cv: Condvar::new(),
            start,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `file`'s pending data is to be written by `at` if nothing has
    /// written it by then (the caller schedules each file once until
    /// `File::deferral_due` runs).
    pub fn schedule(self: &Arc<Self>, file: &Arc<File>, at: Instant) {
        let mut st = self.lock();
        st.due.push((at, Arc::downgrade(file)));
        if !st.running {
            let me = Arc::downgrade(self);
            let spawned =
                crate::pool::spawn("conveyor-defer", 128 << 10, self.start, move || run(me));
            st.running = spawned.is_ok();
            if !st.running {
                // No thread to wait with: the data is written now, as
                // without the deferral.
                st.due.clear();
                drop(st);
                file.deferral_due();
                return;
            }
        }
        drop(st);
        self.cv.notify_one();
    }
}

// How often an idle timer thread checks that its engine still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

fn run(me: Weak<Deferrals>) {
    loop {
        let Some(d) = me.upgrade() else { return };
        let mut st = d.lock();
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = st.due.drain(..).partition(|(at, _)| *at <= now);
        st.due = waiting;
        let next = st.due.iter().map(|(at, _)| *at).min();
        if ready.is_empty() {
            let wait = next.map_or(IDLE_CHECK, |n| n.saturating_duration_since(now));
            let _ = d.cv.wait_timeout(st, wait);
            continue;
        }
        drop(st);
        drop(d);
        for (_, f) in ready {
            if let Some(f) = f.upgrade() {
                f.deferral_due();
            }
        }
    }
}
