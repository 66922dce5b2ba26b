//! WAL replay writes a same-length overwrite of a checkpointed key into the recovered base in
//! place (issue 11, recovery memory). These tests pin what that must not change: reads after
//! recovery, and the next checkpoint, which must list those keys as changes although the
//! delta never held them. A checkpoint that missed them would bring the old values back at
//! the open after it (the WAL records are covered by then and skipped).

use std::collections::BTreeMap;
use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel};

const DIR: &str = "/store";

fn config() -> Config {
    Config::for_simulation().shards(1).build().expect("valid config")
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

fn check(kernel: &Kernel<SimEnv>, model: &BTreeMap<Vec<u8>, Vec<u8>>, when: &str) {
    for i in 0..200 {
        assert_eq!(kernel.get(&key(i)).expect("get"), model.get(&key(i)).cloned(), "{when}: key {i}");
    }
}

/// Puts `value` at the keys of `indices` (not durable) and records them in `model`.
fn put_all(
    kernel: &Kernel<SimEnv>,
    model: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    indices: std::iter::StepBy<std::ops::Range<u32>>,
    value: &[u8],
) {
    for i in indices {
        kernel.put(&key(i), value, Durability::None).expect("put");
        model.insert(key(i), value.to_vec());
    }
}

/// A store with a checkpoint of keys 0..200 and a WAL tail that overwrites some of them with
/// values of the same length (in place at the next open), one with another length, deletes
/// one and adds new keys; returns it closed, with the model of what it holds.
fn store_with_a_tail_of_overwrites() -> (SimEnv, BTreeMap<Vec<u8>, Vec<u8>>) {
    let env = SimEnv::new(5, FaultOptions::default()).expect("valid options");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("open");
    let mut model = BTreeMap::new();
    put_all(&kernel, &mut model, (0..200).step_by(1), b"base-value");
    kernel.checkpoint().expect("checkpoint");
    put_all(&kernel, &mut model, (0..200).step_by(3), b"tail-value");
    kernel.put(&key(1), b"a longer tail value", Durability::None).expect("put");
    model.insert(key(1), b"a longer tail value".to_vec());
    kernel.delete(&key(4), Durability::None).expect("delete");
    model.remove(&key(4));
    kernel.put(&key(6), b"tail-again", Durability::None).expect("put");
    model.insert(key(6), b"tail-again".to_vec());
    kernel.close().expect("close");
    (env, model)
}

#[test]
fn overwrites_replayed_in_place_are_read_and_survive_the_next_checkpoint() {
    let (env, model) = store_with_a_tail_of_overwrites();
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("reopen");
    assert!(
        kernel.recovery_reports()[0].as_ref().expect("a report").records_replayed > 0,
        "the tail replayed"
    );
    check(&kernel, &model, "after replay");
    // The checkpoint covers every replayed record: the next open skips them all.
    kernel.checkpoint().expect("checkpoint after recovery");
    kernel.close().expect("close");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("reopen");
    assert_eq!(kernel.recovery_reports()[0].as_ref().expect("a report").records_replayed, 0);
    check(&kernel, &model, "after the checkpoint of the replayed state");
    kernel.close().expect("close");
}

#[test]
fn overwrites_replayed_in_place_then_overwritten_again_checkpoint_the_newest() {
    let (env, mut model) = store_with_a_tail_of_overwrites();
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("reopen");
    // Commits after recovery: a key replayed in place gets a value of another length, one of
    // the same length, one is deleted.
    kernel.put(&key(0), b"longer than before", Durability::None).expect("put");
    model.insert(key(0), b"longer than before".to_vec());
    kernel.put(&key(3), b"same-width", Durability::None).expect("put");
    model.insert(key(3), b"same-width".to_vec());
    kernel.delete(&key(9), Durability::Data).expect("delete");
    model.remove(&key(9));
    check(&kernel, &model, "after commits on the replayed state");
    kernel.checkpoint().expect("checkpoint");
    kernel.close().expect("close");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("reopen");
    check(&kernel, &model, "after the checkpoint");
    kernel.close().expect("close");
}

#[test]
fn a_tick_checkpoints_a_recovered_state_whose_changes_all_went_in_place() {
    // Epochs of 10 ops: the replayed tail (every change a same-length overwrite, so the delta
    // stays empty) is due for a checkpoint, and `tick` must see its changes although the
    // delta holds none (a tick that looked at the delta alone never checkpointed it).
    let epochs = stormhold::EpochConfig { ops_max: 10, ..stormhold::EpochConfig::default() };
    let config = || Config::for_simulation().shards(1).epochs(epochs.clone()).build().expect("valid config");
    let env = SimEnv::new(6, FaultOptions::default()).expect("valid options");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("open");
    let mut model = BTreeMap::new();
    put_all(&kernel, &mut model, (0..200).step_by(1), b"base-value");
    kernel.checkpoint().expect("checkpoint");
    put_all(&kernel, &mut model, (0..200).step_by(2), b"tail-value");
    kernel.close().expect("close");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("reopen");
    assert_eq!(kernel.recovery_reports()[0].as_ref().expect("a report").records_replayed, 100);
    let mut published = Vec::new();
    for _ in 0..200 {
        published.extend(kernel.tick().checkpoints);
        if !published.is_empty() {
            break;
        }
    }
    assert!(!published.is_empty(), "no tick checkpointed the state replayed in place");
    check(&kernel, &model, "after the tick's checkpoint");
    kernel.close().expect("close");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("reopen");
    // The tick's checkpoint covers the 100 overwrites (a vouching record the tick wrote after
    // it may still replay).
    let replayed = kernel.recovery_reports()[0].as_ref().expect("a report").records_replayed;
    assert!(replayed <= 1, "the tick's checkpoint left {replayed} records to replay");
    check(&kernel, &model, "after the reopen");
    kernel.close().expect("close");
}
