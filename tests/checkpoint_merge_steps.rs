//! The merge of a published checkpoint into the in-memory base runs in steps after the
//! publication (issue 11, item 2): the publication leaves it to `tick`, which merges a
//! bounded share per call while reads see the whole state; without `tick`, commits past a
//! quarter of the WAL cap merge their share, so the merge is done before the next freeze.

use std::path::Path;

use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel};

fn config(wal_bytes_max: u64) -> Config {
    let epochs = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    Config::builder().shards(1).epochs(epochs).build().unwrap()
}

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Loads keys `0..count` (value: the key) in transactions of 1,000 puts.
fn load(kernel: &Kernel<SimEnv>, range: std::ops::Range<u64>) {
    let keys: Vec<u64> = range.collect();
    for chunk in keys.chunks(1000) {
        let mut txn = kernel.begin();
        for &i in chunk {
            txn.put(&key(i), &key(i)).unwrap();
        }
        txn.commit(Durability::None).unwrap();
    }
}

fn merge_keys_left(kernel: &Kernel<SimEnv>) -> u64 {
    kernel.shard_status()[0].merge_keys_left
}

fn reads_back(kernel: &Kernel<SimEnv>, count: u64) {
    for i in [0, 1, count / 3, count / 2, count - 1] {
        assert_eq!(kernel.get(&key(i)).unwrap(), Some(key(i).to_vec()), "key {i} mid-merge");
    }
    assert_eq!(kernel.get(&key(count)).unwrap(), None);
    let scanned = kernel.scan(key(count - 10)..key(count + 10)).unwrap();
    assert_eq!(scanned.len(), 10, "a scan across the merge sees every key once");
}

#[test]
fn tick_merges_a_published_checkpoint_in_bounded_steps_while_reads_see_every_key() {
    const KEYS: u64 = 600_000;
    let env = SimEnv::new(21, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env, Path::new("/k"), config(64 << 30)).unwrap();
    load(&kernel, 0..KEYS);
    // A tombstone in the layer: it is no run (a sequential load's layer is handed to the
    // base whole, below), so it is merged in slices.
    kernel.delete(&key(KEYS + 1), Durability::None).unwrap();
    kernel.checkpoint().unwrap();
    assert_eq!(merge_keys_left(&kernel), KEYS + 1, "the publication leaves the whole merge to later steps");
    reads_back(&kernel, KEYS);
    let mut ticks = 0;
    while merge_keys_left(&kernel) > 0 {
        let before = merge_keys_left(&kernel);
        kernel.tick();
        ticks += 1;
        assert!(merge_keys_left(&kernel) < before, "each tick merges a share");
        reads_back(&kernel, KEYS);
        assert!(ticks < 100, "the merge ends");
    }
    assert!(ticks >= 2, "a tick's share is bounded: {KEYS} keys took {ticks} tick(s)");
    // A checkpoint after the merge is incremental on a merged base and reads stay whole.
    kernel.put(&key(KEYS), b"new", Durability::Data).unwrap();
    kernel.checkpoint().unwrap();
    assert_eq!(kernel.get(&key(KEYS)).unwrap(), Some(b"new".to_vec()));
    assert_eq!(kernel.get(&key(KEYS / 2)).unwrap(), Some(key(KEYS / 2).to_vec()));
}

#[test]
fn a_sequential_load_is_handed_to_the_base_in_one_tick() {
    const KEYS: u64 = 300_000;
    let env = SimEnv::new(23, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env, Path::new("/k"), config(64 << 30)).unwrap();
    load(&kernel, 0..KEYS);
    kernel.checkpoint().unwrap();
    assert_eq!(merge_keys_left(&kernel), KEYS, "the publication leaves the merge to a step");
    kernel.tick();
    assert_eq!(merge_keys_left(&kernel), 0, "one step: the layer's blocks are the base's");
    reads_back(&kernel, KEYS);
    load(&kernel, KEYS..KEYS + 1000);
    kernel.checkpoint().unwrap();
    kernel.tick();
    assert_eq!(merge_keys_left(&kernel), 0);
    reads_back(&kernel, KEYS + 1000);
}

#[test]
fn without_tick_commits_past_a_quarter_of_the_cap_merge_their_share_before_the_next_freeze() {
    const KEYS: u64 = 100_000;
    const CAP_BYTES: u64 = 2 << 20;
    let env = SimEnv::new(22, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config(64 << 30)).unwrap();
    load(&kernel, 0..KEYS);
    kernel.checkpoint().unwrap();
    kernel.close().unwrap();
    // Reopened with a small cap: the base is the recovered checkpoint; one more checkpoint
    // leaves a merge of the whole base.
    let kernel = Kernel::open(env, Path::new("/k"), config(CAP_BYTES)).unwrap();
    kernel.put(&key(KEYS / 2), &key(KEYS / 2), Durability::None).unwrap();
    kernel.checkpoint().unwrap();
    let left_at_publication = merge_keys_left(&kernel);
    assert!(left_at_publication >= KEYS, "the merge is left to later steps");
    // Small commits well below a quarter of the cap (payload bytes; a record slot is about
    // twice its payload here) merge nothing: no commit pays early.
    let mut next = KEYS;
    let wal_bytes_at_publication = kernel.stats().total.wal_bytes;
    // (`Kernel::stats` counts the entries, so it is read every 1,000 puts.)
    while kernel.stats().total.wal_bytes - wal_bytes_at_publication < CAP_BYTES / 16 {
        for _ in 0..1000 {
            kernel.put(&key(next), &key(next), Durability::None).unwrap();
            next += 1;
        }
    }
    assert_eq!(merge_keys_left(&kernel), left_at_publication, "nothing is due before H/4");
    // Commits go on (no tick): the merge ends before the next freeze, in commits' shares.
    let mut shares = 0;
    while kernel.shard_status()[0].pending_checkpoint.is_none() {
        let before = merge_keys_left(&kernel);
        let mut txn = kernel.begin();
        for _ in 0..100 {
            txn.put(&key(next), &key(next)).unwrap();
            next += 1;
        }
        txn.commit(Durability::None).unwrap();
        let after = merge_keys_left(&kernel);
        if after < before {
            shares += 1;
            assert!(before - after < left_at_publication, "one commit merged everything");
        }
        assert!(next < KEYS * 10, "a freeze comes: {:?}", kernel.shard_status()[0]);
    }
    assert!(shares >= 2, "the merge was paid in several commits' shares: {shares}");
    assert!(kernel.stats().total.backpressure_steps >= shares, "merge shares count as backpressure");
    reads_back(&kernel, next);
}
