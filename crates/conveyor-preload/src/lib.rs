//! conveyor's `LD_PRELOAD` shim (`libconveyor_preload.so`): regular files a
//! program opens under `CONVEYOR_PATHS` go through the conveyor engine
//! (write-behind, read-ahead, snooping); every other descriptor goes
//! straight to libc. The semantics a program may observe are in
//! `docs/guarantees.md`; the design contract in `docs/design.md`.
//!
//! # Modules, top to bottom
//!
//! Each layer calls only the ones below it.
//!
//! | module | job |
//! |---|---|
//! | `hooks` | the exported glibc names; each decides "managed or not" with one table lookup and otherwise calls the real function; no logic (`variadic.c`: the C halves of `dprintf`) |
//! | `process` | fork, vfork, exec, spawn, system, popen, exit and fatal signals: the barriers before another program can see the files (`process::fork` lists every lock held across `fork`, in order; `process::fatal` the fatal-signal flush) |
//! | `ops` | C conventions (buffers, iovecs, errno, offsets) to engine calls and back, for descriptors and paths; `ops::on_fd` is the one way to a managed descriptor's engine handle; `ops::retire` keeps private descriptors of handed-over files open for the program's locks; `ops::stream` makes the stdio streams of managed files (`stream.c`: the cookie functions); `ops::behind` is relaxed close |
//! | `live`, `report`, `counts` | the live file for `conveyor top`, the stats report at exit, the test counters |
//! | `json` | the JSON writer both documents use: each field's name beside its value |
//! | `policy` | which opens are managed: a pure decision (`policy::admit`) on flags, file type and path |
//! | `passthrough` | files, or the whole process, passed through for good |
//! | `registry` | the private descriptors of each file, shared by its descriptions and closed with the last one |
//! | `imports` | the functions the program's executable imports (wide-character stream functions keep glibc's own streams) |
//! | `identity` | stat helpers and file identity (device and inode, or path where inode numbers are made up) |
//! | `fskind` | what the shim learns of each filesystem from `/proc/self/mountinfo`, by the rules of the `conveyor-fskind` crate (fast local storage, left to the kernel in the default mode; s3fs and rclone take no second handle; rclone makes inode numbers up, so its files are keyed by path) |
//! | `fdtable` | fd -> managed description (`desc::Desc`): a flat array of atomic pointers in 1,024-entry chunks allocated on first use; an unmanaged fd costs two atomic loads, no lock, no allocation, no system call |
//! | `desc` | a managed open file description: the engine handle (reached only inside the guard), its private backend, whether code without hooks can reach it |
//! | `state` | the shim's state: the engine (a new one in a forked child), reached only inside the guard, and the selected paths |
//! | `settings` | settings from the environment, parsed once in the constructor |
//! | `guard` | the re-entry guard and its token (`guard::Inside`: the engine is reached only with one), errno saved and restored, panics turned into `EIO`; `guard::deferred` runs what was held back as a thread leaves the shim (the program's signal handlers); `guard::spawn_thread` starts every shim thread with signals blocked |
//! | `crash` | crash-safe write-behind: the journal in shared memory and the connection that hands it to the flusher |
//! | `backend` | the engine's storage: real libc calls on private `O_CLOEXEC` descriptors at high numbers, or on the program's own descriptor in the program's calls on it until a worker needs one (`backend::lend`) |
//! | `real` | every real function resolved with `dlsym(RTLD_NEXT)` in the constructor (`dlvsym` for `__fxstat`-era names); a missing one fails with `ENOSYS` |
//! | `log` | the `tracing` subscriber: one line per event in a fixed buffer, written with the real `write` to the shim's copy of stderr or `CONVEYOR_LOG_FILE`; per-call-site rate limit |
//!
//! **What is managed.** A regular file whose path, as the kernel resolved it
//! (`/proc/self/fd/N` after the real open: symlinks, `..`, relative paths and
//! `openat` dirfds included), lies under a `CONVEYOR_PATHS` entry, opened
//! without `O_PATH`, `O_DIRECT`, `O_SYNC` or `O_DSYNC`, and, in the default
//! mode (`CONVEYOR_MODE=auto`), not on fast local storage (`fskind`). Entries are
//! canonicalised at start; a relative entry is ignored with a message, a
//! missing one is kept (files created under it later are managed) with a
//! message. A bad size or log level in any `CONVEYOR_*` variable is reported
//! once on stderr, naming the variable and the expected form, and the shim
//! passes everything through. `CONVEYOR_DISABLE=1` loads it doing nothing.
//!
//! **Descriptors.** A file's only managed description (appending or not)
//! works through the program's own descriptor, and a private duplicate of it
//! at a high number once another thread needs one (no open or release for
//! the filesystem; an appending one appends through it, since the duplicate
//! shares `O_APPEND`; it is closed just before the program's own close, and
//! right after it if it was kept for the program's locks). Another
//! description of the same file reopens `/proc/self/fd/N` read-write (a new
//! description, so the program's offset and `O_APPEND` are not shared), and
//! that shared backend serves the file from then on, appending through an
//! `O_APPEND` reopen of its own; an `O_APPEND` descriptor that cannot be
//! reopened is left to the kernel, and a description that gets no private
//! descriptor at all passes its file through. Background workers use only private descriptors, so the program
//! can close and reuse its numbers freely. `dup`, `dup2`, `dup3` and
//! `fcntl(F_DUPFD*)` share one engine handle (and its offset), as the kernel
//! shares the description; every hooked call that returns a new descriptor
//! evicts a stale entry under that number.
//!
//! **Sizes.** `fstat`, `stat`, `lstat`, `fstatat`, `statx` and the old
//! `__fxstat`/`__xstat`/`__lxstat` names (and their 64-bit forms) report the
//! larger of the stored size and the end of pending data.
//!
//! **Kernel copies and other views.** `copy_file_range`, `sendfile` and `splice`
//! stay exact without giving up buffering: pending data is written and kernel
//! offsets set before the call, and afterwards the engine adopts the kernel's
//! offsets and drops what it cached of a file the kernel wrote. `mmap` and
//! `fdopen` of a managed descriptor, and `fcntl(F_SETFL)` changing `O_APPEND` or
//! adding `O_DIRECT`, flush, set the kernel offset, and hand that description
//! to the kernel for good. `pwritev2(RWF_APPEND)` flushes and goes to the
//! kernel; `RWF_DSYNC`/`RWF_SYNC` sync after the write.
//!
//! **Truncation by path.** `truncate` and an `O_TRUNC` open of a file with
//! pending data here wait for that data first, then drop cached data.
//!
//! **Locks.** Releasing a lock (`fcntl` `F_SETLK`/`F_SETLKW`/`F_OFD_SETLK*` with
//! `F_UNLCK`, `flock(LOCK_UN)`, `lockf(F_ULOCK)`) writes the file's pending
//! data first; taking one drops its cached read-ahead data.
//!
//! **Durability calls.** `fsync`/`fdatasync` write pending data, then call the
//! real function on the same file; `sync_file_range` with `WRITE` or
//! `WAIT_AFTER` writes pending data first; `sync`/`syncfs` write all pending
//! data first. `close` waits for the file's pending data and returns a deferred
//! write error (the real close always happens).
//!
//! **Other programs.** `fork`, `vfork`, `execve`, `execv`, `execvp`, `execvpe`,
//! `fexecve`, `posix_spawn`, `posix_spawnp`, `system` and `popen` are barriers:
//! all pending data is written, kernel offsets of managed descriptors set, and
//! cached data dropped before another program can look; the descriptions the
//! other program can reach are handed to the kernel (all of them at `fork`
//! and `vfork`; see Guarantees). `vfork` runs as
//! `fork` (a vfork child shares the parent's memory, and a hook in it must not
//! change the parent's state). A forked child passes the descriptions it
//! inherited through, and manages the files it opens itself with an engine
//! and workers of its own (see Guarantees); it keeps no live file for `top`.
//! `exit` (an `atexit` handler registered in the constructor, so it runs after
//! the program's own), the library destructor, `_exit` and `_Exit` write all
//! pending data.

