//! Errors of the write-ahead log. Every error that the disk or a caller can cause is a value
//! here; corruption names the file and the offset.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::format::Lsn;

/// What went wrong in the WAL.
#[derive(Debug)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O call failed.
    Io {
        /// What the WAL was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record that was durable once is damaged (a later valid record vouches for it), or a
    /// segment is unreadable where records must be.
    Corruption {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// The lsn expected there.
        lsn: Lsn,
        /// What is wrong.
        detail: String,
    },
    /// An earlier failure (a failed sync or write) poisoned the log: nothing more is accepted
    /// until it is reopened, because the outcome of that failure is unknown.
    Poisoned {
        /// The failure that poisoned it.
        cause: String,
    },
    /// A record payload larger than the format allows.
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Options out of range.
    InvalidOptions(String),
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io { op, path: path.into(), source }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        lsn: Lsn,
        detail: impl fmt::Display,
    ) -> Self {
        WalError::Corruption { path: path.into(), offset, lsn, detail: detail.to_string() }
    }

    /// The underlying I/O error, if this is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { op, path, source } => write!(f, "WAL {op} {}: {source}", path.display()),
            WalError::Corruption { path, offset, lsn, detail } => {
                write!(f, "WAL corruption in {} at offset {offset} (lsn {lsn}): {detail}", path.display())
            }
            WalError::Poisoned { cause } => write!(f, "WAL is poisoned by an earlier failure: {cause}"),
            WalError::RecordTooLarge { len, max } => {
                write!(f, "WAL record payload of {len} bytes exceeds {max}")
            }
            WalError::InvalidOptions(what) => write!(f, "invalid WAL options: {what}"),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
