//! `Kernel::on_durable`: callbacks fired by whoever makes the commit durable (a `Data`
//! commit's group sync, `sync`, `tick`, a checkpoint), never before, once each, in lsn order,
//! and with the error when the shard fails first.

use std::path::Path;
use std::sync::{Arc, Mutex};

use stormhold::env::sim::{CallKind, Fault, FaultOptions, SimEnv};
use stormhold::{CommitInfo, Config, Durability, Kernel, Lsn};

type Log = Arc<Mutex<Vec<(u32, Result<Lsn, String>)>>>;

fn open(env: &SimEnv) -> Kernel<SimEnv> {
    let config = Config::builder().shards(2).segment_size_bytes(64 * 1024).build().unwrap();
    Kernel::open(env.clone(), Path::new("/k"), config).unwrap()
}

fn commit(kernel: &Kernel<SimEnv>, key: &[u8]) -> CommitInfo {
    let mut txn = kernel.begin();
    txn.put(key, b"v").unwrap();
    txn.commit(Durability::None).unwrap()
}

fn watch(kernel: &Kernel<SimEnv>, info: &CommitInfo, tag: u32, log: &Log) {
    let log = Arc::clone(log);
    let callback =
        move |r: stormhold::DurableResult| log.lock().unwrap().push((tag, r.map_err(|e| e.to_string())));
    kernel.on_durable(info, Box::new(callback)).unwrap();
}

#[test]
fn callbacks_fire_once_durable_and_not_before() {
    let env = SimEnv::new(21, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    let log: Log = Arc::default();
    let a = commit(&kernel, b"a");
    let b = (0..)
        .map(|i: u32| format!("b{i}"))
        .find(|k| kernel.shard_of(k.as_bytes()) == a.shard.unwrap())
        .unwrap();
    let b = commit(&kernel, b.as_bytes());
    watch(&kernel, &b, 2, &log);
    watch(&kernel, &a, 1, &log);
    assert!(log.lock().unwrap().is_empty(), "nothing synced yet");
    assert_eq!(kernel.durable_waiters(), 2);
    let report = kernel.tick();
    assert_eq!(report.synced, vec![a.shard.unwrap()]);
    let fired = log.lock().unwrap().clone();
    assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2], "lsn order");
    assert!(fired.iter().all(|(_, r)| r.as_ref().is_ok_and(|&d| d >= b.lsn)));
    assert_eq!(kernel.durable_waiters(), 0);
    // Already durable: fires in the call.
    watch(&kernel, &a, 3, &log);
    assert_eq!(log.lock().unwrap().len(), 3);
    // A `Data` commit's sync fires earlier waiters of its shard.
    let c = commit(&kernel, b"a");
    watch(&kernel, &c, 4, &log);
    kernel.put(b"a", b"w", Durability::Data).unwrap();
    assert_eq!(log.lock().unwrap().last().unwrap().0, 4);
    // A checkpoint syncs too.
    let d = commit(&kernel, b"a");
    watch(&kernel, &d, 5, &log);
    kernel.checkpoint().unwrap();
    assert_eq!(log.lock().unwrap().last().unwrap().0, 5);
}

#[test]
fn a_crash_before_the_sync_fires_nothing_and_a_failed_sync_fires_the_error() {
    let env = SimEnv::new(22, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    let log: Log = Arc::default();
    let a = commit(&kernel, b"a");
    watch(&kernel, &a, 1, &log);
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 3 });
    assert!(kernel.sync(Durability::Data).is_err());
    let fired = log.lock().unwrap().clone();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].1.as_ref().is_err_and(|e| e.contains("is failed")), "{fired:?}");
    // Registering on a failed shard reports the failure at once.
    watch(&kernel, &a, 2, &log);
    assert!(log.lock().unwrap()[1].1.is_err());
    let env = SimEnv::new(23, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    let log: Log = Arc::default();
    watch(&kernel, &commit(&kernel, b"a"), 1, &log);
    drop(kernel);
    env.crash();
    assert!(log.lock().unwrap().is_empty(), "a commit lost in a crash never reports durable");
}
