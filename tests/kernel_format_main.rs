//! A store whose WAL was written by main's batch codec (versions 1 and 2: the document id
//! before the ops; version 2 for batches holding a range delete) opens with today's code and
//! replays to the state that code would have had: every format version ever written stays
//! readable. The old codec is main's own file, copied verbatim into
//! `tests/format_main/record_main.rs`, so the bytes are the ones a store of that code holds.

#[path = "format_main/record_main.rs"]
#[allow(dead_code)]
mod record_main;

use std::collections::BTreeMap;
use std::path::Path;

use stormhold::env::OsEnv;
use stormhold::kernel::layout;
use stormhold::shard::record::Batch;
use stormhold::wal::{Durability, RecordKind, StoreIdentity, Wal, WalOptions};
use stormhold::{Config, Kernel};

use record_main::{Batch as MainBatch, DocMark as MainDoc, Op as MainOp};

const SEGMENT_BYTES: u64 = 64 * 1024;

fn config() -> Config {
    Config::builder().shards(1).segment_size_bytes(SEGMENT_BYTES).build().expect("valid config")
}

/// The options the kernel opens shard 0's WAL with (its identity read from `KERNEL`).
fn shard_wal_options(dir: &Path) -> WalOptions {
    let meta = layout::read_meta(&OsEnv::new(), dir).unwrap().expect("a created store");
    let identity = StoreIdentity { store_id: meta.store_id, shard: 0, shards: 1 };
    WalOptions { segment_size_bytes: SEGMENT_BYTES, identity, ..WalOptions::default() }
}

fn open(dir: &Path) -> Kernel<OsEnv> {
    Kernel::open(OsEnv::new(), dir, config()).unwrap_or_else(|e| panic!("open: {e}"))
}

fn put(key: &str, value: &str) -> MainOp {
    MainOp::Put(key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// Main's batches: puts, deletes, range deletes (written as version 2), document chunks.
fn main_batches() -> Vec<MainBatch> {
    let doc = |id: &str, complete| Some(MainDoc { id: id.to_owned(), complete });
    vec![
        MainBatch { ops: vec![put("a1", "x"), put("a2", "y"), put("b1", "z"), put("c", "w")], doc: None },
        MainBatch { ops: vec![MainOp::Delete(b"c".to_vec()), put("a3", "v")], doc: None },
        // A range delete between writes: the put before it in the range goes, the one after stays.
        MainBatch {
            ops: vec![
                put("a4", "gone"),
                MainOp::DeleteRange(b"a".to_vec(), b"a9".to_vec()),
                put("a2", "back"),
            ],
            doc: None,
        },
        MainBatch { ops: vec![put("d:1", "chunk")], doc: doc("doc-main", false) },
        MainBatch {
            ops: vec![put("d:2", "last"), MainOp::DeleteRange(b"b".to_vec(), b"c".to_vec())],
            doc: doc("doc-main", true),
        },
    ]
}

/// What the batches leave, applied in order as main's shard applied them.
fn expected(batches: &[MainBatch]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for batch in batches {
        for op in &batch.ops {
            match op {
                MainOp::Put(key, value) => {
                    state.insert(key.clone(), value.clone());
                }
                MainOp::Delete(key) => {
                    state.remove(key);
                }
                MainOp::DeleteRange(start, end) => state.retain(|key, _| !(start <= key && key < end)),
            }
        }
    }
    state
}

#[test]
fn main_batches_decode_to_the_same_ops_with_todays_decoder() {
    for batch in main_batches() {
        let bytes = batch.encode();
        let ranged = batch.ops.iter().any(|op| matches!(op, MainOp::DeleteRange(..)));
        assert_eq!(bytes[0], if ranged { 2 } else { 1 }, "main wrote version 2 only for ranges");
        let decoded = Batch::decode(&bytes).unwrap_or_else(|e| panic!("main's {batch:?}: {e}"));
        // Today's encoding of the decoded batch is version 3, and main's decoder refuses it
        // by its version byte instead of misreading it.
        let today = decoded.encode();
        assert_eq!(today[0], 3);
        assert_eq!(MainBatch::decode(&today).unwrap_err(), "offset 0: unknown batch version 3");
        assert_eq!(Batch::decode(&today), Ok(decoded.clone()));
        assert_eq!(format!("{:?}", decoded.ops), format!("{:?}", batch.ops));
        assert_eq!(decoded.doc.map(|d| (d.id, d.complete)), batch.doc.map(|d| (d.id, d.complete)));
    }
}

#[test]
fn a_store_whose_wal_main_wrote_opens_and_replays_then_takes_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    let batches = main_batches();
    let wal_dir = layout::shard_dir(dir.path(), 0).join("wal");
    let options = shard_wal_options(dir.path());
    let (mut wal, _) = Wal::open(OsEnv::new(), &wal_dir, options, |_| {}).unwrap();
    for batch in &batches {
        wal.append(RecordKind::Data, 0, 0, &batch.encode()).unwrap();
    }
    wal.sync(Durability::Data).unwrap();
    drop(wal);
    let want = expected(&batches);
    assert_eq!(want.get(b"a2".as_slice()), Some(&b"back".to_vec()), "the model itself is not vacuous");
    let check = |kernel: &Kernel<OsEnv>| {
        let got: BTreeMap<Vec<u8>, Vec<u8>> = kernel.scan_prefix(b"").unwrap().into_iter().collect();
        assert_eq!(got, want);
        assert!(kernel.is_document_completed("doc-main").unwrap());
    };
    let kernel = open(dir.path());
    check(&kernel);
    // New writes (version 3) land behind the old records; both replay on the next open.
    let mut txn = kernel.begin();
    txn.put(b"new", b"v3").unwrap();
    txn.delete_range(b"d:".as_slice()..b"d:2".as_slice()).unwrap();
    txn.commit(Durability::Data).unwrap();
    kernel.close().unwrap();
    let kernel = open(dir.path());
    assert_eq!(kernel.get(b"new").unwrap(), Some(b"v3".to_vec()));
    assert_eq!(kernel.get(b"d:1").unwrap(), None);
    assert_eq!(kernel.get(b"d:2").unwrap(), Some(b"last".to_vec()));
    assert_eq!(kernel.get(b"a2").unwrap(), Some(b"back".to_vec()));
}
