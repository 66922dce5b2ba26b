//! Checkpoints after a process crash that keeps the page cache (DESIGN.md rule 4 applied to
//! checkpoints): a checkpoint whose `META` rename (or directory entry) sat only in the page
//! cache when the process died is listed by the next open, which must make it durable before
//! anything new vouches for it (an incremental child, a WAL truncation), or a later power
//! loss leaves a child whose parent is gone.
//!
//! Each test crashes the process right after the rename that publishes `META`, reopens, builds
//! on the recovered checkpoint, then cuts the power on a disk that loses every unsynced write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stormhold::checkpoint::{CheckpointData, CheckpointError, CheckpointOptions, CheckpointStore, UserMeta};
use stormhold::env::sim::{CallKind, CrashKind, Fault, FaultOptions, SimEnv, WriteFateWeights, is_crash};
use stormhold::env::{Env, OpenOptions};
use stormhold::{Config, Durability, Kernel};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Seeds of the power losses: each draws which pending directory operations survive, so a
/// kernel that left the parent's `META` unsynced loses it under most of them.
const SEEDS: std::ops::Range<u64> = 0..6;

/// A disk whose machine crashes lose every unsynced write (directory operations survive or
/// vanish as the seed draws).
fn lossy(seed: u64) -> SimEnv {
    let options = FaultOptions {
        write_fate: WriteFateWeights { survive: 0, lose: 1, tear: 0 },
        ..FaultOptions::default()
    };
    SimEnv::new(seed, options).expect("valid fault options")
}

fn store_dir() -> &'static Path {
    Path::new("/ckpt")
}

fn meta_path(store_dir: &Path, id: u64) -> PathBuf {
    store_dir.join(format!("ckpt-{id:016x}")).join("META")
}

fn open_store(env: &SimEnv) -> CheckpointStore<SimEnv> {
    let options =
        CheckpointOptions { max_retained: 3, full_every_incrementals: 4, ..CheckpointOptions::default() };
    CheckpointStore::open(env.clone(), store_dir(), options).unwrap_or_else(|e| panic!("open: {e}")).0
}

