//! Opening a shard: the checkpoint + WAL recovery of [`crate::recovery::recover`] with the
//! shard's own replayer, then the epoch tracker resumed past every epoch seen.
//!
//! The replayer writes a same-length overwrite of a key the recovered checkpoint holds into
//! the base run in place ([`State::set_in_replay`]): recovery then holds one copy of the
//! state, not the base plus a delta of the overwritten values (issue 11: peak RSS of the
//! footprint bench 1.43x -> 1.10x the live data). The commit path keeps writing the delta
//! ([`apply`]): only replay owns the base alone.
//!
//! [`Shard::open_with`] recovers with a helper thread where the kernel has one to spare
//! ([`Helpers::One`]: it readies the arena blocks of the checkpoint's run, see
//! `checkpoint::load`); what recovers, and what is reported, are the same without it.
//!
//! A shard that cannot recover does not stop the kernel: it opens as *failed*, with the
//! reason (and whether it is data loss or an I/O failure a retry may cure), and every other
//! shard serves.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use super::memtable::WARM_GROUP_KEYS;
use super::reclaim::Reclaim;
use super::record::{BatchView, OpRef};
use super::state::State;
use super::writer::Checkpointer;
use super::{
    Bytes, Failure, Inner, NS_DOC, NS_USER, Published, Serving, Shard, ShardOptions, ShardStats, SyncState,
};
use crate::checkpoint::epoch::{EpochId, EpochTracker};
use crate::checkpoint::run::Run;
use crate::checkpoint::{CheckpointMeta, CheckpointStore};
use crate::env::Env;
use crate::env::SharedEnv;
use crate::recovery::{Helpers, RecoveryPaths, RecoveryReport, Replayer, recover_with};
use crate::wal::shared::SharedWal;
use crate::wal::{Record, RecordKind, RecordRef};

/// Records between two progress reports of a long recovery.
const PROGRESS_EVERY_RECORDS: u64 = 1 << 16;

/// Progress of one shard's recovery, reported to [`crate::Config`]'s progress callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// The shard.
    pub shard: u32,
    /// Records replayed so far.
    pub records_replayed: u64,
    /// Whether the shard's recovery is over (successfully or not).
    pub done: bool,
}

/// A progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(&RecoveryProgress) + Send + Sync);

/// Applies one batch to a state (its delta layer is the set of keys changed since the last
/// checkpoint).
///
/// With a large delta, the hash slots of each group of [`WARM_GROUP_KEYS`] keys are loaded
/// together before the group is applied ([`State::warm_in`]): timing only, the ops are
/// applied in order exactly as without it.
pub(super) fn apply(state: &mut State, batch: &BatchView<'_>) {
    let mut ahead = state.warms().then(|| batch.ops());
    // State keys are written into the delta's arena from their parts: no key is built.
    for (n, op) in batch.ops().enumerate() {
        if n % WARM_GROUP_KEYS == 0
            && let Some(ahead) = &mut ahead
        {
            state.warm_in(&[NS_USER], ahead.by_ref().take(WARM_GROUP_KEYS).map(|op| op.key()));
        }
        match op {
            OpRef::Put(key, value) => state.set_in(NS_USER, key, Some(value)),
            OpRef::Delete(key) => state.set_in(NS_USER, key, None),
            OpRef::DeleteRange(start, end) => drop(state.remove_range_in(&[NS_USER], start, end)),
        }
    }
    if let Some((id, true)) = batch.doc() {
        state.set_in(NS_DOC, id.as_bytes(), Some(&[]));
    }
}

/// [`apply`] during WAL replay: a same-length overwrite of a key the recovered checkpoint
/// holds goes into the base run in place ([`State::set_in_replay`]), so a replayed tail of
/// overwrites holds no second copy of those values (issue 11, recovery memory).
fn apply_replayed(state: &mut State, batch: &BatchView<'_>) {
    for op in batch.ops() {
        match op {
            OpRef::Put(key, value) => state.set_in_replay(NS_USER, key, Some(value)),
            OpRef::Delete(key) => state.set_in(NS_USER, key, None),
            OpRef::DeleteRange(start, end) => drop(state.remove_range_in(&[NS_USER], start, end)),
        }
    }
    if let Some((id, true)) = batch.doc() {
        state.set_in_replay(NS_DOC, id.as_bytes(), Some(&[]));
    }
}

/// The state key of a user key.
pub(crate) fn user_key(key: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(NS_USER);
    out.extend_from_slice(key);
    out
}

