//! A transaction's writes are encoded as they arrive into the WAL record (the kernel's write
//! buffer): the semantics of the map of writes it replaced stay exact (the last write of a key
//! wins, increments resolve at commit, an increment a later write overwrites is never read as
//! a counter), the record replays to the same state, and a WAL written in the first batch
//! format (version 1) still replays.

use std::path::Path;

use stormhold::env::OsEnv;
use stormhold::kernel::layout;
use stormhold::wal::{Durability, RecordKind, StoreIdentity, Wal, WalOptions};
use stormhold::{Config, Kernel};

fn config() -> Config {
    Config::builder().shards(1).segment_size_bytes(64 * 1024).build().expect("valid config")
}

/// The options the kernel opens shard 0's WAL with (its identity read from `KERNEL`).
fn shard_wal_options(dir: &Path) -> WalOptions {
    let meta = layout::read_meta(&OsEnv::new(), dir).unwrap().expect("a created store");
    let identity = StoreIdentity { store_id: meta.store_id, shard: 0, shards: 1 };
    WalOptions { segment_size_bytes: 64 * 1024, identity, ..WalOptions::default() }
}

fn open(dir: &Path) -> Kernel<OsEnv> {
    Kernel::open(OsEnv::new(), dir, config()).unwrap_or_else(|e| panic!("open: {e}"))
}

fn counter(n: u64) -> Option<Vec<u8>> {
    Some(n.to_le_bytes().to_vec())
}

#[test]
fn every_mix_of_writes_in_one_transaction_commits_and_replays_exactly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kernel = open(dir.path());
        kernel.put(b"text", b"not a counter", Durability::None).unwrap();
        kernel.put(b"n", &10u64.to_le_bytes(), Durability::None).unwrap();
        let mut txn = kernel.begin();
        // An increment of a non-counter, overwritten by a put: never resolved, so no error.
        txn.increment(b"text", 1).unwrap();
        txn.put(b"text", b"replaced").unwrap();
        // Two increments merge and resolve against the committed value.
        txn.increment(b"n", 2).unwrap();
        txn.increment(b"n", 3).unwrap();
        assert_eq!(txn.get(b"n").unwrap(), counter(15));
        // Put, overwrite, delete, increment after the delete.
        txn.put(b"k", b"1").unwrap();
        txn.put(b"k", b"2").unwrap();
        assert_eq!(txn.get(b"k").unwrap(), Some(b"2".to_vec()));
        txn.delete(b"k").unwrap();
        assert_eq!(txn.get(b"k").unwrap(), None);
        txn.increment(b"k", 4).unwrap();
        // An increment overwritten by a delete.
        txn.increment(b"gone", 9).unwrap();
        txn.delete(b"gone").unwrap();
        // Enough writes that lookups go through the index.
        for i in 0..100u32 {
            txn.put(format!("fill{i}").as_bytes(), b"x").unwrap();
        }
        txn.increment(b"fill7", 0).unwrap_err();
        txn.put(b"fill7", &1u64.to_le_bytes()).unwrap();
        txn.increment(b"fill7", 1).unwrap();
        txn.commit(Durability::Data).unwrap();
        check(&kernel);
        kernel.close().unwrap();
    }
    // The same state from replay (no checkpoint was taken: the WAL holds every record).
    check(&open(dir.path()));
}

fn check(kernel: &Kernel<OsEnv>) {
    assert_eq!(kernel.get(b"text").unwrap(), Some(b"replaced".to_vec()));
    assert_eq!(kernel.get(b"n").unwrap(), counter(15));
    assert_eq!(kernel.get(b"k").unwrap(), counter(4));
    assert_eq!(kernel.get(b"gone").unwrap(), None);
    assert_eq!(kernel.get(b"fill7").unwrap(), counter(2));
    assert_eq!(kernel.get(b"fill99").unwrap(), Some(b"x".to_vec()));
}

/// A version-1 batch: flags, document id, count, ops.
fn v1_batch(key: &[u8], value: &[u8], doc: &str) -> Vec<u8> {
    let mut out = vec![1, 0b11];
    out.extend_from_slice(&(doc.len() as u32).to_le_bytes());
    out.extend_from_slice(doc.as_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.push(1);
    for bytes in [key, value] {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

#[test]
fn a_wal_of_version_1_batches_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    let wal_dir = layout::shard_dir(dir.path(), 0).join("wal");
    let options = shard_wal_options(dir.path());
    let (mut wal, _) = Wal::open(OsEnv::new(), &wal_dir, options, |_| {}).unwrap();
    wal.append(RecordKind::Data, 0, 0, &v1_batch(b"old", b"format", "doc-1")).unwrap();
    wal.sync(Durability::Data).unwrap();
    drop(wal);
    let kernel = open(dir.path());
    assert_eq!(kernel.get(b"old").unwrap(), Some(b"format".to_vec()));
    assert!(kernel.is_document_completed("doc-1").unwrap());
}
