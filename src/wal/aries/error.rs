//! Errors of the ARIES layer: the WAL's own errors, damage to the meaning of valid records,
//! a page store's failures, and caller mistakes, each a typed value.

use std::error::Error;
use std::fmt;

use super::records::PayloadError;
use super::{PageId, TxnId};
use crate::wal::WalError;
use crate::wal::format::{Lsn, RecordKind};

/// Which [`super::RecoveryHandler`] call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerCall {
    /// `page_lsn`.
    PageLsn,
    /// `redo`.
    Redo,
    /// `undo`.
    Undo,
}

/// What went wrong in the ARIES layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum AriesError {
    /// The log failed (I/O, corruption, poisoning, ...).
    Wal(WalError),
    /// A record passed its checksums but does not mean what its kind says: written by a bug
    /// or by another writer, never by a torn write.
    BadRecord {
        /// Its lsn.
        lsn: Lsn,
        /// Its kind.
        kind: RecordKind,
        /// What is wrong.
        detail: String,
    },
    /// The undo chain of a transaction that must be rolled back leads to a record the log no
    /// longer holds (truncated before the transaction's first record) or that is not one of
    /// that transaction's records. Recovery refuses to guess.
    BrokenUndoChain {
        /// The transaction.
        txn_id: TxnId,
        /// The lsn the chain leads to.
        lsn: Lsn,
        /// Why it cannot be followed.
        detail: &'static str,
    },
    /// The second recovery pass read a different log than the first (the disk changed under
    /// recovery).
    LogChanged {
        /// What differed.
        detail: String,
    },
    /// The page store failed.
    Handler {
        /// The call.
        call: HandlerCall,
        /// The page.
        page_id: PageId,
        /// The lsn of the change.
        lsn: Lsn,
        /// The page store's error.
        source: Box<dyn Error + Send + Sync>,
    },
    /// Transaction id 0 means "none" in the record header and cannot be used.
    InvalidTxnId,
    /// `begin` of a transaction that is already active.
    TxnActive(TxnId),
    /// An operation on a transaction that is not active.
    UnknownTxn(TxnId),
    /// An update whose before and after images differ in length, so its undo would not
    /// restore every byte its redo wrote.
    ImageLengths {
        /// Before image bytes.
        before: usize,
        /// After image bytes.
        after: usize,
    },
}

impl AriesError {
    pub(super) fn bad_record(lsn: Lsn, kind: RecordKind, detail: impl fmt::Display) -> Self {
        AriesError::BadRecord { lsn, kind, detail: detail.to_string() }
    }

    pub(super) fn payload(lsn: Lsn, kind: RecordKind, error: PayloadError) -> Self {
        Self::bad_record(lsn, kind, error)
    }

    pub(super) fn handler(
        call: HandlerCall,
        page_id: PageId,
        lsn: Lsn,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        AriesError::Handler { call, page_id, lsn, source: Box::new(source) }
    }
}

impl From<WalError> for AriesError {
    fn from(error: WalError) -> Self {
        AriesError::Wal(error)
    }
}

impl fmt::Display for AriesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AriesError::Wal(error) => error.fmt(f),
            AriesError::BadRecord { lsn, kind, detail } => {
                write!(f, "bad {kind:?} record at lsn {lsn}: {detail}")
            }
            AriesError::BrokenUndoChain { txn_id, lsn, detail } => {
                write!(f, "cannot roll back transaction {txn_id}: its undo chain reaches lsn {lsn}, {detail}")
            }
            AriesError::LogChanged { detail } => write!(f, "the log changed during recovery: {detail}"),
            AriesError::Handler { call, page_id, lsn, source } => {
                write!(f, "page store {call:?} of page {page_id} at lsn {lsn} failed: {source}")
            }
            AriesError::InvalidTxnId => f.write_str("transaction id 0 is reserved"),
            AriesError::TxnActive(txn_id) => write!(f, "transaction {txn_id} is already active"),
            AriesError::UnknownTxn(txn_id) => write!(f, "transaction {txn_id} is not active"),
            AriesError::ImageLengths { before, after } => {
                write!(f, "before image of {before} bytes and after image of {after} bytes differ in length")
            }
        }
    }
}

impl Error for AriesError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            AriesError::Wal(error) => Some(error),
            AriesError::Handler { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