/// The state key of a completed document.
pub(crate) fn doc_key(id: &str) -> Bytes {
    let mut out = Vec::with_capacity(id.len() + 1);
    out.push(NS_DOC);
    out.extend_from_slice(id.as_bytes());
    out
}

struct ShardReplayer<'a> {
    shard: u32,
    state: State,
    replayed: u64,
    /// WAL bytes of the replayed records, to seed the epoch's byte count.
    replayed_bytes: u64,
    progress: Option<ProgressFn<'a>>,
}

impl Replayer for ShardReplayer<'_> {
    fn base(&mut self, meta: Option<&CheckpointMeta>, state: BTreeMap<Bytes, Bytes>) -> Result<(), String> {
        self.base_run(meta, state.iter().collect())
    }

    fn base_run(&mut self, _: Option<&CheckpointMeta>, state: Run) -> Result<(), String> {
        check_namespaces(&state)?;
        self.state = State::from_run(state).with_hash_seed(self.state.hash_seed());
        Ok(())
    }

    fn record(&mut self, record: Record, covered: bool) -> Result<(), String> {
        self.record_borrowed(record.borrowed(), covered)
    }

    fn record_borrowed(&mut self, record: RecordRef<'_>, covered: bool) -> Result<(), String> {
        if record.kind != RecordKind::Data || record.txn_id != 0 {
            return Err(format!("a {:?} record of txn {} is not a shard batch", record.kind, record.txn_id));
        }
        let batch = BatchView::parse(record.payload)?;
        if !covered {
            apply_replayed(&mut self.state, &batch);
            self.replayed += 1;
            self.replayed_bytes += super::ops::record_slot_bytes(record.payload.len());
            if let Some(progress) =
                self.progress.filter(|_| self.replayed.is_multiple_of(PROGRESS_EVERY_RECORDS))
            {
                progress(&RecoveryProgress {
                    shard: self.shard,
                    records_replayed: self.replayed,
                    done: false,
                });
            }
        }
        Ok(())
    }
}

/// Refuses a checkpoint state holding a key in no namespace of a shard, or a document key
/// whose id is not UTF-8, naming the first such key in key order.
///
/// The run is sorted, and the namespaces are the first bytes 0 ([`NS_USER`]) and 1
/// ([`NS_DOC`]): the empty key sorts first, the user keys next, then the document keys, then
/// any key in no namespace. So only the first key, the document keys and the first key past
/// them need a look (two binary searches), not every entry: the pass over the whole run cost
/// 8% of a realistic recovery in perf (two varints decoded per entry).
fn check_namespaces(state: &Run) -> Result<(), String> {
    const _: () = assert!(NS_USER == 0 && NS_DOC == 1, "the namespaces sort user keys first, then documents");
    if let Some((key, _)) = state.iter().next()
        && key.is_empty()
    {
        return Err(format!("key {key:?} is in no namespace of a shard"));
    }
    let docs = state.range(Bound::Included(&[NS_DOC]), Bound::Excluded(&[NS_DOC + 1]));
    for (key, _) in docs {
        if std::str::from_utf8(&key[1..]).is_err() {
            return Err(format!("document id {key:?} is not UTF-8"));
        }
    }
    match state.range(Bound::Included(&[NS_DOC + 1]), Bound::Unbounded).next() {
        Some((key, _)) => Err(format!("key {key:?} is in no namespace of a shard")),
        None => Ok(()),
    }
}

impl<E: Env + Clone> Shard<E> {
    /// Opens (creating if needed) shard `id` in `dir`, recovering it. Never fails: a shard
    /// that cannot recover opens failed, with the reason.
    pub fn open(
        id: u32,
        env: E,
        dir: &Path,
        options: &ShardOptions,
        progress: Option<ProgressFn<'_>>,
    ) -> Self {
        Self::open_with(id, env, dir, options, progress, Helpers::None)
    }

    /// [`Shard::open`], recovering with `helpers` (see [`crate::recovery::Helpers`]).
    pub fn open_with(
        id: u32,
        env: E,
        dir: &Path,
        options: &ShardOptions,
        progress: Option<ProgressFn<'_>>,
        helpers: Helpers,
    ) -> Self {
        let result = Self::try_open(id, env.clone(), dir, options, progress, helpers);
        if let Some(progress) = progress {
            let records_replayed =
                result.as_ref().map_or(0, |s| s.recovery.as_ref().map_or(0, |r| r.records_replayed));
            progress(&RecoveryProgress { shard: id, records_replayed, done: true });
        }
        result.unwrap_or_else(|failure| Self::failed(id, env, dir, failure))
    }

