//! The live stats file `conveyor top` reads: `DIR/<pid>.live`, a
//! `conveyor-live/1` JSON document padded to a fixed size and rewritten in
//! place (one `pwrite` at offset 0) at most once a second by a thread of
//! the shim, while the process has managed files. No server, no socket.
//!
//! DIR is `CONVEYOR_LIVE_DIR`, else `/dev/shm/conveyor-$UID` (else
//! `$TMPDIR` or `/tmp` in place of `/dev/shm`). It is created 0700; an
//! existing one must be a directory (not a symbolic link) owned by the user
//! and not writable by group or others, or live stats stay off with one
//! warning. The file is created `O_NOFOLLOW|O_CLOEXEC`, mode 0600, at a
//! high descriptor, and removed at exit and before an exec.

use crate::json::Obj;
use crate::report::{command, errors_fields};
use crate::{backend, guard, real, state};
use conveyor_engine::{Engine, Gauges, Snapshot};
use libc::c_int;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Schema identifier of the live file.
pub const SCHEMA: &str = "conveyor-live/1";
/// Size of every record: readers get one whole document (JSON padded with
/// spaces) whatever the previous one was.
const RECORD: usize = 2048;
/// Longest command line kept, so a record always fits.
const MAX_COMMAND: usize = 512;

static STARTED: Once = Once::new();
static STOPPED: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(-1);
// The process the file belongs to: a forked child inherits PATH but must
// never remove its parent's file.
static OWNER: AtomicI32 = AtomicI32::new(0);
static PATH: OnceLock<CString> = OnceLock::new();

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The directory for this user's live files, or `None` when turned off
/// (`CONVEYOR_LIVE_DIR=off`).
pub fn dir() -> Option<String> {
    match std::env::var("CONVEYOR_LIVE_DIR") {
        Ok(d) if d == "off" => None,
        Ok(d) if !d.is_empty() => Some(d),
        _ => {
            let base = if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm".to_string()
            } else {
                std::env::var("TMPDIR")
                    .ok()
                    .filter(|t| t.starts_with('/'))
                    .unwrap_or_else(|| "/tmp".into())
            };
            Some(format!("{base}/conveyor-{}", euid()))
        }
    }
}

/// Opens `dir` (creating it 0700) and checks it is safe to write in:
/// a real directory, owned by us, not writable by group or others.
fn open_dir(dir: &str) -> Result<c_int, String> {
    let c = CString::new(dir).map_err(|_| "contains a NUL byte".to_string())?;
    // SAFETY: `c` is NUL-terminated; mkdir is not hooked.
    unsafe { libc::mkdir(c.as_ptr(), 0o700) };
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: as above; the real open bypasses the hooks.
    let fd = unsafe { real::open(c.as_ptr(), flags, 0) };
    if fd < 0 {
        let e = real::errno();
        return Err(if e == libc::ELOOP || e == libc::ENOTDIR {
            "is a symbolic link or not a directory".into()
        } else {
            format!("cannot be opened: {}", std::io::Error::from_raw_os_error(e))
        });
    }
    let st = crate::identity::fstat(fd);
    let bad = match st {
        None => Some("cannot be examined".to_string()),
        Some(st) if st.st_uid != euid() => Some(format!(
            "is owned by uid {}, not by uid {}",
            st.st_uid,
            euid()
        )),
        Some(st) if st.st_mode & 0o022 != 0 => Some(format!(
            "is writable by group or others (mode {:o})",
            st.st_mode & 0o777
        )),
        Some(_) => None,
    };
    match bad {
        None => Ok(fd),
        Some(why) => {
            // SAFETY: closes our own descriptor.
            unsafe { real::close(fd) };
            Err(why)
        }
    }
}

/// Creates this process's live file in `dir`; its descriptor (high,
/// tracked) and path.
fn create(dir: &str, pid: i32) -> Result<(c_int, CString), String> {
    let dfd = open_dir(dir)?;
    let name = CString::new(format!("{pid}.live")).map_err(|_| "bad name".to_string())?;
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated and `dfd` is our open directory.
    let fd = unsafe { real::openat(dfd, name.as_ptr(), flags, 0o600) };
    let err = real::errno();
    // SAFETY: closes our own descriptor.
    unsafe { real::close(dfd) };
    if fd < 0 {
        return Err(format!(
            "{pid}.live cannot be created: {}",
            std::io::Error::from_raw_os_error(err)
        ));
    }
    let high = backend::place_high(fd);
    if high < 0 {
        return Err("no high descriptor number is free".into());
    }
    let path = CString::new(format!("{dir}/{pid}.live")).map_err(|_| "bad path".to_string())?;
    Ok((backend::track(high), path))
}

/// Process start time in clock ticks since boot (field 22 of
/// /proc/self/stat): with the pid it names this process, not a later one
/// that reuses the pid.
fn start_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().nth(19)?.parse().ok()
        })
        .unwrap_or(0)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts live stats with the first managed file (called in the program's
/// thread, like the other private opens). A forked child has none: another
/// thread of the parent may have been inside `call_once` at the fork, and
/// the child would wait for it forever.
pub fn ensure_started() {
    if crate::state::in_forked_child() {
        return;
    }
    STARTED.call_once(|| {
        let Some(dir) = dir() else { return };
        if !dir.starts_with('/') {
            tracing::warn!("CONVEYOR_LIVE_DIR={dir:?} is not an absolute path; live stats are off");
            return;
        }
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let (fd, path) = match create(&dir, pid) {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(
                    "live stats are off: {dir} {why}; `conveyor top` will not show pid {pid}"
                );
                return;
            }
        };
        let mut cmd = command();
        if cmd.len() > MAX_COMMAND {
            let mut cut = MAX_COMMAND;
            while !cmd.is_char_boundary(cut) {
                cut -= 1;
            }
            cmd.truncate(cut);
        }
        let me = Fixed {
            pid,
            start_ticks: start_ticks(),
            since_ms: unix_ms(),
            command: cmd,
        };
        FD.store(fd, Ordering::Release);
        OWNER.store(pid, Ordering::Release);
        let _ = PATH.set(path);
        let spawned = guard::spawn_thread("conveyor-live", 128 << 10, move || refresher(me));
        if spawned.is_err() {
            stop();
        }
    });
}

