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
//! Recovery is the kernel's [`stormhold::checkpoint::recover`]: the latest checkpoint that
//! loads (falling back past damaged ones), then the WAL from its `replay_from`. Records the
//! checkpoint covers only rebuild the context of transactions open at the checkpoint; a
//! transaction's writes are applied when its commit record has an lsn above the checkpoint's,
//! so replay is idempotent. A WAL that no longer reaches back to the chosen checkpoint's
//! `replay_from`, or ends before its lsn, is a data-loss error naming what is missing, never a
//! silent gap. The last [`RecoveryReport`] is kept for the checker.

use std::collections::BTreeMap;
use std::path::Path;
use stormhold::checkpoint::{
    Bytes, CheckpointData, CheckpointError, CheckpointMeta, CheckpointOptions, CheckpointStore,
    RecoveryError, RecoveryPaths, RecoveryReport, Replayer, UserMeta, recover,
};
use stormhold::env::Env;
use stormhold::env::sim::SimEnv;
use stormhold::wal::{Durability, Lsn, Record, RecordKind, Wal, WalError, WalOptions};

use super::wal_store::{Replay, SINGLE_CALL_TXN_BASE, apply};
use super::{AuditFacts, Key, KvStore, StoreError, Value, Write};

mod audit;

const ROOT: &str = "/db";
const WAL_DIR: &str = "/db/wal";
const CKPT_DIR: &str = "/db/ckpt";
const SEGMENT_SIZE_BYTES: u64 = 4 * 4096;
/// User-metadata key: the first lsn recovery from the checkpoint must replay.
const REPLAY_FROM: &str = "replay_from";
/// User-metadata key: the highest single-call transaction id used before the checkpoint, so
/// ids stay unique when no record after the replay point names one.
const SINGLE_TXN_MAX: &str = "single_txn_max";

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

/// Data loss exactly when recovery says so; an I/O failure keeps its `io::Error` (a simulated
/// crash must stay recognisable); anything else fail-stops.
fn recovery_error(error: RecoveryError) -> StoreError {
    if error.is_data_loss() {
        return StoreError::DataLoss(error.to_string());
    }
    match error {
        RecoveryError::Checkpoint(CheckpointError::Io { source, .. }) => StoreError::Io(source),
        RecoveryError::Wal(WalError::Io { source, .. }) => StoreError::Io(source),
        _ => StoreError::Poisoned,
    }
}

fn encode_state(state: &BTreeMap<Key, Value>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    state.iter().map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec())).collect()
}

fn decode_state(bytes: BTreeMap<Bytes, Bytes>) -> Result<BTreeMap<Key, Value>, String> {
    bytes
        .into_iter()
        .map(|(k, v)| match (k.try_into(), v.try_into()) {
            (Ok(k), Ok(v)) => Ok((Key::from_le_bytes(k), Value::from_le_bytes(v))),
            _ => Err("a checkpoint entry is not this store's".to_owned()),
        })
        .collect()
}

/// Rebuilds the store's state for [`recover`]: the checkpoint's state, then
/// [`Replay`] over the records from the replay point (covered ones only open transactions).
#[derive(Default)]
struct StoreReplayer {
    base: BTreeMap<Key, Value>,
    replay: Replay,
    single_txn_max: u64,
}

impl Replayer for StoreReplayer {
    fn replay_from(&self, meta: &CheckpointMeta) -> Lsn {
        meta.user.source_offsets.get(REPLAY_FROM).copied().unwrap_or(meta.lsn + 1)
    }

    fn base(&mut self, meta: Option<&CheckpointMeta>, state: BTreeMap<Bytes, Bytes>) -> Result<(), String> {
        self.base = decode_state(state)?;
        self.replay = Replay::on(meta.map_or(0, |m| m.lsn), self.base.clone());
        self.single_txn_max =
            meta.and_then(|m| m.user.source_offsets.get(SINGLE_TXN_MAX).copied()).unwrap_or(0);
        Ok(())
    }

    fn record(&mut self, record: Record, covered: bool) -> Result<(), String> {
        // `Replay` applies a commit only above the checkpoint's lsn: a covered record adds to
        // the context of its transaction and changes no state.
        debug_assert_eq!(covered, record.lsn <= self.replay.checkpoint_lsn);
        self.replay.visit(record);
        match self.replay.undecodable {
            0 => Ok(()),
            _ => Err("the record is not this store's".to_owned()),
        }
    }
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
    /// What the recovery that opened the store found and did.
    recovery: RecoveryReport,
    /// The newest checkpoint whose creation returned `Ok` since the store was opened.
    created: Option<u64>,
}

fn ensure_root(env: &SimEnv) -> Result<(), StoreError> {
    match env.create_dir(Path::new(ROOT)) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(StoreError::Io(error)),
        _ => {}
    }
    env.sync_dir(Path::new("/")).map_err(StoreError::Io)
}

impl CkptStore {
    /// What the recovery that opened the store found and did.
    pub fn last_recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

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
        let paths = RecoveryPaths {
            checkpoint_dir: Path::new(CKPT_DIR),
            checkpoint_options: CheckpointOptions { max_retained: 3, full_every_incrementals: 4 },
            wal_dir: Path::new(WAL_DIR),
            wal_options: WalOptions { segment_size_bytes: SEGMENT_SIZE_BYTES, ..WalOptions::default() },
        };
        let mut replayer = StoreReplayer::default();
        let recovered = recover(env, paths, &mut replayer).map_err(recovery_error)?;
        let StoreReplayer { base, replay, single_txn_max } = replayer;
        let next_epoch = recovered.checkpoints.list().iter().map(|m| m.epoch).max().unwrap_or(0) + 1;
        let dirty = replay.state.iter().filter(|(k, v)| base.get(k) != Some(v)).map(|(&k, &v)| (k, Some(v)));
        let deleted = base.keys().filter(|k| !replay.state.contains_key(k)).map(|&k| (k, None));
        let dirty = dirty.chain(deleted).collect();
        let next_single_txn = replay.max_single_txn.max(single_txn_max).max(SINGLE_CALL_TXN_BASE) + 1;
        Ok(Self {
            wal: recovered.wal,
            ckpts: recovered.checkpoints,
            state: replay.state,
            open: BTreeMap::new(),
            dirty,
            last_checkpoint: recovered.report.checkpoint.as_ref().map(|c| c.id),
            next_epoch,
            next_single_txn,
            recovery: recovered.report,
            created: None,
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
        let single_txn_max = self.next_single_txn - 1;
        let user = UserMeta {
            source_offsets: BTreeMap::from([
                (REPLAY_FROM.to_owned(), replay_from),
                (SINGLE_TXN_MAX.to_owned(), single_txn_max),
            ]),
            watermark: None,
        };
        let meta = self.ckpts.create(self.next_epoch, lsn, user, data, parent).map_err(ckpt_error)?;
        self.next_epoch += 1;
        self.last_checkpoint = Some(meta.id);
        self.created = Some(meta.id);
        self.dirty.clear();
        self.ckpts.apply_retention().map_err(ckpt_error)?;
        let keep_from =
            self.ckpts.list().iter().filter_map(|m| m.user.source_offsets.get(REPLAY_FROM).copied()).min();
        if let Some(keep_from) = keep_from {
            self.wal.truncate_before(keep_from).map_err(wal_error)?;
        }
        Ok(())
    }

    fn checkpoint_acknowledged(&self) -> Option<u64> {
        self.created
    }

    fn audit(&self, env: &SimEnv, facts: &AuditFacts) -> Result<(), String> {
        self.audit_recovery(env, facts)
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