    fn try_open(
        id: u32,
        env: E,
        dir: &Path,
        options: &ShardOptions,
        progress: Option<ProgressFn<'_>>,
        helpers: Helpers,
    ) -> Result<Self, Failure> {
        // Precondition: the shard's directory has a name of its own (`wal/` and `ckpt/` go
        // below it, never beside another shard's).
        debug_assert!(dir.file_name().is_some(), "shard directory {} has no name", dir.display());
        let shared = SharedEnv(env.clone());
        match env.create_dir(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(Failure::io("create", dir, error));
            }
            _ => {}
        }
        let (wal_dir, checkpoint_dir) = (dir.join("wal"), dir.join("ckpt"));
        let paths = RecoveryPaths {
            checkpoint_dir: &checkpoint_dir,
            checkpoint_options: options.checkpoint.clone(),
            wal_dir: &wal_dir,
            wal_options: options.wal.clone(),
        };
        let seed = super::memtable::seed_for_store(options.wal.identity.store_id, id);
        let state = State::default().with_hash_seed(seed);
        let mut replayer = ShardReplayer { shard: id, state, replayed: 0, replayed_bytes: 0, progress };
        let recovered = recover_with(&shared, paths, &mut replayer, helpers).map_err(Failure::recovery)?;
        let checkpoints = Checkpointer::new(recovered.checkpoints, Reclaim::of_retired(&recovered.wal)?);
        let epochs = resume_epochs(&env, options, &checkpoints.store, &recovered.report, &replayer)?;
        let last_checkpoint = recovered.report.checkpoint.as_ref().map(|c| c.id);
        let last_checkpoint = last_checkpoint
            .and_then(|id| checkpoints.store.meta(id))
            .map(|meta| Published { id: meta.id, lsn: meta.lsn, epoch: meta.epoch });
        let serving = Serving {
            state: replayer.state,
            epochs,
            last_checkpoint,
            pending: None,
            sync: SyncState::Clean,
            stats: ShardStats::default(),
            // Whether a recovered record vouches for the last one is not tracked: the first
            // idle tick vouches for what recovery found.
            vouched_lsn: 0,
        };
        debug_assert_eq!(
            replayer.replayed, recovered.report.records_replayed,
            "every replayed record is counted"
        );
        let shard = Self {
            id,
            env,
            dir: dir.to_path_buf(),
            wal: Some(SharedWal::from_wal(recovered.wal)),
            inner: Mutex::new(Inner::Serving(Box::new(serving))),
            lock_waiting: AtomicUsize::new(0),
            tickers: super::tickers::Tickers::default(),
            checkpoints: Mutex::new(Some(checkpoints)),
            reads: AtomicU64::new(0),
            waiters: Mutex::default(),
            recovery: Some(recovered.report),
        };
        // Postcondition: the recovered shard is consistent (and Clean: recovery synced it).
        if let Inner::Serving(serving) = &*shard.lock() {
            shard.check_serving(serving);
        }
        Ok(shard)
    }
}

