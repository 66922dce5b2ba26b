//! The `Kernel` front door: the API on the real OS (get/scan/put/delete/increment,
//! transactions, documents, checkpoints, sync handles, the directory lock, config checks) and,
//! on the simulated disk, crash-safe creation and the isolation of a failed shard.

use std::path::Path;
use std::sync::Arc;

use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::sim::{CallKind, CrashMode, Fault, FaultOptions, SimEnv};
use stormhold::env::{Env, OsEnv};
use stormhold::{Config, Durability, Kernel, KernelError, Router, SyncState};

fn config(shards: u32) -> Config {
    Config::builder().shards(shards).segment_size_bytes(64 * 1024).build().expect("valid config")
}

fn open_os(dir: &Path, config: Config) -> Kernel<OsEnv> {
    Kernel::open(OsEnv::new(), dir, config).unwrap_or_else(|e| panic!("open: {e}"))
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

#[test]
fn writes_survive_reopen_and_reads_see_unsynced_writes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kernel = open_os(dir.path(), config(4));
        for i in 0..100 {
            kernel.put(&key(i), &i.to_le_bytes(), Durability::None).unwrap();
        }
        assert_eq!(
            kernel.get(&key(7)).unwrap(),
            Some(7u32.to_le_bytes().to_vec()),
            "unsynced write is visible"
        );
        kernel.delete(&key(8), Durability::Data).unwrap();
        assert_eq!(kernel.increment(b"counter", 5, Durability::Data).unwrap(), 5);
        assert_eq!(kernel.increment(b"counter", 2, Durability::Data).unwrap(), 7);
        kernel.close().unwrap();
    }
    let kernel = open_os(dir.path(), config(4));
    assert_eq!(kernel.get(&key(7)).unwrap(), Some(7u32.to_le_bytes().to_vec()));
    assert_eq!(kernel.get(&key(8)).unwrap(), None);
    assert_eq!(kernel.get(b"counter").unwrap(), Some(7u64.to_le_bytes().to_vec()));
    let stats = kernel.stats();
    assert_eq!(stats.total.entries, 100, "99 keys plus the counter");
    assert!(stats.shards.iter().all(|s| s.entries > 0), "hash routing spreads keys: {stats:?}");
    let replayed: u64 = kernel.recovery_reports().iter().map(|r| r.as_ref().unwrap().records_replayed).sum();
    assert_eq!(replayed, 103, "every commit is one record");
}

#[test]
fn scans_are_ordered_across_shards_and_prefix_scans_use_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open_os(dir.path(), config(3));
    for i in (0..50).rev() {
        kernel.put(&key(i), b"v", Durability::None).unwrap();
    }
    kernel.put(b"other", b"v", Durability::None).unwrap();
    let all = kernel.scan::<&[u8]>(..).unwrap();
    assert_eq!(all.len(), 51);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "scan is ordered");
    let range = kernel.scan(key(10)..key(20)).unwrap();
    assert_eq!(
        range.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        (10..20).map(key).collect::<Vec<_>>()
    );
    assert_eq!(kernel.scan_prefix(b"key-001").unwrap().len(), 10);
    assert_eq!(kernel.scan_prefix(b"oth").unwrap().len(), 1);
    assert!(kernel.scan(key(20)..key(10)).unwrap().is_empty(), "an inverted range is empty, not a panic");
}

#[test]
fn transactions_are_atomic_see_their_own_writes_and_refuse_other_shards() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::builder().shards(8).router(Router::Prefix { len_bytes: 2 }).build().unwrap();
    let kernel = open_os(dir.path(), config.clone());
    let mut txn = kernel.begin();
    txn.put(b"a:1", b"x").unwrap();
    txn.increment(b"a:n", 3).unwrap();
    txn.increment(b"a:n", 4).unwrap();
    assert_eq!(txn.get(b"a:n").unwrap(), Some(7u64.to_le_bytes().to_vec()));
    assert_eq!(kernel.get(b"a:1").unwrap(), None, "uncommitted writes are invisible outside");
    let other =
        (0..=255u8).map(|b| vec![b, b':']).find(|k| kernel.shard_of(k) != kernel.shard_of(b"a:")).unwrap();
    match txn.put(&other, b"y") {
        Err(KernelError::CrossShard { key, .. }) => assert_eq!(key, other),
        other => panic!("expected CrossShard, got {other:?}"),
    }
    let commit = txn.commit(Durability::Data).unwrap();
    assert_eq!(commit.shard, Some(kernel.shard_of(b"a:")));
    assert!(kernel.sync_handle(&commit).is_synced());
    let mut aborted = kernel.begin();
    aborted.put(b"a:2", b"never").unwrap();
    aborted.abort();
    drop(kernel);
    let kernel = open_os(dir.path(), config);
    assert_eq!(kernel.get(b"a:1").unwrap(), Some(b"x".to_vec()));
    assert_eq!(kernel.get(b"a:n").unwrap(), Some(7u64.to_le_bytes().to_vec()));
    assert_eq!(kernel.get(b"a:2").unwrap(), None);
}

