//! What storage is asked: read-ahead serves a sequential reader with few large requests and wastes none on random reads; 4 KiB writes reach storage coalesced.
//! Every data check is byte for byte; no test asserts on elapsed time.

mod common;

use common::*;

// ------------------------------------------------------- D. read-ahead

// Proves: a sequential 4K reader of 8 MiB is served by a few large prefetches (far fewer requests than reads) and nearly every read hits read-ahead data.
#[test]
fn d01_sequential_read_ahead() {
    let len = 8 * M;
    let data = blocks(len, 21);
    let storage = mem_with(
        MockConfig {
            read_latency: ms(2),
            ..MockConfig::default()
        },
        data.clone(),
    );
    let e = Engine::new(Config::default());
    let h = open(&e, 18, &storage, Mode::READ);
    let mut buf = vec![0u8; BLOCK];
    for i in 0..len / BLOCK {
        assert_eq!(h.read(&mut buf), Ok(BLOCK));
        assert!(buf == data[i * BLOCK..(i + 1) * BLOCK], "block {i}");
    }
    assert_eq!(h.read(&mut buf), Ok(0));
    let reads = count(&storage.requests(), Op::Read);
    assert!(reads < 100, "{reads} read requests for 2048 reads");
    let st = h.stats(false);
    assert!(st.read_ahead_hits >= 2000, "{st:?}");
    assert!(st.read_sizes.max >= 512 * K as u64, "{:?}", st.read_sizes);
}

// Proves: random 4K preads do not trigger wasted prefetch: at most one storage request per read (plus a small constant), and every byte is right.
#[test]
fn d02_random_reads_no_prefetch_waste() {
    let len = 8 * M;
    let data = blocks(len, 22);
    let storage = mem_with(MockConfig::default(), data.clone());
    let e = Engine::new(Config::default());
    let h = open(&e, 19, &storage, Mode::READ);
    let mut rng = Rng::new(22);
    let n = 300;
    for _ in 0..n {
        let off = rng.below((len / BLOCK) as u64) as usize * BLOCK + rng.below(64) as usize;
        let want = BLOCK.min(len - off);
        assert!(pread_exact(&h, off as u64, want) == data[off..off + want]);
    }
    let reads = count(&storage.requests(), Op::Read);
    assert!(reads <= n + 4, "{reads} read requests for {n} random reads");
    let bytes: usize = storage
        .requests()
        .iter()
        .filter(|r| r.op == Op::Read)
        .map(|r| r.done)
        .sum();
    assert!(
        bytes <= n * BLOCK + 512 * K,
        "{bytes} bytes read from storage"
    );
}

// ------------------------------------------------------- E. coalescing

// Proves: 4 MiB of 4K writes reach storage as a few large requests (<= 80, the largest >= 256 KiB), intact.
#[test]
fn e01_write_coalescing() {
    let storage = mem(MockConfig {
        write_latency: ms(1),
        ..MockConfig::default()
    });
    let e = Engine::new(Config::default());
    let h = open(&e, 20, &storage, Mode::WRITE);
    let data = pattern(20, 4 * M);
    for c in data.chunks(BLOCK) {
        assert_eq!(h.write(c), Ok(BLOCK));
    }
    h.close().unwrap();
    assert!(storage.contents() == data, "storage differs");
    let reqs = storage.requests();
    let writes: Vec<_> = reqs.iter().filter(|r| r.op == Op::Write).collect();
    assert!(writes.len() <= 80, "{} write requests", writes.len());
    let largest = writes.iter().map(|r| r.len).max().unwrap_or(0);
    assert!(largest >= 256 * K, "largest request {largest}");
    assert_eq!(writes.iter().map(|r| r.done).sum::<usize>(), data.len());
}

