//! `Kernel::tick` prepares each shard's next WAL preallocation step ahead of need and syncs
//! the new length itself (issues 11, 12): with a tick between commits, no commit grows a WAL
//! file (only a rotation's new segment does), the tick's sync makes what was appended before
//! it durable and no more, and a failed sync in it fails the shard like any failed sync.

use std::path::{Path, PathBuf};

use stormhold::env::sim::{CallKind, Fault, FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::{Config, Durability, Kernel, SyncState};

fn config() -> Config {
    Config::builder()
        .shards(1)
        .segment_size_bytes(64 * 1024)
        .sync_on_tick(false)
        .build()
        .expect("valid config")
}

/// Every WAL segment under `dir` with its length, in path order.
fn segments(env: &SimEnv, dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for name in env.list_dir(dir).expect("list") {
        let path = dir.join(&name);
        if name.ends_with(".log") {
            let len = env.open(&path, OpenOptions::read_only()).expect("open").len().expect("len");
            found.push((path, len));
        } else if env.list_dir(&path).is_ok() {
            found.extend(segments(env, &path));
        }
    }
    found
}

#[test]
fn with_a_tick_between_commits_no_commit_grows_a_wal_file() {
    let env = SimEnv::new(21, FaultOptions::default()).expect("env");
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).expect("open");
    let value = vec![7; 300];
    let (mut grown_by_ticks, mut rotations) = (0, 0);
    for i in 0..700u32 {
        let before = segments(&env, Path::new("/k"));
        let key = format!("key-{:05}", i % 500).into_bytes();
        let durability = if i % 3 == 0 { Durability::Data } else { Durability::None };
        kernel.put(&key, &value, durability).expect("put");
        let after = segments(&env, Path::new("/k"));
        if after.len() == before.len() && after.last().map(|s| &s.0) == before.last().map(|s| &s.0) {
            assert_eq!(after, before, "put {i} grew a WAL file");
        } else {
            rotations += 1;
        }
        let report = kernel.tick();
        assert!(report.failed.is_empty(), "tick {i}: {:?}", report.failed);
        if segments(&env, Path::new("/k")) != after {
            grown_by_ticks += 1;
            let status = &kernel.shard_status()[0];
            assert_eq!(status.durable_lsn, status.last_lsn, "tick {i}: its sync covers what was appended");
        }
    }
    assert!(grown_by_ticks >= 10, "the ticks grew the WAL {grown_by_ticks} times");
    assert!(rotations >= 2, "the run rotated {rotations} times");
}

#[test]
fn a_failed_sync_in_the_ticks_preparation_fails_the_shard() {
    let env = SimEnv::new(22, FaultOptions::default()).expect("env");
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).expect("open");
    let value = vec![8; 300];
    // Unsynced puts only, so the first sync after this is the one a tick's preparation runs.
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 3 });
    let mut failed = None;
    for i in 0..200u32 {
        kernel.put(format!("key-{i:04}").as_bytes(), &value, Durability::None).expect("put");
        let report = kernel.tick();
        if !report.failed.is_empty() {
            failed = Some((i, report.failed));
            break;
        }
    }
    let (i, failures) = failed.expect("a tick prepared a step and its sync failed");
    assert!(i >= 5, "the preparation waited for the tail to pass half a step (put {i})");
    assert_eq!(failures[0].0, 0);
    let status = &kernel.shard_status()[0];
    assert_eq!(status.sync, SyncState::SyncFailed);
    assert!(status.durable_lsn < status.last_lsn, "nothing the failed sync covered is durable");
    assert!(kernel.put(b"later", &value, Durability::Data).is_err(), "a failed sync is never retried");
}
