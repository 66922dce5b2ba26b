//! A key-value store on the WAL and the checkpoint store: what the `checkpoint` workload
//! checks.
//!
//! Commits go to the WAL as in [`super::wal_store`]. A checkpoint syncs the WAL, then
//! publishes the committed state (full, or the changes since its parent) at the WAL's last lsn
//! `L`, recording in its metadata `replay_from`: the first lsn of any transaction still open
//! (its begin and writes precede `L`, its commit will follow), else `L + 1`. Then retention
//! runs, and the WAL is truncated only back to the oldest retained checkpoint's `replay_from`,
//! so a damaged latest checkpoint can be skipped and more WAL replayed.
//!
//! Recovery: the latest checkpoint that loads (falling back past damaged ones), then the WAL:
//! a transaction's writes are applied when its commit record has an lsn above the
//! checkpoint's, so replay is idempotent. If the WAL no longer reaches back to the chosen
//! checkpoint's `replay_from`, acknowledged data may be gone: that is a data-loss error naming
//! what is missing, never a silent gap.

use std::collections::BTreeMap;
use std::path::Path;
use stormhold::checkpoint::{CheckpointData, CheckpointError, CheckpointOptions, CheckpointStore, UserMeta};
use stormhold::env::Env;
use stormhold::env::sim::SimEnv;
use stormhold::wal::{Durability, Lsn, RecordKind, Wal, WalError, WalOptions};

use super::wal_store::{Replay, SINGLE_CALL_TXN_BASE, apply};
use super::{Key, KvStore, StoreError, Value, Write};

const ROOT: &str = "/db";
const WAL_DIR: &str = "/db/wal";
const CKPT_DIR: &str = "/db/ckpt";
const SEGMENT_SIZE_BYTES: u64 = 4 * 4096;
const REPLAY_FROM: &str = "replay_from";

fn wal_error(error: WalError) -> StoreError {
    match error {
        WalError::Io { source, .. } => StoreError::Io(source),
        WalError::Poisoned { .. } => StoreError::Poisoned,
        other => StoreError::DataLoss(other.to_string()),
    }
}

fn ckpt_error(error: CheckpointError) -> StoreError {
    match error {
        CheckpointError::Io { source, .. } => StoreError::Io(source),
        other if other.is_damage() => StoreError::DataLoss(other.to_string()),
        CheckpointError::NoLoadableCheckpoint { .. } => StoreError::DataLoss(error.to_string()),
        _ => StoreError::Poisoned,
    }
}

fn encode_state(state: &BTreeMap<Key, Value>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    state.iter().map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec())).collect()
}

fn decode_state(bytes: BTreeMap<Vec<u8>, Vec<u8>>) -> Result<BTreeMap<Key, Value>, StoreError> {
    bytes
        .into_iter()
        .map(|(k, v)| match (k.try_into(), v.try_into()) {
            (Ok(k), Ok(v)) => Ok((Key::from_le_bytes(k), Value::from_le_bytes(v))),
            _ => Err(StoreError::DataLoss("a checkpoint entry is not this store's".to_owned())),
        })
        .collect()
}

/// The WAL + checkpoint store.
pub struct CkptStore {
    wal: Wal<SimEnv>,
    ckpts: CheckpointStore<SimEnv>,
    state: BTreeMap<Key, Value>,
    /// Open transactions: (first lsn, last lsn).
    open: BTreeMap<u64, (Lsn, Lsn)>,
    /// Keys changed since the last checkpoint (for incrementals): new value or deleted.
    dirty: BTreeMap<Key, Option<Value>>,
    last_checkpoint: Option<u64>,
    next_epoch: u64,
    next_single_txn: u64,
}

fn ensure_root(env: &SimEnv) -> Result<(), StoreError> {
    match env.create_dir(Path::new(ROOT)) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(StoreError::Io(error)),
        _ => {}
    }
    env.sync_dir(Path::new("/")).map_err(StoreError::Io)
}

impl CkptStore {
    fn append(&mut self, kind: RecordKind, txn: u64, payload: &[u8]) -> Result<(), StoreError> {
        let prev = self.open.get(&txn).map_or(0, |&(_, last)| last);
        let lsn = self.wal.append(kind, txn, prev, payload).map_err(wal_error)?;
        let first = self.open.get(&txn).map_or(lsn, |&(first, _)| first);
        self.open.insert(txn, (first, lsn));
        Ok(())
    }

    fn finish(&mut self, txn: u64, writes: &[Write], commit: bool, durable: bool) -> Result<(), StoreError> {
        self.append(if commit { RecordKind::Commit } else { RecordKind::Abort }, txn, &[])?;
        self.open.remove(&txn);
        if commit {
            apply(&mut self.state, writes);
            for &(key, value) in writes {
                self.dirty.insert(key, value);
            }
            if durable {
                self.wal.sync(Durability::Data).map_err(wal_error)?;
            }
        }
        Ok(())
    }

