//! The checkpoint writer's two paths: entry by entry, and a stretch of a block at a time for a
//! frozen layer that is a run already. Both must write the checkpoint the layer holds.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::checkpoint::{CheckpointOptions, UserMeta};
use crate::env::sim::{FaultOptions, SimEnv};
use crate::shard::state::State;

type Model = BTreeMap<Bytes, Bytes>;

/// Writes a checkpoint of `view` as a shard does, `budget_bytes` a step; returns whether the
/// stretch path wrote it and what it loads as.
fn write(
    store: &mut CheckpointStore<SimEnv>,
    view: FrozenView,
    parent: Option<u64>,
    budget_bytes: usize,
) -> (bool, u64, Model) {
    let kind = if parent.is_some() { CheckpointKind::Incremental } else { CheckpointKind::Full };
    let epoch = parent.map_or(1, |p| p + 1);
    let staged = store.stage(epoch, 10 * epoch, UserMeta::default(), kind, parent).expect("stage");
    let mut job = Job::new(staged, view, kind, 10 * epoch, EpochId(epoch));
    let stretches = job.stretches;
    let mut steps = 0;
    while !job.fill(budget_bytes).expect("fill") {
        store.write_chunk(&mut job.staged).expect("chunk");
        steps += 1;
        assert!(steps < 1_000_000, "every step makes progress");
    }
    let meta = store.finish_staged(job.into_staged()).expect("finish");
    (stretches, meta.id, store.load(meta.id).expect("load"))
}

/// Ascending keys from `from`, values of lengths across the varint boundaries, one larger
/// than a frame's bound.
fn ascending(from: u32, count: u32) -> Model {
    let lengths = [0usize, 1, 100, 127, 128, 16_384, 3, 200, 1000];
    (from..from + count)
        .map(|i| {
            let len = if i == from + 7 { (1 << 20) + 5 } else { lengths[i as usize % lengths.len()] };
            (format!("key{i:07}").into_bytes(), vec![i as u8; len])
        })
        .collect()
}

fn state_with(base: Model, changes: &Model) -> State {
    let mut state = State::from_base(base);
    for (key, value) in changes {
        state.insert(key, value);
    }
    state
}

#[test]
fn a_layer_that_is_a_run_is_written_a_stretch_at_a_time_and_loads_as_it_does_entry_by_entry() {
    for budget_bytes in [64, 4096, 256 << 10, 1 << 20] {
        let env = SimEnv::new(5, FaultOptions::default()).expect("env");
        let mut store = CheckpointStore::open(env.clone(), Path::new("/ck"), CheckpointOptions::default())
            .expect("open")
            .0;
        // A full checkpoint of an empty base and an ascending layer: the layer alone.
        let first = ascending(0, 3000);
        let mut state = state_with(Model::new(), &first);
        let (stretches, full, loaded) = write(&mut store, state.freeze(), None, budget_bytes);
        assert!(stretches, "budget {budget_bytes}: the stretch path");
        assert_eq!(loaded, first, "budget {budget_bytes}: the full checkpoint");
        while !state.merge_step(usize::MAX) {}
        // An incremental one of an ascending layer above the base.
        let second = ascending(3000, 2000);
        for (key, value) in &second {
            state.insert(key, value);
        }
        let (stretches, _, loaded) = write(&mut store, state.freeze(), Some(full), budget_bytes);
        assert!(stretches, "budget {budget_bytes}: the stretch path, incremental");
        let mut expected = first.clone();
        expected.extend(second.clone());
        assert_eq!(loaded, expected, "budget {budget_bytes}: the incremental checkpoint's chain");
    }
}

#[test]
fn a_layer_that_is_no_run_or_a_full_checkpoint_over_a_base_is_written_entry_by_entry() {
    let env = SimEnv::new(6, FaultOptions::default()).expect("env");
    let mut store =
        CheckpointStore::open(env.clone(), Path::new("/ck"), CheckpointOptions::default()).expect("open").0;
    let base = ascending(0, 500);
    // A tombstone in the layer.
    let mut state = state_with(Model::new(), &base);
    state.remove(b"key0000003");
    let (stretches, _, loaded) = write(&mut store, state.freeze(), None, 4096);
    assert!(!stretches, "a tombstone: entry by entry");
    let mut expected = base.clone();
    expected.remove(&b"key0000003"[..]);
    assert_eq!(loaded, expected);
    // A full checkpoint holds the base too.
    let changes = ascending(500, 100);
    let mut state = state_with(base.clone(), &changes);
    let (stretches, _, loaded) = write(&mut store, state.freeze(), None, 4096);
    assert!(!stretches, "a base under the layer: entry by entry");
    let mut expected = base.clone();
    expected.extend(changes);
    assert_eq!(loaded, expected);
}
