//! libconveyor's own test scenarios, run against the engine over `mock::MemBackend`: read-after-write, appends, read-ahead invalidation, wrap-around, partial I/O, illegal operations, several handles, sticky errors, ENOSPC, direct writes, read errors.
//! Every data check is byte for byte; no test asserts on elapsed time.

mod common;

use common::*;

// ------------------------------------------- A. libconveyor's scenarios

// Proves: a pread before flush returns bytes still in the write-behind buffer, while storage keeps the old bytes until the write lands.
#[test]
fn a01_read_sees_unflushed_write() {
    let old = pattern(1, 64 * K);
    let storage = mem_with(
        MockConfig {
            write_latency: ms(2),
            ..MockConfig::default()
        },
        old.clone(),
    );
    let gate = Gated::new(Arc::clone(&storage), Hold::Writes);
    let e = Engine::new(Config::default());
    let h = open(&e, 1, &gate, Mode::READ_WRITE);

    let new = pattern(2, 10_000);
    assert_eq!(h.seek(SeekFrom::Start(5000)), Ok(5000));
    assert_eq!(h.write(&new), Ok(new.len()));
    let expected = overlaid(&old, 5000, &new);
    // The write was issued at once and is held at the gate.
    assert!(wait_until(Duration::from_secs(2), || gate.waiting() == 1));

    assert_eq!(pread_exact(&h, 0, 64 * K), expected);
    assert_eq!(pread_exact(&h, 5000, new.len()), new);
    assert_eq!(storage.contents(), old, "the write must still be held back");
    assert!(h.stats(false).snoop_hits >= 1);

    gate.open();
    h.flush().unwrap();
    assert_eq!(storage.contents(), expected);
    assert_eq!(pread_exact(&h, 0, 64 * K), expected);
    h.close().unwrap();
}

// Proves: appends through an APPEND handle are visible to a READ handle of the same file before they land, land after the old end, and reach storage only as Op::Append requests.
#[test]
fn a02_append_then_read() {
    let old = pattern(3, 1000);
    let storage = mem_with(
        MockConfig {
            write_latency: ms(1),
            ..MockConfig::default()
        },
        old.clone(),
    );
    let gate = Gated::new(Arc::clone(&storage), Hold::Writes);
    let e = Engine::new(Config::default());
    let app = open(&e, 2, &gate, Mode::APPEND);
    let rd = open(&e, 2, &gate, Mode::READ);

    let recs = [pattern(4, 100), pattern(5, 5000), pattern(6, 37)];
    let mut expected = old.clone();
    for r in &recs {
        assert_eq!(app.write(r), Ok(r.len()));
        expected.extend_from_slice(r);
        assert_eq!(app.position(), expected.len() as u64);
    }
    // Before anything lands: the reader sees the appended bytes.
    assert_eq!(storage.contents(), old);
    assert_eq!(
        pread_exact(&rd, old.len() as u64, expected.len() - old.len()),
        &expected[old.len()..]
    );
    assert_eq!(
        pread_exact(&rd, 0, expected.len()),
        expected,
        "whole file through the reader"
    );
    assert_eq!(rd.seek(SeekFrom::End(0)), Ok(expected.len() as u64));

    gate.open();
    app.close().unwrap();
    assert_eq!(storage.contents(), expected);
    assert_eq!(pread_exact(&rd, 0, expected.len()), expected);
    rd.close().unwrap();

    let reqs = storage.requests();
    assert_eq!(count(&reqs, Op::Write), 0, "appends must not be pwrites");
    let appends: Vec<_> = reqs.iter().filter(|r| r.op == Op::Append).collect();
    assert!(!appends.is_empty());
    assert_eq!(appends[0].offset, old.len() as u64);
    assert_eq!(
        appends.iter().map(|r| r.done).sum::<usize>(),
        expected.len() - old.len()
    );
}

