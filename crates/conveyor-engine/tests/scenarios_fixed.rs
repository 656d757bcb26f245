//! What libconveyor gets wrong, and the engine must not: offsets after pending writes, one shared offset, reads at end of file, repeated passes, flush waiting for the last request.
//! Every data check is byte for byte; no test asserts on elapsed time.

mod common;

use common::*;

// ------------------------------------------- B. what libconveyor gets wrong

// Proves: after an 8192-byte write, SEEK_CUR and SEEK_END both give 8192 (pending data counts) and the next write lands there.
#[test]
fn b10_offsets_after_write() {
    let storage = mem(MockConfig {
        write_latency: ms(2),
        ..MockConfig::default()
    });
    let e = Engine::new(Config::default());
    let h = open(&e, 12, &storage, Mode::READ_WRITE);
    let a = pattern(12, 8192);
    let b = pattern(13, 3000);
    assert_eq!(h.write(&a), Ok(8192));
    assert_eq!(h.seek(SeekFrom::Current(0)), Ok(8192));
    assert_eq!(h.seek(SeekFrom::End(0)), Ok(8192));
    assert_eq!(h.size(), Ok(8192));
    assert_eq!(h.write(&b), Ok(3000));
    assert_eq!(h.seek(SeekFrom::Current(0)), Ok(11192));
    assert_eq!(h.seek(SeekFrom::End(0)), Ok(11192));
    h.close().unwrap();
    assert_eq!(storage.contents(), [a, b].concat());
}

// Proves: read 4K, write 4K, read 4K without seeking reads offset 8192 (one shared offset), and the write landed at 4096.
#[test]
fn b11_read_write_read_shares_offset() {
    let old = blocks(64 * K, 7);
    let storage = mem_with(
        MockConfig {
            read_latency: ms(1),
            write_latency: ms(1),
            ..MockConfig::default()
        },
        old.clone(),
    );
    let e = Engine::new(Config::default());
    let h = open(&e, 13, &storage, Mode::READ_WRITE);
    let mut buf = vec![0u8; BLOCK];
    assert_eq!(h.read(&mut buf), Ok(BLOCK));
    assert_eq!(buf, old[..BLOCK], "block 0");
    let x = pattern(130, BLOCK);
    assert_eq!(h.write(&x), Ok(BLOCK));
    assert_eq!(h.read(&mut buf), Ok(BLOCK));
    assert_eq!(buf, old[2 * BLOCK..3 * BLOCK], "must be block 2");
    assert_eq!(h.position(), 3 * BLOCK as u64);
    assert_eq!(pread_exact(&h, BLOCK as u64, BLOCK), x);
    h.close().unwrap();
    assert_eq!(storage.contents(), overlaid(&old, BLOCK, &x));
}

// Proves: reads at end of file return 0 every time, each costs at most one storage request, and afterwards nothing keeps running in the background.
#[test]
fn b12_eof_reads_do_not_spin() {
    for len in [10_000usize, 128 * K] {
        let data = pattern(len as u64, len);
        let storage = mem_with(
            MockConfig {
                read_latency: ms(1),
                ..MockConfig::default()
            },
            data.clone(),
        );
        let e = Engine::new(Config::default());
        let h = open(&e, 14, &storage, Mode::READ);
        let got = read_to_eof(&h, BLOCK, len / BLOCK + 1);
        let mut buf = vec![0u8; BLOCK];
        assert!(got == data, "content of {len}");
        let before = storage.requests().len();
        for i in 0..100 {
            assert_eq!(h.read(&mut buf), Ok(0), "EOF read {i}");
            assert_eq!(h.pread(&mut buf, len as u64), Ok(0));
        }
        assert_eq!(h.position(), len as u64);
        let during = storage.requests().len() - before;
        assert!(during <= 200 + 4, "{during} requests for 200 EOF reads");
        assert_eq!(storage.in_flight(), 0);
        let a = storage.requests().len();
        thread::sleep(ms(50));
        let b = storage.requests().len();
        assert_eq!(a, b, "requests issued with no application activity");
        assert_eq!(storage.in_flight(), 0);
    }
}

// Proves: five sequential passes over a 4 MiB file (seek to 0 between) return every 4K block once, in order, with the right content.
#[test]
fn b13_repeated_sequential_passes() {
    let len = 4 * M;
    let data = blocks(len, 13);
    let storage = mem_with(
        MockConfig {
            read_latency: Duration::from_micros(200),
            ..MockConfig::default()
        },
        data.clone(),
    );
    let e = Engine::new(Config::default());
    let h = open(&e, 15, &storage, Mode::READ);
    let mut buf = vec![0u8; BLOCK];
    for pass in 0..5 {
        assert_eq!(h.seek(SeekFrom::Start(0)), Ok(0));
        for i in 0..len / BLOCK {
            assert_eq!(h.read(&mut buf), Ok(BLOCK), "pass {pass} block {i}");
            if buf[..] != data[i * BLOCK..(i + 1) * BLOCK] {
                let idx = u64::from_le_bytes(buf[..8].try_into().unwrap());
                panic!("pass {pass}: block {i} wrong (holds block index {idx})");
            }
        }
        assert_eq!(h.read(&mut buf), Ok(0), "pass {pass} EOF");
    }
}

// Proves: flush returns only after the last storage request finished: nothing in flight and all data on storage the moment it returns.
#[test]
fn b14_flush_waits_for_last_request() {
    let storage = mem(MockConfig {
        write_latency: ms(5),
        ..MockConfig::default()
    });
    let e = Engine::new(Config::default());
    let h = open(&e, 16, &storage, Mode::WRITE);
    let data = pattern(16, M);
    for c in data.chunks(BLOCK) {
        assert_eq!(h.write(c), Ok(BLOCK));
    }
    h.flush().unwrap();
    assert_eq!(storage.in_flight(), 0);
    assert!(storage.contents() == data, "storage incomplete after flush");
    h.close().unwrap();
}
