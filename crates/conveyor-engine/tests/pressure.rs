//! Memory bounds, back-pressure and ordering of large writes.

use conveyor_engine::mock::{pattern, MemBackend, MockConfig, Op};
use conveyor_engine::{Backend, Config, Engine, FileKey, Mode};
use std::sync::Arc;
use std::time::Duration;

/// 8 threads write 40 files each under a process cap far smaller than the
/// data: every writer finishes, nothing is lost, the cap is never exceeded
/// and all memory is given back.
#[test]
fn many_files_under_a_small_cap() {
    let cfg = Config {
        max_memory: 512 << 10,
        write_buffer: 256 << 10,
        initial_write_buffer: 64 << 10,
        ..Config::default()
    };
    let engine = Arc::new(Engine::new(cfg));
    let latency = MockConfig {
        write_latency: Duration::from_micros(200),
        ..MockConfig::default()
    };
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let engine = Arc::clone(&engine);
            let latency = latency.clone();
            std::thread::spawn(move || {
                let mut files = Vec::new();
                for f in 0..40u64 {
                    let b = Arc::new(MemBackend::new(latency.clone()));
                    let key = FileKey { dev: t, ino: f };
                    let h = engine.open(key, "f", b.clone() as Arc<dyn Backend>, Mode::WRITE);
                    let data = pattern(t * 1000 + f, 100_000 + (f as usize) * 1000);
                    for c in data.chunks(3000) {
                        assert_eq!(h.write(c), Ok(c.len()));
                    }
                    files.push((h, b, data));
                }
                for (h, b, data) in files {
                    assert_eq!(h.close(), Ok(()));
                    assert!(b.contents() == data, "file content differs");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let totals = engine.totals(false);
    assert!(
        totals.buffer_peak <= engine.memory_cap() as u64,
        "peak {} over cap",
        totals.buffer_peak
    );
    assert!(
        totals.buffer_full_waits > 0,
        "the cap never made a writer wait"
    );
    assert_eq!(engine.memory_used(), 0, "memory not given back");
}

/// A write larger than the buffer goes straight to storage, after the
/// pending data it overlaps: the older small write must not land on top.
#[test]
fn large_write_is_ordered_after_pending_data() {
    let cfg = Config {
        write_buffer: 128 << 10,
        ..Config::default()
    };
    let engine = Engine::new(cfg);
    let b = Arc::new(MemBackend::new(MockConfig {
        write_latency: Duration::from_millis(5),
        ..MockConfig::default()
    }));
    let h = engine.open(
        FileKey { dev: 1, ino: 1 },
        "big",
        b.clone() as Arc<dyn Backend>,
        Mode::READ_WRITE,
    );
    let small = vec![1u8; 8192];
    let big = pattern(3, 1 << 20);
    h.write(&small).unwrap();
    h.write(&small).unwrap();
    h.seek(std::io::SeekFrom::Start(0)).unwrap();
    h.write(&big).unwrap();
    let after = vec![2u8; 4096];
    h.pwrite(&after, 100).unwrap();
    h.close().unwrap();
    let mut want = big.clone();
    want[100..100 + 4096].copy_from_slice(&after);
    assert!(b.contents() == want);
    let direct = b
        .requests()
        .iter()
        .filter(|r| r.op == Op::Write && r.len == big.len())
        .count();
    assert_eq!(
        direct, 1,
        "the large write was not written directly in one request"
    );
}

/// A fast writer makes the per-file buffer grow from its small start, and
/// storage that serves writes in parallel gets several at once.
#[test]
fn buffer_grows_and_writes_overlap() {
    // Overlap is off by default (see Config::max_inflight); it still works
    // where it is asked for.
    let engine = Engine::new(Config {
        max_inflight: 8,
        ..Config::default()
    });
    let b = Arc::new(MemBackend::new(MockConfig {
        write_latency: Duration::from_millis(2),
        ..MockConfig::default()
    }));
    let h = engine.open(
        FileKey { dev: 1, ino: 2 },
        "grow",
        b.clone() as Arc<dyn Backend>,
        Mode::WRITE,
    );
    let data = pattern(9, 12 << 20);
    for c in data.chunks(4096) {
        h.write(c).unwrap();
    }
    let grown = h.stats(false).buffer_limit;
    h.close().unwrap();
    assert!(b.contents() == data);
    assert!(
        grown > Config::default().initial_write_buffer as u64,
        "buffer limit stayed at {grown}"
    );
    assert!(b.max_in_flight() >= 2, "writes never overlapped");
    let writes: Vec<usize> = b
        .requests()
        .iter()
        .filter(|r| r.op == Op::Write)
        .map(|r| r.len)
        .collect();
    assert!(
        writes.iter().all(|n| *n <= Config::default().io_size),
        "a request exceeded io_size"
    );
}

/// Two files' appends and positional writes interleave under one engine with
/// a cap smaller than either file's buffer: back-pressure, not failure.
#[test]
fn appends_under_pressure_stay_whole_and_ordered() {
    let cfg = Config {
        max_memory: 64 << 10,
        write_buffer: 64 << 10,
        ..Config::default()
    };
    let engine = Engine::new(cfg);
    let b = Arc::new(MemBackend::new(MockConfig {
        write_latency: Duration::from_micros(300),
        max_io: 5000,
        ..MockConfig::default()
    }));
    let h = engine.open(
        FileKey { dev: 2, ino: 2 },
        "log",
        b.clone() as Arc<dyn Backend>,
        Mode::APPEND,
    );
    let mut want = Vec::new();
    for i in 0..2000u32 {
        let line = format!("record {i:05} {}\n", "x".repeat((i % 97) as usize));
        assert_eq!(h.write(line.as_bytes()), Ok(line.len()));
        want.extend_from_slice(line.as_bytes());
    }
    h.close().unwrap();
    assert!(b.contents() == want);
    assert!(
        b.requests().iter().all(|r| r.op != Op::Write),
        "an append was written with pwrite"
    );
}
