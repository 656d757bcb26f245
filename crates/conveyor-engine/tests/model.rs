//! Model-based test: random sequences of write/pwrite/read/pread/seek/
//! truncate/flush/append/size across several handles of one file, checked
//! against a plain in-memory file after every read and, at the end, on
//! storage. Storage is a mock that splits requests (short I/O), injects
//! EINTR and, in one variant, adds latency so batches and prefetches overlap
//! the application's operations. The same sequences run on a real file
//! with the io_uring executor (`Executor::Uring`), where the kernel allows
//! it.

use conveyor_engine::mock::{MemBackend, MockConfig};
mod common;

use conveyor_engine::{Backend, Config, Engine, Executor, FileKey, Handle, Mode};
use proptest::prelude::*;
use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

const SPAN: u64 = 320 << 10;

#[derive(Clone, Debug)]
enum Op {
    Write { h: usize, len: usize },
    Pwrite { h: usize, off: u64, len: usize },
    Read { h: usize, len: usize },
    Pread { h: usize, off: u64, len: usize },
    Seek { h: usize, to: SeekFrom },
    Truncate { h: usize, len: u64 },
    Flush { h: usize },
    Sync { h: usize, data_only: bool },
    Size { h: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..3usize;
    // The rare large lengths exceed the small configs' write buffer and so
    // take the direct path.
    let len = prop_oneof![
        3 => 1..64usize,
        3 => 1..5000usize,
        3 => 4096..4097usize,
        3 => 1..140_000usize,
        1 => 150_000..300_000usize,
    ];
    prop_oneof![
        6 => (h.clone(), len.clone()).prop_map(|(h, len)| Op::Write { h, len }),
        4 => (h.clone(), 0..SPAN, len.clone()).prop_map(|(h, off, len)| Op::Pwrite { h, off, len }),
        5 => (h.clone(), len.clone()).prop_map(|(h, len)| Op::Read { h, len }),
        4 => (h.clone(), 0..SPAN, len).prop_map(|(h, off, len)| Op::Pread { h, off, len }),
        3 => (h.clone(), prop_oneof![
            (0..SPAN).prop_map(SeekFrom::Start),
            (-20_000i64..20_000).prop_map(SeekFrom::Current),
            (-20_000i64..5_000).prop_map(SeekFrom::End),
        ]).prop_map(|(h, to)| Op::Seek { h, to }),
        1 => (h.clone(), 0..SPAN).prop_map(|(h, len)| Op::Truncate { h, len }),
        1 => h.clone().prop_map(|h| Op::Flush { h }),
        1 => (h.clone(), any::<bool>()).prop_map(|(h, data_only)| Op::Sync { h, data_only }),
        1 => h.prop_map(|h| Op::Size { h }),
    ]
}

/// The reference: a byte vector and each handle's offset.
struct Model {
    data: Vec<u8>,
    pos: [u64; 3],
    append: [bool; 3],
}

impl Model {
    fn write_at(&mut self, off: u64, buf: &[u8]) {
        let end = off as usize + buf.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[off as usize..end].copy_from_slice(buf);
    }

    fn read_at(&self, off: u64, len: usize) -> Vec<u8> {
        let start = (off as usize).min(self.data.len());
        let end = (start + len).min(self.data.len());
        self.data[start..end].to_vec()
    }
}

fn pattern(stamp: &mut u32, len: usize) -> Vec<u8> {
    *stamp += 1;
    let s = *stamp;
    (0..len)
        .map(|i| (s.wrapping_mul(31) as usize + i / 7) as u8 | 1)
        .collect()
}

fn run(ops: &[Op], mock: MockConfig, cfg: Config) -> Result<(), TestCaseError> {
    let storage = Arc::new(MemBackend::new(mock));
    let contents = {
        let s = Arc::clone(&storage);
        move || s.contents()
    };
    run_on(ops, storage, &contents, cfg)
}

/// As `run`, on a real file through the io_uring executor.
fn run_ring(ops: &[Op], cfg: Config) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model");
    let storage = common::file_backend(&path);
    let contents = || std::fs::read(&path).expect("read back");
    let cfg = Config {
        executor: Executor::Uring,
        ..cfg
    };
    run_on(ops, storage, &contents, cfg)
}