#[test]
fn increments_of_a_non_counter_and_overflow_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open_os(dir.path(), config(2));
    kernel.put(b"text", b"abc", Durability::None).unwrap();
    let error = kernel.increment(b"text", 1, Durability::None).unwrap_err();
    assert!(error.to_string().contains("not an 8-byte counter"), "{error}");
    kernel.increment(b"n", u64::MAX, Durability::None).unwrap();
    let error = kernel.increment(b"n", 1, Durability::None).unwrap_err();
    assert!(error.to_string().contains("overflow"), "{error}");
    assert_eq!(
        kernel.get(b"n").unwrap(),
        Some(u64::MAX.to_le_bytes().to_vec()),
        "a refused increment changes nothing"
    );
    assert!(kernel.shard_status().iter().all(|s| s.failed.is_none()), "a caller's mistake fails no shard");
}

#[test]
fn a_second_open_is_refused_and_reopening_with_another_shape_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open_os(dir.path(), config(4));
    assert!(matches!(Kernel::open(OsEnv::new(), dir.path(), config(4)), Err(KernelError::Locked { .. })));
    drop(kernel);
    match Kernel::open(OsEnv::new(), dir.path(), config(5)) {
        Err(KernelError::ConfigMismatch { detail, .. }) => assert!(detail.contains("4 shards"), "{detail}"),
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
    let prefix = Config::builder().shards(4).router(Router::Prefix { len_bytes: 3 }).build().unwrap();
    assert!(matches!(
        Kernel::open(OsEnv::new(), dir.path(), prefix),
        Err(KernelError::ConfigMismatch { .. })
    ));
    std::fs::write(dir.path().join("KERNEL"), b"STRMHOLD garbage garbage garbage!").unwrap();
    match Kernel::open(OsEnv::new(), dir.path(), config(4)) {
        Err(KernelError::Corrupt { path, offset, .. }) => {
            assert!(path.ends_with("KERNEL"));
            assert_eq!(offset, 29, "the checksum field (KERNEL format 2)");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn documents_are_idempotent_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::builder().shards(4).router(Router::Prefix { len_bytes: 4 }).build().unwrap();
    {
        let kernel = open_os(dir.path(), config.clone());
        let mut doc = kernel.begin_document("d1").unwrap();
        doc.insert(b"doc1:a", b"1").unwrap();
        doc.commit_chunk().unwrap();
        doc.insert(b"doc1:b", b"2").unwrap();
        // The process dies before the document is complete: only the chunk is durable.
        std::mem::forget(doc);
        let mut done = kernel.begin_document("d2").unwrap();
        done.insert(b"doc2:a", b"x").unwrap();
        done.commit().unwrap();
    }
    let kernel = open_os(dir.path(), config);
    assert_eq!(kernel.completed_documents().unwrap().into_iter().collect::<Vec<_>>(), ["d2"]);
    assert_eq!(kernel.get(b"doc1:a").unwrap(), Some(b"1".to_vec()), "the durable chunk survived");
    assert_eq!(kernel.get(b"doc1:b").unwrap(), None);
    // Re-import both: d1 completes, d2 is skipped whole.
    let mut doc = kernel.begin_document("d1").unwrap();
    assert!(!doc.already_complete());
    doc.insert(b"doc1:a", b"1").unwrap();
    doc.insert(b"doc1:b", b"2").unwrap();
    doc.commit().unwrap();
    let mut again = kernel.begin_document("d2").unwrap();
    again.insert(b"doc2:a", b"changed").unwrap();
    assert!(again.already_complete(), "known once the document's shard is");
    assert_eq!(again.commit().unwrap().shard, None, "nothing written");
    assert_eq!(kernel.get(b"doc2:a").unwrap(), Some(b"x".to_vec()));
    assert_eq!(kernel.scan_prefix(b"doc1").unwrap().len(), 2);
    assert_eq!(kernel.completed_documents().unwrap().len(), 2);
}

#[test]
fn checkpoints_bound_replay_and_tick_checkpoints_when_an_epoch_trigger_fires() {
    let dir = tempfile::tempdir().unwrap();
    let epochs = EpochConfig { ops_max: 50, ..EpochConfig::low_latency() };
    let config = Config::builder().shards(2).epochs(epochs).build().unwrap();
    {
        let kernel = open_os(dir.path(), config.clone());
        for i in 0..40 {
            kernel.put(&key(i), b"v", Durability::None).unwrap();
        }
        assert_eq!(kernel.checkpoint().unwrap().len(), 2);
        for i in 40..45 {
            kernel.put(&key(i), b"w", Durability::Data).unwrap();
        }
    }
    let kernel = open_os(dir.path(), config.clone());
    let reports: Vec<_> = kernel.recovery_reports().into_iter().map(Option::unwrap).collect();
    assert!(reports.iter().all(|r| r.checkpoint.is_some()), "{reports:?}");
    assert_eq!(
        reports.iter().map(|r| r.records_replayed).sum::<u64>(),
        5,
        "only records after the checkpoint"
    );
    assert_eq!(kernel.scan::<&[u8]>(..).unwrap().len(), 45);
    let before = kernel.stats().total.checkpoints;
    assert!(kernel.tick().checkpoints.is_empty(), "no trigger fired yet");
    for i in 0..200 {
        kernel.put(&key(1000 + i), b"x", Durability::None).unwrap();
    }
    let tick = kernel.tick();
    assert!(!tick.checkpoints.is_empty(), "the ops trigger fired: {tick:?}");
    assert!(kernel.stats().total.checkpoints > before);
}

#[test]
fn sync_handles_track_unsynced_commits_and_tick_syncs_them() {
    let env = SimEnv::new(3, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env, Path::new("/k"), config(2)).unwrap();
    let commit = kernel.begin();
    drop(commit);
    let mut txn = kernel.begin();
    txn.put(b"k", b"v").unwrap();
    let info = txn.commit(Durability::None).unwrap();
    let handle = kernel.sync_handle(&info);
    assert!(!handle.is_synced());
    let shard = info.shard.unwrap() as usize;
    assert_eq!(kernel.shard_status()[shard].sync, SyncState::Dirty);
    assert!(
        !handle.wait_timeout(std::time::Duration::from_millis(5)).unwrap(),
        "nothing syncs it in the background"
    );
    let tick = kernel.tick();
    assert_eq!(tick.synced, vec![shard as u32]);
    assert!(handle.is_synced());
    assert_eq!(kernel.shard_status()[shard].sync, SyncState::Clean);
    let info = kernel.begin();
    drop(info);
    let lsn = kernel.put(b"k2", b"v", Durability::None).unwrap();
    assert!(lsn > 0);
}

#[test]
fn a_failed_sync_fails_only_its_shard() {
    let env = SimEnv::new(4, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config(4)).unwrap();
    let victim = kernel.shard_of(b"victim");
    let bystander = (0..).map(key).find(|k| kernel.shard_of(k) != victim).unwrap();
    kernel.put(b"victim", b"1", Durability::None).unwrap();
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 9 });
    let error = kernel.put(b"victim", b"2", Durability::Data).unwrap_err();
    let (shard, failure) = error.shard_failure().expect("a shard failure");
    assert_eq!(shard, victim);
    assert!(!failure.data_loss);
    let status = &kernel.shard_status()[victim as usize];
    assert_eq!(status.sync, SyncState::SyncFailed);
    assert!(kernel.get(b"victim").unwrap_err().to_string().contains(&format!("shard {victim} is failed")));
    kernel.put(&bystander, b"fine", Durability::Data).unwrap();
    assert_eq!(kernel.get(&bystander).unwrap(), Some(b"fine".to_vec()));
    assert!(kernel.scan::<&[u8]>(..).is_err(), "a scan never skips a failed shard");
    // The retry is a reopen: the shard recovers from what is durable.
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env, Path::new("/k"), config(4)).unwrap();
    assert!(kernel.shard_status().iter().all(|s| s.failed.is_none()));
    assert_eq!(kernel.get(&bystander).unwrap(), Some(b"fine".to_vec()));
}

