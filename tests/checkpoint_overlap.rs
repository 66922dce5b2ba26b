//! Checkpoints off the commit path (issue 11, item 2): a checkpoint frozen with
//! `Kernel::begin_checkpoint` covers exactly the records up to its lsn, commits land and read
//! back while it is frozen, `tick` writes it, and a crash anywhere in between loses nothing
//! durable. The simulator's `kernel` and `checkpoint` workloads sweep the same with faults.

use std::collections::BTreeMap;
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
    // The commits after the freeze, and the empty record the tick appended to vouch for the
    // newest durable one (DESIGN.md rule 18).
    assert_eq!(recovery.records_replayed, 4 + 1, "the commits after the freeze are replayed: {recovery}");
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
    assert_eq!(
        recovery.records_replayed,
        1 + 1,
        "the commit after the freeze, the vouching record: {recovery}"
    );
    assert_eq!(kernel.get(&7u64.to_be_bytes()).unwrap(), Some(b"seven".to_vec()));
    assert_eq!(kernel.get(&8u64.to_be_bytes()).unwrap(), None);
    assert_eq!(kernel.get(b"late").unwrap(), Some(b"1".to_vec()));
    assert_eq!(kernel.scan::<&[u8]>(..).unwrap().len(), 50, "49 of the first keys and \"late\"");
}

fn delete_range(kernel: &Kernel<SimEnv>, start: &str, end: &str) {
    let mut txn = kernel.begin();
    txn.delete_range(start.as_bytes()..end.as_bytes()).unwrap();
    txn.commit(Durability::Data).unwrap();
}

fn entries(kernel: &Kernel<SimEnv>) -> Vec<(String, String)> {
    let all = kernel.scan::<&[u8]>(..).unwrap().into_iter();
    all.map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())).collect()
}

fn model_delete_range(model: &mut BTreeMap<String, String>, start: &str, end: &str) {
    model.retain(|key, _| !(start..end).contains(&key.as_str()));
}

/// A range delete frozen into a checkpoint, and one landing while that checkpoint is in
/// flight over keys of the frozen layer and of the base: reads hide both at once, and the
/// checkpoint tick writes (an incremental on a full one) holds exactly the frozen state, so
/// a recovery that replays only the commits after the freeze finds the model.
#[test]
fn range_deletes_frozen_into_a_checkpoint_and_landing_while_it_is_in_flight_are_exact() {
    let env = SimEnv::new(13, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..30u32 {
        let (key, value) = (format!("log:{i:03}"), format!("v{i}"));
        kernel.put(key.as_bytes(), value.as_bytes(), Durability::None).unwrap();
        model.insert(key, value);
    }
    kernel.checkpoint().unwrap(); // full: the base
    // Frozen into the next checkpoint: a range delete over base keys, and a put into it.
    delete_range(&kernel, "log:005", "log:010");
    model_delete_range(&mut model, "log:005", "log:010");
    kernel.put(b"log:007", b"back", Durability::Data).unwrap();
    model.insert("log:007".into(), "back".into());
    kernel.put(b"log:100", b"frozen", Durability::Data).unwrap();
    model.insert("log:100".into(), "frozen".into());
    let frozen = kernel.begin_checkpoint().unwrap();
    let at_freeze = model.clone();
    // In flight: a range delete over base keys and the frozen layer's put, and a write.
    delete_range(&kernel, "log:020", "log:101");
    model_delete_range(&mut model, "log:020", "log:101");
    kernel.put(b"log:050", b"late", Durability::Data).unwrap();
    model.insert("log:050".into(), "late".into());
    let expected: Vec<(String, String)> = model.clone().into_iter().collect();
    assert_eq!(entries(&kernel), expected, "reads hide the frozen layer's and the base's keys");
    let reversed = kernel.scan_range_rev(b"log:".as_slice()..b"log;".as_slice(), 3).unwrap();
    let last3: Vec<Vec<u8>> = reversed.into_iter().map(|(k, _)| k).collect();
    assert_eq!(last3, [b"log:050".to_vec(), b"log:019".to_vec(), b"log:018".to_vec()]);
    let published = kernel.tick().checkpoints;
    assert_eq!(published.len(), 1, "tick wrote the frozen checkpoint");
    assert_eq!(entries(&kernel), expected, "publishing and merging keep reads");
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    let recovery = kernel.recovery_reports().remove(0).unwrap();
    assert_eq!(recovery.checkpoint.as_ref().map(|c| (c.id, c.lsn)), Some((published[0].1, frozen[0].1)));
    assert_eq!(
        recovery.records_replayed,
        2 + 1,
        "the two commits after the freeze, the vouching record: {recovery}"
    );
    assert_eq!(entries(&kernel), expected);
    // The checkpoint alone (no replay past it) is the model at the freeze: a crash right
    // after the next freeze is published, with nothing after it, recovers from it alone.
    kernel.begin_checkpoint().unwrap();
    kernel.tick();
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env, Path::new("/k"), config()).unwrap();
    let recovery = kernel.recovery_reports().remove(0).unwrap();
    assert_eq!(recovery.records_replayed, 1, "only the (empty) vouching record: {recovery}");
    assert_eq!(entries(&kernel), expected);
    assert_ne!(at_freeze, model, "the in-flight commits changed the state");
}

