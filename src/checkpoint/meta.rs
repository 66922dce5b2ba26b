//! The values a checkpoint holds and describes: its data ([`CheckpointData`]) and its metadata
//! ([`CheckpointMeta`]), with the consistency checks a decoded `META` must pass.
//!
//! Invariants a valid [`CheckpointMeta`] keeps (checked by [`CheckpointMeta::check`] when it is
//! written and again whenever it is read back):
//! - its `id` equals the id its directory name carries;
//! - a full checkpoint has no parent; an incremental one has a parent with a smaller id;
//! - it lists at least one file; every file name is a plain name (no path separator, not
//!   `.`/`..`, not one of the store's own names) and appears once;
//! - `size_bytes` is the sum of the files' lengths;
//! - `id`, `epoch` and `lsn` are at most [`super::format::CHECKPOINT_ID_MAX`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{META_FILE_NAME, META_TMP_FILE_NAME};

/// A key or a value: bytes.
pub type Bytes = Vec<u8>;

/// The state image a checkpoint stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointData {
    /// The whole state.
    Full(BTreeMap<Bytes, Bytes>),
    /// The changes since the parent checkpoint. A key is never both put and deleted.
    Incremental {
        /// Keys set (or overwritten) since the parent.
        puts: BTreeMap<Bytes, Bytes>,
        /// Keys removed since the parent.
        deletes: BTreeSet<Bytes>,
    },
}

impl CheckpointData {
    /// Which kind of checkpoint this data makes.
    pub fn kind(&self) -> CheckpointKind {
        match self {
            CheckpointData::Full(_) => CheckpointKind::Full,
            CheckpointData::Incremental { .. } => CheckpointKind::Incremental,
        }
    }

    /// The entries the data holds: keys of a full image, puts plus deletes of an increment.
    pub fn key_count(&self) -> u64 {
        match self {
            CheckpointData::Full(state) => state.len() as u64,
            CheckpointData::Incremental { puts, deletes } => (puts.len() + deletes.len()) as u64,
        }
    }

    /// Applies this data on top of `state`: a full image replaces it, an increment edits it.
    pub fn apply_to(self, state: &mut BTreeMap<Bytes, Bytes>) {
        match self {
            CheckpointData::Full(image) => *state = image,
            CheckpointData::Incremental { puts, deletes } => {
                for key in &deletes {
                    state.remove(key);
                }
                state.extend(puts);
            }
        }
    }
}

/// Full image or changes since a parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointKind {
    /// The whole state; needs no other checkpoint.
    Full,
    /// Changes since `parent`; loading it needs the parent's chain down to a full one.
    Incremental,
}

/// What the caller records with a checkpoint, as exactly-once stream processors need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMeta {
    /// The input position of each source that the checkpointed state includes.
    pub source_offsets: BTreeMap<String, u64>,
    /// The event-time watermark the state is complete up to, if the caller tracks one.
    pub watermark: Option<u64>,
}

/// One file of a checkpoint directory, as `META` records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file's name inside the checkpoint directory.
    pub name: String,
    /// Its exact length in bytes.
    pub len_bytes: u64,
    /// crc32 (crc32fast) of its whole contents.
    pub crc32: u32,
}

/// The metadata of one checkpoint: what its `META` file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The checkpoint id: dense per store, never reused, larger means newer.
    pub id: u64,
    /// The epoch the checkpoint closes.
    pub epoch: u64,
    /// The WAL position the state includes: records at or below it are already applied.
    pub lsn: u64,
    /// When it was created, in milliseconds since the Unix epoch (`Env::now_wall`; 0 if the
    /// clock reads earlier). A timestamp for people, never used for ordering.
    pub wall_time_ms: u64,
    /// The caller's metadata.
    pub user: UserMeta,
    /// Bytes of all the checkpoint's data files.
    pub size_bytes: u64,
    /// Entries the data holds (see [`CheckpointData::key_count`]).
    pub key_count: u64,
    /// The checkpoint an incremental one applies on top of.
    pub parent: Option<u64>,
    /// Full or incremental.
    pub kind: CheckpointKind,
    /// The data files, each with its length and checksum.
    pub files: Vec<FileEntry>,
}

/// A consistency check a decoded `META` failed: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaCheckError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub detail: String,
}

fn fail(field: &'static str, detail: String) -> Result<(), MetaCheckError> {
    Err(MetaCheckError { field, detail })
}

/// Whether `name` may name a data file: a plain, non-empty name that is not one of ours.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= super::FILE_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name != META_FILE_NAME
        && name != META_TMP_FILE_NAME
        && !name.contains(['/', '\\', '\0'])
}

impl CheckpointMeta {
    /// Checks the invariants of the module docs for a `META` found in directory `dir_id`.
    pub fn check(&self, dir_id: u64) -> Result<(), MetaCheckError> {
        if self.id != dir_id {
            return fail("id", format!("{} but the directory is checkpoint {dir_id}", self.id));
        }
        // Bounds, so no arithmetic on what disk says overflows (ids, epochs and lsns grow by
        // one at a time from 0 and never get near them).
        let max = super::format::CHECKPOINT_ID_MAX;
        for (field, value) in [("id", self.id), ("epoch", self.epoch), ("lsn", self.lsn)] {
            if value > max {
                return fail(field, format!("{value} exceeds {max}"));
            }
        }
        match (self.kind, self.parent) {
            (CheckpointKind::Full, Some(parent)) => {
                return fail("parent", format!("a full checkpoint names parent {parent}"));
            }
            (CheckpointKind::Incremental, None) => {
                return fail("parent", "an incremental checkpoint has no parent".into());
            }
            (CheckpointKind::Incremental, Some(parent)) if parent >= self.id => {
                return fail("parent", format!("parent {parent} is not older than {}", self.id));
            }
            _ => {}
        }
        if self.files.is_empty() {
            return fail("files", "no data file".into());
        }
        let mut names = BTreeSet::new();
        let mut size: u64 = 0;
        for file in &self.files {
            if !is_plain_file_name(&file.name) || !names.insert(file.name.as_str()) {
                return fail("files", format!("bad or repeated file name {:?}", file.name));
            }
            size = size.saturating_add(file.len_bytes);
        }
        if size != self.size_bytes {
            return fail("size_bytes", format!("{} but the files hold {size}", self.size_bytes));
        }
        Ok(())
    }
}