// Proves: after storage changes behind the engine, a seek out of the read-ahead window drops the cached chunks, so the next reads see the new content.
#[test]
fn a03_seek_invalidates_read_ahead() {
    let len = 4 * M;
    let a = blocks(len, 0xA);
    let b = blocks(len, 0xB);
    let storage = mem_with(
        MockConfig {
            read_latency: ms(1),
            ..MockConfig::default()
        },
        a.clone(),
    );
    let e = Engine::new(Config::default());
    let h = open(&e, 3, &storage, Mode::READ);

    // Sequential reads build a window.
    let mut buf = vec![0u8; BLOCK];
    for i in 0..64 {
        assert_eq!(h.read(&mut buf), Ok(BLOCK));
        assert_eq!(buf, a[i * BLOCK..(i + 1) * BLOCK], "block {i}");
    }
    assert!(h.stats(false).read_ahead_hits > 0);

    // Let every prefetch land, so the window holds old bytes for sure.
    assert!(wait_until(Duration::from_secs(2), || storage.in_flight() == 0));
    storage.set_contents(b.clone());
    // Seek far away and straight back to where reading stopped: leaving the
    // window dropped it, so the next read must see the new content.
    let here = h.position();
    assert_eq!(here, 64 * BLOCK as u64);
    let far = 3 * M + M / 2;
    assert_eq!(h.seek(SeekFrom::Start(far as u64)), Ok(far as u64));
    assert_eq!(h.seek(SeekFrom::Start(here)), Ok(here));
    assert_eq!(h.read(&mut buf), Ok(BLOCK));
    assert_eq!(buf, b[here as usize..here as usize + BLOCK], "at {here}");

    assert_eq!(h.seek(SeekFrom::Start(far as u64)), Ok(far as u64));
    assert_eq!(h.read(&mut buf), Ok(BLOCK));
    assert_eq!(buf, b[far..far + BLOCK]);
    assert_eq!(h.seek(SeekFrom::Start(0)), Ok(0));
    for i in 0..4 {
        assert_eq!(h.read(&mut buf), Ok(BLOCK));
        assert_eq!(buf, b[i * BLOCK..(i + 1) * BLOCK], "block {i} after seek");
    }
}

// Proves: read, write, flush, read again returns the written bytes (not a stale read-ahead chunk) and storage holds them.
#[test]
fn a04_read_flush_read() {
    let old = blocks(256 * K, 1);
    let storage = mem_with(
        MockConfig {
            write_latency: ms(1),
            read_latency: ms(1),
            ..MockConfig::default()
        },
        old.clone(),
    );
    let e = Engine::new(Config::default());
    let h = open(&e, 4, &storage, Mode::READ_WRITE);

    let mut buf = vec![0u8; BLOCK];
    assert_eq!(h.read(&mut buf), Ok(BLOCK));
    assert_eq!(buf, old[..BLOCK]);
    let x = pattern(44, BLOCK);
    assert_eq!(h.write(&x), Ok(BLOCK)); // at 4096
    h.flush().unwrap();
    let expected = overlaid(&old, BLOCK, &x);
    assert_eq!(storage.contents(), expected);

    assert_eq!(h.seek(SeekFrom::Start(0)), Ok(0));
    let mut three = vec![0u8; 3 * BLOCK];
    assert_eq!(h.read(&mut three), Ok(3 * BLOCK));
    assert_eq!(three, expected[..3 * BLOCK]);

    // The same with pread/pwrite far inside the prefetched window.
    assert_eq!(pread_exact(&h, 64 * K as u64, BLOCK), old[64 * K..68 * K]);
    let y = pattern(45, BLOCK);
    assert_eq!(h.pwrite(&y, 64 * K as u64), Ok(BLOCK));
    h.flush().unwrap();
    let expected = overlaid(&expected, 64 * K, &y);
    assert_eq!(
        pread_exact(&h, 60 * K as u64, 12 * K),
        expected[60 * K..72 * K]
    );
    assert_eq!(pread_exact(&h, 0, 256 * K), expected);
    h.close().unwrap();
    assert_eq!(storage.contents(), expected);
}

