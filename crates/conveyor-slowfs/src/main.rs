//! conveyor-slowfs: slow storage on demand. A FUSE passthrough over a
//! backing directory that sleeps a configurable latency per request (reads,
//! writes, fsync and metadata separately), serves requests concurrently
//! like a network filesystem, keeps the kernel's write-back cache off (each
//! write() reaches it), negotiates 1 MiB requests, counts requests by kind
//! and size, and injects errors on demand.
//!
//! ```text
//! conveyor-slowfs [--latency-ms L] [--read-ms L] [--write-ms L] [--fsync-ms L]
//!                 [--meta-ms L] [--attr-ttl-ms T] [--threads N] [--direct-io] [--stats FILE]
//!                 [--enospc-after BYTES] [--eio-prob P] [--seed S] [--short-writes]
//!                 BACKING_DIR MOUNTPOINT
//! ```
//!
//! Runs until SIGTERM, SIGINT or SIGHUP (then unmounts). The counters are
//! written to standard error and to `--stats FILE` at exit and on SIGUSR1.

mod faults;
mod fs;
mod nodes;
mod stats;

use faults::{FaultConfig, Faults};
use fs::{Latency, SlowFs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static DUMP: AtomicBool = AtomicBool::new(false);
static QUIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        DUMP.store(true, Ordering::Relaxed);
    } else {
        QUIT.store(true, Ordering::Relaxed);
    }
}

struct Args {
    latency: Latency,
    ttl: Duration,
    threads: usize,
    direct_io: bool,
    stats: Option<PathBuf>,
    faults: FaultConfig,
    backing: PathBuf,
    mountpoint: PathBuf,
}

fn usage(msg: &str) -> ! {
    eprintln!("conveyor-slowfs: {msg}");
    eprintln!(
        "usage: conveyor-slowfs [--latency-ms L] [--read-ms L] [--write-ms L] [--fsync-ms L] [--meta-ms L] \
         [--attr-ttl-ms T] [--threads N] [--direct-io] [--stats FILE] [--enospc-after BYTES] [--eio-prob P] [--seed S] \
         [--short-writes] BACKING_DIR MOUNTPOINT"
    );
    std::process::exit(2);
}

fn ms(v: &str, flag: &str) -> Duration {
    match v.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Duration::from_secs_f64(x / 1000.0),
        _ => usage(&format!(
            "{flag} expects milliseconds (a number >= 0), got {v:?}"
        )),
    }
}

fn parse() -> Args {
    let mut a = Args {
        latency: Latency::default(),
        ttl: fs::TTL,
        threads: 16,
        direct_io: false,
        stats: None,
        faults: FaultConfig::default(),
        backing: PathBuf::new(),
        mountpoint: PathBuf::new(),
    };
    let mut pos = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = |f: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{f} needs a value")))
        };
        match f.as_str() {
            "--latency-ms" => {
                let d = ms(&val(&f), &f);
                a.latency = Latency {
                    read: d,
                    write: d,
                    fsync: d,
                    meta: d,
                };
            }
            "--read-ms" => a.latency.read = ms(&val(&f), &f),
            "--write-ms" => a.latency.write = ms(&val(&f), &f),
            "--fsync-ms" => a.latency.fsync = ms(&val(&f), &f),
            "--meta-ms" => a.latency.meta = ms(&val(&f), &f),
            "--attr-ttl-ms" => a.ttl = ms(&val(&f), &f),
            "--threads" => {
                a.threads = val(&f)
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .unwrap_or_else(|| usage("--threads expects >= 1"))
            }
            "--direct-io" => a.direct_io = true,
            "--stats" => a.stats = Some(PathBuf::from(val(&f))),
            "--enospc-after" => {
                a.faults.enospc_after = Some(
                    val(&f)
                        .parse()
                        .unwrap_or_else(|_| usage("--enospc-after expects bytes")),
                )
            }
            "--eio-prob" => {
                a.faults.eio_prob = val(&f)
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=1.0).contains(p))
                    .unwrap_or_else(|| usage("--eio-prob expects a probability in [0, 1]"))
            }
            "--seed" => {
                a.faults.seed = val(&f)
                    .parse()
                    .unwrap_or_else(|_| usage("--seed expects an integer"))
            }
            "--short-writes" => a.faults.short_writes = true,
            "-h" | "--help" => usage("help"),
            s if s.starts_with("--") => usage(&format!("unknown option {s}")),
            _ => pos.push(PathBuf::from(f)),
        }
    }
    if pos.len() != 2 {
        usage("expected BACKING_DIR and MOUNTPOINT");
    }
    a.mountpoint = pos.pop().unwrap_or_default();
    a.backing = pos.pop().unwrap_or_default();
    a
}

fn dump(stats: &stats::Stats, file: Option<&PathBuf>) {
    let r = stats.report();
    eprint!("conveyor-slowfs requests:\n{r}");
    if let Some(f) = file {
        if let Err(e) = std::fs::write(f, &r) {
            eprintln!("conveyor-slowfs: cannot write {}: {e}", f.display());
        }
    }
}

fn main() {
    let a = parse();
    let backing = std::fs::canonicalize(&a.backing)
        .unwrap_or_else(|e| usage(&format!("backing dir {}: {e}", a.backing.display())));
    if !backing.is_dir() {
        usage(&format!(
            "backing dir {} is not a directory",
            backing.display()
        ));
    }
    let stats = Arc::new(stats::Stats::new());
    let fs = SlowFs::new(
        backing.clone(),
        a.latency,
        a.direct_io,
        Arc::clone(&stats),
        Faults::new(a.faults.clone()),
    )
    .with_ttl(a.ttl);
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        fuser::MountOption::FSName("conveyor-slowfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    cfg.n_threads = Some(a.threads);
    for s in [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installs a handler that only stores to atomics.
        unsafe { libc::signal(s, on_signal as *const () as libc::sighandler_t) };
    }
    let session = match fuser::spawn_mount(fs, &a.mountpoint, &cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "conveyor-slowfs: cannot mount on {}: {e}",
                a.mountpoint.display()
            );
            std::process::exit(1);
        }
    };
    eprintln!(
        "conveyor-slowfs: {} on {} (latency {:?}, {} threads{})",
        backing.display(),
        a.mountpoint.display(),
        a.latency,
        a.threads,
        if a.direct_io { ", direct-io" } else { "" }
    );
    while !QUIT.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if DUMP.swap(false, Ordering::Relaxed) {
            dump(&stats, a.stats.as_ref());
        }
    }
    if let Err(e) = session.umount_and_join() {
        eprintln!("conveyor-slowfs: unmount: {e}");
    }
    dump(&stats, a.stats.as_ref());
}
