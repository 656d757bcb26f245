//! conveyor-bench: the engine against the same work without it, in one run.
//!
//! The libconveyor scenario: 10 MiB in 4 KiB blocks against storage that
//! sleeps 2 ms per request, written and read once straight through the
//! backend (one request per block) and once through the engine. Then the
//! same on a real file in /dev/shm (or the temp dir) to show the cost of the
//! engine where storage is fast. Every run checks the data byte for byte.
//!
//! Last, the cost the shim adds to a descriptor it does not manage: this
//! binary reads one byte from /dev/zero in a loop, once plain and once with
//! `libconveyor_preload.so` preloaded (managing a temporary directory), and
//! the difference per call is reported (medians of 5 runs each).
//!
//! `cargo run --release -p conveyor-bench [-- --mib N --latency-ms L]`

use conveyor_engine::mock::{MemBackend, MockConfig, Op};
use conveyor_engine::{Backend, Config, Engine, FileBackend, FileKey, Mode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

struct Args {
    mib: usize,
    latency: Duration,
    local_mib: usize,
}

fn args() -> Args {
    let mut a = Args {
        mib: 10,
        latency: Duration::from_millis(2),
        local_mib: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().and_then(|v| v.parse::<f64>().ok());
        match (flag.as_str(), val) {
            ("--mib", Some(v)) if v >= 1.0 => a.mib = v as usize,
            ("--latency-ms", Some(v)) if v >= 0.0 => {
                a.latency = Duration::from_secs_f64(v / 1000.0)
            }
            ("--local-mib", Some(v)) if v >= 1.0 => a.local_mib = v as usize,
            _ => {
                eprintln!("usage: conveyor-bench [--mib N] [--latency-ms L] [--local-mib N]");
                std::process::exit(2);
            }
        }
    }
    a
}

/// Deterministic content: every 4 KiB block differs from its neighbours.
fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / BLOCK) as u8).wrapping_mul(31) ^ (i as u8))
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn sizes(reqs: &[conveyor_engine::mock::Request], ops: &[Op]) -> String {
    let r: Vec<usize> = reqs
        .iter()
        .filter(|r| ops.contains(&r.op))
        .map(|r| r.len)
        .collect();
    if r.is_empty() {
        return "0 requests".into();
    }
    let sum: usize = r.iter().sum();
    format!(
        "{} requests, {} KiB average, {} KiB largest",
        r.len(),
        sum / r.len() / 1024,
        r.iter().max().copied().unwrap_or(0) / 1024
    )
}

fn mock(latency: Duration, serial: bool) -> MockConfig {
    MockConfig {
        read_latency: latency,
        write_latency: latency,
        serial_writes: serial,
        ..MockConfig::default()
    }
}

/// One request per block, as a program without conveyor makes them.
fn raw_writes(content: &[u8], latency: Duration) -> Duration {
    let b = MemBackend::new(mock(latency, false));
    let t = Instant::now();
    for (i, chunk) in content.chunks(BLOCK).enumerate() {
        b.pwritev(&[chunk], (i * BLOCK) as u64).expect("mock write");
    }
    let d = t.elapsed();
    assert!(b.contents() == content, "raw write produced wrong data");
    d
}

fn raw_reads(content: &[u8], latency: Duration) -> Duration {
    let b = MemBackend::with_data(mock(latency, false), content.to_vec());
    let mut buf = vec![0u8; BLOCK];
    let t = Instant::now();
    for i in 0..content.len().div_ceil(BLOCK) {
        let n = b.pread(&mut buf, (i * BLOCK) as u64).expect("mock read");
        assert!(
            buf[..n] == content[i * BLOCK..i * BLOCK + n],
            "raw read wrong data"
        );
    }
    t.elapsed()
}

struct Written {
    app: Duration,
    e2e: Duration,
    p99: Duration,
    requests: String,
}

