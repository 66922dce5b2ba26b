//! A key-value store on the real write-ahead log: what the `wal` workload checks.
//!
//! Transactions of several clients interleave in one log: `Begin`, one `Data` record per
//! write (key, put or delete, value), then `Commit` or `Abort`, each chained by `prev_lsn`.
//! Recovery replays the log and applies a transaction's writes only when its `Commit` record
//! is recovered, in commit order; transactions without one (open at the crash, or torn) are
//! dropped whole, which is the atomicity the checker asserts.
//!
//! The store adds no crash-safety logic of its own: durability, torn tails, corruption and
//! poisoning are the WAL's, so every violation the simulator finds here is the WAL's.

use std::collections::BTreeMap;
use std::path::Path;
use stormhold::env::sim::SimEnv;
use stormhold::wal::{Durability, Lsn, RecordKind, Wal, WalError, WalOptions};

use crate::kv::{Key, KvStore, StoreError, Value, Write};

/// The log's directory on the simulated disk.
const DIR: &str = "/wal";
/// Small segments, so runs rotate often.
const SEGMENT_SIZE_BYTES: u64 = 4 * 4096;
/// Transaction ids of single-call commits, apart from the clients' ids.
pub(crate) const SINGLE_CALL_TXN_BASE: u64 = 1 << 62;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// Options of the WAL store (the recovery mode is the WAL's default unless set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStoreConfig {
    /// Preallocate segments (the production default) or let them grow.
    pub no_preallocate: bool,
}

/// Encodes one write as a `Data` record payload.
pub(crate) fn encode_write((key, value): Write) -> [u8; 7] {
    let mut bytes = [0; 7];
    bytes[0..2].copy_from_slice(&key.to_le_bytes());
    bytes[2] = if value.is_some() { OP_PUT } else { OP_DELETE };
    bytes[3..7].copy_from_slice(&value.unwrap_or(0).to_le_bytes());
    bytes
}

/// Decodes a `Data` record payload.
pub(crate) fn decode_write(bytes: &[u8]) -> Option<Write> {
    let key = Key::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
    let value = Value::from_le_bytes(bytes.get(3..7)?.try_into().ok()?);
    match *bytes.get(2)? {
        OP_PUT => Some((key, Some(value))),
        OP_DELETE => Some((key, None)),
        _ => None,
    }
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

/// Rebuilds the committed state from the log's records: a transaction's writes are applied
/// when its commit record is replayed with an lsn above `checkpoint_lsn` (at or below it, the
/// commit is in the checkpoint already), so replay on top of a checkpoint is idempotent.
#[derive(Default)]
pub(crate) struct Replay {
    pub checkpoint_lsn: Lsn,
    pub state: BTreeMap<Key, Value>,
    pending: BTreeMap<u64, Vec<Write>>,
    pub undecodable: u64,
    pub max_single_txn: u64,
}

impl Replay {
    /// Replays on top of `state`, a checkpoint taken at `checkpoint_lsn` (0 and empty: none).
    pub fn on(checkpoint_lsn: Lsn, state: BTreeMap<Key, Value>) -> Self {
        Self { checkpoint_lsn, state, ..Self::default() }
    }

    pub fn visit(&mut self, record: stormhold::wal::Record) {
        if record.txn_id >= SINGLE_CALL_TXN_BASE {
            self.max_single_txn = self.max_single_txn.max(record.txn_id);
        }
        match record.kind {
            RecordKind::Begin => {
                self.pending.insert(record.txn_id, Vec::new());
            }
            RecordKind::Data => match decode_write(&record.payload) {
                Some(write) => self.pending.entry(record.txn_id).or_default().push(write),
                None => self.undecodable += 1,
            },
            RecordKind::Commit => {
                let writes = self.pending.remove(&record.txn_id).unwrap_or_default();
                if record.lsn > self.checkpoint_lsn {
                    apply(&mut self.state, &writes);
                }
            }
            RecordKind::Abort => {
                self.pending.remove(&record.txn_id);
            }
            _ => self.undecodable += 1,
        }
    }
}

/// Applies writes in order.
pub(crate) fn apply(state: &mut BTreeMap<Key, Value>, writes: &[Write]) {
    for &(key, value) in writes {
        match value {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
}

impl WalStore {
    fn append(&mut self, kind: RecordKind, txn: u64, payload: &[u8]) -> Result<Lsn, StoreError> {
        let prev = self.open.get(&txn).copied().unwrap_or(0);
        let lsn = self.wal.append(kind, txn, prev, payload).map_err(store_error)?;
        self.open.insert(txn, lsn);
        Ok(lsn)
    }

    fn finish(&mut self, txn: u64, writes: &[Write], commit: bool, durable: bool) -> Result<(), StoreError> {
        let kind = if commit { RecordKind::Commit } else { RecordKind::Abort };
        self.append(kind, txn, &[])?;
        self.open.remove(&txn);
        if commit {
            for &(key, value) in writes {
                match value {
                    Some(value) => self.state.insert(key, value),
                    None => self.state.remove(&key),
                };
            }
        }
        if commit && durable {
            self.wal.sync(Durability::Data).map_err(store_error)?;
        }
        Ok(())
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
        let mut replay = Replay::on(0, BTreeMap::new());
        let (wal, _) =
            Wal::open(env.clone(), Path::new(DIR), options, |r| replay.visit(r)).map_err(store_error)?;
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
        writes: &[Write],
        commit: bool,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.finish(txn, writes, commit, durable)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.wal.sync(Durability::Data).map(|_| ()).map_err(store_error)
    }

    fn get(&self, key: Key) -> Result<Option<Value>, StoreError> {
        Ok(self.state.get(&key).copied())
    }

    fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        Ok(self.state.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_round_trip_and_garbage_is_refused() {
        for write in [(3, Some(7)), (0xffff, None), (0, Some(u32::MAX))] {
            assert_eq!(decode_write(&encode_write(write)), Some(write));
        }
        assert_eq!(decode_write(&[1, 2, 9, 0, 0, 0, 0]), None);
        assert_eq!(decode_write(&[1, 2]), None);
    }
}
