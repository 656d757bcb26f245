//! The shim's process-wide state: the engine, the selected paths, and
//! whether the shim is active at all. Built once, from the environment, in
//! the library constructor; a bad setting is reported once and leaves the
//! shim in pass-through. A forked child that keeps running gets a fresh
//! state of its own (`fork_child`): its copy of the parent's engine has no
//! worker threads and may hold locks those threads took.

use crate::log;
use crate::settings::{self, Bad};
use conveyor_engine::{Engine, Journaling};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The shim's state.
pub struct Shim {
    // The engine every managed file goes through; reached only inside the
    // shim (`engine`).
    engine: Engine,
    /// Selected path prefixes, absolute and without a trailing slash.
    pub paths: Vec<Vec<u8>>,
    /// The same as given (normalised, links not resolved): what a path a
    /// program names may start with (`ops::stream`).
    pub named_paths: Vec<Vec<u8>>,
    /// Whether files on fast local storage are managed too.
    pub mode: settings::Mode,
    /// Whether `close` may return before the data is on storage
    /// (`ops::behind`).
    pub close: settings::Close,
    /// `CONVEYOR_STDOUT_BUFFER`, if set (`ops::stream::widen_stdout`).
    pub stdout_buffer: Option<usize>,
    /// Whether write-behind is crash-safe (`CONVEYOR_CRASH_SAFE`).
    pub crash_safe: bool,
    /// Whether that was asked for (not the default): a flusher that
    /// cannot be had is then a warning, not a note.
    pub crash_safe_asked: bool,
    /// `CONVEYOR_FLUSHER`: the flusher's socket.
    pub flusher: Option<std::path::PathBuf>,
}

/// An engine with `cfg`; with `crash_safe`, its segments in a journal
/// made at the first one (`crash::make`).
fn engine(cfg: conveyor_engine::Config, crash_safe: bool) -> Engine {
    if crash_safe {
        Engine::with_journal(cfg, hooks(), Journaling::Lazy(crate::crash::make))
    } else {
        Engine::with_hooks(cfg, hooks())
    }
}

/// How many generations of forked children (a child of a child...) get a
/// state of their own; deeper ones pass everything through.
const GENERATIONS: usize = 8;

// One state per generation: slot 0 is built by the constructor, slot n by
// the n-th forked descendant, in its own copy of memory. A slot is never
// touched once a later one is in use, since its engine belongs to an
// ancestor's threads.
static SHIM: [OnceLock<Shim>; GENERATIONS] = [const { OnceLock::new() }; GENERATIONS];
// The slot of this process. Written only by the constructor and in a
// freshly forked child, where no other thread exists yet.
static GEN: AtomicUsize = AtomicUsize::new(0);
// True once the state is built and this process may use it (false after a
// bad setting, and in a forked descendant beyond `GENERATIONS`).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static OWNER: AtomicI32 = AtomicI32::new(0);

/// The state, when the shim is active in this process.
pub fn get() -> Option<&'static Shim> {
    if ACTIVE.load(Ordering::Acquire) {
        SHIM.get(GEN.load(Ordering::Acquire))?.get()
    } else {
        None
    }
}

/// Stops all management in this process.
fn deactivate() {
    ACTIVE.store(false, Ordering::Release);
}

/// In a forked child (the only thread): a fresh engine with the parent's
/// settings, so files the child opens are managed by workers of its own.
/// Descriptions it inherited stay with the parent's engine, untouched.
pub fn fork_child() {
    let Some(parent) = get() else { return };
    let next = GEN.load(Ordering::Acquire) + 1;
    let fresh = Shim {
        engine: engine(parent.engine.config().clone(), parent.crash_safe),
        paths: parent.paths.clone(),
        named_paths: parent.named_paths.clone(),
        mode: parent.mode,
        close: parent.close,
        stdout_buffer: parent.stdout_buffer,
        crash_safe: parent.crash_safe,
        crash_safe_asked: parent.crash_safe_asked,
        flusher: parent.flusher.clone(),
    };
    match SHIM.get(next) {
        Some(slot) if slot.set(fresh).is_ok() => {
            // SAFETY: getpid has no preconditions.
            OWNER.store(unsafe { libc::getpid() }, Ordering::Relaxed);
            GEN.store(next, Ordering::Release);
        }
        _ => deactivate(),
    }
}

/// What the shim does for the engine: its threads block the program's
/// signals; its ring descriptor is a private one (high, kept out of the
/// ranges the program closes).
fn hooks() -> conveyor_engine::Hooks {
    conveyor_engine::Hooks {
        thread_start: crate::guard::thread_start,
        private_fd: |fd| crate::backend::track(crate::backend::place_high(fd)),
        forget_fd: crate::backend::untrack,
        watch: crate::crash::watch,
    }
}

/// The parent's io_uring descriptor, which a forked child closes before
/// its new state (it never uses the parent's engine).
pub fn parent_ring() -> Option<i32> {
    get().and_then(|s| s.engine.ring_fd())
}

/// True in a forked child's state (not the one the program started with).
pub fn in_forked_child() -> bool {
    GEN.load(Ordering::Acquire) > 0
}

/// The pid that built the state.
pub fn owner() -> i32 {
    OWNER.load(Ordering::Relaxed)
}

/// A setting's value, or `None` after saying why it cannot be used (the
/// shim then passes everything through).
fn usable<T>(r: Result<T, Bad>) -> Option<T> {
    r.map_err(|Bad(msg)| tracing::error!("{msg}; conveyor passes everything through"))
        .ok()
}

/// Builds the state from the environment (from the library constructor).
pub fn init() {
    if let Err(msg) = log::configure() {
        tracing::error!("{msg}; conveyor passes everything through");
        return;
    }
    if settings::var("CONVEYOR_DISABLE").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let Some(raw) = settings::var("CONVEYOR_PATHS").filter(|p| !p.is_empty()) else {
        return;
    };
    let Some(cfg) = usable(settings::config()) else {
        return;
    };
    let mode = match usable(settings::mode()) {
        None | Some(settings::Mode::Off) => return,
        Some(m) => m,
    };
    let Some(close) = usable(settings::close()) else {
        return;
    };
    let Some(stdout_buffer) = usable(settings::stdout_buffer()) else {
        return;
    };
    let Some((crash_safe, crash_safe_asked)) = usable(settings::crash_safe()) else {
        return;
    };
    let paths = settings::paths(&raw);
    let named_paths = raw
        .split(':')
        .filter(|e| e.starts_with('/'))
        .map(|e| settings::normalize(e.as_bytes()))
        .collect();
    if paths.is_empty() {
        tracing::warn!("CONVEYOR_PATHS has no usable entry; conveyor passes everything through");
        return;
    }
    // SAFETY: getpid has no preconditions.
    OWNER.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    if SHIM[0]
        .set(Shim {
            engine: engine(cfg, crash_safe),
            paths,
            named_paths,
            mode,
            close,
            stdout_buffer,
            crash_safe,
            crash_safe_asked,
            flusher: settings::flusher(),
        })
        .is_ok()
    {
        ACTIVE.store(true, Ordering::Release);
    }
}

impl Shim {
    /// The engine, for a thread inside the shim.
    pub fn engine(&self, _: &crate::guard::Inside) -> &Engine {
        &self.engine
    }

    /// True if the canonical `path` lies under a selected prefix.
    pub fn selects(&self, path: &[u8]) -> bool {
        crate::policy::under(&self.paths, path)
    }
}