// Proves: where background I/O would cost storage a request of its own
// (`Backend::defers_background`), less than a request's worth of pending
// data starts no background write: it reaches storage as one request from
// the flushing thread; a request's worth starts the background write at
// once (held at the gate, so "started" is a fact, not a timing bet).
#[test]
fn e02_small_pending_data_waits_for_the_flush_where_background_costs() {
    let storage = mem(MockConfig {
        defers_background: true,
        ..MockConfig::default()
    });
    let cfg = Config {
        io_size: 64 * K,
        // Longer than any test: no timer write in this one (e03 has it).
        defer_limit: ms(3_600_000),
        max_age: ms(7_200_000),
        ..Config::default()
    };
    let e = Engine::new(cfg);
    let h = open(&e, 21, &storage, Mode::WRITE);
    let data = pattern(21, 60 * K);
    for c in data.chunks(1000) {
        assert_eq!(h.write(c), Ok(c.len()));
    }
    assert_eq!(
        count(&storage.requests(), Op::Write),
        0,
        "a background write started"
    );
    assert_eq!(h.flush(), Ok(()));
    assert_eq!(
        count(&storage.requests(), Op::Write),
        1,
        "{:?}",
        storage.requests()
    );
    assert!(storage.contents() == data);

    // A request's worth goes in the background, without a flush.
    storage.close_gate();
    let more = pattern(22, 128 * K);
    for c in more.chunks(4 * K) {
        assert_eq!(h.write(c), Ok(c.len()));
    }
    assert!(
        wait_until(ms(60_000), || storage.at_gate() > 0),
        "no background write started for a request's worth of data"
    );
    storage.open_gate();
    assert_eq!(h.flush(), Ok(()));
    let mut want = data.clone();
    want.extend_from_slice(&more);
    assert!(storage.contents() == want);
}

// Proves: small data held for the program's thread does not wait for ever.
// A writer that stops without flushing or closing (it waits for a reader,
// or it is about to be killed) finds its data on storage after
// `defer_limit`, written in the background; before the bound existed it
// stayed in memory until the close.
#[test]
fn e03_small_pending_data_is_written_after_the_defer_limit() {
    let storage = mem(MockConfig {
        defers_background: true,
        ..MockConfig::default()
    });
    let cfg = Config {
        io_size: 64 * K,
        defer_limit: ms(1),
        ..Config::default()
    };
    let e = Engine::new(cfg);
    let h = open(&e, 23, &storage, Mode::WRITE);
    let data = pattern(23, 10 * K);
    for c in data.chunks(1000) {
        assert_eq!(h.write(c), Ok(c.len()));
    }
    assert!(
        wait_until(ms(60_000), || storage.contents() == data),
        "the data stayed in memory: {:?}",
        storage.requests()
    );
    // And again after the first batch: the timer is armed by every write
    // that leaves data waiting.
    let more = pattern(24, 3 * K);
    assert_eq!(h.write(&more), Ok(more.len()));
    let mut want = data.clone();
    want.extend_from_slice(&more);
    assert!(
        wait_until(ms(60_000), || storage.contents() == want),
        "the second write stayed in memory"
    );
    assert_eq!(h.close(), Ok(()));
}

// Proves: a small file read to its end in large reads (as `cat` reads,
// 128 KiB at a time) costs storage exactly the requests the kernel would
// make: one that returns the file (short, at the size seen at open) and
// one at the end that returns nothing. No prefetch past the known end, no
// second request to confirm a short answer.
#[test]
fn d03_a_small_file_read_once_costs_no_request_more() {
    let data = pattern(23, 3150);
    let storage = mem_with(MockConfig::default(), data.clone());
    let e = Engine::new(Config::default());
    let h = open(&e, 22, &storage, Mode::READ);
    h.observe(Attrs {
        size: data.len() as u64,
        mtime_ns: 1,
        ctime_ns: 1,
    });
    let mut buf = vec![0u8; 128 * K];
    assert_eq!(h.read(&mut buf), Ok(data.len()));
    assert!(buf[..data.len()] == data[..]);
    assert_eq!(h.read(&mut buf), Ok(0));
    let reads: Vec<(u64, usize)> = storage
        .requests()
        .iter()
        .filter(|r| r.op == Op::Read)
        .map(|r| (r.offset, r.done))
        .collect();
    assert_eq!(reads, vec![(0, data.len()), (data.len() as u64, 0)]);

    // Data written past the end meanwhile is read, not cut off: a second
    // handle appends; the first reads on from where it stopped.
    let w = open(&e, 22, &storage, Mode::WRITE);
    assert_eq!(w.pwrite(b"more", data.len() as u64), Ok(4));
    assert_eq!(h.read(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"more");
}
