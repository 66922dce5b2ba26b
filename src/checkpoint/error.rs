//! Errors of the checkpoint store. Every error that the disk or a caller can cause is a value
//! here; damage names the file, and the offset or field where there is one.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::data::DataError;
use super::format::FormatError;
use super::meta::MetaCheckError;
use crate::identity::StoreIdentity;

/// What went wrong in the checkpoint store.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// An I/O call failed. Not damage: the caller may retry after fixing the cause.
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A `META` file exists but is not a valid envelope (a damaged checkpoint).
    MetaFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its offset.
        source: FormatError,
    },
    /// A `META` file decodes but breaks an invariant (a damaged checkpoint).
    MetaInvalid {
        /// The file.
        path: PathBuf,
        /// The field and what is wrong with it.
        check: MetaCheckError,
    },
    /// The checkpoint's `META` exists but fails (checksum, format or an invariant).
    Damaged {
        /// The checkpoint.
        id: u64,
        /// What `open` found wrong with its `META`, naming the file.
        reason: String,
    },
    /// A data file named by `META` is missing.
    DataMissing {
        /// The file.
        path: PathBuf,
    },
    /// A data file's length differs from the one `META` records.
    DataLength {
        /// The file.
        path: PathBuf,
        /// The recorded length.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// A data file's crc32 differs from the one `META` records.
    DataChecksum {
        /// The file.
        path: PathBuf,
        /// The recorded crc32.
        expected: u32,
        /// The crc32 of the bytes found.
        actual: u32,
    },
    /// A data file passes its checksum but does not decode, or decodes to something other than
    /// `META` describes.
    DataFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong and at which offset.
        source: DataError,
    },
    /// A checkpoint's parent chain is broken: an ancestor is missing, damaged or inconsistent.
    BrokenChain {
        /// The checkpoint asked for.
        id: u64,
        /// The ancestor that is the problem.
        ancestor: u64,
        /// Why.
        reason: String,
    },
    /// No checkpoint with this id (valid or damaged) is in the store.
    NotFound {
        /// The id.
        id: u64,
    },
    /// `delete` refused: a checkpoint that remains needs this one in its parent chain.
    NeededByChain {
        /// The checkpoint asked to delete.
        id: u64,
        /// The checkpoint whose parent it is.
        needed_by: u64,
    },
    /// `create` refused an incremental checkpoint: `full_every_incrementals` incrementals are
    /// already chained on the parent, so the next checkpoint must be full.
    FullCheckpointDue {
        /// The parent asked for.
        parent: u64,
        /// Incrementals in the parent's chain.
        incrementals: u32,
    },
    /// `create` was called with arguments that make no valid checkpoint.
    InvalidRequest(String),
    /// Checkpoints exist but none loads; each attempt and why it failed.
    NoLoadableCheckpoint {
        /// Every checkpoint tried, newest first.
        fallbacks: Vec<super::Fallback>,
    },
    /// An earlier failed write or sync poisoned the store: its on-disk state is unknown, so
    /// nothing more is changed until it is reopened.
    Poisoned {
        /// The failure that poisoned it.
        cause: String,
    },
    /// Options out of range.
    InvalidOptions(String),
    /// A `META` or `HIGH_WATER` that says it belongs to another store or shard (a checkpoint
    /// directory copied or swapped in from elsewhere). The store refuses to open.
    Foreign {
        /// The file.
        path: PathBuf,
        /// The offset of the identity in it.
        offset: u64,
        /// The store and shard the file names.
        found: StoreIdentity,
        /// The store and shard this store is.
        expected: StoreIdentity,
    },
}

impl CheckpointError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CheckpointError::Io { op, path: path.into(), source }
    }

    /// Whether this error says stored bytes are damaged or missing (so falling back to an
    /// older checkpoint is right), as opposed to an I/O failure or a caller's mistake.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            CheckpointError::MetaFormat { .. }
                | CheckpointError::MetaInvalid { .. }
                | CheckpointError::Damaged { .. }
                | CheckpointError::DataMissing { .. }
                | CheckpointError::DataLength { .. }
                | CheckpointError::DataChecksum { .. }
                | CheckpointError::DataFormat { .. }
                | CheckpointError::BrokenChain { .. }
        )
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CheckpointError as E;
        match self {
            E::Io { op, path, source } => write!(f, "checkpoint {op} {}: {source}", path.display()),
            E::MetaFormat { path, source } => write!(f, "damaged metadata {}: {source}", path.display()),
            E::MetaInvalid { path, check } => {
                write!(f, "invalid metadata {}: field {}: {}", path.display(), check.field, check.detail)
            }
            E::Damaged { id, reason } => write!(f, "checkpoint {id} is damaged: {reason}"),
            E::DataMissing { path } => write!(f, "data file {} is missing", path.display()),
            E::DataLength { path, expected, actual } => {
                write!(f, "data file {} holds {actual} bytes, metadata records {expected}", path.display())
            }
            E::DataChecksum { path, expected, actual } => write!(
                f,
                "data file {} fails its checksum: recorded {expected:#010x}, computed {actual:#010x}",
                path.display()
            ),
            E::DataFormat { path, source } => write!(f, "data file {} {source}", path.display()),
            E::BrokenChain { id, ancestor, reason } => {
                write!(f, "checkpoint {id}: parent chain broken at checkpoint {ancestor}: {reason}")
            }
            E::NotFound { id } => write!(f, "no checkpoint {id}"),
            E::NeededByChain { id, needed_by } => {
                write!(f, "checkpoint {id} is the parent of checkpoint {needed_by}")
            }
            E::FullCheckpointDue { parent, incrementals } => write!(
                f,
                "a full checkpoint is due: parent {parent} already has {incrementals} incrementals in its chain"
            ),
            E::InvalidRequest(what) => write!(f, "invalid checkpoint request: {what}"),
            E::NoLoadableCheckpoint { fallbacks } => {
                write!(f, "no checkpoint loads ({} tried)", fallbacks.len())?;
                for fallback in fallbacks {
                    write!(f, "; {fallback}")?;
                }
                Ok(())
            }
            E::Poisoned { cause } => write!(f, "checkpoint store is poisoned by an earlier failure: {cause}"),
            E::InvalidOptions(what) => write!(f, "invalid checkpoint options: {what}"),
            E::Foreign { path, offset, found, expected } => write!(
                f,
                "{} belongs to {found} (identity at offset {offset}), this checkpoint store is {expected}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::MetaFormat { source, .. } => Some(source),
            CheckpointError::DataFormat { source, .. } => Some(source),
            _ => None,
        }
    }
}
