//! Extra findings: retries of EINTR in size queries, and jobs that must not queue behind one another.
//! Every data check is byte for byte; no test asserts on elapsed time.

mod common;

use common::*;

// ------------------------------------------------------- F. extra findings

// Proves: lseek(SEEK_END) and fstat never hand the application an EINTR from the backend (the Backend contract says the engine retries it).
#[test]
fn f01_size_retries_eintr() {
    let data = pattern(31, 5000);
    let storage = mem_with(
        MockConfig {
            eintr_every: 2,
            ..MockConfig::default()
        },
        data,
    );
    let e = Engine::new(Config::default());
    let h = open(&e, 21, &storage, Mode::READ_WRITE);
    for i in 0..4 {
        assert_eq!(h.seek(SeekFrom::End(0)), Ok(5000), "seek {i}");
        assert_eq!(h.size(), Ok(5000), "size {i}");
    }
}

// Proves: a prefetch submitted right after another job does not queue behind it on the same worker while the worker cap allows another thread (a blocked request must not stall unrelated work).
#[test]
fn f02_back_to_back_jobs_get_their_own_worker() {
    let e = Engine::new(Config::default()); // 16 workers allowed
                                            // Warm-up: one write batch starts exactly one worker, which then idles.
    let warm = mem(MockConfig::default());
    let w = open(&e, 22, &warm, Mode::WRITE);
    w.write(b"warm").unwrap();
    w.close().unwrap();
    thread::sleep(ms(20));

    // Reads of the first 128 KiB are held; a fresh sequential reader plans
    // two chunks, [0, 128K) (held) and [128K, 256K) (free), back to back.
    let inner = mem_with(MockConfig::default(), blocks(M, 23));
    let gate = Gated::new(Arc::clone(&inner), Hold::ReadsBelow(128 * K as u64));
    let h = open(&e, 23, &gate, Mode::READ);
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; BLOCK];
        h.pread(&mut buf, 0).map(|n| (n, buf))
    });
    let second_done = wait_until(Duration::from_secs(1), || {
        inner
            .requests()
            .iter()
            .any(|r| r.op == Op::Read && r.offset == 128 * K as u64)
    });
    gate.open();
    let (n, buf) = reader.join().unwrap().unwrap();
    assert_eq!(n, BLOCK);
    assert_eq!(buf, blocks(M, 23)[..BLOCK]);
    assert!(
        second_done,
        "the free prefetch waited behind the held one on a single worker"
    );
}

// Proves: a read that storage refuses while writes of the file are still pending is asked again once they are written (rclone's cache answered ENOENT for a range of a new file it had not been given yet; the program's own read would have come after its writes), and a read that fails again is the program's error.
#[test]
fn f03_failed_read_is_asked_again_after_pending_writes() {
    let data = pattern(1, 64 * K);
    let storage = mem_with(MockConfig::default(), data.clone());
    let e = Engine::new(Config::default());
    let h = open(&e, 40, &storage, Mode::READ_WRITE);
    h.pwrite(&[7u8; BLOCK], 200 * K as u64).unwrap();
    storage.inject(Fault {
        op: Op::Read,
        from: 0,
        until: u64::MAX,
        errno: Errno(libc::ENOENT),
        times: 1,
    });
    let mut buf = vec![0u8; BLOCK];
    assert_eq!(h.pread(&mut buf, 8 * K as u64).unwrap(), BLOCK);
    assert_eq!(buf, data[8 * K..8 * K + BLOCK]);
    storage.inject(Fault {
        op: Op::Read,
        from: 0,
        until: u64::MAX,
        errno: Errno::EIO,
        times: u32::MAX,
    });
    assert_eq!(h.pread(&mut buf, 16 * K as u64), Err(Errno::EIO));
    h.close().unwrap();
}