fn entry(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// Whether the file at `path` exists in the page cache but not durably.
fn only_in_page_cache(env: &SimEnv, path: &Path) -> bool {
    let cached = env.open(path, OpenOptions::read_only()).is_ok();
    let durable = env.durable_contents(path).expect("valid path").is_some();
    cached && !durable
}

/// Publishes a full checkpoint whose process dies right after the `META` rename, restarts, and
/// checks the precondition of every test here: `META` is readable but not durable.
fn full_checkpoint_killed_after_rename(env: &SimEnv, base: &State) {
    let mut store = open_store(env);
    env.arm(CallKind::Rename, Fault::ProcessCrash { after: true });
    let error = store
        .create(1, 10, UserMeta::default(), CheckpointData::Full(base.clone()), None)
        .expect_err("the process dies in create");
    assert!(
        matches!(&error, CheckpointError::Io { op: "rename", source, .. } if is_crash(source)),
        "the crash hit the rename of META: {error}"
    );
    assert_eq!(env.last_crash_kind(), Some(CrashKind::Process));
    drop(store);
    env.restart();
    assert!(only_in_page_cache(env, &meta_path(store_dir(), 1)), "META of checkpoint 1 is only in the cache");
}

// Bug pinned (found by the process-crash class of the simulator, corpus
// `checkpoint-parent-only-in-page-cache` and `checkpoint-parent-meta-rename-in-page-cache`): after a process crash, incremental checkpoints were
// built on a parent whose `META` sat only in the page cache; a power loss dropped it, the next
// open removed the parent as partial and left the children with a broken chain.
#[test]
fn checkpoint_open_after_a_process_crash_makes_a_recovered_parent_durable_before_its_child() {
    for seed in SEEDS {
        let env = lossy(seed);
        let base: State = [entry("a", "1"), entry("b", "2")].into();
        full_checkpoint_killed_after_rename(&env, &base);

        let mut store = open_store(&env);
        assert_eq!(store.latest().map(|m| m.id), Some(1), "the open lists the checkpoint it found");
        assert!(
            env.durable_contents(&meta_path(store_dir(), 1)).expect("valid path").is_some(),
            "seed {seed}: the writable open made checkpoint 1's META durable"
        );
        let puts: State = [entry("b", "3")].into();
        let increment = CheckpointData::Incremental { puts, deletes: [b"a".to_vec()].into() };
        let child = store.create(2, 20, UserMeta::default(), increment, Some(1)).expect("incremental on 1");
        drop(store);

        env.crash_with(CrashKind::Machine);
        env.restart();
        let store = open_store(&env);
        let loaded = store.load_latest_valid().expect("a checkpoint loads").expect("checkpoints exist");
        assert_eq!(loaded.meta.id, child.id, "seed {seed}: the child survives the power loss");
        assert!(loaded.fallbacks.is_empty(), "seed {seed}: {:?}", loaded.fallbacks);
        assert_eq!(loaded.state, [entry("b", "3")].into(), "seed {seed}: the chain applies whole");
    }
}

fn kernel_config() -> Config {
    Config::for_simulation().shards(1).build().expect("valid config")
}

fn open_kernel(env: &SimEnv) -> Kernel<SimEnv> {
    Kernel::open(env.clone(), Path::new("/db"), kernel_config()).unwrap_or_else(|e| panic!("open: {e}"))
}

fn put_all(kernel: &Kernel<SimEnv>, from: u32, to: u32) {
    for i in from..to {
        kernel.put(format!("k{i:03}").as_bytes(), &i.to_le_bytes(), Durability::Data).expect("durable put");
    }
}

/// The id of the newest checkpoint directory in `store_dir`, as the page cache lists it.
fn newest_checkpoint_id(env: &SimEnv, store_dir: &Path) -> u64 {
    let names = env.list_dir(store_dir).expect("list the checkpoint store");
    let ids =
        names.iter().filter_map(|name| name.strip_prefix("ckpt-")).map(|id| u64::from_str_radix(id, 16));
    ids.map(|id| id.expect("a checkpoint directory name")).max().expect("a checkpoint directory")
}

// The same bug through the kernel (corpus `kernel-checkpoint-parent-only-in-page-cache` and
// `kernel-parent-meta-rename-in-page-cache`): shard 0 reported data loss after a power loss although the simulator damaged no media.
#[test]
fn kernel_reopen_after_a_process_crash_in_a_checkpoint_keeps_every_durable_put_through_a_power_loss() {
    let shard_ckpt = Path::new("/db/shard-0000/ckpt");
    for seed in SEEDS {
        let env = lossy(seed);
        let kernel = open_kernel(&env);
        put_all(&kernel, 0, 20);
        kernel.checkpoint().expect("a first checkpoint");
        put_all(&kernel, 20, 40);
        env.arm(CallKind::Rename, Fault::ProcessCrash { after: true });
        kernel.checkpoint().expect_err("the process dies in the second checkpoint");
        drop(kernel);
        env.restart();
        let killed = newest_checkpoint_id(&env, shard_ckpt);
        assert!(
            only_in_page_cache(&env, &meta_path(shard_ckpt, killed)),
            "seed {seed}: META only in the cache"
        );

        let kernel = open_kernel(&env);
        let report = kernel.recovery_reports()[0].clone().expect("shard 0 recovered");
        assert_eq!(report.checkpoint.map(|c| c.id), Some(killed), "seed {seed}: recovery used it");
        assert!(
            env.durable_contents(&meta_path(shard_ckpt, killed)).expect("valid path").is_some(),
            "seed {seed}: the open made the recovered checkpoint's META durable"
        );
        put_all(&kernel, 40, 60);
        let child = kernel.checkpoint().expect("a checkpoint on top")[0].1;
        assert!(child > killed, "seed {seed}: a new checkpoint");
        drop(kernel);

        env.crash_with(CrashKind::Machine);
        env.restart();
        let kernel = open_kernel(&env);
        let status = &kernel.shard_status()[0];
        assert_eq!(status.failed, None, "seed {seed}: shard 0 recovers");
        assert_eq!(status.last_checkpoint, Some(child), "seed {seed}: from the newest checkpoint");
        for i in 0u32..60 {
            let value = kernel.get(format!("k{i:03}").as_bytes()).expect("get");
            assert_eq!(value, Some(i.to_le_bytes().to_vec()), "seed {seed}: durable put {i} survives");
        }
    }
}