// Proves: a prefetch that read storage before a write landed is dropped when it arrives, so later reads never see its outdated bytes.
#[test]
fn a04b_prefetch_outdated_by_a_landing_write_is_dropped() {
    let old = blocks(256 * K, 3);
    let inner = mem_with(MockConfig::default(), old.clone());
    let gate = Gated::new(Arc::clone(&inner), Hold::RepliesFrom(128 * K as u64));
    let e = Engine::new(Config::default());
    let h = open(&e, 24, &gate, Mode::READ_WRITE);

    // The first read plans chunks [0, 128K) and [128K, 256K); the second
    // reads the old bytes and its answer is held back.
    assert_eq!(pread_exact(&h, 0, BLOCK), old[..BLOCK]);
    assert!(wait_until(Duration::from_secs(2), || gate.waiting() == 1));
    let x = pattern(240, 8 * K);
    let at = 200 * K;
    assert_eq!(h.pwrite(&x, at as u64), Ok(x.len()));
    h.flush().unwrap();
    let expected = overlaid(&old, at, &x);
    assert_eq!(inner.contents(), expected);

    // Release the outdated answer and let it land (setup wait only).
    gate.open();
    assert!(wait_until(Duration::from_secs(2), || gate.waiting() == 0
        && inner.in_flight() == 0));
    thread::sleep(ms(20));
    // 196K lies inside this handle's window: the read consults the chunk.
    let from = at - 4 * K;
    assert_eq!(
        pread_exact(&h, from as u64, 16 * K),
        expected[from..from + 16 * K]
    );
    assert_eq!(pread_exact(&h, 0, 256 * K), expected);
    h.close().unwrap();
}

// Proves: several MiB through a 128 KiB write buffer (segments reused round and round) arrive intact, writers wait for space, memory stays within the cap and is all given back.
#[test]
fn a05_buffer_wrap_around() {
    let cfg = Config {
        write_buffer: 128 * K,
        initial_write_buffer: 64 * K,
        max_memory: 256 * K,
        ..Config::default()
    };
    let storage = mem(MockConfig {
        write_latency: ms(1),
        ..MockConfig::default()
    });
    let e = Engine::new(cfg);
    assert_eq!(e.config().write_buffer, 128 * K);
    let h = open(&e, 5, &storage, Mode::WRITE);

    let data = pattern(5, 3 * M + 1234);
    for c in data.chunks(3000) {
        assert_eq!(h.write(c), Ok(c.len()));
        assert!(e.memory_used() <= e.memory_cap());
    }
    let st = h.stats(false);
    h.close().unwrap();
    assert_eq!(storage.contents().len(), data.len());
    assert!(storage.contents() == data, "storage differs from the data");
    assert!(st.buffer_full_waits > 0, "{st:?}");
    assert!(st.buffer_peak <= 128 * K as u64, "peak {}", st.buffer_peak);
    assert_eq!(st.app_write_bytes, data.len() as u64);
    assert_eq!(e.memory_used(), 0, "buffer memory must be given back");
    let reqs = storage.requests();
    assert_eq!(
        reqs.iter()
            .filter(|r| r.op == Op::Write)
            .map(|r| r.done)
            .sum::<usize>(),
        data.len(),
        "every byte written exactly once"
    );
}

