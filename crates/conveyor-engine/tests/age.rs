//! The maximum age of pending data (`Config::max_age`): while a program
//! goes on writing, no write returns while data written more than the
//! maximum age before it is still only in memory, even when storage is far
//! slower than the writer and the byte caps alone would let it run seconds
//! ahead.
//!
//! Time here is a [`ManualClock`] that only the test moves, and storage
//! makes progress only when the test opens its gate, so what each check
//! sees does not depend on how fast the machine is or how its threads are
//! scheduled.

use conveyor_engine::mock::{ManualClock, MemBackend, MockConfig};
use conveyor_engine::{Backend, Clock, Config, Engine, FileKey, Mode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

fn block(i: usize) -> Vec<u8> {
    let mut b = vec![(i % 251) as u8; BLOCK];
    b[..8].copy_from_slice(&(i as u64).to_le_bytes());
    b
}

#[test]
fn storage_never_falls_more_than_the_maximum_age_behind() {
    const WRITES: usize = 1000;
    let step = Duration::from_millis(1);
    let max_age = Duration::from_millis(60);
    let clock = Arc::new(ManualClock::new());
    let engine = Engine::with_clock(
        Config {
            max_age,
            ..Config::default()
        },
        Arc::clone(&clock) as _,
    );
    let storage = Arc::new(MemBackend::new(MockConfig {
        serial_writes: true,
        ..MockConfig::default()
    }));
    // Storage stands still unless the writer is waiting for it: without
    // the age rule nothing would ever make it write, and the checks fail.
    storage.close_gate();
    let h = engine.open(
        FileKey { dev: 1, ino: 1 },
        "aged",
        Arc::clone(&storage) as Arc<dyn Backend>,
        Mode::READ_WRITE,
    );
    let finished = AtomicBool::new(false);
    let (checks, expected) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            // When each write had returned (by the test's clock).
            let mut returned: Vec<Instant> = Vec::new();
            let mut expected: Vec<u8> = Vec::new();
            let mut checks = 0;
            for i in 0..WRITES {
                clock.advance(step);
                let began = clock.now();
                let data = block(i);
                h.write(&data).expect("write");
                storage.close_gate();
                returned.push(clock.now());
                expected.extend_from_slice(&data);
                // Every write that had returned more than the maximum age
                // before this one began is on storage, whole.
                let old = returned.partition_point(|&r| r + max_age < began);
                if old == 0 {
                    continue;
                }
                let stored = storage.contents();
                let want = &expected[..old * BLOCK];
                assert!(
                    stored.len() >= want.len() && &stored[..want.len()] == want,
                    "write {i}: {old} writes older than {max_age:?} are not all on storage \
({} bytes stored, {} expected)",
                    stored.len(),
                    want.len()
                );
                checks += 1;
            }
            finished.store(true, Ordering::SeqCst);
            (checks, expected)
        });
        // Lets storage go on each time the writer starts waiting for it.
        let mut seen = 0;
        while !finished.load(Ordering::SeqCst) && !writer.is_finished() {
            let waits = engine.totals(false).buffer_full_waits;
            if waits > seen {
                seen = waits;
                storage.open_gate();
            }
            std::thread::yield_now();
        }
        storage.open_gate();
        writer.join().expect("writer")
    });
    h.close().expect("close");
    assert_eq!(storage.contents(), expected, "final contents");
    // Write i begins at (i + 1) ms and the first returned at 1 ms, so
    // writes 61.. each have older ones to check: the count is exact.
    assert_eq!(checks, WRITES - 61, "checks that ran");
    let waits = engine.totals(false).buffer_full_waits;
    assert!(waits > 0, "the writer never had to wait for storage");
}

/// Read-ahead data is not served past the maximum age: a file another
/// process rewrote (here: storage changed behind the engine, with no
/// barrier) is read again once the cached copy is that old. Without the
/// rule the reader keeps getting the old bytes from its window.
#[test]
fn cached_reads_are_read_again_after_the_maximum_age() {
    let max_age = Duration::from_millis(40);
    let clock = Arc::new(ManualClock::new());
    let engine = Engine::with_clock(
        Config {
            max_age,
            ..Config::default()
        },
        Arc::clone(&clock) as _,
    );
    let storage = Arc::new(MemBackend::with_data(
        MockConfig::default(),
        vec![b'a'; 1 << 20],
    ));
    let h = engine.open(
        FileKey { dev: 1, ino: 2 },
        "cached",
        Arc::clone(&storage) as Arc<dyn Backend>,
        Mode::READ,
    );
    let mut buf = vec![0u8; BLOCK];
    for _ in 0..4 {
        assert_eq!(h.read(&mut buf).expect("read"), BLOCK);
        assert!(buf.iter().all(|&b| b == b'a'));
    }
    // The window now holds the next bytes; another writer changes them.
    storage.set_contents(vec![b'b'; 1 << 20]);
    clock.advance(max_age);
    assert_eq!(h.read(&mut buf).expect("read"), BLOCK);
    assert!(
        buf.iter().all(|&b| b == b'b'),
        "read-ahead data older than {max_age:?} was served"
    );
    let st = engine.totals(false);
    assert!(st.read_ahead_hits > 0, "nothing was read ahead: {st:?}");
}
