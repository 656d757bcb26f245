//! Read-ahead data is dropped as soon as the engine learns that another
//! process changed the file: a stat whose size, mtime or ctime this
//! process's own writes do not explain, or a reader coming back after a
//! pause. Time is a manual clock; the changed storage is the mock's.

use conveyor_engine::mock::{ManualClock, MemBackend, MockConfig};
use conveyor_engine::{Attrs, Backend, Config, Engine, FileKey, Handle, Mode};
use std::sync::Arc;

const BLOCK: usize = 4096;

fn setup(mode: Mode) -> (Engine, Arc<ManualClock>, Arc<MemBackend>, Handle) {
    let clock = Arc::new(ManualClock::new());
    let engine = Engine::with_clock(Config::default(), Arc::clone(&clock) as _);
    let storage = Arc::new(MemBackend::with_data(
        MockConfig::default(),
        vec![b'a'; 1 << 20],
    ));
    let h = engine.open(
        FileKey { dev: 1, ino: 7 },
        "followed",
        Arc::clone(&storage) as Arc<dyn Backend>,
        mode,
    );
    (engine, clock, storage, h)
}

fn attrs(size: u64, mtime_ns: i128) -> Attrs {
    Attrs {
        size,
        mtime_ns,
        ctime_ns: mtime_ns,
    }
}

/// Reads one block; every byte must be `want`.
fn read_block(h: &Handle, want: u8, what: &str) {
    let mut buf = vec![0u8; BLOCK];
    assert_eq!(h.read(&mut buf).expect("read"), BLOCK);
    assert!(
        buf.iter().all(|&b| b == want),
        "{what}: read {:?}, want {:?}",
        buf[0] as char,
        want as char
    );
}

#[test]
fn a_stat_showing_another_writer_drops_the_cache() {
    let (_e, _c, storage, h) = setup(Mode::READ);
    assert!(
        !h.observe(attrs(1 << 20, 100)),
        "the first look changes nothing"
    );
    for _ in 0..4 {
        read_block(&h, b'a', "before");
    }
    // Seen again unchanged: the cache stays.
    assert!(!h.observe(attrs(1 << 20, 100)));
    storage.set_contents(vec![b'b'; 1 << 20]);
    assert!(
        h.observe(attrs(1 << 20, 200)),
        "a new mtime is another writer"
    );
    read_block(&h, b'b', "after the stat");
}

#[test]
fn a_truncation_seen_by_stat_drops_the_cache_even_while_writing() {
    let (_e, _c, storage, h) = setup(Mode::READ_WRITE);
    h.observe(attrs(1 << 20, 100));
    read_block(&h, b'a', "before");
    h.pwrite(b"x", (1 << 20) - 1).expect("write");
    h.flush().expect("flush");
    // Our own write moved the times: not another writer.
    assert!(!h.observe(attrs(1 << 20, 300)));
    // Cut to nothing and rewritten by someone else: smaller than stored.
    storage.set_contents(vec![b'c'; 8 * BLOCK]);
    h.pwrite(b"y", 0).expect("write");
    h.flush().expect("flush");
    h.set_position(BLOCK as u64);
    assert!(
        h.observe(attrs(8 * BLOCK as u64, 400)),
        "a shrunk file was cut by another"
    );
    read_block(&h, b'c', "after the truncation");
}

#[test]
fn a_reader_back_after_a_pause_reads_storage_again() {
    let (engine, clock, storage, h) = setup(Mode::READ);
    for _ in 0..4 {
        read_block(&h, b'a', "before");
    }
    storage.set_contents(vec![b'b'; 1 << 20]);
    clock.advance(engine.config().revalidate_after);
    read_block(&h, b'b', "after the pause");
}