// Proves: short reads/writes (1000 bytes max per request) and EINTR on every third request are continued and retried invisibly.
#[test]
fn a06_partial_io_and_eintr() {
    let storage = mem(MockConfig {
        max_io: 1000,
        eintr_every: 3,
        ..MockConfig::default()
    });
    let e = Engine::new(Config::default());
    let data = pattern(6, M);
    let w = open(&e, 6, &storage, Mode::WRITE);
    for c in data.chunks(7001) {
        assert_eq!(w.write(c), Ok(c.len()));
    }
    w.close().unwrap();
    assert!(
        storage.contents() == data,
        "storage differs after short writes"
    );
    let reqs = storage.requests();
    assert!(reqs
        .iter()
        .filter(|r| r.op == Op::Write)
        .all(|r| r.done <= 1000));
    assert!(count(&reqs, Op::Write) >= M / 1000);

    let r = open(&e, 6, &storage, Mode::READ);
    let got = read_to_eof(&r, 5000, M / 5000 + 1);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "read back differs");
    let mut rng = Rng::new(66);
    for _ in 0..50 {
        let off = rng.below((M - 9000) as u64) as usize;
        let len = 1 + rng.below(9000) as usize;
        assert_eq!(pread_exact(&r, off as u64, len), data[off..off + len]);
    }
    assert_eq!(r.stats(false).errors, 0, "EINTR is not a failure");
    r.close().unwrap();
}

// Proves: operations the access mode forbids fail with the errno Linux gives (EBADF; EINVAL for ftruncate) and touch nothing.
#[test]
fn a07_illegal_operations() {
    let old = pattern(7, 8 * K);
    let storage = mem_with(MockConfig::default(), old.clone());
    let e = Engine::new(Config::default());
    let r = open(&e, 7, &storage, Mode::READ);
    let w = open(&e, 7, &storage, Mode::WRITE);
    let a = open(&e, 7, &storage, Mode::APPEND);

    assert_eq!(r.write(b"x"), Err(Errno::EBADF));
    assert_eq!(r.write(b""), Err(Errno::EBADF));
    assert_eq!(r.pwrite(b"x", 0), Err(Errno::EBADF));
    assert_eq!(r.truncate(0), Err(Errno::EINVAL));
    assert_eq!(r.allocate(0, 0, 100), Err(Errno::EBADF));
    let mut buf = [0u8; 16];
    assert_eq!(w.read(&mut buf), Err(Errno::EBADF));
    assert_eq!(w.pread(&mut buf, 0), Err(Errno::EBADF));
    assert_eq!(a.read(&mut buf), Err(Errno::EBADF));
    assert_eq!(a.pread(&mut buf, 0), Err(Errno::EBADF));
    assert_eq!(r.position(), 0);
    assert_eq!(w.position(), 0);

    for h in [r, w, a] {
        assert_eq!(h.flush(), Ok(()));
        h.close().unwrap();
    }
    assert_eq!(storage.contents(), old);
    let reqs = storage.requests();
    for op in [Op::Write, Op::Append, Op::Truncate, Op::Allocate] {
        assert_eq!(count(&reqs, op), 0, "{op:?}");
    }
}

// Proves: two handles of one file interleaving writes at different offsets each read the other's pending writes, and storage ends with both.
#[test]
fn a08_multi_instance() {
    let storage = mem(MockConfig {
        write_latency: ms(1),
        ..MockConfig::default()
    });
    let gate = Gated::new(Arc::clone(&storage), Hold::Writes);
    let e = Engine::new(Config::default());
    let h1 = open(&e, 8, &gate, Mode::READ_WRITE);
    let h2 = open(&e, 8, &gate, Mode::READ_WRITE);

    let n = 16;
    let mut expected = vec![0u8; n * BLOCK];
    for i in [3, 0, 5, 2, 1, 4, 7, 6, 9, 8, 11, 15, 10, 13, 12, 14] {
        let blk = pattern(800 + i as u64, BLOCK);
        let off = i * BLOCK;
        if i % 2 == 0 {
            assert_eq!(h1.seek(SeekFrom::Start(off as u64)), Ok(off as u64));
            assert_eq!(h1.write(&blk), Ok(BLOCK));
        } else {
            assert_eq!(h2.pwrite(&blk, off as u64), Ok(BLOCK));
        }
        expected[off..off + BLOCK].copy_from_slice(&blk);
    }
    assert!(storage.contents().is_empty(), "writes are held at the gate");
    assert_eq!(pread_exact(&h1, 0, n * BLOCK), expected);
    assert_eq!(pread_exact(&h2, 0, n * BLOCK), expected);
    assert_eq!(h1.seek(SeekFrom::End(0)), Ok((n * BLOCK) as u64));
    assert_eq!(h2.size(), Ok((n * BLOCK) as u64));

    gate.open();
    h1.close().unwrap();
    assert_eq!(storage.contents(), expected);
    assert_eq!(pread_exact(&h2, 0, n * BLOCK), expected);
    h2.close().unwrap();
}

