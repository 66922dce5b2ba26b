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
//! Recovery is the kernel's [`stormhold::recovery::recover`]: the latest checkpoint that
//! loads (falling back past damaged ones), then the WAL from its `replay_from`. Records the
//! checkpoint covers only rebuild the context of transactions open at the checkpoint; a
//! transaction's writes are applied when recovery says its commit record is not covered (the
//! `covered` flag [`recover`] hands its [`Replayer`]: the kernel's decision, the one the
//! kernel's shards act on too, never a copy of it). Commit records log deltas
//! ([`super::replay`]), so a covered commit applied again shows in the state: rule 9 is
//! tested, on the kernel's own recovery code. Recovery's decisions are also checked against
//! the checkpoint it chose (every handed-over record is at or past its replay point, and
//! `covered` exactly when at or below its lsn); the audit reports a disagreement, in every
//! build. A WAL that no longer reaches back to the chosen checkpoint's
//! `replay_from`, or ends before its lsn, is a data-loss error naming what is missing, never a
//! silent gap. The last [`RecoveryReport`] is kept for the checker.
//!
//! Checkpoints overlap commits, as the kernel's do: a checkpoint is first *frozen* (its
//! state, lsn `L` = the WAL's last lsn, `replay_from` and parent captured, the changed-key set
//! moved into it, the epoch sealed; no I/O), then *written*: the WAL synced (through `L` at
//! least: rule 11), `create`, retention, truncation. An explicit checkpoint writes any frozen
//! one, then freezes and writes at once.
//!
//! Epochs ([`EpochTracker`], with small triggers so simulated runs fire them): every commit
//! records one operation and the WAL bytes appended since the last one; when a trigger fires
//! the store writes the checkpoint frozen at the previous trigger (if any) and freezes a new
//! one, so the commits of a whole epoch land (and crashes may strike) while a checkpoint is
//! frozen. Every checkpoint, the workload's explicit ones too, seals the active epoch `E`
//! (advance, at the freeze), publishes with epoch `E`, and marks `E` durable once `create`
//! returned; epochs strictly below the oldest retained checkpoint's are archived. After
//! recovery the tracker resumes past the highest epoch of every listed checkpoint (a damaged
//! `META`'s epoch is unknown; its number may come again, but nothing uses that checkpoint).
//! A checkpoint that fails inside a commit does not fail the commit (which completed before
//! it): it fail-stops the store, which refuses every later call until reopened.

use std::collections::BTreeMap;
use std::path::Path;
use stormhold::checkpoint::epoch::{EpochConfig, EpochError, EpochId, EpochTracker};
use stormhold::checkpoint::{
    Bytes, CheckpointData, CheckpointError, CheckpointMeta, CheckpointOptions, CheckpointStore, UserMeta,
};
use stormhold::env::Env;
use stormhold::env::sim::SimEnv;
use stormhold::recovery::{RecoveryError, RecoveryPaths, RecoveryReport, Replayer, recover};
use stormhold::wal::{Durability, Lsn, Record, RecordKind, Wal, WalError, WalOptions};

use super::replay::{Replay, SINGLE_CALL_TXN_BASE, apply, encode_commit, encode_write};
use crate::kv::{AuditFacts, Key, KvStore, StoreError, TxnWrite, Value, Write};

pub(crate) mod audit;

const ROOT: &str = "/db";
const WAL_DIR: &str = "/db/wal";
const CKPT_DIR: &str = "/db/ckpt";
const SEGMENT_SIZE_BYTES: u64 = 4 * 4096;
/// User-metadata key: the first lsn recovery from the checkpoint must replay.
const REPLAY_FROM: &str = "replay_from";
/// User-metadata key: the highest single-call transaction id used before the checkpoint, so
/// ids stay unique when no record after the replay point names one.
const SINGLE_TXN_MAX: &str = "single_txn_max";

/// Epoch triggers: small, so a simulated run of a few hundred operations fires each of them.
fn epoch_config() -> EpochConfig {
    EpochConfig { ops_max: 10, wal_bytes_max: 4096, duration_max_ms: 40, history_len_max: 8, sealing_max: 2 }
}