    /// The data of the next checkpoint: incremental on the last one, unless a full one is due.
    fn checkpoint_data(&self) -> (CheckpointData, Option<u64>) {
        match self.last_checkpoint.filter(|&parent| !self.ckpts.full_due(parent)) {
            Some(parent) => {
                let mut puts = BTreeMap::new();
                let mut deletes = std::collections::BTreeSet::new();
                for (&key, &value) in &self.dirty {
                    match value {
                        Some(value) => puts.insert(key.to_le_bytes().to_vec(), value.to_le_bytes().to_vec()),
                        None => deletes.insert(key.to_le_bytes().to_vec()).then_some(Vec::new()),
                    };
                }
                (CheckpointData::Incremental { puts, deletes }, Some(parent))
            }
            None => (CheckpointData::Full(encode_state(&self.state)), None),
        }
    }
}

impl KvStore for CkptStore {
    type Config = ();

    fn name(&self) -> String {
        "checkpoint".to_owned()
    }

    fn open(env: &SimEnv, _: &()) -> Result<Self, StoreError> {
        ensure_root(env)?;
        let options = CheckpointOptions { max_retained: 3, full_every_incrementals: 4 };
        let (ckpts, _) =
            CheckpointStore::open(env.clone(), Path::new(CKPT_DIR), options).map_err(ckpt_error)?;
        let loaded = ckpts.load_latest_valid().map_err(ckpt_error)?;
        let (checkpoint_lsn, replay_from, base, last_checkpoint, next_epoch) = match loaded {
            Some(loaded) => {
                let replay_from = loaded.meta.user.source_offsets.get(REPLAY_FROM).copied();
                let epoch = ckpts.list().iter().map(|m| m.epoch).max().unwrap_or(0) + 1;
                let state = decode_state(loaded.state)?;
                (
                    loaded.meta.lsn,
                    replay_from.unwrap_or(loaded.meta.lsn + 1),
                    state,
                    Some(loaded.meta.id),
                    epoch,
                )
            }
            None => (0, 1, BTreeMap::new(), None, 1),
        };
        let mut replay = Replay::on(checkpoint_lsn, base.clone());
        let wal_options = WalOptions { segment_size_bytes: SEGMENT_SIZE_BYTES, ..WalOptions::default() };
        let (wal, report) = Wal::open(env.clone(), Path::new(WAL_DIR), wal_options, |r| replay.visit(r))
            .map_err(wal_error)?;
        if replay.undecodable > 0 {
            let what = format!("{} records of the log are not this store's", replay.undecodable);
            return Err(StoreError::DataLoss(what));
        }
        let first_in_log = report.segments.first().map_or(report.next_lsn, |&(_, first)| first);
        if first_in_log > replay_from {
            return Err(StoreError::DataLoss(format!(
                "the checkpoint needs the WAL from lsn {replay_from}, but it starts at lsn {first_in_log}"
            )));
        }
        let dirty = replay.state.iter().filter(|(k, v)| base.get(k) != Some(v)).map(|(&k, &v)| (k, Some(v)));
        let deleted = base.keys().filter(|k| !replay.state.contains_key(k)).map(|&k| (k, None));
        let dirty = dirty.chain(deleted).collect();
        let next_single_txn = replay.max_single_txn.max(SINGLE_CALL_TXN_BASE) + 1;
        let state = replay.state;
        Ok(Self {
            wal,
            ckpts,
            state,
            open: BTreeMap::new(),
            dirty,
            last_checkpoint,
            next_epoch,
            next_single_txn,
        })
    }

    fn destroy(env: &SimEnv) -> std::io::Result<()> {
        for dir in [WAL_DIR, CKPT_DIR] {
            super::wal_store::remove_tree(env, Path::new(dir))?;
        }
        Ok(())
    }

    fn writes_per_commit_max(_: &()) -> usize {
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

    fn interleaved_transactions(_: &()) -> bool {
        true
    }

    fn txn_begin(&mut self, txn: u64) -> Result<(), StoreError> {
        self.append(RecordKind::Begin, txn, &[])
    }

    fn txn_write(&mut self, txn: u64, write: Write) -> Result<(), StoreError> {
        self.append(RecordKind::Data, txn, &super::wal_store::encode_write(write))
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

    fn checkpoints(_: &()) -> bool {
        true
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let lsn = self.wal.sync(Durability::Data).map_err(wal_error)?;
        let replay_from = self.open.values().map(|&(first, _)| first).min().unwrap_or(lsn + 1);
        let (data, parent) = self.checkpoint_data();
        let user = UserMeta {
            source_offsets: BTreeMap::from([(REPLAY_FROM.to_owned(), replay_from)]),
            watermark: None,
        };
        let meta = self.ckpts.create(self.next_epoch, lsn, user, data, parent).map_err(ckpt_error)?;
        self.next_epoch += 1;
        self.last_checkpoint = Some(meta.id);
        self.dirty.clear();
        self.ckpts.apply_retention().map_err(ckpt_error)?;
        let keep_from =
            self.ckpts.list().iter().filter_map(|m| m.user.source_offsets.get(REPLAY_FROM).copied()).min();
        if let Some(keep_from) = keep_from {
            self.wal.truncate_before(keep_from).map_err(wal_error)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.wal.sync(Durability::Data).map(|_| ()).map_err(wal_error)
    }

    fn get(&self, key: Key) -> Result<Option<Value>, StoreError> {
        Ok(self.state.get(&key).copied())
    }

    fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        Ok(self.state.clone())
    }
}
