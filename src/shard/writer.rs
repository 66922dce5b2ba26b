//! The checkpoint writer's state, behind the store's own lock: the checkpoint store and the
//! checkpoint being written, a [`Job`] that streams a frozen view into a staged checkpoint
//! (`crate::checkpoint::StagedCheckpoint`) in bounded steps.
//!
//! # Invariants
//!
//! - a job's entries are exactly the frozen view's, in the data file's order: for a full
//!   checkpoint the merged base and frozen layer (newest winning, tombstones dropped), for an
//!   incremental one the frozen layer's puts, then its tombstones as deletes;
//! - the cursor only moves forward: `after` is the last key encoded in the current phase, and
//!   a step resumes strictly after it, so no entry is written twice or skipped;
//! - a job holds its view (two `Arc`s) until it is finished or dropped: the base and the
//!   frozen layer are never mutated meanwhile (the merge waits for the publication).

use super::reclaim::Reclaim;
use super::state::FrozenView;
use super::{Bytes, ShardEnv};
use crate::checkpoint::epoch::EpochId;
use crate::checkpoint::{CheckpointError, CheckpointKind, CheckpointStore, StagedCheckpoint};
use crate::env::Env;
use crate::wal::Lsn;

/// The smallest and largest step of a checkpoint's writing, in bytes of data.
const STEP_BYTES_MIN: u64 = 32;
const STEP_BYTES_MAX: u64 = 1 << 20;

/// Bytes of checkpoint data one step encodes and writes: a 256th of the WAL-bytes cap, within
/// [`STEP_BYTES_MIN`]..=[`STEP_BYTES_MAX`] (256 KiB for the default 64 MiB cap; a few entries
/// for a simulated shard's cap of a few KiB, so its checkpoints take several steps too). The
/// store syncs `DATA` every few MiB, not at every step.
pub(super) fn step_bytes(wal_bytes_max: u64) -> usize {
    (wal_bytes_max / 256).clamp(STEP_BYTES_MIN, STEP_BYTES_MAX) as usize
}

/// What the checkpoint lock guards.
pub(super) struct Checkpointer<E: Env> {
    pub(super) store: CheckpointStore<ShardEnv<E>>,
    /// The pending checkpoint being written, once a step started it.
    pub(super) job: Option<Job<<ShardEnv<E> as Env>::File>>,
    /// Files and directories retention took out, whose space steps reclaim.
    pub(super) reclaim: Reclaim,
}

impl<E: Env> Checkpointer<E> {
    pub(super) fn new(store: CheckpointStore<ShardEnv<E>>, reclaim: Reclaim) -> Self {
        Self { store, job: None, reclaim }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Puts,
    Deletes,
    Done,
}

/// A pending checkpoint being written (see the module docs).
pub(super) struct Job<F> {
    pub(super) staged: StagedCheckpoint<F>,
    view: FrozenView,
    full: bool,
    phase: Phase,
    after: Option<Bytes>,
    /// The frozen lsn and the sealed epoch, as the pending checkpoint has them.
    pub(super) lsn: Lsn,
    pub(super) sealed: EpochId,
    /// Entries encoded so far.
    pub(super) entries: u64,
    /// The checkpoint holds the frozen layer alone, which is a run already: it is framed a
    /// stretch of a block at a time, `entries` being the next key number (see
    /// [`Job::fill_stretches`]).
    stretches: bool,
}

impl<F> Job<F> {
    pub(super) fn new(
        staged: StagedCheckpoint<F>,
        view: FrozenView,
        kind: CheckpointKind,
        lsn: Lsn,
        sealed: EpochId,
    ) -> Self {
        let full = kind == CheckpointKind::Full;
        let stretches = view.frozen_alone_is_run(full);
        Self { staged, view, full, phase: Phase::Puts, after: None, lsn, sealed, entries: 0, stretches }
    }

    /// [`Job::fill`] of a checkpoint that holds the frozen layer alone, a run already: the
    /// next entries a stretch of a block at a time, their bytes copied as they lie, none
    /// encoded, until the budget is reached or the next stretch would close the frame (as
    /// the entry-by-entry path ends a step); no deletes follow (the layer holds no
    /// tombstone).
    fn fill_stretches(&mut self, budget_bytes: usize) -> Result<bool, CheckpointError> {
        let Job { staged, view, phase, entries, .. } = self;
        let mut first = true;
        while *phase == Phase::Puts {
            let room = budget_bytes.saturating_sub(staged.buffered_bytes()).min(staged.frame_room_bytes());
            if !first && room == 0 {
                break;
            }
            let from = usize::try_from(*entries).expect("a key number fits a usize");
            let Some(stretch) = view.frozen_stretch(from, room.max(1)) else {
                *phase = Phase::Done;
                break;
            };
            if !first && stretch.bytes.len() > room {
                // Its one entry would close the frame: the next step's.
                break;
            }
            let count = u32::try_from(stretch.count).expect("a frame's count fits a u32");
            staged.puts(stretch.bytes, count, stretch.first_key, stretch.last_key)?;
            *entries += u64::from(count);
            if from + stretch.count == view.frozen.len() {
                *phase = Phase::Done;
            }
            first = false;
        }
        Ok(*phase == Phase::Done)
    }

    /// Encodes the next entries until `budget_bytes` are buffered or none is left; returns
    /// whether every entry is encoded.
    ///
    /// A step also ends before an entry that would close its open frame by size (a step's
    /// chunk ends its last frame; a step's first entry finds no frame open, so every step
    /// makes progress): a step of a frame's bound otherwise filled one frame, then
    /// opened the next for the entry or two left of its budget, so every other frame of a
    /// large checkpoint held one entry (which the loader copies rather than adopts).
    pub(super) fn fill(&mut self, budget_bytes: usize) -> Result<bool, CheckpointError> {
        if self.stretches {
            return self.fill_stretches(budget_bytes);
        }
        let Job { staged, view, full, phase, after, entries, .. } = self;
        let mut frame_full = false;
        while *phase != Phase::Done && staged.buffered_bytes() < budget_bytes && !frame_full {
            let mut last = None;
            if *full {
                for (key, value) in view.full_after(after.as_deref()) {
                    if staged.would_close_frame(key, Some(value)) {
                        frame_full = true;
                        break;
                    }
                    staged.entry(key, Some(value))?;
                    (last, *entries) = (Some(key), *entries + 1);
                    if staged.buffered_bytes() >= budget_bytes {
                        break;
                    }
                }
            } else {
                let deletes = *phase == Phase::Deletes;
                for (key, value) in
                    view.changes_after(after.as_deref()).filter(|(_, v)| v.is_none() == deletes)
                {
                    if staged.would_close_frame(key, value) {
                        frame_full = true;
                        break;
                    }
                    staged.entry(key, value)?;
                    (last, *entries) = (Some(key), *entries + 1);
                    if staged.buffered_bytes() >= budget_bytes {
                        break;
                    }
                }
            }
            match last {
                Some(key) => *after = Some(key.to_vec()),
                // The phase's next entry waits for the next step.
                None if frame_full => {}
                None => {
                    // This phase is exhausted: a full checkpoint is done, an incremental one
                    // goes on with its deletes from the first key.
                    *phase = if *full || *phase == Phase::Deletes { Phase::Done } else { Phase::Deletes };
                    *after = None;
                }
            }
        }
        Ok(*phase == Phase::Done)
    }

    /// The staged checkpoint, the view dropped (so the merge can mutate the base in place).
    pub(super) fn into_staged(self) -> StagedCheckpoint<F> {
        self.staged
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests;