/// A refused epoch transition: checkpoints keep failing (a backlog) or a bookkeeping bug.
/// Either way the store stops.
fn epoch_error(error: EpochError) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("epoch tracker: {error}")))
}

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

/// A planted mistake of the checkpoint store (a checker-power test), or none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CkptBug {
    /// None: the store as it is.
    #[default]
    None,
    /// Replay ignores the `covered` flag of recovery and applies the commits at or below the
    /// checkpoint's lsn again (rule 9 broken; seen only because commits log deltas).
    ReplayCovered,
}

impl CkptBug {
    /// Every planted mistake (the correct store is the `checkpoint` workload).
    pub const ALL: [CkptBug; 1] = [CkptBug::ReplayCovered];

    /// The workload name.
    pub fn workload_name(self) -> &'static str {
        match self {
            CkptBug::None => "checkpoint",
            CkptBug::ReplayCovered => "checkpoint-replay-covered",
        }
    }
}

/// Rebuilds the store's state for [`recover`]: the checkpoint's state, then [`Replay`] over
/// the records from the replay point, applying a commit only when recovery says the checkpoint
/// does not cover it. It also notes where recovery's decisions disagree with what the
/// checkpoint it chose says (checked by the audit, in every build).
#[derive(Default)]
struct StoreReplayer {
    base: BTreeMap<Key, Value>,
    replay: Replay,
    single_txn_max: u64,
    bug: CkptBug,
    /// The lsn and replay point of the checkpoint recovery started from (0, 1: none).
    checkpoint_lsn: Lsn,
    replay_from: Lsn,
    /// The first disagreement of recovery's `covered` flag or replay point with the checkpoint.
    disagreement: Option<String>,
}

impl Replayer for StoreReplayer {
    fn replay_from(&self, meta: &CheckpointMeta) -> Lsn {
        meta.user.source_offsets.get(REPLAY_FROM).copied().unwrap_or(meta.lsn + 1)
    }

    fn base(&mut self, meta: Option<&CheckpointMeta>, state: BTreeMap<Bytes, Bytes>) -> Result<(), String> {
        self.base = decode_state(state)?;
        self.replay = Replay::on(self.base.clone());
        self.checkpoint_lsn = meta.map_or(0, |m| m.lsn);
        self.replay_from = meta.map_or(1, |m| self.replay_from(m));
        self.single_txn_max =
            meta.and_then(|m| m.user.source_offsets.get(SINGLE_TXN_MAX).copied()).unwrap_or(0);
        Ok(())
    }

    fn record(&mut self, record: Record, covered: bool) -> Result<(), String> {
        let lsn = record.lsn;
        if self.disagreement.is_none() && covered != (lsn <= self.checkpoint_lsn) {
            self.disagreement = Some(format!(
                "recovery called record {lsn} covered={covered}, but the checkpoint it chose is at lsn {}",
                self.checkpoint_lsn
            ));
        }
        if self.disagreement.is_none() && lsn < self.replay_from {
            self.disagreement = Some(format!(
                "recovery handed over record {lsn}, before the checkpoint's replay point {}",
                self.replay_from
            ));
        }
        self.replay.visit(record, covered && self.bug != CkptBug::ReplayCovered);
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
    epochs: EpochTracker,
    /// `wal.stats().bytes` when the tracker last recorded a commit.
    wal_bytes_recorded: u64,
    /// Why a checkpoint taken inside a commit failed: the store refuses every call since.
    failed: Option<String>,
    env: SimEnv,
    next_single_txn: u64,
    /// What the recovery that opened the store found and did.
    recovery: RecoveryReport,
    /// The newest checkpoint whose creation returned `Ok` since the store was opened.
    created: Option<u64>,
    /// Where the recovery that opened the store disagreed with its own checkpoint's lsn or
    /// replay point (the audit reports it).
    recovery_disagreement: Option<String>,
    /// The checkpoint frozen and not yet written.
    frozen: Option<Frozen>,
}

/// A checkpoint frozen (see the module docs): what `create` will be given.
struct Frozen {
    epoch: EpochId,
    lsn: Lsn,
    user: UserMeta,
    data: CheckpointData,
    parent: Option<u64>,
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

