//! Checkpoints off the commit path: a checkpoint is frozen under the shard's lock in O(1),
//! then written, published and merged outside it, while commits go on.
//!
//! # Protocol
//!
//! ```text
//!   freeze   (shard lock)       delta -> frozen layer; lsn = the WAL's last lsn; epoch sealed
//!   write    (checkpoint lock)  WAL synced through lsn (rule 11); DATA from the frozen view;
//!                               the store publishes it (data synced, META renamed, dir synced)
//!   publish  (shard lock)       epoch durable; the latest checkpoint; the pending one cleared
//!   merge    (shard lock, in slices of MERGE_SLICE_KEYS) the frozen layer into the base
//!   retire   (checkpoint lock)  retention; WAL truncated back to the oldest retained
//!                               checkpoint, only now that the covering one is durable
//! ```
//!
//! The checkpoint lock (the store's own mutex) serializes writers and is taken before the
//! shard lock, never after it. Who writes: `tick` (the ticker thread on the real OS, chosen
//! times in the simulator), [`Shard::checkpoint`], and, as backpressure, a commit.
//!
//! # The WAL-bytes cap
//!
//! A commit that brings the active epoch past half of `wal_bytes_max` freezes a checkpoint
//! if none is pending (no I/O). If one is pending, its writer is a whole half-cap behind: the
//! commit writes it itself, or waits on the checkpoint lock for the writer in flight, then
//! freezes the next. So the WAL to replay stays about one cap without `tick` (a checkpoint
//! every half cap, each covering up to the previous freeze), and with a ticker that keeps up
//! no commit does checkpoint I/O. The only stall left is that backpressure, when commits
//! outrun the checkpointer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::MutexGuard;

use super::{Failure, Pending, Published, Serving, Shard, ShardError, Tick};
use crate::checkpoint::epoch::EpochId;
use crate::checkpoint::{CheckpointData, CheckpointStore, UserMeta};
use crate::env::{Env, SharedEnv};
use crate::wal::{Durability, Lsn};

/// Keys of the frozen layer folded into the base per hold of the shard lock.
const MERGE_SLICE_KEYS: usize = 4096;

type Store<E> = CheckpointStore<SharedEnv<E>>;

impl<E: Env + Clone> Shard<E> {
    fn lock_checkpoints(&self) -> MutexGuard<'_, Option<Store<E>>> {
        // A panic while writing a checkpoint poisons the store's lock; the store itself
        // poisons on any failed I/O, and the shard is failed by whoever saw the error.
        self.checkpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails the shard with `failure` (taking its lock) and returns the error.
    fn fail_now(&self, failure: Failure) -> ShardError {
        let mut inner = self.lock();
        let sync = match &*inner {
            super::Inner::Serving(s) => s.sync,
            super::Inner::Failed { sync, .. } => *sync,
        };
        self.fail(&mut inner, failure, sync)
    }

    /// Whether the active epoch holds half the WAL-bytes cap (see the module docs).
    pub(super) fn past_half_the_cap(serving: &Serving) -> bool {
        serving.epochs.active().wal_bytes >= serving.epochs.config().wal_bytes_max / 2
    }

    /// Freezes a checkpoint under the lock unless one is pending; returns whether one is
    /// pending now. With nothing new since the last checkpoint, freezes nothing.
    pub(super) fn freeze_locked(&self, serving: &mut Serving) -> Result<bool, Failure> {
        if serving.pending.is_some() {
            return Ok(true);
        }
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        let lsn = wal.last_lsn().map_err(|e| Failure::wal("checkpoint freeze", e))?;
        if serving.state.delta().is_empty() && serving.last_checkpoint.is_some_and(|p| p.lsn == lsn) {
            return Ok(false);
        }
        let sealed = serving.epochs.current();
        serving
            .epochs
            .advance(self.env.now_monotonic(), self.env.now_wall())
            .map_err(|e| Failure::epoch("", e))?;
        let view = serving.state.freeze();
        serving.pending = Some(Pending { lsn, sealed, view });
        Ok(true)
    }

