//! Checkpoints: epochs ([`epoch`]) and the checkpoint store ([`CheckpointStore`]), full and
//! incremental checkpoints published atomically, with retention that never breaks a chain.
//!
//! # Layout
//!
//! ```text
//! <dir>/LOCK                       the store's directory lock (Env::lock_dir)
//! <dir>/HIGH_WATER                 covers every id whose directory was removed (format.rs)
//! <dir>/ckpt-<id:016x>/DATA        the state image or the changes (data.rs)
//! <dir>/ckpt-<id:016x>/META        the metadata envelope (format.rs); its presence publishes
//! ```
//!
//! # Loading (`load.rs`, `chain.rs`, `run.rs`)
//!
//! Recovery loads the newest checkpoint that loads as one packed [`run::Run`]: the full
//! checkpoint's sorted `DATA` stream is decoded block by block straight into the run's arena
//! (no allocation per entry), and the increments of its chain are folded in by one k-way
//! merge that frees the full image's blocks as it copies them. [`CheckpointStore::load`]
//! copies that run into a map for callers that want one.
//!
//! # Publication (`create`), DESIGN.md rules 5, 6 and 11
//!
//! 1. create the directory `ckpt-<id>`; write `DATA`, `sync_data` it, read it back and verify
//!    its length and crc32;
//! 2. write `META.tmp`, sync it, read it back and decode it;
//! 3. sync the checkpoint directory, so the entries of `DATA` and `META.tmp` are durable
//!    before `META` can exist (with independent directory operations a crash could otherwise
//!    keep the rename and lose the data file's entry: a `META` pointing at nothing);
//! 4. rename `META.tmp` to `META`, sync the checkpoint directory, sync the store directory.
//!
//! Only then does `create` return the metadata. A crash before step 4's rename is durable
//! leaves a directory without `META` (partial) or no directory at all; after it, a `META`
//! whose every byte and every file it names are durable. A present `META` is therefore always
//! complete, so one that fails its checksum is media damage, never a torn write.
//!
//! # Deletion (`delete`, `apply_retention`, partial directories at open)
//!
//! 1. if the id is above the persisted high-water mark, write `HIGH_WATER` (temporary name,
//!    sync, rename, sync the store directory);
//! 2. remove `META`, sync the checkpoint directory: from here on the checkpoint is partial,
//!    never damaged and never half valid;
//! 3. remove the remaining files and the directory, sync the store directory.
//!
//! A crash anywhere leaves either the whole checkpoint or a partial directory that the next
//! open removes. Retention deletes a parent only after every child it deletes, so a crash in
//! the middle never leaves a listed checkpoint with a missing parent.
//!
//! # Ids, and why `HIGH_WATER` exists
//!
//! The next id is one more than the largest of: every `ckpt-*` directory seen (valid, damaged
//! or partial) and `HIGH_WATER`. Without `HIGH_WATER`, removing the newest directory (a partial
//! one at open, or `delete` of the newest) would let a later process hand out its id again
//! after a restart, and anything that remembered the old checkpoint by id would find a
//! different one. Since every removal first makes `HIGH_WATER` cover the id durably, an id that
//! ever had a durable directory is never reused. An id whose directory never became durable
//! (a `create` that crashed or failed, so never returned `Ok`) may be handed out again: no
//! durable state and no successful call ever named it.
//!
//! # Invariants
//!
//! - a checkpoint is listed only if its `META` decodes, passes its checksum and
//!   [`CheckpointMeta::check`]; `latest` is the newest listed checkpoint whose parent chain is
//!   listed down to a full one;
//! - a listed checkpoint is durable once `open` returns: `open` syncs each listed
//!   checkpoint's directory and the store directory, since after a process crash the page
//!   cache may show a `META` (or a checkpoint directory) that a power loss would still drop,
//!   and nothing may build on it before it is durable (DESIGN.md rule 4; `open.rs`);
//! - a directory without `META` is partial: never listed, removed durably by `open`, its id
//!   never reused; a `META` that exists but fails is *damaged*: reported by `open`, skipped by
//!   `latest` and `load_latest_valid`, never deleted except by an explicit `delete`;
//! - checkpoint ids and lsns grow together: `create` refuses an lsn below the latest one's;
//! - no checkpoint that remains ever has a deleted parent: `delete` refuses one that a child
//!   needs, and retention keeps every ancestor of what it keeps;
//! - any failed write or sync poisons the store: every later change fails with
//!   [`CheckpointError::Poisoned`] until it is reopened (the on-disk outcome is unknown).
//!
//! `full_every_incrementals` is enforced by refusing: `create` of an incremental whose parent
//! chain already holds that many incrementals returns [`CheckpointError::FullCheckpointDue`];
//! [`CheckpointStore::full_due`] tells the caller beforehand.

