//! Crash-safe write-behind against a model: the engine keeps its segments
//! in a journal; at any moment, what storage holds plus the journal's
//! pending records (written as the flusher writes them) is every write the
//! program was told succeeded, byte for byte.
//!
//! "Any moment" is made by closing storage's gate: requests in flight stop
//! before they change anything, later ones queue, and the writes after it
//! stay acknowledged in memory. The process does not die here; what the
//! flusher would find is read from a second mapping of the journal.

mod common;
use common::*;
use conveyor_engine::journal::{replay, Journal};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum W {
    At(u64, usize),
    Append(usize),
}

fn op() -> impl Strategy<Value = W> {
    prop_oneof![
        3 => (0u64..300_000, 1usize..20_000).prop_map(|(o, l)| W::At(o, l)),
        1 => (1usize..9_000).prop_map(W::Append),
    ]
}

fn engine(journal: &Arc<Journal>) -> Engine {
    let cfg = Config {
        // Nothing is written for age while storage is held.
        max_age: Duration::from_secs(3600),
        ..Config::default()
    };
    Engine::with_journal(
        cfg,
        conveyor_engine::Hooks::default(),
        conveyor_engine::Journaling::Ready(Arc::clone(journal)),
    )
}

/// Storage plus what the flusher would write equals the model, with
/// storage stopped after `stop` of the writes.
fn check(ops: &[W], stop: usize, seed: u64) -> std::result::Result<(), TestCaseError> {
    let journal = Arc::new(Journal::create(256).expect("memfd"));
    let e = engine(&journal);
    let b = mem(MockConfig {
        write_latency: Duration::from_micros(200),
        ..MockConfig::default()
    });
    let h = open(&e, 1, &b, Mode::READ_WRITE);
    let ha = open(
        &e,
        1,
        &b,
        Mode {
            read: false,
            write: true,
            append: true,
        },
    );
    let mut model: Vec<u8> = Vec::new();
    for (i, w) in ops.iter().enumerate() {
        if i == stop {
            b.close_gate();
        }
        let data = pattern(
            seed + i as u64,
            match w {
                W::At(_, l) | W::Append(l) => *l,
            },
        );
        match w {
            W::At(off, _) => {
                prop_assert_eq!(h.pwrite(&data, *off).unwrap(), data.len());
                let end = *off as usize + data.len();
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[*off as usize..end].copy_from_slice(&data);
            }
            W::Append(_) => {
                prop_assert_eq!(ha.write(&data).unwrap(), data.len());
                model.extend_from_slice(&data);
            }
        }
    }
    // The moment of death: no request runs (those that had passed the
    // gate are done), storage as it is, and the journal as a second
    // process maps it.
    b.settle();
    let mut stored = b.contents();
    let seen = Journal::open(journal.fd().try_clone().unwrap()).unwrap();
    let pending = seen.pending();
    prop_assert!(pending.iter().all(|p| p.file == pending[0].file));
    replay(&pending, &mut stored).unwrap();
    prop_assert!(
        stored == model,
        "storage + journal differs from the model (stop {})",
        stop
    );
    // And the live process still writes it all.
    b.open_gate();
    h.close().unwrap();
    ha.close().unwrap();
    prop_assert!(b.contents() == model);
    prop_assert!(
        journal_empty(&seen),
        "records left after every write completed"
    );
    Ok(())
}

fn journal_empty(j: &Journal) -> bool {
    j.pending().is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn storage_and_journal_hold_every_acknowledged_write(
        ops in prop::collection::vec(op(), 1..60),
        stop in 0usize..60,
        seed in 0u64..1000,
    ) {
        check(&ops, stop.min(ops.len()), seed)?;
    }
}

/// Many small sequential writes (one record grows with each) and a stop
/// in the middle: the journal covers what storage does not.
#[test]
fn coalesced_writes_are_covered_while_storage_is_held() {
    let ops: Vec<W> = (0..400).map(|i| W::At(i * 100, 100)).collect();
    for stop in [0, 1, 57, 200, 399] {
        check(&ops, stop, 7).unwrap();
    }
}

/// Segments in the journal give their memory back as heap segments do:
/// beyond the 64 most recently freed, a freed slot's pages go back to the
/// system (a process that once buffered 200 MiB kept it all resident).
#[test]
fn freed_slots_beyond_the_warm_ones_give_their_memory_back() {
    use std::os::unix::fs::MetadataExt;
    let journal = Arc::new(Journal::create(512).expect("memfd"));
    let e = engine(&journal);
    let b = mem(MockConfig::default());
    let h = open(&e, 1, &b, Mode::READ_WRITE);
    let data = pattern(3, 64 * 1024);
    for i in 0..200u64 {
        h.pwrite(&data, i * data.len() as u64).unwrap();
    }
    h.flush().unwrap();
    let allocated = std::fs::File::from(journal.fd().try_clone().unwrap())
        .metadata()
        .unwrap()
        .blocks()
        * 512;
    // 64 warm slots of 68 KiB, the header and a files-table page.
    assert!(
        allocated <= 64 * 68 * 1024 + 64 * 1024,
        "{} KiB of the journal stay allocated after 200 slots were freed",
        allocated / 1024
    );
    h.close().unwrap();
}