/// The epoch tracker of a recovered shard, resumed past every epoch ever durable.
fn resume_epochs<E: Env>(
    env: &E,
    options: &ShardOptions,
    checkpoints: &CheckpointStore<SharedEnv<E>>,
    report: &RecoveryReport,
    replayer: &ShardReplayer<'_>,
) -> Result<EpochTracker, Failure> {
    // A shard closes each epoch with exactly one checkpoint (advance and create go
    // together, and a failed create fails the shard), so epoch numbers follow checkpoint
    // ids, which are never reused. Resuming past every id ever durable (damaged and
    // partial checkpoints included, whose metadata cannot be read) never reuses an epoch.
    let listed_max = checkpoints.list().iter().map(|m| m.epoch).max().unwrap_or(0);
    let last_epoch_seen = listed_max.max(checkpoints.next_id() - 1);
    let latest_durable = report.checkpoint.as_ref().map(|c| c.epoch).filter(|&e| e > 0);
    let mut epochs = EpochTracker::resume(
        options.epoch.clone(),
        last_epoch_seen,
        latest_durable.map(EpochId),
        env.now_monotonic(),
        env.now_wall(),
    )
    .map_err(|error| Failure::epoch("resume epochs", error))?;
    // The WAL replayed after the checkpoint counts toward the active epoch, so the
    // WAL-bytes cap holds across restarts that each write less than it.
    epochs.record(replayer.replayed, replayer.replayed_bytes, env.now_monotonic());
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check as it was, entry by entry: the reference the fast one must agree with.
    fn check_every_key(state: &Run) -> Result<(), String> {
        for (key, _) in state.iter() {
            match key.first() {
                Some(&NS_USER) => {}
                Some(&NS_DOC) if std::str::from_utf8(&key[1..]).is_ok() => {}
                Some(&NS_DOC) => return Err(format!("document id {key:?} is not UTF-8")),
                _ => return Err(format!("key {key:?} is in no namespace of a shard")),
            }
        }
        Ok(())
    }

    fn run_of(keys: &[&[u8]]) -> Run {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut run = Run::new();
        for key in keys {
            run.push(key, b"v");
        }
        run
    }

    /// A shard recovered with a helper reads its WAL ahead on a helper thread; one recovered
    /// without (a kernel recovering as many shards at once as it may use threads) starts no
    /// read-ahead thread, and both recover the same state.
    #[test]
    fn the_wal_scan_reads_ahead_only_in_a_recovery_granted_a_helper() {
        use crate::env::OsEnv;
        use crate::shard::{Intent, ShardOptions};
        use crate::wal::Durability;
        use crate::wal::window::READ_AHEAD_HELPERS;

        let dir = tempfile::tempdir().expect("tempdir");
        let options = ShardOptions {
            wal: Default::default(),
            checkpoint: Default::default(),
            epoch: Default::default(),
        };
        {
            let shard = Shard::open(0, OsEnv::new(), dir.path(), &options, None);
            for k in 0..100u64 {
                let writes = vec![(k.to_be_bytes().to_vec(), Intent::Put(vec![k as u8; 100]))];
                shard.commit(writes, None, Durability::None).expect("commit");
            }
            shard.sync(Durability::Data).expect("sync");
        }
        let mut recovered = Vec::new();
        for helpers in [Helpers::None, Helpers::One, Helpers::None] {
            let before = READ_AHEAD_HELPERS.with(std::cell::Cell::get);
            let shard = Shard::open_with(0, OsEnv::new(), dir.path(), &options, None, helpers);
            assert!(shard.status().failed.is_none(), "{:?}", shard.status());
            let started = READ_AHEAD_HELPERS.with(std::cell::Cell::get) - before;
            assert_eq!(started > 0, helpers == Helpers::One, "{helpers:?}: {started} read-ahead helpers");
            assert_eq!(shard.recovery_report().map(|r| r.records_replayed), Some(100));
            recovered.push(shard.scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded).expect("scan"));
        }
        assert_eq!(recovered[0].len(), 100);
        assert!(recovered.iter().all(|state| *state == recovered[0]), "the same state either way");
    }

    #[test]
    fn the_namespace_check_by_sort_order_names_the_same_first_key_as_a_full_pass() {
        let user: &[&[u8]] = &[&[NS_USER], &[NS_USER, b'a'], &[NS_USER, 0xff, 0xfe]];
        let docs: &[&[u8]] = &[&[NS_DOC], &[NS_DOC, b'd', b'1'], &[NS_DOC, 0xc3, 0xa9]];
        let bad: &[&[u8]] = &[&[], &[NS_DOC, 0xff], &[NS_DOC, b'z', 0x80], &[2], &[2, 0], &[0xff, 1]];
        let mut cases: Vec<Vec<&[u8]>> = vec![vec![], user.to_vec(), docs.to_vec(), [user, docs].concat()];
        for (n, &one) in bad.iter().enumerate() {
            cases.push([user, docs, &[one]].concat());
            cases.push(vec![one]);
            cases.push([&[one][..], &bad[n..]].concat());
            cases.push([&bad[..=n], user].concat());
        }
        for keys in cases {
            let run = run_of(&keys);
            assert_eq!(check_namespaces(&run), check_every_key(&run), "keys {keys:?}");
        }
        assert!(check_namespaces(&run_of(&[&[NS_DOC, 0xff]])).is_err(), "a document id that is not UTF-8");
        assert!(check_namespaces(&run_of(&[&[NS_USER, b'k'], &[3]])).is_err(), "a key in no namespace");
        assert!(check_namespaces(&run_of(&[&[]])).is_err(), "the empty key");
    }
}
