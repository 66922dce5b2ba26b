//! Checkpoints off the commit path (issue 11, item 2): a checkpoint frozen with
//! `Kernel::begin_checkpoint` covers exactly the records up to its lsn, commits land and read
//! back while it is frozen, `tick` writes it, and a crash anywhere in between loses nothing
//! durable. The simulator's `kernel` and `checkpoint` workloads sweep the same with faults.

use std::path::Path;

use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel};

fn config() -> Config {
    let epochs = EpochConfig {
        ops_max: 1_000_000,
        wal_bytes_max: 64 << 20,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    Config::builder().shards(1).epochs(epochs).build().unwrap()
}

fn counter(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

#[test]
fn a_frozen_checkpoint_covers_its_lsn_while_commits_land_and_tick_publishes_it() {
    let env = SimEnv::new(11, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    kernel.put(b"a", b"1", Durability::None).unwrap();
    kernel.put(b"gone", b"x", Durability::None).unwrap();
    let frozen = kernel.begin_checkpoint().unwrap();
    assert_eq!(frozen.len(), 1, "the shard froze one");
    let (_, lsn) = frozen[0];
    // Commits land while the checkpoint is frozen, and reads see them at once.
    kernel.put(b"a", b"2", Durability::Data).unwrap();
    kernel.delete(b"gone", Durability::Data).unwrap();
    kernel.increment(b"n", 5, Durability::Data).unwrap();
    assert_eq!(kernel.get(b"a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(kernel.get(b"gone").unwrap(), None);
    assert_eq!(kernel.begin_checkpoint().unwrap(), frozen, "the pending checkpoint stays the one frozen");
    let report = kernel.tick();
    assert_eq!(report.checkpoints.len(), 1, "tick wrote the frozen checkpoint: {report:?}");
    assert_eq!(kernel.stats().total.checkpoints, 1);
    // Commits after the publication, then a crash: recovery starts from the checkpoint at
    // exactly the frozen lsn and replays the rest.
    kernel.increment(b"n", 1, Durability::Data).unwrap();
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env, Path::new("/k"), config()).unwrap();
    let recovery = kernel.recovery_reports().remove(0).unwrap();
    assert_eq!(recovery.checkpoint.as_ref().map(|c| c.lsn), Some(lsn), "{recovery}");
    assert_eq!(recovery.records_replayed, 4, "the commits after the freeze are replayed: {recovery}");
    assert_eq!(kernel.get(b"a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(kernel.get(b"gone").unwrap(), None);
    assert_eq!(kernel.get(b"n").unwrap(), Some(counter(6)));
}

#[test]
fn a_crash_while_a_checkpoint_is_frozen_loses_nothing_durable_and_the_next_one_is_incremental() {
    let env = SimEnv::new(12, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    for i in 0..50u64 {
        kernel.put(&i.to_be_bytes(), &counter(i), Durability::None).unwrap();
    }
    kernel.checkpoint().unwrap();
    kernel.put(&7u64.to_be_bytes(), b"seven", Durability::Data).unwrap();
    kernel.begin_checkpoint().unwrap();
    kernel.delete(&8u64.to_be_bytes(), Durability::Data).unwrap();
    // The crash comes before anybody wrote the frozen checkpoint.
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    let recovery = kernel.recovery_reports().remove(0).unwrap();
    assert_eq!(
        recovery.checkpoint.as_ref().map(|c| c.id),
        Some(1),
        "the frozen one never published: {recovery}"
    );
    assert_eq!(kernel.get(&7u64.to_be_bytes()).unwrap(), Some(b"seven".to_vec()));
    assert_eq!(kernel.get(&8u64.to_be_bytes()).unwrap(), None);
    assert_eq!(kernel.get(&9u64.to_be_bytes()).unwrap(), Some(counter(9)));
    // The changes since checkpoint 1 (replayed) go into an incremental on it.
    kernel.begin_checkpoint().unwrap();
    kernel.put(b"late", b"1", Durability::Data).unwrap();
    let id = kernel.tick().checkpoints[0].1;
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env, Path::new("/k"), config()).unwrap();
    let recovery = kernel.recovery_reports().remove(0).unwrap();
    assert_eq!(recovery.checkpoint.as_ref().map(|c| c.id), Some(id), "{recovery}");
    assert_eq!(recovery.records_replayed, 1, "only the commit after the freeze: {recovery}");
    assert_eq!(kernel.get(&7u64.to_be_bytes()).unwrap(), Some(b"seven".to_vec()));
    assert_eq!(kernel.get(&8u64.to_be_bytes()).unwrap(), None);
    assert_eq!(kernel.get(b"late").unwrap(), Some(b"1".to_vec()));
    assert_eq!(kernel.scan::<&[u8]>(..).unwrap().len(), 50, "49 of the first keys and \"late\"");
}
