//! The kernel's errors: every mistake a caller or a disk can cause is a value here, naming the
//! shard, file or key involved.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::shard::{Failure, ShardError};
use crate::wal::Lsn;

/// What went wrong in the kernel.
#[derive(Debug)]
#[non_exhaustive]
pub enum KernelError {
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// Another open kernel (in this or another process) holds the directory.
    Locked {
        /// The kernel directory.
        path: PathBuf,
    },
    /// An I/O call on the kernel's own files failed.
    Io {
        /// What the kernel was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel's metadata file is damaged or not a stormhold file.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The offset of the first problem.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The directory was created with another shard count or router.
    ConfigMismatch {
        /// The kernel directory.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// A shard refused the operation (it is failed, a counter is not a counter, ...).
    Shard {
        /// The shard.
        shard: u32,
        /// What it said.
        error: ShardError,
    },
    /// A transaction or document touched keys of two shards. Transactions are atomic within
    /// one shard only; use [`crate::Router::Prefix`] to keep related keys together.
    CrossShard {
        /// The shard the transaction is bound to.
        bound_to: u32,
        /// The key that routes elsewhere.
        key: Vec<u8>,
        /// Its shard.
        key_shard: u32,
    },
    /// A key or value is too long, or a document id is empty or too long (the empty key is
    /// a key like any other).
    InvalidInput(String),
    /// `KERNEL` is missing but a shard directory holds data: the store exists, and creating
    /// it anew (perhaps with another shard count or router) would strand that data.
    KernelFileMissing {
        /// The missing file.
        path: PathBuf,
        /// A shard directory that holds data.
        shard_dir: PathBuf,
    },
    /// The kernel was opened read-only ([`crate::Kernel::open_read_only`]): writes, syncs
    /// and checkpoints are refused.
    ReadOnly {
        /// The kernel directory.
        path: PathBuf,
    },
    /// The directory holds no store (no `KERNEL` file), and the call does not create one.
    NoStore {
        /// The directory.
        path: PathBuf,
    },
    /// Fewer shards opened serving than [`crate::ConfigBuilder::min_serving_shards`] asks
    /// for (by default: every shard failed). Each failed shard and why, in shard order;
    /// `source()` is the first one's failure.
    TooFewShardsServing {
        /// The kernel directory.
        path: PathBuf,
        /// Shards that opened serving.
        serving: u32,
        /// The configured minimum.
        required: u32,
        /// Every failed shard and its failure.
        failures: Vec<(u32, Failure)>,
    },
    /// [`crate::Kernel::reopen_shard`] refused to retry a shard's recovery in this process;
    /// reopening the kernel in a new process is the retry ([`ReopenRefusal`] says why).
    ReopenRefused {
        /// The shard.
        shard: u32,
        /// Why the retry would be unsafe.
        reason: ReopenRefusal,
        /// The shard's failure.
        failure: Failure,
    },
}

/// Why [`crate::Kernel::reopen_shard`] refused to retry a shard's recovery in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReopenRefusal {
    /// The shard failed while serving: this process wrote and synced its files, and it holds
    /// them still; only a recovery that failed at open is retried in place.
    FailedWhileServing,
    /// A sync failed in the shard (during its recovery): the pages it covered may be marked
    /// clean in the page cache without being on disk, and a recovery in this process would
    /// read them (fsyncgate: the WAL module docs). Restart the process, on the real OS
    /// preferably the machine.
    AfterFailedSync,
}

impl fmt::Display for ReopenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReopenRefusal::FailedWhileServing => {
                "it failed while serving; reopen the kernel in a new process to retry"
            }
            ReopenRefusal::AfterFailedSync => {
                "a sync failed in it, so the page cache may hold pages the disk never got (fsyncgate); \
                 restart the process (on the real OS, preferably the machine) to retry"
            }
        })
    }
}

impl KernelError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KernelError::Io { op, path: path.into(), source }
    }

    /// The shard failure behind this error, if it is one (the first failed shard's, for
    /// [`KernelError::TooFewShardsServing`]).
    pub fn shard_failure(&self) -> Option<(u32, &Failure)> {
        match self {
            KernelError::Shard { shard, error: ShardError::Failed { failure, .. } } => {
                Some((*shard, failure))
            }
            KernelError::TooFewShardsServing { failures, .. } => failures.first().map(|(s, f)| (*s, f)),
            KernelError::ReopenRefused { shard, failure, .. } => Some((*shard, failure)),
            _ => None,
        }
    }

    /// Where WAL corruption failed the shard behind this error, if it did: the shard, the
    /// segment file, the offset in it and the lsn expected there.
    pub fn wal_corruption(&self) -> Option<(u32, &Path, u64, Lsn)> {
        let (shard, failure) = self.shard_failure()?;
        let (path, offset, lsn) = failure.wal_corruption()?;
        Some((shard, path, offset, lsn))
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::InvalidConfig(what) => write!(f, "invalid config: {what}"),
            KernelError::Locked { path } => {
                write!(f, "{} is already open (the directory lock is held)", path.display())
            }
            KernelError::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            KernelError::Corrupt { path, offset, detail } => {
                write!(f, "{} is damaged at offset {offset}: {detail}", path.display())
            }
            KernelError::ConfigMismatch { path, detail } => write!(f, "{}: {detail}", path.display()),
            KernelError::Shard { error, .. } => error.fmt(f),
            KernelError::CrossShard { bound_to, key, key_shard } => write!(
                f,
                "key \"{}\" is in shard {key_shard}, but the transaction is bound to shard {bound_to}: \
                 transactions are atomic within one shard only (route related keys together with a prefix router)",
                key.escape_ascii()
            ),
            KernelError::InvalidInput(what) => f.write_str(what),
            KernelError::KernelFileMissing { path, shard_dir } => write!(
                f,
                "{} is missing, but {} holds data: the store exists and its shard count and router \
                 are unknown; restore the file (the store is not re-created over its data)",
                path.display(),
                shard_dir.display()
            ),
            KernelError::ReadOnly { path } => {
                write!(f, "{} is open read-only: writes, syncs and checkpoints are refused", path.display())
            }
            KernelError::NoStore { path } => {
                write!(f, "{} holds no stormhold store (no KERNEL file)", path.display())
            }
            KernelError::TooFewShardsServing { path, serving, required, failures } => {
                write!(f, "{}: {serving} shards serve, at least {required} must", path.display())?;
                for (shard, failure) in failures {
                    write!(f, "; shard {shard} failed: {failure}")?;
                }
                Ok(())
            }
            KernelError::ReopenRefused { shard, reason, failure } => {
                write!(f, "shard {shard} is not reopened in this process: {reason} (it failed: {failure})")
            }
        }
    }
}

impl std::error::Error for KernelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KernelError::Io { source, .. } => Some(source),
            KernelError::Shard { error, .. } => Some(error),
            KernelError::TooFewShardsServing { failures, .. } => {
                failures.first().map(|(_, failure)| failure as &(dyn std::error::Error + 'static))
            }
            KernelError::ReopenRefused { failure, .. } => Some(failure),
            _ => None,
        }
    }
}