pub mod data;
pub mod epoch;
pub mod error;
pub mod format;
pub mod frame;
pub mod meta;
pub mod run;

mod chain;
mod create;
mod frame_load;
mod fsio;
mod load;
mod open;
mod retention;
mod staged;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::identity::StoreIdentity;
pub use error::CheckpointError;
pub use meta::{Bytes, CheckpointData, CheckpointKind, CheckpointMeta, FileEntry, UserMeta};
pub use staged::StagedCheckpoint;

/// Checkpoint plus WAL recovery moved up to [`crate::recovery`], a layer above this one; these
/// names stay here only so code written against the old path keeps compiling. New code names
/// `crate::recovery`.
#[doc(hidden)]
pub use crate::recovery::{
    // tidy: compat-path: the old `checkpoint::recover` names, re-exported, never used here
    CheckpointUsed,
    Recovered,
    RecoveryError,
    RecoveryPaths,
    RecoveryReport,
    Replayer,
    recover,
};

/// The published metadata file of a checkpoint.
pub const META_FILE_NAME: &str = "META";
/// The name `META` is written under before it is renamed.
pub const META_TMP_FILE_NAME: &str = "META.tmp";
/// The data file of a checkpoint.
pub const DATA_FILE_NAME: &str = "DATA";
/// The high-water mark of checkpoint ids.
pub const HIGH_WATER_FILE_NAME: &str = "HIGH_WATER";
/// The name `HIGH_WATER` is written under before it is renamed.
pub const HIGH_WATER_TMP_FILE_NAME: &str = "HIGH_WATER.tmp";
/// Longest data file name `META` may record.
pub const FILE_NAME_BYTES_MAX: usize = 255;
/// Largest `max_retained`.
pub const RETAINED_MAX: usize = 1024;
/// Largest `full_every_incrementals`.
pub const INCREMENTALS_MAX: u32 = 1024;

/// Options of a checkpoint store, checked by [`CheckpointOptions::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Retention keeps this many newest checkpoints (1..=[`RETAINED_MAX`]; default 3), plus
    /// every parent they need. Keep at least 2 so a damaged latest checkpoint has a fallback.
    pub max_retained: usize,
    /// At most this many incrementals chain on one full checkpoint (0..=[`INCREMENTALS_MAX`];
    /// 0: every checkpoint is full; default 8).
    pub full_every_incrementals: u32,
    /// The store and shard this checkpoint store belongs to (default: a standalone store).
    /// Its `META` and `HIGH_WATER` files carry it; one that names another is refused
    /// ([`CheckpointError::Foreign`]). The kernel sets it per shard.
    pub identity: StoreIdentity,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        Self { max_retained: 3, full_every_incrementals: 8, identity: StoreIdentity::default() }
    }
}

impl CheckpointOptions {
    /// Checks every bound.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if !(1..=RETAINED_MAX).contains(&self.max_retained) {
            return Err(CheckpointError::InvalidOptions(format!(
                "max_retained {} is not in 1..={RETAINED_MAX}",
                self.max_retained
            )));
        }
        if self.full_every_incrementals > INCREMENTALS_MAX {
            return Err(CheckpointError::InvalidOptions(format!(
                "full_every_incrementals {} exceeds {INCREMENTALS_MAX}",
                self.full_every_incrementals
            )));
        }
        Ok(())
    }
}