#[test]
fn damaged_wal_fails_one_shard_at_open_with_data_loss_and_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open_os(dir.path(), config(2));
    let (a, b) = (key(0), (1..).map(key).find(|k| kernel.shard_of(k) != kernel.shard_of(&key(0))).unwrap());
    kernel.put(&a, b"1", Durability::Data).unwrap();
    kernel.put(&b, b"2", Durability::Data).unwrap();
    let victim = kernel.shard_of(&a);
    drop(kernel);
    let wal_dir = dir.path().join(format!("shard-{victim:04}/wal"));
    let segment = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.ends_with("LOCK"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[0..16].copy_from_slice(b"garbage garbage!");
    std::fs::write(&segment, bytes).unwrap();
    let kernel = open_os(dir.path(), config(2));
    let status = &kernel.shard_status()[victim as usize];
    let failure = status.failed.as_ref().expect("the damaged shard is failed");
    assert!(failure.data_loss, "{failure}");
    assert!(kernel.recovery_reports()[victim as usize].is_none());
    assert!(kernel.get(&a).is_err());
    assert_eq!(kernel.get(&b).unwrap(), Some(b"2".to_vec()));
}

#[test]
fn creation_is_crash_safe_at_every_call() {
    let mut crashed = 0;
    for call in 1.. {
        let env = SimEnv::new(
            call,
            FaultOptions {
                crash: CrashMode::AtCall { call, after: call % 2 == 0 },
                ..FaultOptions::default()
            },
        )
        .unwrap();
        let first = Kernel::open(env.clone(), Path::new("/k"), config(3));
        if !env.is_crashed() {
            first.expect("an open without a crash succeeds");
            break;
        }
        crashed += 1;
        drop(first);
        env.restart();
        let kernel = Kernel::open(env.clone(), Path::new("/k"), config(3))
            .unwrap_or_else(|e| panic!("reopen after a crash at call {call}: {e}"));
        assert!(
            kernel.shard_status().iter().all(|s| s.failed.is_none()),
            "call {call}: {:?}",
            kernel.shard_status()
        );
        kernel.put(b"k", b"v", Durability::Data).unwrap();
    }
    assert!(crashed > 20, "creation makes many Env calls: {crashed}");
}

