//! Checkpoints off the commit path: a checkpoint is frozen under the shard's lock in O(1),
//! then written in bounded steps, published and merged outside it, while commits go on.
//!
//! # Protocol
//!
//! ```text
//!   freeze   (shard lock)       delta -> frozen layer; lsn = the WAL's last lsn; epoch sealed
//!   start    (checkpoint lock)  the frozen layer packed in key order (unless its keys
//!                               came ascending) and taken by the state in its place;
//!                               ckpt-<id>/DATA staged
//!   steps    (checkpoint lock)  a chunk of step_bytes (writer.rs) of entries from the frozen
//!                               view, written, synced, read back; the lock released between
//!   finish   (checkpoint lock)  WAL synced through lsn (rule 11); the header, META renamed,
//!                               directories synced (the store's publication,
//!                               `checkpoint::staged`)
//!   publish  (shard lock)       epoch durable; the latest checkpoint; the pending one cleared
//!   merge    (shard lock, in slices of MERGE_SLICE_KEYS) the frozen layer into the base,
//!            a step of MERGE_STEP_SLICES slices at a time, after the publication
//!   retire   (checkpoint lock)  retention; WAL truncated back to the oldest retained
//!                               checkpoint, only now that the covering one is durable;
//!                               what they took out queued for reclaiming
//!   reclaim  (checkpoint lock)  a bounded unit with every later step (`super::reclaim`)
//! ```
//!
//! The checkpoint lock (the store's own mutex) serializes steps and is taken before the shard lock,
//! never after it, and never held across more than one step. Who steps: `tick` (the ticker thread
//! on the real OS, chosen times in the simulator), up to `TICK_STEPS_MAX` steps a tick;
//! [`Shard::checkpoint`], until the checkpoint is published; and a commit, only as backpressure
//! (below). A full checkpoint streams the merged view: nothing copies the state.
//!
//! # The WAL-bytes cap: backpressure in steps
//!
//! A commit that brings the active epoch past half of `wal_bytes_max` (`H`) freezes a
//! checkpoint if none is pending (no I/O). While one is pending, its writing is paced
//! against the active epoch's WAL bytes: it must be done by `3/4 H` (so it is published
//! before the next freeze is due at `H`), and a commit that finds it behind that schedule
//! (entries written below the epoch's share of the checkpoint's entries, past a grace of a
//! 1/8) writes steps until it is back on schedule. Each commit so pays for about its own
//! share (its WAL bytes times the checkpoint's entries per `3/4 H`), never for a whole
//! checkpoint; with a ticker that keeps up, no commit writes any. While a thread is in
//! `tick` (counted in `Shard::tickers`), a commit behind the schedule writes no step: it
//! waits for the ticker's next step (`super::tickers`) and looks at the schedule again, so the
//! checkpoint goes on beside the commits rather than on the commit's thread (and an unfair
//! checkpoint lock never keeps it waiting for the whole checkpoint). The ticker does not
//! sleep while a tick reports work left ([`Tick::busy`]). Past `3/4 H` the commit
//! finishes the checkpoint, which by then is at most its own share behind. The WAL to replay
//! stays about one cap without `tick`.
//!
//! # The merge after a publication: steps too
//!
//! Folding the frozen layer into the base rewrites the packed base (`state`), in proportion
//! to the whole state (except when every frozen key sorts after the base's last, a
//! sequential load: then the base is taken whole and the merge costs the frozen layer
//! alone), so it is not done at the publication: it is a step of its own
//! (`MERGE_STEP_SLICES` slices, the shard lock released between slices) that `tick` takes
//! like a chunk of a checkpoint, and a commit takes only when the merge is behind its own
//! schedule: done by the next freeze (`H/2`), nothing due before `H/4`, each commit past
//! that paying about twice its share of the keys left. A freeze finds the merge done
//! unless commits outran the schedule, and then finishes it in slices before it freezes.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use super::state::FrozenView;
use super::writer::{self, Checkpointer, Job};
use super::{Failure, Pending, Published, Serving, Shard, ShardError, Tick};
use crate::checkpoint::epoch::EpochId;
use crate::checkpoint::{CheckpointKind, UserMeta};
use crate::env::Env;
use crate::wal::{Durability, Lsn};

/// What one step of a checkpoint's writing did.
enum Step {
    /// Nothing was pending.
    Idle,
    /// The pending checkpoint was started or advanced by a chunk.
    Progress,
    /// It was finished and published with this id.
    Published(u64),
}