/// A checkpoint that is present but cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unusable {
    /// Its id.
    pub id: u64,
    /// Why it cannot be used.
    pub reason: String,
}

/// What [`CheckpointStore::open`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// Listed checkpoints (valid `META`), newest first.
    pub valid: Vec<u64>,
    /// Checkpoints whose `META` exists but fails (checksum, format or invariant), newest
    /// first. Kept on disk and reported, never taken for "no checkpoint".
    pub damaged: Vec<Unusable>,
    /// Listed checkpoints whose parent chain is broken, newest first.
    pub broken_chains: Vec<Unusable>,
    /// Partial directories (no `META`) removed durably, oldest first.
    pub partial_removed: Vec<u64>,
    /// Why `HIGH_WATER` was unusable, if it was (it is rewritten from the directories seen).
    pub high_water_damaged: Option<String>,
    /// The id the next checkpoint gets.
    pub next_id: u64,
}

/// Why `CheckpointStore::load_latest_valid` (run by recovery) passed over a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackReason {
    /// Its `META` exists but fails.
    DamagedMeta(String),
    /// One of its data files (or one of its ancestors') is missing or damaged.
    DamagedData(String),
    /// An ancestor it needs is missing, damaged or inconsistent.
    BrokenChain(String),
}

/// A checkpoint passed over while looking for one that loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// The checkpoint passed over.
    pub id: u64,
    /// Why.
    pub reason: FallbackReason,
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each reason names what failed (file or ancestor) itself.
        let (FallbackReason::DamagedMeta(why)
        | FallbackReason::DamagedData(why)
        | FallbackReason::BrokenChain(why)) = &self.reason;
        write!(f, "checkpoint {}: {why}", self.id)
    }
}

/// The result of [`CheckpointStore::load_latest_valid`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The checkpoint loaded.
    pub meta: CheckpointMeta,
    /// Its state: the base image with every increment of the chain applied.
    pub state: BTreeMap<Bytes, Bytes>,
    /// The newer checkpoints passed over, newest first.
    pub fallbacks: Vec<Fallback>,
}

/// The result of [`CheckpointStore::load_latest_valid_run`]: [`Loaded`] with the state packed.
#[derive(Clone, Debug)]
pub struct LoadedRun {
    /// The checkpoint loaded.
    pub meta: CheckpointMeta,
    /// Its state: the base image with every increment of the chain applied.
    pub run: run::Run,
    /// The newer checkpoints passed over, newest first.
    pub fallbacks: Vec<Fallback>,
}

/// What the store knows of one checkpoint directory.
#[derive(Clone, Debug)]
enum Slot {
    Valid(CheckpointMeta),
    Damaged(String),
}

/// An open checkpoint store. Holds the directory lock until dropped.
pub struct CheckpointStore<E: Env> {
    env: E,
    dir: PathBuf,
    options: CheckpointOptions,
    _lock: E::DirLock,
    /// Every checkpoint directory with a `META` (valid or damaged), by id.
    slots: BTreeMap<u64, Slot>,
    next_id: u64,
    /// The value `HIGH_WATER` durably holds (0: none).
    high_water: u64,
    poisoned: Option<String>,
}

