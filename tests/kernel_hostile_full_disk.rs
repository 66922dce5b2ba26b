//! A full disk (issue 13 case 7, DESIGN.md rule 16): a shard failed by ENOSPC keeps serving
//! reads of what it holds and says so in `shard_status`; `Kernel::open` with fewer serving
//! shards than `min_serving_shards` (default: when every shard failed) returns an error.

use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel, KernelError};

const DIR: &str = "/store";

fn env() -> SimEnv {
    SimEnv::new(7, FaultOptions::default()).expect("valid options")
}

fn config(shards: u32) -> stormhold::ConfigBuilder {
    Config::for_simulation().shards(shards).router(stormhold::Router::Prefix { len_bytes: 1 })
}

/// Fills shard 0 (keys starting with `a`) with puts until the disk refuses one; returns
/// how many were acknowledged and the error.
fn fill_until_full(kernel: &Kernel<SimEnv>, env: &SimEnv) -> (u32, KernelError) {
    env.set_disk_bytes_max(Some(env.used_bytes() + 8 * 1024));
    for i in 0u32..10_000 {
        if let Err(error) = kernel.put(format!("a{i:05}").as_bytes(), &[7; 300], Durability::Data) {
            return (i, error);
        }
    }
    panic!("the disk never filled");
}

// Bug pinned: the shard failed by ENOSPC refused reads as well as writes.
#[test]
fn a_shard_failed_by_a_full_disk_serves_reads_of_what_it_holds() {
    let env = env();
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config(2).build().unwrap()).unwrap();
    kernel.put(b"b-other", b"v", Durability::Data).unwrap();
    let (acknowledged, error) = fill_until_full(&kernel, &env);
    assert!(acknowledged > 0, "some puts fit before the disk filled");
    let failure = error.shard_failure().map(|(_, f)| f.to_string()).unwrap_or_else(|| error.to_string());
    assert!(failure.contains("full"), "the error says the disk is full: {failure}");
    let status = &kernel.shard_status()[0];
    assert!(status.failed.is_some(), "the shard is failed: {status:?}");
    assert!(status.serves_reads, "and says it still serves reads: {status:?}");
    for i in 0..acknowledged {
        let key = format!("a{i:05}");
        assert_eq!(kernel.get(key.as_bytes()).unwrap(), Some(vec![7; 300]), "{key}");
    }
    let scanned = kernel.scan_prefix(b"a").unwrap().len();
    assert_eq!(scanned, acknowledged as usize, "scan serves what the shard holds");
    assert!(kernel.put(b"a-more", b"v", Durability::Data).is_err(), "writes stay refused");
    assert!(kernel.shard_status()[1].failed.is_none() && kernel.shard_status()[1].serves_reads);
    assert_eq!(kernel.get(b"b-other").unwrap(), Some(b"v".to_vec()), "the other shard serves");
}

// A failed sync serves nothing (fsyncgate): the flag is honest the other way too.
#[test]
fn a_shard_failed_by_a_failed_sync_serves_no_reads() {
    use stormhold::env::sim::{CallKind, Fault};
    let env = env();
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config(1).build().unwrap()).unwrap();
    kernel.put(b"a1", b"v", Durability::Data).unwrap();
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 1 });
    assert!(kernel.put(b"a2", b"v", Durability::Data).is_err());
    let status = &kernel.shard_status()[0];
    assert!(status.failed.is_some() && !status.serves_reads, "{status:?}");
    assert!(kernel.get(b"a1").is_err(), "a shard failed by a sync serves no reads");
}

/// A store whose every shard fails at open: each shard directory's WAL removed.
fn store_with_every_shard_failing(env: &SimEnv, shards: u32) {
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config(shards).build().unwrap()).unwrap();
    for shard in 0..shards {
        kernel.put(&[b'a' + shard as u8, b'1'], b"v", Durability::Data).unwrap();
    }
    kernel.checkpoint().unwrap();
    kernel.close().unwrap();
    for shard in 0..shards {
        remove_tree(env, &Path::new(DIR).join(format!("shard-{shard:04}")).join("wal"));
    }
}

fn remove_tree(env: &SimEnv, dir: &Path) {
    use stormhold::env::Env;
    for name in env.list_dir(dir).unwrap() {
        env.remove_file(&dir.join(name)).unwrap();
    }
    env.remove_dir(dir).unwrap();
    env.sync_dir(dir.parent().unwrap()).unwrap();
}

// Bug pinned: with every shard failed `Kernel::open` still returned `Ok`.
#[test]
fn open_with_every_shard_failed_is_an_error_naming_each_shard() {
    let env = env();
    store_with_every_shard_failing(&env, 2);
    match Kernel::open(env.clone(), Path::new(DIR), config(2).build().unwrap()) {
        Err(KernelError::TooFewShardsServing { serving: 0, required: 1, failures, .. }) => {
            assert_eq!(failures.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0, 1]);
            assert!(failures.iter().all(|(_, f)| f.data_loss), "{failures:?}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("opened with every shard failed"),
    }
    // The policy is a setting: 0 opens anyway, to inspect each shard.
    let kernel = Kernel::open(env, Path::new(DIR), config(2).min_serving_shards(0).build().unwrap()).unwrap();
    assert!(kernel.shard_status().iter().all(|s| s.failed.is_some() && !s.serves_reads));
}

#[test]
fn open_with_fewer_serving_shards_than_the_minimum_is_an_error() {
    let env = env();
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config(3).build().unwrap()).unwrap();
    kernel.put(b"a1", b"v", Durability::Data).unwrap();
    kernel.checkpoint().unwrap();
    kernel.close().unwrap();
    remove_tree(&env, &Path::new(DIR).join("shard-0000").join("wal"));
    let open = |min: u32| {
        Kernel::open(env.clone(), Path::new(DIR), config(3).min_serving_shards(min).build().unwrap())
    };
    assert!(open(2).is_ok(), "two of three serve: enough for a minimum of 2");
    match open(3) {
        Err(error @ KernelError::TooFewShardsServing { serving: 2, required: 3, .. }) => {
            assert_eq!(error.shard_failure().map(|(s, _)| s), Some(0), "{error}");
            assert!(error.to_string().contains("shard 0 failed"), "{error}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("opened with a shard failed although all must serve"),
    }
    assert!(config(3).min_serving_shards(4).build().is_err(), "the minimum is at most the shard count");
}