// Proves: a failed background write is reported exactly once per handle open at the time (then Ok), never to a later handle; unissued data queued behind it is dropped, not written.
#[test]
fn a09_error_propagation_and_stickiness() {
    let old = vec![0xEEu8; 256 * K];
    let storage = mem_with(
        MockConfig {
            write_latency: ms(1),
            ..MockConfig::default()
        },
        old.clone(),
    );
    storage.inject(Fault {
        op: Op::Write,
        from: 64 * K as u64,
        until: 68 * K as u64,
        errno: Errno::EIO,
        times: u32::MAX,
    });
    let gate = Gated::new(Arc::clone(&storage), Hold::Writes);
    let e = Engine::new(Config::default());
    let h1 = open(&e, 9, &gate, Mode::READ_WRITE);
    let h2 = open(&e, 9, &gate, Mode::READ_WRITE);
    let h4 = open(&e, 9, &gate, Mode::WRITE);

    // The first batch (into the fault) is issued at once and held at the
    // gate; what follows is queued behind it (one request in flight at first).
    assert_eq!(h1.pwrite(&[0x11; 4 * K], 64 * K as u64), Ok(4 * K));
    assert_eq!(h1.pwrite(&[0x22; 8 * K], 68 * K as u64), Ok(8 * K));
    assert_eq!(h2.pwrite(&[0x33; 4 * K], 128 * K as u64), Ok(4 * K));
    assert_eq!(pread_exact(&h2, 128 * K as u64, 4 * K), vec![0x33; 4 * K]);
    gate.open();

    assert_eq!(h1.flush(), Err(Errno::EIO));
    assert_eq!(h1.flush(), Ok(()), "reported once per handle");
    // Nothing queued behind the failure reached storage.
    assert_eq!(storage.contents(), old);
    // After the report the engine's view is storage's: no ghost of lost data.
    assert_eq!(pread_exact(&h1, 0, 256 * K), old);

    let h3 = open(&e, 9, &gate, Mode::READ_WRITE);
    let late = pattern(99, 4 * K);
    assert_eq!(
        h2.write(&late),
        Err(Errno::EIO),
        "h2's next write reports it"
    );
    assert_eq!(
        storage.contents(),
        old,
        "the failed write call wrote nothing"
    );
    assert_eq!(h2.pwrite(&late, 192 * K as u64), Ok(4 * K));
    assert_eq!(h2.flush(), Ok(()));
    let late3 = pattern(98, 4 * K);
    assert_eq!(h3.pwrite(&late3, 200 * K as u64), Ok(4 * K), "new handle");
    assert_eq!(h3.flush(), Ok(()));

    let st = h1.stats(false);
    assert_eq!(st.errors, 1, "{st:?}");
    assert_eq!(st.last_errno, Errno::EIO.0 as u64);
    assert_eq!(st.lost_bytes, 16 * K as u64, "4K failed + 12K discarded");

    assert_eq!(
        h4.close(),
        Err(Errno::EIO),
        "an idle handle reports it at close"
    );
    assert_eq!(h3.close(), Ok(()));
    assert_eq!(h2.close(), Ok(()));
    assert_eq!(h1.close(), Ok(()));
    let expected = overlaid(&overlaid(&old, 192 * K, &late), 200 * K, &late3);
    assert_eq!(storage.contents(), expected);
    let failed: Vec<_> = storage
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Write && r.done == 0)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].offset, 64 * K as u64);
}

