//! Why a shard is failed: a [`Failure`] carries the typed [`FailureCause`] (the WAL's,
//! checkpoint store's, recovery's or epoch tracker's own error, an I/O error on the shard's
//! directory, a missing directory or a panic) from the layer that raised it up to
//! [`crate::KernelError::Shard`], so a caller matches "WAL corruption in file X at offset Y"
//! on values, never on text.
//!
//! # Invariants
//!
//! - a failure is sticky: the shard keeps it and hands out clones, so every cause is cheap to
//!   clone (the errors below the shard that are not `Clone` are behind an [`Arc`]);
//! - `source()` of a [`Failure`] is the original error of the layer that raised it, and that
//!   error's own `source()` chain continues down to the `io::Error` where there is one;
//! - the Display text is the context (what the shard was doing) followed by the cause's own
//!   text, so it names the file and offset wherever the cause does.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::epoch::EpochError;
use crate::checkpoint::{CheckpointError, RecoveryError};
use crate::wal::{Lsn, WalError};

/// The typed cause of a shard failure.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FailureCause {
    /// A WAL append, sync or truncation failed.
    Wal(Arc<WalError>),
    /// A checkpoint could not be published or retention failed.
    Checkpoint(Arc<CheckpointError>),
    /// Recovery (checkpoint plus WAL replay) refused what is on disk or could not read it.
    Recovery(Arc<RecoveryError>),
    /// The epoch tracker refused a transition.
    Epoch(EpochError),
    /// The shard's directory is missing although the kernel created it.
    MissingDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// An I/O call on the shard's directory failed.
    Io {
        /// What the shard was doing.
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// A thread panicked while it held the shard, or while recovering it.
    Panic {
        /// What was under way.
        during: &'static str,
    },
}

impl FailureCause {
    /// The WAL error behind this cause, looking through a recovery error.
    pub fn wal_error(&self) -> Option<&WalError> {
        match self {
            FailureCause::Wal(error) => Some(error),
            FailureCause::Recovery(error) => match &**error {
                RecoveryError::Wal(error) => Some(error),
                _ => None,
            },
            _ => None,
        }
    }

    /// The checkpoint store's error behind this cause, looking through a recovery error.
    pub fn checkpoint_error(&self) -> Option<&CheckpointError> {
        match self {
            FailureCause::Checkpoint(error) => Some(error),
            FailureCause::Recovery(error) => match &**error {
                RecoveryError::Checkpoint(error) => Some(error),
                _ => None,
            },
            _ => None,
        }
    }

    fn error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FailureCause::Wal(error) => Some(&**error),
            FailureCause::Checkpoint(error) => Some(&**error),
            FailureCause::Recovery(error) => Some(&**error),
            FailureCause::Epoch(error) => Some(error),
            FailureCause::Io { source, .. } => Some(&**source),
            FailureCause::MissingDirectory { .. } | FailureCause::Panic { .. } => None,
        }
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Wal(error) => error.fmt(f),
            FailureCause::Checkpoint(error) => error.fmt(f),
            FailureCause::Recovery(error) => error.fmt(f),
            FailureCause::Epoch(error) => error.fmt(f),
            FailureCause::MissingDirectory { path } => write!(f, "{} is missing", path.display()),
            FailureCause::Io { op: "", path, source } => {
                write!(f, "{}: {source}", path.display())
            }
            FailureCause::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            FailureCause::Panic { during } => write!(f, "{during} panicked"),
        }
    }
}

/// Two causes are equal when they are the same kind and say the same (the errors below the
/// shard are not comparable themselves; their text names every field).
impl PartialEq for FailureCause {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.to_string() == other.to_string()
    }
}

impl Eq for FailureCause {}

/// Why a shard is failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the shard was doing ("append", "sync", "checkpoint", ...; empty where the cause
    /// says it all, as at recovery).
    pub context: &'static str,
    /// The typed cause; [`std::error::Error::source`] of the failure is its error.
    pub cause: FailureCause,
    /// Whether durable data is damaged or lost (recovery refused it), as opposed to an I/O
    /// failure after which a reopen may recover everything.
    pub data_loss: bool,
}

impl Failure {
    /// A failure of an operation on a serving shard (never data loss: what is on disk was
    /// not refused).
    pub fn new(context: &'static str, cause: FailureCause) -> Self {
        Self { context, cause, data_loss: false }
    }

    /// The failure of a recovery, data loss when recovery refused durable data.
    pub fn recovery(error: RecoveryError) -> Self {
        let data_loss = error.is_data_loss();
        Self { context: "", cause: FailureCause::Recovery(Arc::new(error)), data_loss }
    }

    /// The failure of a WAL operation.
    pub fn wal(context: &'static str, error: WalError) -> Self {
        Self::new(context, FailureCause::Wal(Arc::new(error)))
    }

    /// The failure of a checkpoint store operation.
    pub fn checkpoint(context: &'static str, error: CheckpointError) -> Self {
        Self::new(context, FailureCause::Checkpoint(Arc::new(error)))
    }

    /// The failure of an epoch transition.
    pub fn epoch(context: &'static str, error: EpochError) -> Self {
        Self::new(context, FailureCause::Epoch(error))
    }

    /// The failure of an I/O call on the shard's directory.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let cause = FailureCause::Io { op, path: path.to_path_buf(), source: Arc::new(source) };
        Self::new("", cause)
    }

    /// The shard's directory is missing: whatever it held is lost.
    pub fn missing_directory(path: &Path) -> Self {
        Self {
            context: "",
            cause: FailureCause::MissingDirectory { path: path.to_path_buf() },
            data_loss: true,
        }
    }

    /// A panic during `during`.
    pub fn panic(during: &'static str) -> Self {
        Self::new("", FailureCause::Panic { during })
    }

    /// Whether a sync may have failed in the shard: the failing call was a sync (its op
    /// names one), the WAL was poisoned by an earlier failure, or a panic left it unknown.
    /// After one, the shard's pages in the page cache may be marked clean without being on
    /// disk (fsyncgate), so its recovery is retried only in a new process.
    pub fn after_failed_sync(&self) -> bool {
        let names_sync = |op: &str| op.contains("sync");
        match &self.cause {
            FailureCause::Io { op, .. } => names_sync(op),
            FailureCause::Panic { .. } => true,
            FailureCause::Epoch(_) | FailureCause::MissingDirectory { .. } => false,
            cause => {
                let wal = cause.wal_error().is_some_and(|error| match error {
                    WalError::Io { op, .. } => names_sync(op),
                    WalError::Poisoned { .. } => true,
                    _ => false,
                });
                let checkpoint = cause
                    .checkpoint_error()
                    .is_some_and(|error| matches!(error, CheckpointError::Io { op, .. } if names_sync(op)));
                wal || checkpoint
            }
        }
    }

    /// Where WAL corruption was found, if this failure is WAL corruption: the segment file,
    /// the offset in it and the lsn expected there.
    pub fn wal_corruption(&self) -> Option<(&Path, u64, Lsn)> {
        match self.cause.wal_error()? {
            WalError::Corruption { path, offset, lsn, .. } => Some((path, *offset, *lsn)),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        self.cause.fmt(f)?;
        if self.data_loss { f.write_str(" (data loss)") } else { Ok(()) }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.error()
    }
}