/// Removes the live file (exit, exec); later refreshes, if any, go to the
/// unlinked file.
pub fn stop() {
    // SAFETY: getpid has no preconditions.
    if OWNER.load(Ordering::Acquire) != unsafe { libc::getpid() } {
        return;
    }
    if STOPPED.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(p) = PATH.get() {
        // SAFETY: a NUL-terminated path in our own directory; unlink is not hooked.
        unsafe { libc::unlink(p.as_ptr()) };
    }
}

/// What does not change between refreshes.
struct Fixed {
    pid: i32,
    start_ticks: u64,
    since_ms: u64,
    command: String,
}

/// Counters at the previous refresh, for rates and recent latency.
struct Prev {
    at: Instant,
    s: Snapshot,
}

fn refresher(me: Fixed) {
    let mut prev: Option<Prev> = None;
    let mut was_idle = false;
    loop {
        if STOPPED.load(Ordering::Acquire) || state::owner() != me.pid {
            return;
        }
        let Some(shim) = state::get() else { return };
        let idle = guard::within(|i| {
            let engine = shim.engine(i);
            let g = engine.gauges();
            // Idle (no managed file open): one last refresh, then quiet.
            if !(g.open_files == 0 && was_idle) {
                prev = Some(refresh(&me, engine, g, prev.take()));
            }
            g.open_files == 0
        });
        was_idle = idle.unwrap_or(was_idle);
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn refresh(me: &Fixed, engine: &Engine, g: Gauges, prev: Option<Prev>) -> Prev {
    let now = Instant::now();
    let s = engine.totals(false);
    let doc = document(me, &s, g, prev.as_ref().map(|p| (now - p.at, &p.s)));
    let mut rec = doc.into_bytes();
    rec.truncate(RECORD - 1);
    rec.resize(RECORD - 1, b' ');
    rec.push(b'\n');
    let fd = FD.load(Ordering::Acquire);
    // SAFETY: writes a live buffer to our own descriptor.
    unsafe { real::pwrite64(fd, rec.as_ptr().cast(), rec.len(), 0) };
    Prev { at: now, s }
}

/// The `conveyor-live/1` document. Rates and recent latencies cover the
/// time since the previous refresh (zero on the first).
fn document(me: &Fixed, s: &Snapshot, g: Gauges, prev: Option<(Duration, &Snapshot)>) -> String {
    let rate = |cur: u64, old: fn(&Snapshot) -> u64| match prev {
        Some((dt, p)) if dt.as_secs_f64() > 0.0 => {
            cur.saturating_sub(old(p)) as f64 / dt.as_secs_f64()
        }
        _ => 0.0,
    };
    let recent = |sum: u64, count: u64, old: fn(&Snapshot) -> (u64, u64)| {
        let (os, oc) = prev.map_or((0, 0), |(_, p)| old(p));
        sum.saturating_sub(os)
            .checked_div(count.saturating_sub(oc))
            .unwrap_or(0)
    };
    let mut o = String::with_capacity(RECORD);
    let mut doc = Obj::new(&mut o);
    doc.str("schema", SCHEMA)
        .int("pid", me.pid)
        .int("start_ticks", me.start_ticks)
        .int("since_unix_ms", me.since_ms)
        .int("refreshed_unix_ms", unix_ms())
        .str("command", &me.command)
        .int("open_files", g.open_files as u64)
        .int("app_write_bytes", s.app_write_bytes)
        .int("app_read_bytes", s.app_read_bytes)
        .int("storage_write_bytes", s.storage_write_bytes)
        .int("storage_read_bytes", s.storage_read_bytes)
        .int("storage_write_requests", s.write_sizes.count)
        .int("storage_read_requests", s.read_sizes.count)
        .float(
            "app_write_bytes_per_s",
            rate(s.app_write_bytes, |p| p.app_write_bytes),
            0,
        )
        .float(
            "app_read_bytes_per_s",
            rate(s.app_read_bytes, |p| p.app_read_bytes),
            0,
        )
        .float(
            "storage_write_bytes_per_s",
            rate(s.storage_write_bytes, |p| p.storage_write_bytes),
            0,
        )
        .float(
            "storage_read_bytes_per_s",
            rate(s.storage_read_bytes, |p| p.storage_read_bytes),
            0,
        )
        .int("write_buffered_bytes", g.write_buffered as u64)
        .int("write_limit_bytes", g.write_limit as u64)
        .int("memory_used_bytes", g.memory_used as u64)
        .int("memory_cap_bytes", g.memory_cap as u64)
        .int(
            "storage_write_recent_ns",
            recent(s.storage_write_ns.sum, s.storage_write_ns.count, |p| {
                (p.storage_write_ns.sum, p.storage_write_ns.count)
            }),
        )
        .int(
            "storage_read_recent_ns",
            recent(s.storage_read_ns.sum, s.storage_read_ns.count, |p| {
                (p.storage_read_ns.sum, p.storage_read_ns.count)
            }),
        )
        .int("storage_write_p99_ns", s.storage_write_ns.p99)
        .int("storage_read_p99_ns", s.storage_read_ns.p99)
        .int("buffer_full_waits", s.buffer_full_waits);
    errors_fields(&mut doc, s);
    doc.end();
    o
}