impl<E: Env> fmt::Debug for CheckpointStore<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("dir", &self.dir)
            .field("checkpoints", &self.slots.len())
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl<E: Env> CheckpointStore<E> {
    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options in force.
    pub fn options(&self) -> &CheckpointOptions {
        &self.options
    }

    /// The id the next checkpoint gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The cause, if an earlier failure poisoned the store.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format::checkpoint_dir_name(id))
    }

    /// Every listed checkpoint (valid `META`), newest first.
    pub fn list(&self) -> Vec<CheckpointMeta> {
        self.valid().rev().cloned().collect()
    }

    /// Checkpoints whose `META` exists but fails, newest first.
    pub fn damaged(&self) -> Vec<Unusable> {
        let damaged = self.slots.iter().rev().filter_map(|(&id, slot)| match slot {
            Slot::Damaged(reason) => Some(Unusable { id, reason: reason.clone() }),
            Slot::Valid(_) => None,
        });
        damaged.collect()
    }

    /// The newest listed checkpoint whose parent chain is intact (every ancestor listed, down
    /// to a full one). Reads no data file: [`CheckpointStore::load_latest_valid`] does.
    pub fn latest(&self) -> Option<&CheckpointMeta> {
        self.valid().rev().find(|meta| self.chain_ids(meta.id).is_ok())
    }

    /// The metadata of listed checkpoint `id`.
    pub fn meta(&self, id: u64) -> Option<&CheckpointMeta> {
        match self.slots.get(&id) {
            Some(Slot::Valid(meta)) => Some(meta),
            _ => None,
        }
    }

    /// The lsn of the oldest checkpoint with an intact chain: recovery may need to fall back
    /// that far, so the WAL must be kept from there on. `None` if no checkpoint is usable:
    /// keep the whole WAL.
    pub fn min_retained_lsn(&self) -> Option<u64> {
        self.valid().filter(|meta| self.chain_ids(meta.id).is_ok()).map(|meta| meta.lsn).min()
    }

    /// Whether an incremental checkpoint on top of `parent` would be refused because a full
    /// one is due (also when `parent` is not a usable checkpoint).
    pub fn full_due(&self, parent: u64) -> bool {
        match self.incrementals_in_chain(parent) {
            Ok(incrementals) => incrementals >= self.options.full_every_incrementals,
            Err(_) => true,
        }
    }

    fn valid(&self) -> impl DoubleEndedIterator<Item = &CheckpointMeta> {
        self.slots.values().filter_map(|slot| match slot {
            Slot::Valid(meta) => Some(meta),
            Slot::Damaged(_) => None,
        })
    }

    /// The ids of `id`'s chain, from `id` down to its full base. `Err` names the broken link.
    fn chain_ids(&self, id: u64) -> Result<Vec<u64>, CheckpointError> {
        let mut chain = Vec::new();
        let mut at = id;
        loop {
            let broken = |reason: String| CheckpointError::BrokenChain { id, ancestor: at, reason };
            let meta = match self.slots.get(&at) {
                Some(Slot::Valid(meta)) => meta,
                Some(Slot::Damaged(why)) => return Err(broken(why.clone())),
                None if at == id => return Err(CheckpointError::NotFound { id }),
                None => return Err(broken("missing".into())),
            };
            if let Some(&child) = chain.last()
                && self.meta(child).is_some_and(|c| c.lsn < meta.lsn)
            {
                return Err(broken(format!("its lsn {} is above its child {child}'s", meta.lsn)));
            }
            chain.push(at);
            match meta.parent {
                Some(parent) => at = parent,
                None => return Ok(chain),
            }
        }
    }

    /// How many incrementals the chain ending at `id` holds (0 for a full checkpoint).
    fn incrementals_in_chain(&self, id: u64) -> Result<u32, CheckpointError> {
        Ok((self.chain_ids(id)?.len() - 1).try_into().unwrap_or(u32::MAX))
    }

    /// A listed checkpoint whose parent is `id`, if any.
    fn child_of(&self, id: u64) -> Option<u64> {
        self.valid().find(|meta| meta.parent == Some(id)).map(|meta| meta.id)
    }

    /// Why `id`'s chain is unusable, without repeating `id`; `None` if it is intact.
    fn chain_problem(&self, id: u64) -> Option<String> {
        match self.chain_ids(id) {
            Ok(_) => None,
            Err(CheckpointError::BrokenChain { ancestor, reason, .. }) => {
                Some(format!("parent chain broken at checkpoint {ancestor}: {reason}"))
            }
            Err(error) => Some(error.to_string()),
        }
    }

    fn check_writable(&self) -> Result<(), CheckpointError> {
        match &self.poisoned {
            Some(cause) => Err(CheckpointError::Poisoned { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    /// Poisons the store if `result` is an I/O failure or damage found in its own writes.
    fn poison_on_error<T>(&mut self, result: Result<T, CheckpointError>) -> Result<T, CheckpointError> {
        if let Err(error) = &result {
            self.poisoned.get_or_insert_with(|| error.to_string());
        }
        result
    }
}