fn run_on(
    ops: &[Op],
    storage: Arc<dyn Backend>,
    contents: &dyn Fn() -> Vec<u8>,
    cfg: Config,
) -> Result<(), TestCaseError> {
    let engine = Engine::new(cfg);
    let key = FileKey { dev: 7, ino: 7 };
    let modes = [
        Mode::READ_WRITE,
        Mode::READ_WRITE,
        Mode {
            read: true,
            write: true,
            append: true,
        },
    ];
    let handles: Vec<Handle> = modes
        .iter()
        .map(|m| engine.open(key, "model", Arc::clone(&storage), *m))
        .collect();
    let mut m = Model {
        data: Vec::new(),
        pos: [0; 3],
        append: [false, false, true],
    };
    let mut stamp = 0u32;
    for (step, op) in ops.iter().enumerate() {
        match op.clone() {
            Op::Write { h, len } => {
                let buf = pattern(&mut stamp, len);
                prop_assert_eq!(handles[h].write(&buf), Ok(len), "step {}", step);
                let at = if m.append[h] {
                    m.data.len() as u64
                } else {
                    m.pos[h]
                };
                m.write_at(at, &buf);
                m.pos[h] = at + len as u64;
            }
            Op::Pwrite { h, off, len } => {
                let buf = pattern(&mut stamp, len);
                prop_assert_eq!(handles[h].pwrite(&buf, off), Ok(len), "step {}", step);
                let at = if m.append[h] {
                    m.data.len() as u64
                } else {
                    off
                };
                m.write_at(at, &buf);
            }
            Op::Read { h, len } => {
                let mut buf = vec![0xEE; len];
                let n = handles[h]
                    .read(&mut buf)
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let want = m.read_at(m.pos[h], len);
                prop_assert_eq!(n, want.len(), "step {} read at {}", step, m.pos[h]);
                prop_assert!(
                    buf[..n] == want[..],
                    "step {}: read at {} differs",
                    step,
                    m.pos[h]
                );
                m.pos[h] += n as u64;
            }
            Op::Pread { h, off, len } => {
                let mut buf = vec![0xEE; len];
                let n = handles[h]
                    .pread(&mut buf, off)
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let want = m.read_at(off, len);
                prop_assert_eq!(n, want.len(), "step {} pread at {}", step, off);
                prop_assert!(
                    buf[..n] == want[..],
                    "step {}: pread at {} differs",
                    step,
                    off
                );
            }
            Op::Seek { h, to } => {
                let target = match to {
                    SeekFrom::Start(n) => Some(n as i64),
                    SeekFrom::Current(d) => Some(m.pos[h] as i64 + d),
                    SeekFrom::End(d) => Some(m.data.len() as i64 + d),
                };
                let got = handles[h].seek(to);
                match target {
                    Some(t) if t >= 0 => {
                        prop_assert_eq!(got, Ok(t as u64), "step {}", step);
                        m.pos[h] = t as u64;
                    }
                    _ => prop_assert!(got.is_err(), "step {}: negative seek accepted", step),
                }
            }
            Op::Truncate { h, len } => {
                prop_assert_eq!(handles[h].truncate(len), Ok(()), "step {}", step);
                m.data.resize(len as usize, 0);
            }
            Op::Flush { h } => {
                prop_assert_eq!(handles[h].flush(), Ok(()), "step {}", step);
                prop_assert!(
                    contents() == m.data,
                    "step {}: storage differs after flush",
                    step
                );
            }
            Op::Sync { h, data_only } => {
                prop_assert_eq!(handles[h].sync(data_only), Ok(()), "step {}", step);
                prop_assert!(
                    contents() == m.data,
                    "step {}: storage differs after sync",
                    step
                );
            }
            Op::Size { h } => {
                prop_assert_eq!(handles[h].size(), Ok(m.data.len() as u64), "step {}", step);
            }
        }
    }
    for h in handles {
        prop_assert_eq!(h.close(), Ok(()));
    }
    prop_assert!(contents() == m.data, "storage differs at the end");
    Ok(())
}

fn small_config() -> Config {
    Config {
        write_buffer: 192 << 10,
        initial_write_buffer: 64 << 10,
        io_size: 16 << 10,
        read_ahead: 64 << 10,
        initial_read_ahead: 4 << 10,
        max_memory: 1 << 20,
        max_inflight: 4,
        workers: 4,
        executor: Executor::Pool,
        // Below the four a file may keep, so the filesystem's limit decides.
        fs_inflight: 3,
        // Short enough that writers under latency also wait for age.
        max_age: Duration::from_millis(5),
        defer_limit: Duration::from_millis(1),
        revalidate_after: Duration::from_millis(5),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// No latency: the flusher races the application freely.
    #[test]
    fn engine_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        let mock = MockConfig { max_io: 7000, eintr_every: 5, ..MockConfig::default() };
        run(&ops, mock, small_config())?;
    }

    /// Default sizes: large buffers, nothing forced out early.
    #[test]
    fn engine_matches_model_default_config(ops in prop::collection::vec(op(), 1..150)) {
        run(&ops, MockConfig::default(), Config::default())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// A process-wide cap of one file buffer, shared with read-ahead: writes
    /// wait, or go straight to storage when read-ahead holds the memory.
    #[test]
    fn engine_matches_model_with_tight_memory(ops in prop::collection::vec(op(), 1..200)) {
        let mock = MockConfig { write_latency: Duration::from_micros(100), max_io: 5000, ..MockConfig::default() };
        let cfg = Config { write_buffer: 128 << 10, max_memory: 128 << 10, ..small_config() };
        run(&ops, mock, cfg)?;
    }

    /// Latency: several batches and prefetches are in flight during reads.
    #[test]
    fn engine_matches_model_with_latency(ops in prop::collection::vec(op(), 1..120)) {
        let mock = MockConfig {
            read_latency: Duration::from_micros(300),
            write_latency: Duration::from_micros(500),
            max_io: 9000,
            ..MockConfig::default()
        };
        run(&ops, mock, small_config())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A real file, with batches, prefetches and syncs on io_uring: what
    /// the kernel's answers (short counts included) leave on storage.
    #[test]
    fn engine_matches_model_on_the_ring(ops in prop::collection::vec(op(), 1..250)) {
        run_ring(&ops, small_config())?;
    }

    /// The same with default sizes.
    #[test]
    fn engine_matches_model_on_the_ring_default_config(ops in prop::collection::vec(op(), 1..150)) {
        run_ring(&ops, Config::default())?;
    }
}