// Proves: writing sequentially through an ENOSPC fault stops storage exactly at the failing request: everything before it is stored, nothing after it, and each handle hears ENOSPC once.
#[test]
fn a09b_sequential_write_through_fault() {
    let from = 300 * K as u64;
    let storage = mem(MockConfig {
        write_latency: ms(1),
        ..MockConfig::default()
    });
    storage.inject(Fault {
        op: Op::Write,
        from,
        until: from + 1,
        errno: Errno::ENOSPC,
        times: u32::MAX,
    });
    let e = Engine::new(Config::default());
    let h1 = open(&e, 10, &storage, Mode::WRITE);
    let h2 = open(&e, 10, &storage, Mode::READ_WRITE);

    // 512 KiB < io_size: batches run one at a time, in order.
    let data = pattern(10, 512 * K);
    let mut reported = 0;
    for c in data.chunks(BLOCK) {
        match h1.write(c) {
            Ok(n) => assert_eq!(n, c.len()),
            Err(e) => {
                assert_eq!(e, Errno::ENOSPC);
                reported += 1;
                break; // stop as an application would
            }
        }
    }
    match h1.flush() {
        Ok(()) => assert_eq!(reported, 1),
        Err(e) => {
            assert_eq!(e, Errno::ENOSPC);
            reported += 1;
        }
    }
    assert_eq!(reported, 1, "h1 must hear ENOSPC exactly once");
    assert_eq!(h1.flush(), Ok(()));
    assert_eq!(h2.flush(), Err(Errno::ENOSPC));
    assert_eq!(h2.flush(), Ok(()));

    let failed: Vec<_> = storage
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Write && r.done == 0)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let f = failed[0];
    assert!(f.offset <= from && from < f.offset + f.len as u64, "{f:?}");
    let got = storage.contents();
    assert_eq!(
        got.len(),
        f.offset as usize,
        "nothing past the failed request"
    );
    assert!(got == data[..f.offset as usize]);
    let st = h2.stats(false);
    assert!(st.errors >= 1 && st.lost_bytes > 0, "{st:?}");
    assert_eq!(st.last_errno, Errno::ENOSPC.0 as u64);
    h1.close().unwrap();
    h2.close().unwrap();
}

// Proves: running out of capacity mid-stream stores exactly the bytes that fit and reports ENOSPC at close.
#[test]
fn a09c_capacity_enospc() {
    let cap = 100_000u64;
    let storage = mem(MockConfig {
        capacity: Some(cap),
        write_latency: ms(1),
        ..MockConfig::default()
    });
    let e = Engine::new(Config::default());
    let h = open(&e, 11, &storage, Mode::WRITE);
    let data = pattern(11, 256 * K);
    let mut failed = false;
    for c in data.chunks(BLOCK) {
        if let Err(e) = h.write(c) {
            assert_eq!(e, Errno::ENOSPC);
            failed = true;
            break;
        }
    }
    let close = h.close();
    let stats = e.totals(false);
    assert!(failed ^ (close == Err(Errno::ENOSPC)), "{failed} {close:?}");
    let got = storage.contents();
    assert_eq!(got.len(), cap as usize);
    assert!(got == data[..cap as usize]);
    // Lost is what was acknowledged and not stored: the short write's stored
    // part is not counted.
    assert_eq!(stats.lost_bytes, stats.app_write_bytes - cap);
}