#[test]
fn recovery_reports_progress_and_runs_shards_in_parallel_on_the_os() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kernel = open_os(dir.path(), config(4));
        for i in 0..20 {
            kernel.put(&key(i), b"v", Durability::None).unwrap();
        }
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let config = Config::builder()
        .shards(4)
        .segment_size_bytes(64 * 1024)
        .recovery_threads(4)
        .progress(Arc::new(move |p| sink.lock().unwrap().push(p.clone())))
        .build()
        .unwrap();
    let kernel = open_os(dir.path(), config);
    let mut done: Vec<u32> = seen.lock().unwrap().iter().filter(|p| p.done).map(|p| p.shard).collect();
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2, 3]);
    assert_eq!(seen.lock().unwrap().iter().filter(|p| p.done).map(|p| p.records_replayed).sum::<u64>(), 20);
    assert_eq!(kernel.scan::<&[u8]>(..).unwrap().len(), 20);
    assert!(OsEnv::new().parallelism() >= 1);
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open_os(dir.path(), config(2));
    let long_key = vec![0; stormhold::kernel::KEY_BYTES_MAX + 1];
    assert!(matches!(kernel.put(&long_key, b"v", Durability::None), Err(KernelError::InvalidInput(_))));
    assert!(matches!(kernel.begin_document(""), Err(KernelError::InvalidInput(_))));
    assert!(matches!(Config::builder().shards(0).build(), Err(KernelError::InvalidConfig(_))));
}