    /// Freezes a checkpoint now (no I/O); `tick` or [`Shard::checkpoint`] writes it later.
    /// Returns the lsn it covers (`None`: nothing new since the last checkpoint). A
    /// checkpoint already pending stays the one frozen.
    pub fn begin_checkpoint(&self) -> Result<Option<Lsn>, ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        match self.freeze_locked(serving) {
            Ok(pending) => Ok(pending.then(|| serving.pending.as_ref().map(|p| p.lsn)).flatten()),
            Err(failure) => {
                let sync = serving.sync;
                Err(self.fail(&mut inner, failure, sync))
            }
        }
    }

    /// The commit path past half the cap (see the module docs).
    pub(super) fn wal_cap_step(&self) -> Result<(), ShardError> {
        if !self.begin_or_pending()? {
            return Ok(());
        }
        self.write_pending()?;
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        if Self::past_half_the_cap(serving)
            && let Err(failure) = self.freeze_locked(serving)
        {
            let sync = serving.sync;
            return Err(self.fail(&mut inner, failure, sync));
        }
        Ok(())
    }

    /// Freezes if nothing is pending (returns false: no backpressure due); true if a
    /// checkpoint frozen earlier is still unwritten.
    fn begin_or_pending(&self) -> Result<bool, ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        if serving.pending.is_some() {
            return Ok(true);
        }
        if let Err(failure) = self.freeze_locked(serving) {
            let sync = serving.sync;
            return Err(self.fail(&mut inner, failure, sync));
        }
        Ok(false)
    }

    /// Publishes a checkpoint of the whole state so far: writes the one pending (if any),
    /// then freezes and writes one at the WAL's last lsn. Returns its id; with nothing new
    /// since the last checkpoint, that one's id without writing. A failure fails the shard.
    pub fn checkpoint(&self) -> Result<u64, ShardError> {
        self.write_pending()?;
        self.begin_checkpoint()?;
        self.write_pending()?;
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        let published = serving.last_checkpoint.expect("a checkpoint was published or nothing was new");
        Ok(published.id)
    }

    /// Writes and publishes the pending checkpoint, if any (waiting for a writer in flight),
    /// then merges and retires (see the module docs). Returns the published id. Durability
    /// callbacks fire after the checkpoint lock is released, so one may call back in.
    pub fn write_pending(&self) -> Result<Option<u64>, ShardError> {
        let result = self.write_pending_locked();
        self.notify_durable();
        result
    }

    fn write_pending_locked(&self) -> Result<Option<u64>, ShardError> {
        let mut guard = self.lock_checkpoints();
        let (view, lsn, sealed, parent) = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            let Some(pending) = &serving.pending else { return Ok(None) };
            let store = guard.as_ref().expect("a serving shard has a checkpoint store");
            let parent = serving.last_checkpoint.map(|p| p.id).filter(|&p| !store.full_due(p));
            (pending.view.clone(), pending.lsn, pending.sealed, parent)
        };
        // Rule 11: every record the checkpoint covers is durable before the checkpoint is.
        if lsn >= 1 {
            self.sync_through_locked(lsn, Durability::Data)?;
        }
        let data = match parent {
            Some(_) => {
                let mut puts = BTreeMap::new();
                let mut deletes = BTreeSet::new();
                for (key, value) in view.frozen.iter() {
                    match value {
                        Some(value) => drop(puts.insert(key.clone(), value.clone())),
                        None => drop(deletes.insert(key.clone())),
                    }
                }
                CheckpointData::Incremental { puts, deletes }
            }
            None => CheckpointData::Full(view.full()),
        };
        // The writer's view goes before the merge, so the merge mutates in place.
        drop(view);
        let store = guard.as_mut().expect("a serving shard has a checkpoint store");
        let meta = store
            .create(sealed.0, lsn, UserMeta::default(), data, parent)
            .map_err(|e| self.fail_now(Failure::checkpoint("checkpoint", e)))?;
        // Postconditions of create: the checkpoint is at the frozen lsn, in the sealed epoch.
        debug_assert_eq!(meta.lsn, lsn, "the checkpoint is at the frozen lsn");
        debug_assert_eq!(meta.epoch, sealed.0, "the checkpoint closes the sealed epoch");
        let published = Published { id: meta.id, lsn, epoch: meta.epoch };
        self.published(published, sealed)?;
        self.merge_frozen()?;
        self.retire(store, published)?;
        Ok(Some(meta.id))
    }

    /// Records the published checkpoint under the lock and clears the pending one.
    fn published(&self, published: Published, sealed: EpochId) -> Result<(), ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        if let Err(error) = serving.epochs.mark_durable(sealed, self.env.now_wall()) {
            let sync = serving.sync;
            return Err(self.fail(&mut inner, Failure::epoch("", error), sync));
        }
        serving.last_checkpoint = Some(published);
        serving.pending = None;
        serving.stats.checkpoints += 1;
        self.check_serving(serving);
        Ok(())
    }

    /// Folds the frozen layer into the base, a slice per hold of the lock.
    fn merge_frozen(&self) -> Result<(), ShardError> {
        loop {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            if serving.pending.is_some() || serving.state.merge_step(MERGE_SLICE_KEYS) {
                return Ok(());
            }
        }
    }

    /// Retention, WAL truncation and epoch archiving after `published` is durable.
    fn retire(&self, store: &mut Store<E>, published: Published) -> Result<(), ShardError> {
        // Postcondition of publication: the store lists what the shard calls the latest.
        debug_assert!(store.meta(published.id).is_some_and(|m| m.lsn == published.lsn));
        store.apply_retention().map_err(|e| self.fail_now(Failure::checkpoint("retention", e)))?;
        if let Some(oldest) = store.min_retained_lsn() {
            let wal = self.wal.as_ref().expect("a serving shard has a WAL");
            wal.truncate_before(oldest + 1).map_err(|e| self.fail_now(Failure::wal("WAL truncation", e)))?;
        }
        let Some(oldest_epoch) = store.list().iter().map(|m| m.epoch).min() else { return Ok(()) };
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        for epoch in serving.epochs.archivable_before(EpochId(oldest_epoch)) {
            if let Err(error) = serving.epochs.archive(epoch, self.env.now_wall()) {
                let sync = serving.sync;
                return Err(self.fail(&mut inner, Failure::epoch("", error), sync));
            }
        }
        Ok(())
    }

    /// Background work, driven by the caller: writes the pending checkpoint, or takes one
    /// when an epoch trigger fired; else, with `sync_dirty`, syncs unsynced commits.
    pub fn tick(&self, sync_dirty: bool) -> Result<Tick, ShardError> {
        let mut tick = Tick { checkpoint: self.write_pending()?, ..Tick::default() };
        let (due, dirty) = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            // Only with changes since the last checkpoint: an idle shard publishes nothing.
            let due =
                serving.epochs.pending(self.env.now_monotonic()).any() && !serving.state.delta().is_empty();
            (due && tick.checkpoint.is_none(), serving.sync == super::SyncState::Dirty)
        };
        if due {
            self.begin_checkpoint()?;
            tick.checkpoint = self.write_pending()?;
        } else if dirty && sync_dirty && tick.checkpoint.is_none() {
            self.sync(Durability::Data)?;
            tick.synced = true;
        }
        tick.vouched = self.vouch()?;
        Ok(tick)
    }
}
