//! Deleting checkpoints: one at a time on request, or by retention, each deletion with the
//! crash-safe protocol of the module docs (`HIGH_WATER` covers the id, `META` goes first and
//! durably, then the rest).
//!
//! Retention keeps the `max_retained` newest checkpoints with an intact chain and every
//! ancestor they need. It deletes the other intact ones, oldest first except that a parent
//! waits until every child being deleted is gone, so a crash between two deletions never leaves
//! a listed checkpoint whose parent is missing. Damaged checkpoints and broken chains are never
//! deleted by retention (they are reported; deleting them is the operator's call).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::error::CheckpointError;
use super::fsio::{self, io};
use super::{CheckpointStore, META_FILE_NAME};
use crate::env::Env;

impl<E: Env> CheckpointStore<E> {
    /// Deletes checkpoint `id` (listed or damaged). Refuses with
    /// [`CheckpointError::NeededByChain`] while a listed checkpoint names it as parent.
    pub fn delete(&mut self, id: u64) -> Result<(), CheckpointError> {
        self.check_writable()?;
        if !self.slots.contains_key(&id) {
            return Err(CheckpointError::NotFound { id });
        }
        if let Some(child) = self.child_of(id) {
            return Err(CheckpointError::NeededByChain { id, needed_by: child });
        }
        let result = self.remove_checkpoint(id, false);
        self.poison_on_error(result)
    }

    /// Applies `max_retained` (see the module docs) and returns the ids deleted, in the order
    /// they were deleted.
    pub fn apply_retention(&mut self) -> Result<Vec<u64>, CheckpointError> {
        Ok(self.retain(false)?.into_iter().map(|(id, _)| id).collect())
    }

    /// Like [`CheckpointStore::apply_retention`], except that each deleted checkpoint's
    /// directory is left on disk once its `META` is durably gone (no longer a checkpoint:
    /// a directory without `META` is never read, and the next open removes it). Returns the
    /// ids deleted with those directories, for the caller to remove in bounded steps (a
    /// large `DATA` takes tens of ms to unlink).
    pub fn apply_retention_deferred(&mut self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        self.retain(true)
    }

    fn retain(&mut self, defer: bool) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        self.check_writable()?;
        let mut doomed = self.retention_victims();
        let mut deleted = Vec::new();
        // A doomed checkpoint that still has a listed child after every other deletion is
        // needed by a checkpoint retention does not touch (a broken chain): it stays.
        while let Some(id) = doomed.iter().copied().find(|&id| self.child_of(id).is_none()) {
            let result = self.remove_checkpoint(id, defer);
            self.poison_on_error(result)?;
            doomed.remove(&id);
            deleted.push((id, self.checkpoint_dir(id)));
        }
        Ok(deleted)
    }

    /// The checkpoints with an intact chain that retention does not keep.
    fn retention_victims(&self) -> BTreeSet<u64> {
        let intact: Vec<u64> =
            self.valid().map(|meta| meta.id).filter(|&id| self.chain_ids(id).is_ok()).collect();
        let mut keep = BTreeSet::new();
        for &id in intact.iter().rev().take(self.options.max_retained) {
            keep.extend(self.chain_ids(id).unwrap_or_default());
        }
        intact.into_iter().filter(|id| !keep.contains(id)).collect()
    }

    /// Removes checkpoint `id` from disk with the deletion protocol, and from the store as soon
    /// as its `META` is durably gone; with `defer`, the rest of its directory stays for the
    /// caller to remove.
    fn remove_checkpoint(&mut self, id: u64, defer: bool) -> Result<(), CheckpointError> {
        let mark = self.next_id - 1;
        assert!(id <= mark, "checkpoint {id} is below the next id {}", self.next_id);
        if id > self.high_water {
            fsio::write_high_water(&self.env, &self.dir, mark, self.options.identity)?;
            self.high_water = mark;
        }
        let dir = self.checkpoint_dir(id);
        fsio::remove_file_if_present(&self.env, &dir.join(META_FILE_NAME))?;
        io("sync directory", &dir, self.env.sync_dir(&dir))?;
        self.slots.remove(&id);
        if defer {
            return Ok(());
        }
        fsio::remove_dir_with_files(&self.env, &dir)?;
        io("sync directory", &self.dir, self.env.sync_dir(&self.dir))
    }
}
