//! `Transaction::delete_range`: one WAL op whatever it covers, replayed after a crash,
//! checkpointed (full and incremental), ordered against the transaction's other writes, and
//! leaving documents and keys outside the range alone.

use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel, KernelError, Router};

fn config() -> Config {
    Config::builder()
        .shards(3)
        .router(Router::Prefix { len_bytes: 4 })
        .segment_size_bytes(64 * 1024)
        .build()
        .expect("valid config")
}

fn open(env: &SimEnv) -> Kernel<SimEnv> {
    Kernel::open(env.clone(), Path::new("/k"), config()).unwrap_or_else(|e| panic!("open: {e}"))
}

fn keys(kernel: &Kernel<SimEnv>, prefix: &[u8]) -> Vec<String> {
    kernel.scan_prefix(prefix).unwrap().into_iter().map(|(k, _)| String::from_utf8(k).unwrap()).collect()
}

fn fill(kernel: &Kernel<SimEnv>) {
    for i in 0..20u32 {
        kernel.put(format!("log:{i:03}").as_bytes(), b"entry", Durability::None).unwrap();
    }
    kernel.put(b"lof:x", b"other prefix", Durability::None).unwrap();
    kernel.sync(Durability::Data).unwrap();
}

#[test]
fn a_range_delete_is_one_op_and_survives_a_crash_by_replay() {
    let env = SimEnv::new(11, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    fill(&kernel);
    let before = kernel.stats().total.wal_bytes;
    let mut txn = kernel.begin();
    txn.delete_range(b"log:005".as_slice()..b"log:015".as_slice()).unwrap();
    txn.commit(Durability::Data).unwrap();
    let record = kernel.stats().total.wal_bytes - before;
    assert!(record < 40, "one op, not ten deletes: {record} bytes");
    let expect: Vec<String> = (0..5).chain(15..20).map(|i| format!("log:{i:03}")).collect();
    assert_eq!(keys(&kernel, b"log:"), expect);
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = open(&env);
    assert_eq!(keys(&kernel, b"log:"), expect, "replayed");
    assert_eq!(kernel.get(b"lof:x").unwrap(), Some(b"other prefix".to_vec()));
}

#[test]
fn range_deletes_are_checkpointed_full_and_incremental() {
    let env = SimEnv::new(12, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    fill(&kernel);
    kernel.checkpoint().unwrap(); // full
    let mut txn = kernel.begin();
    txn.delete_range(b"log:000".as_slice()..b"log:010".as_slice()).unwrap();
    txn.commit(Durability::Data).unwrap();
    kernel.checkpoint().unwrap(); // incremental: the deleted keys must be in it
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = open(&env);
    let replayed: u64 = kernel.recovery_reports().iter().map(|r| r.as_ref().unwrap().records_replayed).sum();
    assert_eq!(replayed, 0, "the state came from the checkpoints alone");
    assert_eq!(keys(&kernel, b"log:"), (10..20).map(|i| format!("log:{i:03}")).collect::<Vec<_>>());
}

#[test]
fn writes_before_a_range_delete_in_it_are_dropped_and_writes_after_stay() {
    let env = SimEnv::new(13, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    fill(&kernel);
    kernel.increment(b"log:cnt", 5, Durability::None).unwrap();
    let mut txn = kernel.begin();
    txn.put(b"log:001", b"before").unwrap();
    txn.delete_range(b"log:".as_slice()..b"log;".as_slice()).unwrap();
    assert_eq!(txn.get(b"log:001").unwrap(), None, "the transaction sees its range delete");
    assert_eq!(txn.get(b"log:cnt").unwrap(), None);
    txn.put(b"log:002", b"after").unwrap();
    txn.increment(b"log:cnt", 1).unwrap();
    assert_eq!(txn.get(b"log:cnt").unwrap(), Some(1u64.to_le_bytes().to_vec()), "counts from 0");
    txn.commit(Durability::Data).unwrap();
    assert_eq!(keys(&kernel, b"log:"), ["log:002", "log:cnt"]);
    assert_eq!(kernel.get(b"log:cnt").unwrap(), Some(1u64.to_le_bytes().to_vec()));
    drop(kernel);
    env.crash();
    env.restart();
    let kernel = open(&env);
    assert_eq!(keys(&kernel, b"log:"), ["log:002", "log:cnt"]);
    assert_eq!(kernel.get(b"log:002").unwrap(), Some(b"after".to_vec()));
}

#[test]
fn documents_are_not_touched_and_ranges_over_several_shards_are_refused() {
    let env = SimEnv::new(14, FaultOptions::default()).unwrap();
    let kernel = open(&env);
    let mut doc = kernel.begin_document("doc:1").unwrap();
    doc.insert(b"doc:a", b"1").unwrap();
    doc.commit().unwrap();
    let mut txn = kernel.begin();
    txn.delete_range(b"doc:".as_slice()..b"doc;".as_slice()).unwrap(); // the whole prefix
    txn.commit(Durability::Data).unwrap();
    assert_eq!(kernel.get(b"doc:a").unwrap(), None);
    assert!(kernel.is_document_completed("doc:1").unwrap(), "document marks are not user keys");
    let mut txn = kernel.begin();
    let error = txn.delete_range(b"aaaa".as_slice()..b"zzzz".as_slice()).unwrap_err();
    assert!(matches!(error, KernelError::InvalidInput(_)), "{error}");
    let error = txn.delete_range(b"log:".as_slice()..b"log;x".as_slice()).unwrap_err();
    assert!(matches!(error, KernelError::InvalidInput(_)), "{error}");
    let mut txn = kernel.begin();
    txn.put(b"log:1", b"x").unwrap();
    let elsewhere = (0..)
        .map(|i: u32| format!("p{i:03}"))
        .find(|p| kernel.shard_of(p.as_bytes()) != kernel.shard_of(b"log:"))
        .unwrap();
    let (start, end) = (format!("{elsewhere}a"), format!("{elsewhere}b"));
    let error = txn.delete_range(start.as_bytes()..end.as_bytes()).unwrap_err();
    assert!(matches!(error, KernelError::CrossShard { .. }), "{error}");
}
