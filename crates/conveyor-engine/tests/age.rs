//! The maximum age of pending data (`Config::max_age`): while a program
//! goes on writing, no write returns while data written more than the
//! maximum age before it is still only in memory, even when storage is far
//! slower than the writer and the byte caps alone would let it run seconds
//! ahead. Without the age rule this fails: with a 16 MiB buffer draining at
//! 1 MiB per 20 ms, data stays pending for about 300 ms.

use conveyor_engine::mock::{MemBackend, MockConfig};
use conveyor_engine::{Backend, Config, Engine, FileKey, Mode};
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
    let max_age = Duration::from_millis(60);
    let engine = Engine::new(Config {
        max_age,
        ..Config::default()
    });
    let storage = Arc::new(MemBackend::new(MockConfig {
        write_latency: Duration::from_millis(20),
        serial_writes: true,
        ..MockConfig::default()
    }));
    let h = engine.open(
        FileKey { dev: 1, ino: 1 },
        "aged",
        Arc::clone(&storage) as Arc<dyn Backend>,
        Mode::READ_WRITE,
    );
    let start = Instant::now();
    // When each write had returned, for the check below.
    let mut returned: Vec<Instant> = Vec::new();
    let mut expected: Vec<u8> = Vec::new();
    let mut checks = 0;
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(800) {
        let data = block(i);
        let began = Instant::now();
        h.write(&data).expect("write");
        returned.push(Instant::now());
        expected.extend_from_slice(&data);
        i += 1;
        if i % 64 != 0 {
            continue;
        }
        // Every write that had returned more than the maximum age before
        // this one began is on storage, whole.
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
    h.close().expect("close");
    assert_eq!(storage.contents(), expected, "final contents");
    assert!(checks > 10, "too few checks ran: {checks} over {i} writes");
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
    let engine = Engine::new(Config {
        max_age,
        ..Config::default()
    });
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
    std::thread::sleep(max_age + Duration::from_millis(10));
    assert_eq!(h.read(&mut buf).expect("read"), BLOCK);
    assert!(
        buf.iter().all(|&b| b == b'b'),
        "read-ahead data older than {max_age:?} was served"
    );
    let st = engine.totals(false);
    assert!(st.read_ahead_hits > 0, "nothing was read ahead: {st:?}");
}
