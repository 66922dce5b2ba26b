//! Helpers shared by the ARIES recovery tests (`tests/wal_aries_*.rs`): a log on a perfect
//! simulated disk, a crash, recovery into a handler, and an in-memory page store that survives
//! crashes and records every call it gets.
//!
//! Each test file uses a subset of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::wal::aries::{self, AriesError, RecoveryHandler, RecoveryStats, Transactions};
use stormhold::wal::{Lsn, Wal, WalOptions};

pub const WAL_DIR: &str = "/wal";
pub const SEGMENT_BYTES: u64 = 4 * 4096;

pub fn wal_options() -> WalOptions {
    WalOptions { segment_size_bytes: SEGMENT_BYTES, ..WalOptions::default() }
}

pub fn perfect_disk(seed: u64) -> SimEnv {
    SimEnv::new(seed, FaultOptions::default()).expect("valid options")
}

pub fn crash(env: &SimEnv) {
    env.crash();
    env.restart();
}

pub fn try_recover<H: RecoveryHandler>(
    env: &SimEnv,
    handler: &mut H,
) -> Result<(Wal<SimEnv>, RecoveryStats), AriesError> {
    aries::recover(env.clone(), Path::new(WAL_DIR), wal_options(), handler)
}

pub fn recover<H: RecoveryHandler>(env: &SimEnv, handler: &mut H) -> (Wal<SimEnv>, RecoveryStats) {
    try_recover(env, handler).expect("recovery")
}

// ---------------------------------------------------------------------------------------------
// An in-memory page store that survives crashes (as if every page write were forced at once)
// and records every call it gets.

pub const MEM_PAGE_BYTES: usize = 64;

#[derive(Clone, Debug, Default)]
pub struct MemPages {
    /// Page id -> (page lsn, bytes).
    pub pages: BTreeMap<u64, (Lsn, Vec<u8>)>,
    /// (page, lsn, image) of every redo, in call order.
    pub redos: Vec<(u64, Lsn, Vec<u8>)>,
    /// (page, lsn, image) of every undo, in call order.
    pub undos: Vec<(u64, Lsn, Vec<u8>)>,
    /// Pages whose lsn was asked for.
    pub lsn_queries: Vec<u64>,
}

impl MemPages {
    pub fn write(&mut self, page: u64, offset: u32, image: &[u8], lsn: Lsn) {
        let (page_lsn, bytes) = self.pages.entry(page).or_insert_with(|| (0, vec![0; MEM_PAGE_BYTES]));
        bytes[offset as usize..offset as usize + image.len()].copy_from_slice(image);
        *page_lsn = lsn;
    }

    pub fn bytes(&self, page: u64, offset: u32, len: usize) -> Vec<u8> {
        let at = offset as usize;
        self.pages.get(&page).map_or(vec![0; len], |(_, bytes)| bytes[at..at + len].to_vec())
    }
}

impl RecoveryHandler for MemPages {
    type Error = Infallible;

    fn page_lsn(&mut self, page_id: u64) -> Result<Lsn, Infallible> {
        self.lsn_queries.push(page_id);
        Ok(self.pages.get(&page_id).map_or(0, |(lsn, _)| *lsn))
    }

    fn redo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> Result<(), Infallible> {
        self.redos.push((page_id, lsn, image.to_vec()));
        self.write(page_id, offset, image, lsn);
        Ok(())
    }

    fn undo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> Result<(), Infallible> {
        self.undos.push((page_id, lsn, image.to_vec()));
        self.write(page_id, offset, image, lsn);
        Ok(())
    }
}

/// A transaction writes `after` at `offset` of `page`: logged first, then applied to `store`.
pub fn write(
    (txns, wal, store): (&mut Transactions, &mut Wal<SimEnv>, &mut MemPages),
    txn: u64,
    page: u64,
    offset: u32,
    after: &[u8],
) -> Lsn {
    let before = store.bytes(page, offset, after.len());
    let lsn = txns.update(wal, txn, page, offset, &before, after).expect("update");
    store.write(page, offset, after, lsn);
    lsn
}

pub fn fresh_log(env: &SimEnv) -> (Wal<SimEnv>, Transactions) {
    let (wal, stats) = recover(env, &mut MemPages::default());
    assert_eq!(stats, RecoveryStats::default(), "a new log recovers nothing");
    (wal, Transactions::new())
}