/// The bulk-load item of issue 11: with nobody calling `tick`, a load past the WAL cap is
/// checkpointed by the commits themselves, each writing at most a few bounded steps (its
/// share of the pending checkpoint's schedule), never a whole checkpoint, and the WAL to
/// replay stays about one cap.
#[test]
fn a_bulk_load_past_the_wal_cap_without_tick_pays_in_small_steps_and_bounds_replay() {
    let wal_bytes_max = 64 << 10;
    let epochs = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    let config =
        || Config::builder().shards(1).segment_size_bytes(1 << 20).epochs(epochs.clone()).build().unwrap();
    let env = SimEnv::new(14, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    let (keys, per_commit) = (4000u64, 10);
    let mut steps_max = 0;
    for start in (0..keys).step_by(per_commit) {
        let before = kernel.stats().total.backpressure_steps;
        let mut txn = kernel.begin();
        for k in start..start + per_commit as u64 {
            txn.put(&(k * 7919 % keys).to_be_bytes(), &[k as u8; 100]).unwrap();
        }
        txn.commit(Durability::None).unwrap();
        steps_max = steps_max.max(kernel.stats().total.backpressure_steps - before);
    }
    let stats = kernel.stats().total;
    // A full checkpoint of the loaded state: 4,000 entries of 4 + 8 + 4 + 100 bytes in steps
    // of a 256th of the cap (256 B): about 1,800 chunks.
    let chunks_of_a_full_one = keys * 117 / (wal_bytes_max / 256);
    assert!(stats.checkpoints >= 5, "the cap forced checkpoints without tick: {stats:?}");
    assert!(stats.backpressure_steps > 0, "the commits wrote them: {stats:?}");
    assert!(
        steps_max * 8 <= chunks_of_a_full_one,
        "one commit wrote {steps_max} steps, a full checkpoint is {chunks_of_a_full_one}: {stats:?}"
    );
    kernel.sync(Durability::Data).unwrap();
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env, Path::new("/k"), config()).unwrap();
    let recovery = kernel.recovery_reports().remove(0).unwrap();
    // Each commit's record: 10 puts of 4 + 8 + 4 + 100 bytes plus framing, about 1.2 KiB.
    let replayed_bytes = recovery.records_replayed * 1200;
    assert!(replayed_bytes <= 2 * wal_bytes_max, "replay stays about one cap: {recovery}");
    assert_eq!(kernel.scan::<&[u8]>(..).unwrap().len() as u64, keys);
}