#[test]
fn the_wal_bytes_cap_forces_a_checkpoint_without_tick() {
    let env = SimEnv::new(5, FaultOptions::default()).unwrap();
    let epochs = EpochConfig { wal_bytes_max: 64 * 1024, ..EpochConfig::low_latency() };
    let config = Config::builder().shards(1).segment_size_bytes(64 * 1024).epochs(epochs).build().unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config.clone()).unwrap();
    let value = vec![7; 1000];
    for i in 0..1000 {
        kernel.put(&key(i), &value, Durability::None).unwrap();
    }
    let checkpoints = kernel.stats().total.checkpoints;
    assert!(checkpoints >= 10, "about 1 MB of WAL under a 64 KiB cap: {checkpoints} checkpoints");
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = Kernel::open(env, Path::new("/k"), config).unwrap();
    let report = kernel.recovery_reports().remove(0).unwrap();
    // The WAL is kept back to the oldest of the 3 retained checkpoints (so a damaged latest
    // one can be skipped), in whole segments: a few caps, not the 1 MB written.
    assert!(report.wal_bytes_scanned < 7 * 64 * 1024, "the WAL kept is bounded by the cap: {report}");
    assert!(report.records_replayed < 100, "{report}");
}

/// A ticker whose interval is far longer than the test goes on at once while a tick reports
/// work left, so a checkpoint of many steps is published and merged without waiting out an
/// interval between ticks; and dropping it does not wait out the interval either.
#[test]
fn a_ticker_with_a_long_interval_writes_a_checkpoint_of_many_ticks_without_waiting_between() {
    let dir = tempfile::tempdir().unwrap();
    // A 64 KiB WAL-bytes cap: a checkpoint is written in steps of 256 B, eight a tick.
    let epochs = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max: 64 << 10,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    let config = Config::builder().shards(1).epochs(epochs).build().unwrap();
    let kernel = Arc::new(open_os(dir.path(), config));
    // 150 one-put records, under half the cap: the commits freeze nothing.
    for i in 0..150u32 {
        kernel.put(&key(i), &[i as u8; 100], Durability::None).unwrap();
    }
    // Frozen (no I/O): about 18 KiB of entries, about 70 steps, nine ticks.
    kernel.begin_checkpoint().unwrap();
    let before = kernel.stats().total;
    assert_eq!((before.checkpoints, before.checkpoint_chunks, before.backpressure_steps), (0, 0, 0));
    let ticker = Kernel::spawn_ticker(Arc::clone(&kernel), std::time::Duration::from_secs(3600));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while kernel.stats().total.checkpoints == 0 {
        assert!(std::time::Instant::now() < deadline, "the ticker slept between ticks with work left");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(ticker);
    let stats = kernel.stats().total;
    assert_eq!(stats.checkpoints, 1, "{stats:?}");
    assert!(stats.checkpoint_chunks > 16, "it took more than two ticks of steps: {stats:?}");
    assert_eq!(stats.backpressure_steps, 0, "no commit wrote any: {stats:?}");
    assert_eq!(kernel.scan::<&[u8]>(..).unwrap().len(), 150);
    let kernel = Arc::into_inner(kernel).expect("the ticker released its reference");
    kernel.close().unwrap();
}

#[test]
fn the_ticker_thread_syncs_in_the_background_and_many_threads_commit_to_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(open_os(dir.path(), config(1)));
    let ticker = Kernel::spawn_ticker(Arc::clone(&kernel), std::time::Duration::from_millis(1));
    let mut txn = kernel.begin();
    txn.put(b"bg", b"1").unwrap();
    let info = txn.commit(Durability::None).unwrap();
    assert!(
        kernel.sync_handle(&info).wait_timeout(std::time::Duration::from_secs(10)).unwrap(),
        "the ticker synced it"
    );
    drop(ticker);
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let kernel = Arc::clone(&kernel);
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    kernel.put(&key(t * 1000 + i), &i.to_le_bytes(), Durability::Data).unwrap();
                    kernel.increment(b"total", 1, Durability::Data).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(kernel.get(b"total").unwrap(), Some(400u64.to_le_bytes().to_vec()), "no increment lost");
    let kernel = Arc::into_inner(kernel).expect("the ticker released its reference");
    kernel.close().unwrap();
    let kernel = open_os(dir.path(), config(1));
    assert_eq!(kernel.scan_prefix(b"key-").unwrap().len(), 400);
    assert_eq!(kernel.get(b"total").unwrap(), Some(400u64.to_le_bytes().to_vec()));
}

