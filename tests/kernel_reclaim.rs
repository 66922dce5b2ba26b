//! Reclaiming what retention takes out (`shard::reclaim`): the old checkpoints and WAL
//! segments a publication retires leave the disk by bounded steps after it (ticks, the next
//! checkpoint's steps, or an orderly close), are never read again, and what a crash leaves
//! of them is garbage the next open ignores and reclaims.

use std::path::Path;

use stormhold::checkpoint::CheckpointOptions;
use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::{Config, Durability, Kernel};

const WAL_DIR: &str = "/k/shard-0000/wal";
const CKPT_DIR: &str = "/k/shard-0000/ckpt";

fn config() -> Config {
    let epochs = EpochConfig {
        ops_max: 1_000_000,
        wal_bytes_max: 64 << 20,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    let checkpoints =
        CheckpointOptions { max_retained: 2, full_every_incrementals: 0, ..CheckpointOptions::default() };
    Config::builder()
        .shards(1)
        .segment_size_bytes(8192)
        .checkpoint_options(checkpoints)
        .epochs(epochs)
        .build()
        .unwrap()
}

fn names(env: &SimEnv, dir: &str) -> Vec<String> {
    let mut names = env.list_dir(Path::new(dir)).unwrap();
    names.sort();
    names
}

fn retired(env: &SimEnv) -> Vec<String> {
    names(env, WAL_DIR).into_iter().filter(|n| n.ends_with(".retired")).collect()
}

fn checkpoint_dirs(env: &SimEnv) -> Vec<String> {
    names(env, CKPT_DIR).into_iter().filter(|n| n.starts_with("ckpt-")).collect()
}

fn load(kernel: &Kernel<SimEnv>, round: u64) {
    for i in 0..40u64 {
        kernel.put(&i.to_be_bytes(), &[round as u8; 200], Durability::None).unwrap();
    }
}

fn assert_loaded(kernel: &Kernel<SimEnv>, round: u64) {
    for i in 0..40u64 {
        assert_eq!(kernel.get(&i.to_be_bytes()).unwrap(), Some(vec![round as u8; 200]), "key {i}");
    }
}

#[test]
fn what_retention_took_out_leaves_the_disk_by_ticks_and_at_close() {
    let env = SimEnv::new(21, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    let mut retired_seen = 0;
    for round in 1..=6 {
        load(&kernel, round);
        kernel.checkpoint().unwrap();
        retired_seen += retired(&env).len();
    }
    assert!(retired_seen > 0, "retention retires segments before it removes them");
    // Ticks reclaim the rest, a bounded unit per step.
    let mut ticks = 0;
    while !retired(&env).is_empty() || checkpoint_dirs(&env).len() > 2 {
        kernel.tick();
        ticks += 1;
        assert!(ticks <= 20, "ticks reclaim: {:?} {:?}", retired(&env), checkpoint_dirs(&env));
    }
    assert_eq!(checkpoint_dirs(&env).len(), 2, "two checkpoints retained");
    // One more publication, then an orderly close reclaims what it retired.
    load(&kernel, 7);
    kernel.checkpoint().unwrap();
    kernel.close().unwrap();
    assert_eq!(retired(&env), Vec::<String>::new(), "close reclaims every retired segment");
    assert_eq!(checkpoint_dirs(&env).len(), 2, "close reclaims every removed checkpoint");
    let kernel = Kernel::open(env, Path::new("/k"), config()).unwrap();
    assert_loaded(&kernel, 7);
}

#[test]
fn what_a_crash_leaves_of_retired_files_is_never_read_and_is_reclaimed_after_open() {
    let env = SimEnv::new(22, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    for round in 1..=3 {
        load(&kernel, round);
        kernel.checkpoint().unwrap();
    }
    assert!(
        checkpoint_dirs(&env).len() > 2,
        "a dropped checkpoint's directory waits: {:?}",
        checkpoint_dirs(&env)
    );
    // A retired segment full of bytes that are no valid record, as a crash midway through
    // reclaiming may leave one: were it read, recovery would refuse or replay garbage.
    let path = format!("{WAL_DIR}/wal-0000000000000001.log.retired");
    let file = env.open(Path::new(&path), OpenOptions::create()).unwrap();
    file.write_all_at(&[0x5a; 3000], 0).unwrap();
    file.sync_all().unwrap();
    env.sync_dir(Path::new(WAL_DIR)).unwrap();
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    assert_loaded(&kernel, 3);
    kernel.close().unwrap();
    assert_eq!(retired(&env), Vec::<String>::new(), "the retired segment found at open is reclaimed");
    assert_eq!(checkpoint_dirs(&env).len(), 2, "the dropped checkpoint's directory is gone");
    let kernel = Kernel::open(env, Path::new("/k"), config()).unwrap();
    assert_loaded(&kernel, 3);
}