/// Steps of a pending checkpoint's writing one `tick` takes: a tick's work stays bounded,
/// and a checkpoint larger than that spans ticks while commits land (with the default cap,
/// 2 MiB of checkpoint per tick; commits that outrun it pace the rest).
const TICK_STEPS_MAX: usize = 8;

/// Keys of the frozen layer and the base merged per hold of the shard lock.
const MERGE_SLICE_KEYS: usize = 4096;

/// Yields of the CPU a slice of long work waits at most for the lock's waiters to take it.
const LOCK_HANDOVER_YIELDS_MAX: usize = 1000;

/// Slices of the merge one step takes (`tick` takes up to `TICK_STEPS_MAX` steps).
const MERGE_STEP_SLICES: usize = 16;

impl<E: Env + Clone> Shard<E> {
    fn lock_checkpoints(&self) -> MutexGuard<'_, Option<Checkpointer<E>>> {
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
        if !serving.state.has_changes() && serving.last_checkpoint.is_some_and(|p| p.lsn == lsn) {
            return Ok(false);
        }
        let sealed = serving.epochs.current();
        serving
            .epochs
            .advance(self.env.now_monotonic(), self.env.now_wall())
            .map_err(|e| Failure::epoch("", e))?;
        let view = serving.state.freeze();
        // Until a step starts writing it, assume it is full (the most entries to pace).
        let entries_total = view.entries_max(true);
        serving.pending =
            Some(Pending { lsn, sealed, view, entries_total, entries_written: 0, paced_bytes: 0 });
        Ok(true)
    }

    /// Freezes a checkpoint now (no I/O); `tick` or [`Shard::checkpoint`] writes it later.
    /// Returns the lsn it covers (`None`: nothing new since the last checkpoint). A
    /// checkpoint already pending stays the one frozen.
    pub fn begin_checkpoint(&self) -> Result<Option<Lsn>, ShardError> {
        // The last checkpoint's merge first, in slices, so the freeze (which finishes any
        // merge left) does not run it under one hold of the lock.
        self.merge_frozen(usize::MAX)?;
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

    /// The schedule of a pending checkpoint's writing, in the active epoch's WAL bytes: done
    /// by `3/4 H` (the deadline), nothing due before an 8th of that (the grace).
    fn schedule_bytes(serving: &Serving) -> (u64, u64) {
        let deadline_bytes = (serving.epochs.config().wal_bytes_max / 8 * 3).max(8);
        (deadline_bytes, deadline_bytes / 8)
    }

    /// Whether the pending checkpoint's writing is behind its schedule (see the module docs).
    pub(super) fn behind_schedule(serving: &Serving) -> bool {
        let Some(pending) = &serving.pending else { return false };
        let (deadline_bytes, grace_bytes) = Self::schedule_bytes(serving);
        let active_bytes = serving.epochs.active().wal_bytes;
        if active_bytes >= deadline_bytes {
            return true;
        }
        let due = u128::from(active_bytes.saturating_sub(grace_bytes)) * u128::from(pending.entries_total);
        u128::from(pending.entries_written) * u128::from(deadline_bytes - grace_bytes) < due
    }

    /// Entries a commit may write of the pending checkpoint: twice its share of the schedule,
    /// its share being the active epoch's WAL bytes since the last commit that paced (so a
    /// deficit, from the padding of a step's own sync say, is paid back over the next
    /// commits, not by one).
    fn pace_budget(serving: &mut Serving) -> u64 {
        let (deadline_bytes, grace_bytes) = Self::schedule_bytes(serving);
        let active_bytes = serving.epochs.active().wal_bytes;
        let Some(pending) = &mut serving.pending else { return 0 };
        // Nothing is due in the grace: the first share starts after it.
        let share_bytes = active_bytes.saturating_sub(pending.paced_bytes.max(grace_bytes));
        pending.paced_bytes = active_bytes;
        let budget = 2 * u128::from(share_bytes) * u128::from(pending.entries_total)
            / u128::from(deadline_bytes - grace_bytes);
        u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// Whether the merge of the last checkpoint is behind its schedule: past `H/4` of the
    /// active epoch's WAL bytes with keys left to merge (see the module docs).
    pub(super) fn merge_behind_schedule(serving: &Serving) -> bool {
        serving.pending.is_none()
            && serving.state.has_frozen()
            && serving.epochs.active().wal_bytes >= serving.epochs.config().wal_bytes_max / 4
    }

    /// Keys of the merge a commit of `commit_bytes` merges: twice its share of the keys left
    /// over the WAL bytes left before the freeze at `H/2`, at least one slice.
    fn merge_budget(serving: &Serving, commit_bytes: u64) -> usize {
        let half_bytes = serving.epochs.config().wal_bytes_max / 2;
        let left_bytes = half_bytes.saturating_sub(serving.epochs.active().wal_bytes).max(1);
        let keys_left = serving.state.merge_keys_left() as u128;
        let share = 2 * keys_left * u128::from(commit_bytes) / u128::from(left_bytes);
        usize::try_from(share).unwrap_or(usize::MAX).max(MERGE_SLICE_KEYS)
    }

    /// The commit path past half the cap or behind the schedule (see the module docs): steps
    /// of the pending checkpoint, up to the commit's budget while behind schedule, or until it
    /// is published once the next freeze is due; then that freeze.
    pub(super) fn wal_cap_step(&self, commit_bytes: u64) -> Result<(), ShardError> {
        let mut budget = None;
        let result = loop {
            // A ticker's steps so far, read before the schedule is looked at (see below).
            let seen = self.tickers.steps();
            {
                let mut inner = self.lock();
                let serving = self.serving(&mut inner)?;
                let past_half = Self::past_half_the_cap(serving);
                let Some(written) = serving.pending.as_ref().map(|p| p.entries_written) else {
                    if serving.state.has_frozen() {
                        // The last checkpoint's merge is left: a commit's share of it, or
                        // all of it before the freeze (in slices, outside the lock).
                        let keys =
                            if past_half { usize::MAX } else { Self::merge_budget(serving, commit_bytes) };
                        drop(inner);
                        match self.merge_frozen(keys.div_ceil(MERGE_SLICE_KEYS)) {
                            Ok(true) if past_half => continue,
                            Ok(_) => break self.count_backpressure(),
                            Err(error) => break Err(error),
                        }
                    }
                    if past_half && let Err(failure) = self.freeze_locked(serving) {
                        let sync = serving.sync;
                        break Err(self.fail(&mut inner, failure, sync));
                    }
                    break Ok(());
                };
                let (limit, first) = *budget.get_or_insert_with(|| (Self::pace_budget(serving), written));
                let spent = written.saturating_sub(first);
                if !past_half && (!Self::behind_schedule(serving) || spent >= limit) {
                    break Ok(());
                }
            }
            // A ticker writing steps now: its progress counts toward this commit's share,
            // so the commit waits for its next step (then looks at the schedule again)
            // rather than writing steps itself, which would take the checkpoint lock from
            // the ticker and run the checkpoint on this thread instead of beside the commits.
            // Nor does it queue on the checkpoint lock: the mutex is not fair, and a ticker
            // that takes it back at once would keep the commit waiting for the whole
            // checkpoint.
            if self.tickers.another_ticking() {
                self.tickers.wait_past(seen);
                continue;
            }
            // No ticker: the commit writes the step (queueing on the lock behind another
            // commit's step at most).
            if let Err(error) = self.checkpoint_step().and_then(|_| self.count_backpressure()) {
                break Err(error);
            }
        };
        if budget.is_some() {
            // A step may have synced the WAL: tell the durability waiters.
            self.notify_durable();
        }
        result
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
        self.write_steps(usize::MAX)
    }

    /// One bounded step of the pending checkpoint, under the checkpoint lock: start it, or
    /// write a chunk, or (every entry written) finish and publish it, then merge and retire.
    fn checkpoint_step(&self) -> Result<Step, ShardError> {
        let mut guard = self.lock_checkpoints();
        // A failed shard writes nothing more.
        let step_bytes = writer::step_bytes(self.serving_cap_bytes()?);
        let writer = guard.as_mut().expect("a serving shard has a checkpoint store");
        let step = self.write_step(writer, step_bytes)?;
        // And a unit of reclaiming what an earlier retirement took out (see `super::reclaim`):
        // its cost spreads over the steps that follow, a few ms each at most.
        let reclaimed = self.reclaim_step(writer)?;
        Ok(if matches!(step, Step::Idle) && reclaimed { Step::Progress } else { step })
    }

    /// One unit of reclaiming; returns whether there was any to do. A failure fails the
    /// shard, like a failed retention.
    fn reclaim_step(&self, writer: &mut Checkpointer<E>) -> Result<bool, ShardError> {
        writer.reclaim.step(&self.env).map_err(|e| self.fail_now(Failure::checkpoint("reclaim", e)))
    }

    /// Reclaims everything retirement took out, now (an orderly close).
    pub fn reclaim_all(&self) -> Result<(), ShardError> {
        let mut guard = self.lock_checkpoints();
        self.serving_cap_bytes()?;
        let writer = guard.as_mut().expect("a serving shard has a checkpoint store");
        writer.reclaim.drain(&self.env).map_err(|e| self.fail_now(Failure::checkpoint("reclaim", e)))
    }

    /// The checkpoint's part of [`Shard::checkpoint_step`].
    fn write_step(&self, writer: &mut Checkpointer<E>, step_bytes: usize) -> Result<Step, ShardError> {
        let Some(job) = writer.job.as_mut() else { return self.start_job(writer) };
        let done = job.fill(step_bytes).map_err(|e| self.fail_now(Failure::checkpoint("checkpoint", e)))?;
        writer
            .store
            .write_chunk(&mut job.staged)
            .map_err(|e| self.fail_now(Failure::checkpoint("checkpoint", e)))?;
        let entries = job.entries;
        self.note_progress(entries)?;
        if !done {
            return Ok(Step::Progress);
        }
        let job = writer.job.take().expect("a job was written");
        let (lsn, sealed) = (job.lsn, job.sealed);
        // Rule 11: every record the checkpoint covers is durable before its META is (and
        // only then: a sync at the start would pad the WAL for nothing while commits sync).
        if lsn >= 1 {
            self.sync_through_locked(lsn, Durability::Data)?;
        }
        // The job's view goes before the merge, so the merge mutates in place.
        let meta = writer
            .store
            .finish_staged(job.into_staged())
            .map_err(|e| self.fail_now(Failure::checkpoint("checkpoint", e)))?;
        // Postconditions of the publication: at the frozen lsn, in the sealed epoch.
        debug_assert_eq!(meta.lsn, lsn, "the checkpoint is at the frozen lsn");
        debug_assert_eq!(meta.epoch, sealed.0, "the checkpoint closes the sealed epoch");
        let published = Published { id: meta.id, lsn, epoch: meta.epoch };
        self.published(published, sealed)?;
        self.retire(writer, published)?;
        Ok(Step::Published(meta.id))
    }

    /// Starts writing the pending checkpoint (if any): its directory and `DATA` staged,
    /// incremental on the latest unless a full one is due.
    fn start_job(&self, writer: &mut Checkpointer<E>) -> Result<Step, ShardError> {
        let (view, lsn, sealed, parent) = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            let Some(pending) = &mut serving.pending else {
                let merging = serving.state.has_frozen();
                drop(inner);
                // The last checkpoint's merge, a step at a time (see the module docs).
                return if merging && !self.merge_frozen(MERGE_STEP_SLICES)? {
                    Ok(Step::Progress)
                } else {
                    Ok(Step::Idle)
                };
            };
            let parent = serving.last_checkpoint.map(|p| p.id).filter(|&p| !writer.store.full_due(p));
            pending.entries_total = pending.view.entries_max(parent.is_none());
            (pending.view.clone(), pending.lsn, pending.sealed, parent)
        };
        // The frozen layer packed in key order, outside the shard's lock, for the writer and
        // the merge to read front to back (see `super::state`); a layer whose keys all
        // ascended as they came (a sequential load) is read front to back already.
        let view = if view.frozen.in_key_order() { view } else { self.pack_frozen(view)? };
        let kind = if parent.is_some() { CheckpointKind::Incremental } else { CheckpointKind::Full };
        let staged = writer
            .store
            .stage(sealed.0, lsn, UserMeta::default(), kind, parent)
            .map_err(|e| self.fail_now(Failure::checkpoint("checkpoint", e)))?;
        writer.job = Some(Job::new(staged, view, kind, lsn, sealed));
        Ok(Step::Progress)
    }

    /// `view` with its frozen layer packed in key order ([`super::state::FrozenView::packed`],
    /// outside the shard's lock), the state and the pending checkpoint holding the copy in
    /// its place; the original is freed as `view` goes.
    fn pack_frozen(&self, view: FrozenView) -> Result<FrozenView, ShardError> {
        let packed = view.packed();
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        if let Some(pending) = &mut serving.pending
            && serving.state.adopt_packed(&view, &packed)
        {
            pending.view = packed.clone();
        }
        Ok(packed)
    }

    /// The WAL-bytes cap of the serving shard.
    fn serving_cap_bytes(&self) -> Result<u64, ShardError> {
        let mut inner = self.lock();
        Ok(self.serving(&mut inner)?.epochs.config().wal_bytes_max)
    }

    /// Counts a step a commit took; the WAL bytes the step itself added (a sync's padding)
    /// are nobody's share: the deficit they leave is paid back over the next commits.
    fn count_backpressure(&self) -> Result<(), ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        serving.stats.backpressure_steps += 1;
        let active_bytes = serving.epochs.active().wal_bytes;
        if let Some(pending) = &mut serving.pending {
            pending.paced_bytes = active_bytes;
        }
        Ok(())
    }

    /// Records how many entries of the pending checkpoint are written (for the schedule).
    fn note_progress(&self, entries: u64) -> Result<(), ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        if let Some(pending) = &mut serving.pending {
            pending.entries_written = entries;
        }
        serving.stats.checkpoint_chunks += 1;
        Ok(())
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

    /// Between two slices of long work: lets the threads waiting for the shard lock take it
    /// first (a lock taken again at once by its holder starves a waiting commit for the
    /// whole work on the real OS: the mutex is not fair). Bounded, and free when nobody
    /// waits (always in the simulator, which runs one thread).
    fn hand_over_lock(&self) {
        for _ in 0..LOCK_HANDOVER_YIELDS_MAX {
            if self.lock_waiting.load(Ordering::Relaxed) == 0 {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Folds up to `slices_max` slices of the frozen layer into the base, a slice per hold
    /// of the lock; returns whether the merge is done (or a checkpoint is pending, which
    /// merges first when it freezes).
    fn merge_frozen(&self, slices_max: usize) -> Result<bool, ShardError> {
        for slice in 0..slices_max {
            if slice > 0 {
                self.hand_over_lock();
            }
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            if serving.pending.is_some() || serving.state.merge_step(MERGE_SLICE_KEYS) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Retention, WAL truncation and epoch archiving after `published` is durable. What
    /// they take out is left for reclaim steps to remove (see `super::reclaim`).
    fn retire(&self, writer: &mut Checkpointer<E>, published: Published) -> Result<(), ShardError> {
        let store = &mut writer.store;
        // Postcondition of publication: the store lists what the shard calls the latest.
        debug_assert!(store.meta(published.id).is_some_and(|m| m.lsn == published.lsn));
        let removed = store
            .apply_retention_deferred()
            .map_err(|e| self.fail_now(Failure::checkpoint("retention", e)))?;
        removed.into_iter().for_each(|(_, dir)| writer.reclaim.push_dir(dir));
        if let Some(oldest) = store.min_retained_lsn() {
            let wal = self.wal.as_ref().expect("a serving shard has a WAL");
            let retired = wal
                .retire_before(oldest + 1)
                .map_err(|e| self.fail_now(Failure::wal("WAL truncation", e)))?;
            retired.into_iter().for_each(|path| writer.reclaim.push_file(path));
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
        let _ticking = self.tickers.enter();
        let mut tick = Tick { checkpoint: self.write_steps(TICK_STEPS_MAX)?, ..Tick::default() };
        let (due, dirty) = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            // Only with changes since the last checkpoint: an idle shard publishes nothing.
            // And only once the last one is merged: a tick's work stays bounded (the merge
            // goes on by steps above, the freeze waits a tick or more).
            let due = serving.epochs.pending(self.env.now_monotonic()).any()
                && serving.state.has_changes()
                && serving.pending.is_none()
                && !serving.state.has_frozen();
            // `Syncing` outside a sync: a segment seal made a follower's commit durable and
            // nobody recorded it (see `sync_committed`); the sync records it.
            let dirty = matches!(serving.sync, super::SyncState::Dirty | super::SyncState::Syncing);
            (due && tick.checkpoint.is_none(), dirty)
        };
        if due {
            self.begin_checkpoint()?;
            tick.checkpoint = self.write_steps(TICK_STEPS_MAX)?;
        } else if dirty && sync_dirty && tick.checkpoint.is_none() {
            self.sync(Durability::Data)?;
            tick.synced = true;
        }
        tick.vouched = self.vouch()?;
        tick.busy = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            serving.pending.is_some() || serving.state.has_frozen()
        };
        Ok(tick)
    }

    /// At most `steps_max` steps of the pending checkpoint's writing (durability callbacks
    /// fired after the checkpoint lock is released); returns its id if it was published.
    fn write_steps(&self, steps_max: usize) -> Result<Option<u64>, ShardError> {
        let mut result = Ok(None);
        for _ in 0..steps_max {
            let step = self.checkpoint_step();
            // A commit waiting for a ticker looks at the schedule again (a no-op for a
            // caller that is no ticker: nobody waits for it).
            self.tickers.stepped();
            match step {
                Ok(Step::Progress) => continue,
                Ok(Step::Idle) => {}
                Ok(Step::Published(id)) => result = Ok(Some(id)),
                Err(error) => result = Err(error),
            }
            break;
        }
        self.notify_durable();
        result
    }
}

#[cfg(test)]
mod tests;
