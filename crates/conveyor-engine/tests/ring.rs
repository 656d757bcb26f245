//! The io_uring executor on real files: background writes go through the
//! ring (counted), prefetches stay on the pool, all land byte for byte,
//! and an engine whose ring cannot be set up runs everything on the pool.

mod common;

use conveyor_engine::{io_uring_available, Config, Engine, Executor, FileKey, Handle, Hooks, Mode};
use std::path::Path;

fn uring() -> Config {
    Config {
        executor: Executor::Uring,
        ..Config::default()
    }
}

fn open(engine: &Engine, path: &Path) -> Handle {
    let backend = common::file_backend(path);
    engine.open(
        FileKey { dev: 1, ino: 1 },
        "ring",
        backend,
        Mode::READ_WRITE,
    )
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

#[test]
fn writes_go_through_the_ring_and_reads_do_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("f");
    let engine = Engine::new(uring());
    let h = open(&engine, &path);
    let want = data(6 << 20);
    for chunk in want.chunks(4096) {
        assert_eq!(h.write(chunk), Ok(chunk.len()));
    }
    h.sync(false).expect("fsync");
    assert_eq!(std::fs::read(&path).expect("read"), want);
    let wrote = h.stats(false).ring_requests;
    // Read it back from the start: read-ahead prefetches, on the pool.
    h.seek(std::io::SeekFrom::Start(0)).expect("seek");
    let mut back = vec![0u8; want.len()];
    let mut at = 0;
    while at < back.len() {
        let n = h.read(&mut back[at..at + 4096]).expect("read");
        assert!(n > 0, "early end at {at}");
        at += n;
    }
    assert!(back == want, "read back differs");
    assert_eq!(
        h.stats(false).ring_requests,
        wrote,
        "a prefetch on the ring"
    );
    // A small write and fsync.
    h.pwrite(b"tail", 10).expect("pwrite");
    h.sync(true).expect("fdatasync");
    let mut want = want;
    want[10..14].copy_from_slice(b"tail");
    assert_eq!(std::fs::read(&path).expect("read"), want);
    let total = h.stats(false).ring_requests;
    h.close().expect("close");
    if io_uring_available() {
        assert_eq!(engine.executor(), Executor::Uring);
        assert!(wrote > 0, "no write went through the ring");
        assert_eq!(total, wrote + 1, "the small write goes on the ring too");
    } else {
        assert_eq!(engine.executor(), Executor::Pool);
        assert_eq!(total, 0);
    }
}

#[test]
fn appends_through_the_ring_land_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log");
    std::fs::write(&path, b"head\n").expect("seed");
    let engine = Engine::new(uring());
    let backend = common::file_backend(&path);
    let h = engine.open(
        FileKey { dev: 1, ino: 2 },
        "log",
        backend,
        Mode {
            read: true,
            write: true,
            append: true,
        },
    );
    let mut want = b"head\n".to_vec();
    for i in 0..20_000 {
        let line = format!("line {i}\n");
        assert_eq!(h.write(line.as_bytes()), Ok(line.len()));
        want.extend_from_slice(line.as_bytes());
    }
    assert_eq!(h.size(), Ok(want.len() as u64));
    h.close().expect("close");
    assert!(std::fs::read(&path).expect("read") == want, "log differs");
}

#[test]
fn an_engine_whose_ring_is_refused_runs_on_the_pool() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("f");
    // The embedder cannot give the ring a descriptor: as a refusal by the
    // kernel, the engine goes on with the pool.
    let hooks = Hooks {
        private_fd: |fd| {
            // SAFETY: the descriptor handed over, closed as the contract says.
            unsafe { libc::close(fd) };
            -1
        },
        ..Hooks::default()
    };
    let engine = Engine::with_hooks(uring(), hooks);
    let h = open(&engine, &path);
    let want = data(3 << 20);
    for chunk in want.chunks(4096) {
        assert_eq!(h.write(chunk), Ok(chunk.len()));
    }
    h.sync(false).expect("fsync");
    assert_eq!(h.stats(false).ring_requests, 0);
    h.close().expect("close");
    assert_eq!(engine.executor(), Executor::Pool);
    assert_eq!(engine.ring_fd(), None);
    assert!(std::fs::read(&path).expect("read") == want, "file differs");
}
