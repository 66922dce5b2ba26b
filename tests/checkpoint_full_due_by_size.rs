//! When a full checkpoint is due (`CheckpointStore::full_due`, `full_every_incrementals`):
//! after `k` incrementals that together hold at least the full's bytes, and in any case at
//! `2k`; `create` refuses an incremental exactly when one is due. The rule that keeps the
//! full checkpoints of a growing load in proportion to the load (issue 11).

use std::path::Path;

use stormhold::checkpoint::{CheckpointData, CheckpointError, CheckpointOptions, CheckpointStore, UserMeta};
use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv};

fn store(full_every_incrementals: u32) -> CheckpointStore<SimEnv> {
    let env = SimEnv::new(7, FaultOptions { crash: CrashMode::Off, ..FaultOptions::default() })
        .expect("valid fault options");
    let options =
        CheckpointOptions { max_retained: 3, full_every_incrementals, ..CheckpointOptions::default() };
    CheckpointStore::open(env, Path::new("/ckpt"), options).expect("open").0
}

fn puts(keys: std::ops::Range<u32>) -> Vec<(Vec<u8>, Vec<u8>)> {
    keys.map(|i| (format!("key-{i:05}").into_bytes(), vec![b'v'; 40])).collect()
}

fn full(store: &mut CheckpointStore<SimEnv>, lsn: u64, keys: u32) -> u64 {
    let data = CheckpointData::Full(puts(0..keys).into_iter().collect());
    store.create(lsn, lsn, UserMeta::default(), data, None).expect("full").id
}

fn incremental(
    store: &mut CheckpointStore<SimEnv>,
    lsn: u64,
    keys: std::ops::Range<u32>,
    parent: u64,
) -> Result<u64, CheckpointError> {
    let data =
        CheckpointData::Incremental { puts: puts(keys).into_iter().collect(), deletes: Default::default() };
    store.create(lsn, lsn, UserMeta::default(), data, Some(parent)).map(|meta| meta.id)
}

#[test]
fn small_incrementals_chain_past_k_up_to_twice_k() {
    let mut store = store(2);
    let mut parent = full(&mut store, 1, 100);
    // Incrementals of a key each against a full of 100: not due at k, due at 2k.
    for (lsn, due) in [(2, false), (3, false), (4, false), (5, false), (6, true)] {
        assert_eq!(store.full_due(parent), due, "after {} incrementals", lsn - 2);
        if due {
            let refused = incremental(&mut store, lsn, 200..201, parent);
            assert!(
                matches!(refused, Err(CheckpointError::FullCheckpointDue { incrementals: 4, .. })),
                "{refused:?}"
            );
            break;
        }
        parent =
            incremental(&mut store, lsn, 100 + lsn as u32..101 + lsn as u32, parent).expect("incremental");
    }
    let again = full(&mut store, 7, 104);
    assert!(!store.full_due(again), "a new full starts a new chain");
}

#[test]
fn incrementals_as_large_as_the_full_make_it_due_at_k() {
    let mut store = store(2);
    let base = full(&mut store, 1, 50);
    let one = incremental(&mut store, 2, 50..80, base).expect("first");
    assert!(!store.full_due(one), "below k");
    let two = incremental(&mut store, 3, 80..110, one).expect("second");
    assert!(store.full_due(two), "k incrementals holding more bytes than the full");
    assert!(matches!(
        incremental(&mut store, 4, 110..111, two),
        Err(CheckpointError::FullCheckpointDue { .. })
    ));
}

#[test]
fn with_zero_every_checkpoint_is_full() {
    let mut store = store(0);
    let base = full(&mut store, 1, 10);
    assert!(store.full_due(base));
    assert!(matches!(
        incremental(&mut store, 2, 10..11, base),
        Err(CheckpointError::FullCheckpointDue { .. })
    ));
}
