//! Concurrency: threads sharing and not sharing handles on disjoint regions.
//! Every data check is byte for byte; no test asserts on elapsed time.

mod common;

use common::*;

// ------------------------------------------------------- C. concurrency

// Proves: four threads (two sharing one Arc<Handle>, two with their own handles) doing write/pwrite/read/pread on disjoint regions always read their own latest bytes, and storage ends as the union of their models.
#[test]
fn c01_concurrent_disjoint_regions() {
    const REGION: usize = 192 * K;
    const THREADS: usize = 4;
    let initial = pattern(77, REGION * THREADS);
    let storage = mem_with(
        MockConfig {
            write_latency: Duration::from_micros(200),
            read_latency: Duration::from_micros(50),
            ..MockConfig::default()
        },
        initial.clone(),
    );
    let e = Arc::new(Engine::new(Config::default()));
    let shared = Arc::new(open(&e, 17, &storage, Mode::READ_WRITE));
    let mut joins = Vec::new();
    for t in 0..THREADS {
        let own = if t < 2 {
            None
        } else {
            Some(open(&e, 17, &storage, Mode::READ_WRITE))
        };
        let shared = Arc::clone(&shared);
        let base = t * REGION;
        let mut model = initial[base..base + REGION].to_vec();
        joins.push(thread::spawn(move || {
            let mut rng = Rng::new(1000 + t as u64);
            for op in 0..250 {
                let len = 1 + rng.below(12_000) as usize;
                let rel = rng.below((REGION - len) as u64) as usize;
                let off = (base + rel) as u64;
                match (rng.below(4), own.as_ref()) {
                    (0, Some(h)) => {
                        let mut d = vec![0u8; len];
                        rng.fill(&mut d);
                        assert_eq!(h.seek(SeekFrom::Start(off)), Ok(off));
                        assert_eq!(h.write(&d), Ok(len));
                        assert_eq!(h.position(), off + len as u64);
                        model[rel..rel + len].copy_from_slice(&d);
                    }
                    (0, None) | (1, _) => {
                        let h = own.as_ref().unwrap_or(&shared);
                        let mut d = vec![0u8; len];
                        rng.fill(&mut d);
                        assert_eq!(h.pwrite(&d, off), Ok(len));
                        model[rel..rel + len].copy_from_slice(&d);
                    }
                    (2, Some(h)) => {
                        let mut d = vec![0u8; len];
                        assert_eq!(h.seek(SeekFrom::Start(off)), Ok(off));
                        assert_eq!(h.read(&mut d), Ok(len));
                        assert!(d == model[rel..rel + len], "t{t} op{op} read {len}@{off}");
                    }
                    _ => {
                        let h = own.as_ref().unwrap_or(&shared);
                        let mut d = vec![0u8; len];
                        assert_eq!(h.pread(&mut d, off), Ok(len));
                        assert!(d == model[rel..rel + len], "t{t} op{op} pread {len}@{off}");
                    }
                }
            }
            let h = own.as_ref().unwrap_or(&shared);
            let mut all = vec![0u8; REGION];
            assert_eq!(h.pread(&mut all, base as u64), Ok(REGION));
            assert!(all == model, "t{t} final region");
            if let Some(h) = own {
                h.close().unwrap();
            }
            model
        }));
    }
    let mut expected = Vec::new();
    for j in joins {
        expected.extend(j.join().expect("worker thread panicked"));
    }
    shared.flush().unwrap();
    let got = storage.contents();
    assert_eq!(got.len(), expected.len());
    if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
        panic!("storage differs from the models first at byte {i}");
    }
    assert!(pread_exact(&shared, 0, expected.len()) == expected);
    Arc::try_unwrap(shared).ok().unwrap().close().unwrap();
}