#[test]
fn review_regressions_increment_documents_foreign_handles_and_idle_ticks() {
    let env = SimEnv::new(6, FaultOptions::default()).unwrap();
    let config = Config::builder().shards(4).router(Router::Prefix { len_bytes: 2 }).build().unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config).unwrap();
    // A refused increment keeps the transaction's earlier write of that key.
    let mut txn = kernel.begin();
    txn.put(b"t:k", b"abc").unwrap();
    assert!(txn.increment(b"t:k", 1).is_err());
    assert_eq!(txn.get(b"t:k").unwrap(), Some(b"abc".to_vec()));
    txn.commit(Durability::Data).unwrap();
    assert_eq!(kernel.get(b"t:k").unwrap(), Some(b"abc".to_vec()));
    // A CommitInfo naming a shard the kernel does not have is an error, not a panic.
    let foreign = stormhold::CommitInfo { shard: Some(99), lsn: 1 };
    assert!(!kernel.sync_handle(&foreign).is_synced());
    assert!(matches!(kernel.sync_handle(&foreign).wait(), Err(KernelError::InvalidInput(_))));
    // Idle ticks publish nothing, whatever the time trigger says.
    kernel.checkpoint().unwrap();
    env.sleep(std::time::Duration::from_secs(60));
    for _ in 0..3 {
        assert!(kernel.tick().checkpoints.is_empty());
    }
    // A failed shard does not stop a document import on another shard.
    let doc_shard = kernel.shard_of(b"d:1");
    let other = (0..=255u8).map(|b| vec![b, b':']).find(|k| kernel.shard_of(k) != doc_shard).unwrap();
    kernel.put(&other, b"1", Durability::None).unwrap();
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 1 });
    assert!(kernel.put(&other, b"2", Durability::Data).is_err());
    let mut doc = kernel.begin_document("doc").unwrap();
    doc.insert(b"d:1", b"x").unwrap();
    doc.commit().unwrap();
    assert_eq!(kernel.get(b"d:1").unwrap(), Some(b"x".to_vec()));
}

#[test]
fn the_replay_bound_holds_across_restarts_that_each_write_less_than_the_cap() {
    let env = SimEnv::new(7, FaultOptions::default()).unwrap();
    let epochs = EpochConfig { wal_bytes_max: 64 * 1024, ..EpochConfig::low_latency() };
    let config = Config::builder().shards(1).segment_size_bytes(64 * 1024).epochs(epochs).build().unwrap();
    let mut replayed_bytes = Vec::new();
    for round in 0..10u32 {
        let kernel = Kernel::open(env.clone(), Path::new("/k"), config.clone()).unwrap();
        replayed_bytes.push(kernel.recovery_reports()[0].as_ref().unwrap().wal_bytes_scanned);
        for i in 0..40 {
            kernel.put(&key(round * 100 + i), &[1; 1000], Durability::Data).unwrap();
        }
        drop(kernel);
        env.crash();
        env.restart();
    }
    let last = *replayed_bytes.last().unwrap();
    assert!(last < 6 * 64 * 1024, "10 rounds of 40 KB each: the WAL kept stays bounded: {replayed_bytes:?}");
}

#[test]
fn a_point_in_time_recovery_reports_what_it_dropped() {
    use stormhold::wal::{RecoveryMode, WalOptions};
    let dir = tempfile::tempdir().unwrap();
    let wal = WalOptions {
        segment_size_bytes: 64 * 1024,
        recovery_mode: RecoveryMode::PointInTime,
        ..WalOptions::default()
    };
    let config = Config::builder().shards(1).wal_options(wal).build().unwrap();
    {
        let kernel = open_os(dir.path(), config.clone());
        for i in 0..3 {
            kernel.put(&key(i), b"value", Durability::Data).unwrap();
        }
    }
    let wal_dir = dir.path().join("shard-0000/wal");
    let segment = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.ends_with("LOCK"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4096 + 60] ^= 0xff; // the first record's payload; two later records vouch for it
    std::fs::write(&segment, bytes).unwrap();
    let kernel = open_os(dir.path(), config);
    let report = kernel.recovery_reports().remove(0).expect("point-in-time recovery opens");
    let dropped = report.dropped.as_ref().expect("the report says what was dropped");
    assert_eq!(dropped.from_lsn, 1, "{report}");
    assert!(dropped.later_records >= 2, "the two later records are dropped with it: {report}");
    assert!(report.to_string().contains("DROPPED"), "{report}");
    assert_eq!(kernel.get(&key(2)).unwrap(), None);
}