fn engine_writes(content: &[u8], latency: Duration, serial: bool) -> Written {
    let engine = Engine::new(Config::default());
    let b = Arc::new(MemBackend::new(mock(latency, serial)));
    let h = engine.open(
        FileKey { dev: 0, ino: 1 },
        "bench",
        b.clone() as Arc<dyn Backend>,
        Mode::WRITE,
    );
    let mut lat = Vec::with_capacity(content.len() / BLOCK);
    let t = Instant::now();
    for chunk in content.chunks(BLOCK) {
        let w = Instant::now();
        h.write(chunk).expect("engine write");
        lat.push(w.elapsed());
    }
    let app = t.elapsed();
    h.close().expect("engine close");
    let e2e = t.elapsed();
    assert!(b.contents() == content, "engine write produced wrong data");
    Written {
        app,
        e2e,
        p99: percentile(&mut lat, 0.99),
        requests: sizes(&b.requests(), &[Op::Write, Op::Append]),
    }
}

fn engine_reads(content: &[u8], latency: Duration) -> (Duration, String) {
    let engine = Engine::new(Config::default());
    let b = Arc::new(MemBackend::with_data(
        mock(latency, false),
        content.to_vec(),
    ));
    let h = engine.open(
        FileKey { dev: 0, ino: 2 },
        "bench",
        b.clone() as Arc<dyn Backend>,
        Mode::READ,
    );
    let mut buf = vec![0u8; BLOCK];
    let t = Instant::now();
    read_all(&h, &mut buf, content);
    let d = t.elapsed();
    (d, sizes(&b.requests(), &[Op::Read]))
}

/// Reads `h` to its end in `buf`-sized reads, checking every byte against
/// `content`.
fn read_all(h: &conveyor_engine::Handle, buf: &mut [u8], content: &[u8]) {
    let mut off = 0;
    loop {
        let n = h.read(buf).expect("engine read");
        if n == 0 {
            break;
        }
        assert!(
            buf[..n] == content[off..off + n],
            "engine read wrong data at {off}"
        );
        off += n;
    }
    assert_eq!(off, content.len(), "engine read stopped early");
}

fn local_dir() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// Median over `reps` of (write without engine, write with engine) to a real
/// file, 4 KiB per call.
fn local_writes(content: &[u8], reps: usize) -> (Duration, Duration) {
    use std::io::Write;
    let path = local_dir().join(format!("conveyor-bench-{}", std::process::id()));
    let (mut raw, mut eng) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        let mut f = std::fs::File::create(&path).expect("create bench file");
        for chunk in content.chunks(BLOCK) {
            f.write_all(chunk).expect("write");
        }
        drop(f);
        raw.push(t.elapsed());
        let _ = std::fs::remove_file(&path);
        let engine = Engine::new(Config::default());
        let t = Instant::now();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path);
        let backend = Arc::new(FileBackend::new(f.expect("create bench file"), None));
        let h = engine.open(
            FileKey {
                dev: 0,
                ino: 10 + rep as u64,
            },
            "local",
            backend,
            Mode::WRITE,
        );
        for chunk in content.chunks(BLOCK) {
            h.write(chunk).expect("engine write");
        }
        h.close().expect("engine close");
        eng.push(t.elapsed());
        assert!(
            std::fs::read(&path).expect("read back") == content,
            "local engine write wrong data"
        );
    }
    let _ = std::fs::remove_file(&path);
    (percentile(&mut raw, 0.5), percentile(&mut eng, 0.5))
}

fn local_reads(content: &[u8], reps: usize) -> (Duration, Duration) {
    use std::io::Read;
    let path = local_dir().join(format!("conveyor-bench-r-{}", std::process::id()));
    std::fs::write(&path, content).expect("write bench file");
    let (mut raw, mut eng) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; BLOCK];
    for rep in 0..reps {
        let t = Instant::now();
        let mut f = std::fs::File::open(&path).expect("open");
        let mut total = 0;
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n;
        }
        raw.push(t.elapsed());
        assert_eq!(total, content.len());
        let engine = Engine::new(Config::default());
        let t = Instant::now();
        let backend = Arc::new(FileBackend::new(
            std::fs::File::open(&path).expect("open"),
            None,
        ));
        let h = engine.open(
            FileKey {
                dev: 0,
                ino: 100 + rep as u64,
            },
            "local",
            backend,
            Mode::READ,
        );
        read_all(&h, &mut buf, content);
        eng.push(t.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    (percentile(&mut raw, 0.5), percentile(&mut eng, 0.5))
}