// In unit tests the hooks are not exported (`cfg_attr(not(test),
// no_mangle)`), so most of the shim is unreachable from the test binary.
#![cfg_attr(test, allow(dead_code))]

mod backend;
mod counts;
mod crash;
mod desc;
mod fdtable;
mod fskind;
mod guard;
mod hooks;
mod identity;
mod imports;
mod json;
mod live;
mod log;
mod ops;
mod passthrough;
mod policy;
mod process;
mod real;
mod registry;
mod report;
mod settings;
mod state;

extern "C" fn on_exit() {
    process::at_exit(false);
}

/// Library constructor: resolve every real symbol, read the environment,
/// and register the exit flush early (before the program's own atexit
/// handlers, so it runs after them).
extern "C" fn init() {
    // The program starts with the errno it would have without the shim.
    let saved = real::errno();
    real::resolve_all();
    counts::init();
    state::init();
    if state::get().is_some() {
        log::init();
        process::fatal::install();
        ops::stream::widen_stdout();
    }
    // SAFETY: registers a function with no preconditions.
    unsafe { libc::atexit(on_exit) };
    real::set_errno(saved);
}

/// Library destructor: a last flush (e.g. after `dlclose` or when exit
/// handlers were skipped).
extern "C" fn fini() {
    process::at_exit(true);
}

// Not in unit tests: the test binary is not a preloaded program.
#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[cfg(not(test))]
#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = fini;