    fn check_failed(&self) -> Result<(), StoreError> {
        match self.failed {
            Some(_) => Err(StoreError::Poisoned),
            None => Ok(()),
        }
    }

    fn append(&mut self, kind: RecordKind, txn: u64, payload: &[u8]) -> Result<(), StoreError> {
        self.check_failed()?;
        let prev = self.open.get(&txn).map_or(0, |&(_, last)| last);
        let lsn = self.wal.append(kind, txn, prev, payload).map_err(wal_error)?;
        let first = self.open.get(&txn).map_or(lsn, |&(first, _)| first);
        self.open.insert(txn, (first, lsn));
        Ok(())
    }

    fn finish(&mut self, txn: u64, writes: &[Write], commit: bool, durable: bool) -> Result<(), StoreError> {
        match commit {
            true => self.append(RecordKind::Commit, txn, &encode_commit(&self.state, writes))?,
            false => self.append(RecordKind::Abort, txn, &[])?,
        }
        self.open.remove(&txn);
        if commit {
            apply(&mut self.state, writes);
            for &(key, value) in writes {
                self.dirty.insert(key, value);
            }
            if durable {
                self.wal.sync(Durability::Data).map_err(wal_error)?;
            }
            self.count_commit();
        }
        Ok(())
    }

    /// Records a commit in the active epoch; a trigger that fires takes a checkpoint.
    fn count_commit(&mut self) {
        let wal_bytes = self.wal.stats().bytes;
        let appended = wal_bytes - self.wal_bytes_recorded;
        self.wal_bytes_recorded = wal_bytes;
        let fired = self.epochs.record(1, appended, self.env.now_monotonic());
        if !fired.any() {
            return;
        }
        self.env.note(format!("epoch {} triggers {fired:?}: checkpoint", self.epochs.current().0));
        if let Err(error) = self.write_frozen().and_then(|()| self.freeze()) {
            self.env.note(format!("triggered checkpoint failed ({error}): the store stops"));
            self.failed = Some(error.to_string());
        }
    }

    /// Publishes a checkpoint of everything committed: the frozen one first, then one
    /// frozen and written now.
    fn take_checkpoint(&mut self) -> Result<(), StoreError> {
        self.write_frozen()?;
        self.freeze()?;
        self.write_frozen()
    }

    /// Freezes a checkpoint at the WAL's last lsn (no I/O), unless one is frozen already.
    fn freeze(&mut self) -> Result<(), StoreError> {
        self.check_failed()?;
        if self.frozen.is_some() {
            return Ok(());
        }
        let lsn = self.wal.last_lsn();
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
        let epoch = self.epochs.current();
        self.epochs.advance(self.env.now_monotonic(), self.env.now_wall()).map_err(epoch_error)?;
        self.dirty.clear();
        self.frozen = Some(Frozen { epoch, lsn, user, data, parent });
        Ok(())
    }

    /// Writes and publishes the frozen checkpoint, if any; then retention, archiving, and
    /// WAL truncation back to the oldest retained replay point.
    fn write_frozen(&mut self) -> Result<(), StoreError> {
        self.check_failed()?;
        let Some(Frozen { epoch, lsn, user, data, parent }) = self.frozen.take() else { return Ok(()) };
        // Rule 11: every record the checkpoint covers is durable before it is.
        let durable = self.wal.sync(Durability::Data).map_err(wal_error)?;
        debug_assert!(durable >= lsn, "the WAL is durable through the frozen lsn");
        let meta = self.ckpts.create(epoch.0, lsn, user, data, parent).map_err(ckpt_error)?;
        self.last_checkpoint = Some(meta.id);
        self.created = Some(meta.id);
        self.epochs.mark_durable(epoch, self.env.now_wall()).map_err(epoch_error)?;
        self.ckpts.apply_retention().map_err(ckpt_error)?;
        let listed = self.ckpts.list();
        if let Some(oldest) = listed.iter().map(|m| m.epoch).min() {
            for archivable in self.epochs.archivable_before(EpochId(oldest)) {
                self.epochs.archive(archivable, self.env.now_wall()).map_err(epoch_error)?;
            }
        }
        let keep_from = listed.iter().filter_map(|m| m.user.source_offsets.get(REPLAY_FROM).copied()).min();
        if let Some(keep_from) = keep_from {
            self.wal.truncate_before(keep_from).map_err(wal_error)?;
        }
        Ok(())
    }