fn main() {
    if conveyor_bench::unmanaged::child_if_asked() {
        return;
    }
    let a = args();
    let content = data(a.mib << 20);
    let ms = a.latency.as_secs_f64() * 1000.0;
    println!(
        "conveyor-bench: {} MiB in {} KiB blocks, storage sleeping {ms} ms per request",
        a.mib,
        BLOCK / 1024
    );
    println!();
    println!(
        "| case | without conveyor | with conveyor | speedup | storage requests with conveyor |"
    );
    println!("|---|---|---|---|---|");

    let raw_w = raw_writes(&content, a.latency);
    let w = engine_writes(&content, a.latency, false);
    let s = engine_writes(&content, a.latency, true);
    let ratio = |raw: Duration, d: Duration| raw.as_secs_f64() / d.as_secs_f64().max(1e-9);
    println!(
        "| write, end to end (until close returns) | {} | {} | {:.0}x | {} |",
        secs(raw_w),
        secs(w.e2e),
        ratio(raw_w, w.e2e),
        w.requests
    );
    println!(
        "| write, application time (write calls only) | {} | {} | {:.0}x | p99 write() {:.1} us |",
        secs(raw_w),
        secs(w.app),
        ratio(raw_w, w.app),
        w.p99.as_secs_f64() * 1e6
    );
    println!(
        "| write, end to end, writes serialised as on FUSE | {} | {} | {:.0}x | {} |",
        secs(raw_w),
        secs(s.e2e),
        ratio(raw_w, s.e2e),
        s.requests
    );
    let raw_r = raw_reads(&content, a.latency);
    let (r, rreq) = engine_reads(&content, a.latency);
    println!(
        "| sequential read | {} | {} | {:.0}x | {} |",
        secs(raw_r),
        secs(r),
        ratio(raw_r, r),
        rreq
    );

    let local = data(a.local_mib << 20);
    let dir = local_dir();
    let (lw_raw, lw_eng) = local_writes(&local, 5);
    let (lr_raw, lr_eng) = local_reads(&local, 5);
    println!(
        "| {} MiB write to a real file in {} (median of 5) | {} | {} | {:.2}x | |",
        a.local_mib,
        dir.display(),
        secs(lw_raw),
        secs(lw_eng),
        ratio(lw_raw, lw_eng)
    );
    println!(
        "| {} MiB read of a real file in {} (median of 5) | {} | {} | {:.2}x | |",
        a.local_mib,
        dir.display(),
        secs(lr_raw),
        secs(lr_eng),
        ratio(lr_raw, lr_eng)
    );
    let me = std::env::current_exe().ok();
    let so = me
        .as_ref()
        .and_then(|m| m.parent())
        .map(|d| d.join("libconveyor_preload.so"))
        .filter(|so| so.exists());
    match (me, so) {
        (Some(me), Some(so)) => {
            match conveyor_bench::unmanaged::measure(&me, &so, &std::env::temp_dir(), 5, false) {
                Ok(u) => {
                    for c in &u.costs {
                        println!(
                            "| {}() of an unmanaged fd (/dev/zero, median of 5 x 2,000,000) | {:.1} ns | {:.1} ns | {:+.1} ns per call | |",
                            c.call, c.ns_plain, c.ns_shim, c.ns_added
                        );
                    }
                }
                Err(e) => println!("| unmanaged fd | (measurement failed: {e}) | | | |"),
            }
        }
        _ => println!("| read() of an unmanaged fd | (libconveyor_preload.so not built: cargo build --release) | | | |"),
    }
}