// Proves: a write larger than the write buffer goes straight to storage, after the pending data it overlaps, and drops the read-ahead chunks it overlaps.
#[test]
fn a10_direct_write_orders_and_invalidates() {
    let cfg = Config {
        write_buffer: 128 * K,
        initial_write_buffer: 128 * K,
        ..Config::default()
    };
    let old = blocks(512 * K, 4);
    let storage = mem_with(
        MockConfig {
            read_latency: ms(1),
            write_latency: ms(2),
            ..MockConfig::default()
        },
        old.clone(),
    );
    let e = Engine::new(cfg);
    let h = open(&e, 25, &storage, Mode::READ_WRITE);
    let mut buf = vec![0u8; BLOCK];
    for i in 0..4 {
        assert_eq!(h.read(&mut buf), Ok(BLOCK));
        assert_eq!(buf, old[i * BLOCK..(i + 1) * BLOCK]);
    }
    assert!(wait_until(Duration::from_secs(2), || storage.in_flight() == 0));

    // Cached now: chunks [0, 128K) and [128K, 256K). The pending small write
    // lies in the second chunk, the big one spans both: the small one's
    // landing drops only the second chunk, so the first one's bytes in
    // [100K, 128K) go stale unless the direct write drops it.
    // A first write elsewhere goes out at once; the small one queues
    // behind it (one request in flight at first), so the big one must wait
    // for both to keep the order.
    let first = pattern(249, 1000);
    let small = pattern(250, 1000);
    let big = pattern(251, 160 * K);
    assert_eq!(h.pwrite(&first, 400 * K as u64), Ok(first.len()));
    assert_eq!(h.pwrite(&small, 150 * K as u64), Ok(small.len()));
    assert_eq!(h.pwrite(&big, 100 * K as u64), Ok(big.len()));
    let expected = overlaid(&old, 400 * K, &first);
    let expected = overlaid(&overlaid(&expected, 150 * K, &small), 100 * K, &big);
    assert_eq!(
        storage.contents(),
        expected,
        "a direct write is on storage on return, after the pending one"
    );
    assert!(storage
        .requests()
        .iter()
        .any(|r| r.op == Op::Write && r.offset == 100 * K as u64 && r.done == big.len()));
    assert_eq!(
        pread_exact(&h, 96 * K as u64, 64 * K),
        expected[96 * K..160 * K]
    );
    assert_eq!(pread_exact(&h, 0, 512 * K), expected);
    h.close().unwrap();
    assert_eq!(storage.contents(), expected);
}

// Proves: a storage read error reaches the reader as that errno without moving the offset, is neither cached nor sticky, and once storage heals the same reads return the right bytes.
#[test]
fn a11_read_errors_are_returned_not_cached() {
    let len = 256 * K;
    let data = blocks(len, 11);
    let storage = mem_with(MockConfig::default(), data.clone());
    let bad = 200 * K;
    storage.inject(Fault {
        op: Op::Read,
        from: bad as u64,
        until: bad as u64 + 1,
        errno: Errno::EIO,
        times: u32::MAX,
    });
    let e = Engine::new(Config::default());
    let h = open(&e, 26, &storage, Mode::READ);
    let mut buf = vec![0u8; BLOCK];
    for i in 0..bad / BLOCK {
        assert_eq!(h.read(&mut buf), Ok(BLOCK), "block {i}");
        assert!(buf == data[i * BLOCK..(i + 1) * BLOCK], "block {i}");
    }
    assert_eq!(h.read(&mut buf), Err(Errno::EIO));
    assert_eq!(
        h.position(),
        bad as u64,
        "a failed read does not move the offset"
    );
    assert_eq!(h.pread(&mut buf, bad as u64 - 10), Err(Errno::EIO));
    assert_eq!(
        pread_exact(&h, bad as u64 + 1, BLOCK),
        data[bad + 1..bad + 1 + BLOCK]
    );
    assert!(h.stats(false).errors >= 1);

    storage.heal();
    assert_eq!(h.read(&mut buf), Ok(BLOCK));
    assert_eq!(buf, data[bad..bad + BLOCK]);
    assert!(read_to_eof(&h, BLOCK, len / BLOCK) == data[bad + BLOCK..]);
    assert_eq!(pread_exact(&h, 0, len), data);
    assert_eq!(h.flush(), Ok(()), "read errors are not sticky");
    h.close().unwrap();
}