    /// The epoch tracker (for tests and the audit).
    pub fn epochs(&self) -> &EpochTracker {
        &self.epochs
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
    type Config = CkptBug;

    fn name(&self) -> String {
        "checkpoint".to_owned()
    }

    fn open(env: &SimEnv, bug: &CkptBug) -> Result<Self, StoreError> {
        ensure_root(env)?;
        let paths = RecoveryPaths {
            checkpoint_dir: Path::new(CKPT_DIR),
            checkpoint_options: CheckpointOptions {
                max_retained: 3,
                full_every_incrementals: 4,
                ..CheckpointOptions::default()
            },
            wal_dir: Path::new(WAL_DIR),
            wal_options: WalOptions { segment_size_bytes: SEGMENT_SIZE_BYTES, ..WalOptions::default() },
        };
        let mut replayer = StoreReplayer { bug: *bug, ..StoreReplayer::default() };
        let recovered = recover(env, paths, &mut replayer).map_err(recovery_error)?;
        let StoreReplayer { base, replay, single_txn_max, disagreement, .. } = replayer;
        // Every listed checkpoint's epoch; the used one and every fallback past damaged data
        // are listed too. A damaged META's epoch cannot be read.
        let last_epoch_seen = recovered.checkpoints.list().iter().map(|m| m.epoch).max().unwrap_or(0);
        let latest_durable = (last_epoch_seen > 0).then_some(EpochId(last_epoch_seen));
        let epochs = EpochTracker::resume(
            epoch_config(),
            last_epoch_seen,
            latest_durable,
            env.now_monotonic(),
            env.now_wall(),
        )
        .map_err(|error| StoreError::DataLoss(format!("epochs cannot resume: {error}")))?;
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
            epochs,
            wal_bytes_recorded: 0,
            failed: None,
            env: env.clone(),
            next_single_txn,
            recovery: recovered.report,
            created: None,
            recovery_disagreement: disagreement,
            frozen: None,
        })
    }

    fn destroy(env: &SimEnv) -> std::io::Result<()> {
        for dir in [WAL_DIR, CKPT_DIR] {
            super::wal_store::remove_tree(env, Path::new(dir))?;
        }
        Ok(())
    }

