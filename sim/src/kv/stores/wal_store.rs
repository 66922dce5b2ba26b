//! A key-value store on the real write-ahead log: what the `wal` workload checks.
//!
//! Transactions of several clients interleave in one log: `Begin`, one `Data` record per
//! write (key, put or delete, value), then `Commit` (the writes again, as deltas) or `Abort`,
//! each chained by `prev_lsn`.
//! Recovery replays the log and applies a transaction's writes only when its `Commit` record
//! is recovered, in commit order; transactions without one (open at the crash, or torn) are
//! dropped whole, which is the atomicity the checker asserts.
//!
//! The record format and its replay are [`super::replay`]'s: a commit record logs the
//! transaction's writes as deltas, so replaying it twice would show.
//!
//! Before each sync it prepares the next preallocation step when one is due, as the kernel's
//! `tick` does, so crashes land in prepared fills too.
//!
//! The store adds no crash-safety logic of its own: durability, torn tails, corruption and
//! poisoning are the WAL's, so every violation the simulator finds here is the WAL's.

use std::collections::BTreeMap;
use std::path::Path;
use stormhold::env::sim::SimEnv;
use stormhold::wal::{Durability, Lsn, RecordKind, Wal, WalError, WalOptions};

use super::replay::{Replay, SINGLE_CALL_TXN_BASE, apply, encode_commit, encode_write};
use crate::kv::{Key, KvStore, StoreError, TxnWrite, Value, Write};

/// The log's directory on the simulated disk.
const DIR: &str = "/wal";
/// Small segments, so runs rotate often.
const SEGMENT_SIZE_BYTES: u64 = 4 * 4096;
/// Options of the WAL store (the recovery mode is the WAL's default unless set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStoreConfig {
    /// Preallocate segments (the production default) or let them grow.
    pub no_preallocate: bool,
}

fn store_error(error: WalError) -> StoreError {
    match error {
        WalError::Io { source, .. } => StoreError::Io(source),
        WalError::Poisoned { .. } => StoreError::Poisoned,
        other => StoreError::DataLoss(other.to_string()),
    }
}

/// Removes every file under `dir` (and its subdirectories), then syncs it; `dir` stays.
pub(crate) fn remove_tree(env: &SimEnv, dir: &Path) -> std::io::Result<()> {
    use stormhold::env::Env;
    if !env.exists(dir)? {
        return Ok(());
    }
    for name in env.list_dir(dir)? {
        let path = dir.join(name);
        match env.remove_file(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::IsADirectory => {
                remove_tree(env, &path)?;
                env.remove_dir(&path)?;
            }
            other => other?,
        }
    }
    env.sync_dir(dir)
}

/// The WAL-backed store.
pub struct WalStore {
    wal: Wal<SimEnv>,
    state: BTreeMap<Key, Value>,
    /// Last lsn of each open transaction, for `prev_lsn`.
    open: BTreeMap<u64, Lsn>,
    next_single_txn: u64,
}

impl WalStore {
    fn append(&mut self, kind: RecordKind, txn: u64, payload: &[u8]) -> Result<Lsn, StoreError> {
        let prev = self.open.get(&txn).copied().unwrap_or(0);
        let lsn = self.wal.append(kind, txn, prev, payload).map_err(store_error)?;
        self.open.insert(txn, lsn);
        Ok(lsn)
    }

    fn finish(&mut self, txn: u64, writes: &[Write], commit: bool, durable: bool) -> Result<(), StoreError> {
        if commit {
            self.append(RecordKind::Commit, txn, &encode_commit(&self.state, writes))?;
            apply(&mut self.state, writes);
        } else {
            self.append(RecordKind::Abort, txn, &[])?;
        }
        self.open.remove(&txn);
        if commit && durable {
            self.sync_prepared()?;
        }
        Ok(())
    }

    /// Syncs, after preparing the next preallocation step if it is due (`Wal::prepare_ahead`,
    /// the production tick's work), so the crash points of a prepared step's fill reach the
    /// simulator and the sync carries its length.
    fn sync_prepared(&mut self) -> Result<(), StoreError> {
        self.wal.prepare_ahead().map_err(store_error)?;
        self.wal.sync(Durability::Data).map(|_| ()).map_err(store_error)
    }
}

impl KvStore for WalStore {
    type Config = WalStoreConfig;

    fn name(&self) -> String {
        "wal".to_owned()
    }

    fn open(env: &SimEnv, config: &WalStoreConfig) -> Result<Self, StoreError> {
        let options = WalOptions {
            segment_size_bytes: SEGMENT_SIZE_BYTES,
            preallocate: !config.no_preallocate,
            ..WalOptions::default()
        };
        let mut replay = Replay::on(BTreeMap::new());
        let (wal, _) = Wal::open(env.clone(), Path::new(DIR), options, |r| replay.visit(r, false))
            .map_err(store_error)?;
        if replay.undecodable > 0 {
            let what = format!("{} records of the log are not this store's", replay.undecodable);
            return Err(StoreError::DataLoss(what));
        }
        let next_single_txn = replay.max_single_txn.max(SINGLE_CALL_TXN_BASE) + 1;
        Ok(Self { wal, state: replay.state, open: BTreeMap::new(), next_single_txn })
    }

    fn destroy(env: &SimEnv) -> std::io::Result<()> {
        remove_tree(env, Path::new(DIR))
    }

    fn writes_per_commit_max(_: &WalStoreConfig) -> usize {
        8
    }

    fn commit(&mut self, writes: &[Write], durable: bool) -> Result<(), StoreError> {
        let txn = self.next_single_txn;
        self.next_single_txn += 1;
        self.txn_begin(txn)?;
        for &write in writes {
            self.txn_write(txn, write)?;
        }
        self.finish(txn, writes, true, durable)
    }

    fn interleaved_transactions(_: &WalStoreConfig) -> bool {
        true
    }

    fn txn_begin(&mut self, txn: u64) -> Result<(), StoreError> {
        self.append(RecordKind::Begin, txn, &[]).map(|_| ())
    }

    fn txn_write(&mut self, txn: u64, write: Write) -> Result<(), StoreError> {
        self.append(RecordKind::Data, txn, &encode_write(write)).map(|_| ())
    }

    fn txn_finish(
        &mut self,
        txn: u64,
        writes: &[TxnWrite],
        commit: bool,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.finish(txn, &TxnWrite::sets(writes), commit, durable)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.sync_prepared()
    }

    fn get(&self, key: Key) -> Result<Option<Value>, StoreError> {
        Ok(self.state.get(&key).copied())
    }

    fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        Ok(self.state.clone())
    }
}