    fn writes_per_commit_max(_: &CkptBug) -> usize {
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

    fn interleaved_transactions(_: &CkptBug) -> bool {
        true
    }

    fn txn_begin(&mut self, txn: u64) -> Result<(), StoreError> {
        self.append(RecordKind::Begin, txn, &[])
    }

    fn txn_write(&mut self, txn: u64, write: Write) -> Result<(), StoreError> {
        self.append(RecordKind::Data, txn, &encode_write(write))
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

    fn checkpoints(_: &CkptBug) -> bool {
        true
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.take_checkpoint()
    }

    fn checkpoint_acknowledged(&self) -> Option<u64> {
        self.created
    }

    fn checkpoints_in_flight(&self) -> Option<String> {
        let frozen = self.frozen.as_ref()?;
        let after = self.wal.last_lsn() - frozen.lsn;
        Some(format!("frozen at lsn {}, {after} records after it", frozen.lsn))
    }

    fn audit(&self, env: &SimEnv, facts: &AuditFacts) -> Result<(), String> {
        self.audit_recovery(env, facts)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.check_failed()?;
        self.wal.sync(Durability::Data).map(|_| ()).map_err(wal_error)
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
    use stormhold::env::sim::FaultOptions;

    #[test]
    fn an_epoch_trigger_freezes_a_checkpoint_the_next_writes_it_and_epochs_resume_past_every_listed_one() {
        let env = SimEnv::new(2, FaultOptions::default()).expect("valid options");
        let mut store = CkptStore::open(&env, &CkptBug::None).expect("open");
        let ops_max = epoch_config().ops_max;
        for value in 0..ops_max as u32 - 1 {
            store.commit(&[(1, Some(value))], false).expect("commit");
        }
        assert_eq!(store.checkpoint_acknowledged(), None, "no trigger yet");
        store.commit(&[(2, Some(7))], false).expect("the commit that fires the ops trigger");
        assert_eq!(store.checkpoint_acknowledged(), None, "frozen, not written");
        let frozen_lsn = store.frozen.as_ref().map(|f| f.lsn);
        assert_eq!(frozen_lsn, Some(store.wal.last_lsn()), "frozen at the WAL's last lsn");
        assert_eq!((store.epochs.current(), store.epochs.latest_durable()), (EpochId(2), None));
        assert_eq!(store.epochs.stats().sealed_by_ops, 1);
        // The commits of the next epoch land while the checkpoint is frozen.
        for value in 0..ops_max as u32 {
            store.commit(&[(3, Some(value))], false).expect("commit while frozen");
        }
        assert_eq!(store.checkpoint_acknowledged(), Some(1), "the next trigger wrote it");
        let first = store.ckpts.list()[0].clone();
        assert_eq!((first.epoch, Some(first.lsn)), (1, frozen_lsn), "it covers exactly the frozen records");
        assert_eq!((store.epochs.current(), store.epochs.latest_durable()), (EpochId(3), Some(EpochId(1))));
        store.checkpoint().expect("an explicit checkpoint");
        let epochs: Vec<u64> = store.ckpts.list().iter().map(|m| m.epoch).collect();
        assert_eq!(epochs, [3, 2, 1], "newest first: the frozen one, then one of everything");
        drop(store);
        env.crash();
        env.restart();
        let store = CkptStore::open(&env, &CkptBug::None).expect("reopen");
        assert_eq!((store.epochs.current(), store.epochs.latest_durable()), (EpochId(4), Some(EpochId(3))));
        let expected = BTreeMap::from([(1, ops_max as u32 - 2), (2, 7), (3, ops_max as u32 - 1)]);
        assert_eq!(store.state().expect("state"), expected);
    }

    fn record(kind: RecordKind, lsn: Lsn) -> Record {
        Record { kind, lsn, durable_lsn: 0, segment_id: 1, txn_id: 9, prev_lsn: 0, payload: Vec::new() }
    }

    #[test]
    fn a_recovery_that_misjudges_covered_records_or_the_replay_point_fails_the_audit() {
        let agreeing = |covered_at: Lsn| {
            let mut replayer =
                StoreReplayer { checkpoint_lsn: 5, replay_from: 3, ..StoreReplayer::default() };
            for lsn in 3..8 {
                replayer.record(record(RecordKind::Begin, lsn), lsn <= covered_at).expect("record");
            }
            replayer.disagreement
        };
        assert_eq!(agreeing(5), None, "covered exactly up to the checkpoint's lsn");
        assert!(agreeing(4).expect("lsn 5 called uncovered").contains("record 5 covered=false"));
        assert!(agreeing(6).expect("lsn 6 called covered").contains("record 6 covered=true"));
        let mut early = StoreReplayer { checkpoint_lsn: 5, replay_from: 3, ..StoreReplayer::default() };
        early.record(record(RecordKind::Begin, 2), true).expect("record");
        assert!(early.disagreement.expect("before the replay point").contains("replay point 3"));

        let env = SimEnv::new(2, FaultOptions::default()).expect("valid options");
        let mut store = CkptStore::open(&env, &CkptBug::None).expect("open");
        assert_eq!(store.audit(&env, &AuditFacts::default()), Ok(()));
        store.recovery_disagreement = agreeing(4);
        let error = store.audit(&env, &AuditFacts::default()).expect_err("a disagreement fails the audit");
        assert!(error.contains("covered=false"), "{error}");
    }
}
